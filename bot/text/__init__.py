"""What the bot writes: ``limits`` (Discord's limits and the one place text is shortened to fit them),
``messages`` (pure functions from jobs and limits to message text) and ``info`` (the Info button's
recipe text). Nothing here sends anything."""
