"""The weights a render loads, and where they come from.

``models`` (a model's parts loaded and placed on a device), ``model_cache`` (the models one engine
keeps loaded, least recently used out first), ``controls`` (each control type's ControlNet and
annotator), ``loras`` (LoRA adapters), ``single_file`` (one-file checkpoints), ``hub`` (downloads and
plain messages when they fail), ``weights_check`` and ``presence`` (torch-free checks of what is on
disk, for ``animabot models list`` and the start-up check), and the built-in random-weight test
models (``tiny``, ``tiny_controls``).
"""
