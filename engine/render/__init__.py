"""The render layer: torch and diffusers turn ``RenderParams`` into frames.

``chain`` (one job's frame chain: frame 0 from text or a picture, each next frame from the one
before), ``sampler`` (our batched denoising loop), ``accel`` (CUDA speed-ups and the compiled step),
``frames`` (frames on disk), ``library_logs`` (diffusers' and transformers' own bars and warnings),
``steps/`` (control maps, motion, colour, loops: small pure steps) and ``weights/`` (loading models,
ControlNets, LoRAs and annotators from the hub, folders or single files, and the built-in test
weights).

Imports only ``engine.video``, ``engine.config`` and ``engine.request`` of ours: never the store,
the runtime or the bot. This package module imports nothing, so importing it loads no torch.
"""
