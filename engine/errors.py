"""The one user-facing error type.

Its text is what the person reads (in a chat or on the command line): one sentence saying what was
wrong and what to do next. Anything else that escapes is a bug, logged with the job id.
"""


class UserError(Exception):
    """A problem the user can fix; ``str(err)`` is the message they see."""


class OutOfMemory(RuntimeError):
    """The accelerator ran out of memory for this work (the render layer raises it from
    ``torch.OutOfMemoryError``), so layers without torch can recognise it by type."""
