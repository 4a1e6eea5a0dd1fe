"""The video layer: ffmpeg (and Pillow for previews), no torch, no discord.

- :mod:`engine.video.runner`: the ffmpeg executable, compiling and running a command line.
- :mod:`engine.video.parse`: parsing ffmpeg's stream headers and final stats (pure).
- :mod:`engine.video.read`: ``probe``/``MediaInfo``, ``decode_frames``, ``check_audio``.
- :mod:`engine.video.encode`: frames → H.264 MP4 (``VideoWriter``, ``encode_frames``).
- :mod:`engine.video.edit`: ``mux_audio``, ``fit_to_size``.
- :mod:`engine.video.preview`: ``preview_jpeg``, ``preview_animation``.
"""
