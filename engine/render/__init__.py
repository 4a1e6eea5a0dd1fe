"""The render layer: torch and diffusers turn ``RenderParams`` into frames.

``params`` (no torch, so the bot can import it), ``models`` and ``hub`` (loading), ``chain`` (one
job's frames), ``sampler`` (the batched denoising loop), ``accel`` (CUDA speed-ups), ``frames``
(frames on disk), ``clip`` (one clip to an MP4) and ``steps`` (control maps, motion, colour).
Never imports ``engine.queue`` or ``bot``. This package module imports nothing, so importing
``engine.request.params`` does not load torch.
"""
