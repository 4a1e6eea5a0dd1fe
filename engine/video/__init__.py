"""The video layer: ffmpeg (and Pillow for previews), no torch, no discord.

- :mod:`engine.video.runner`: the ffmpeg executable, compiling and running a command line.
- :mod:`engine.video.parse`: parsing ffmpeg's stream headers and final stats (pure).
- :mod:`engine.video.read`: ``probe``/``MediaInfo``, ``decode_frames``, ``check_audio``, ``read_recipe``.
- :mod:`engine.video.encode`: frames → H.264 MP4 (``VideoWriter``, ``encode_frames``).
- :mod:`engine.video.edit`: ``mux_audio``, ``fit_to_size``.
- :mod:`engine.video.preview`: ``preview_jpeg``, ``preview_animation``.
- :mod:`engine.video.formats`: mp4/gif/webp (``clip_format``, ``check_format_matches``, ``write_clip``);
  :mod:`engine.video.gif` and :mod:`engine.video.webp` write the animations.
- :mod:`engine.video.embedded_recipe`: the JSON recipe in each container (``read.read_recipe`` reads it back).
- :mod:`engine.video.loops` (``pingpong``), :mod:`engine.video.interpolate` (``smooth_frames``),
  :mod:`engine.video.metrics` (``temporal_metrics``, ``measure_video``: the flicker meter).
"""
