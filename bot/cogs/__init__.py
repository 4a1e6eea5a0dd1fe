"""One cog per concern, each ending in ``async def setup(bot)``, each with its modals and views beside it:
``animate`` (``/animate``, the reactions, Re-roll and Cancel), ``animate_picture`` (the Animate
context menu), ``remix`` (Remix from a button or any video, and its form), ``info``, ``mux``,
``queue`` (``/queue``, ``/cancel``), ``deliver``, ``models`` and ``admin`` (``/limits``)."""
