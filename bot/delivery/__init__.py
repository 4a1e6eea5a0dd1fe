"""From the store's progress to the channel: ``progress`` (the watcher that edits progress messages and
decides when a job is delivered), ``results`` (posting a finished video, fitted to the upload limit,
or a readable outcome instead) and ``notify`` (telling a member what happened, where they can read it)."""
