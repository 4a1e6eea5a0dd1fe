"""The torch-free words of a job: what a member, a button, a recipe or the command line asks for.

``params`` (``RenderParams``, the one schema of a render, and its checks), ``catalog`` (the models
and LoRAs a host named, by the names members pick), ``picture`` (a member's picture checked and
fitted to frame 0), ``recipe`` (what a video file carries to be rendered again) and ``validation``
(the project's pydantic conventions and the one-sentence wording of a schema's errors).

Every other folder may import this one; it imports only ``engine.errors`` and ``engine.files``, so the
bot, the store and a bot host without a GPU use it without loading torch.
"""
