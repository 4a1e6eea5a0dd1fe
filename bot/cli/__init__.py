"""The ``animabot`` command line: ``main`` (the parser and the subcommands), ``run`` (the bot, and the
runtime unless ``--no-engine``), ``render`` (one clip without Discord, and ``info``/``metrics``).

It never touches Discord itself except through ``run``, and loads torch only when it renders.
"""
