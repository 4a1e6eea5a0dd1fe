"""Pure per-frame image steps (numpy and OpenCV, no torch): control maps, camera motion, colour."""
