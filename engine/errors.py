"""The one user-facing error type.

Its text is what the person reads (in a chat or on the command line): one sentence saying what was
wrong and what to do next. Anything else that escapes is a bug, logged with the job id.
"""

import errno


class UserError(Exception):
    """A problem the user can fix; ``str(err)`` is the message they see."""


class OutOfMemory(RuntimeError):
    """The accelerator ran out of memory for this work (the render layer raises it from
    ``torch.OutOfMemoryError``), so layers without torch can recognise it by type."""


DISK_FULL = "The host's disk is full; tell the host."
NO_SPACE = "No space left on device"  # strerror(ENOSPC), as ffmpeg prints it when its output cannot be written


class DiskFull(UserError):
    """A write found the host's disk (or the job store's database) full."""

    def __init__(self) -> None:
        super().__init__(DISK_FULL)


def is_disk_full(err: BaseException | None) -> bool:
    """Whether ``err``, or an error it came from, is a full disk: :class:`DiskFull`, an ``OSError``
    with ``ENOSPC``/``EDQUOT``, or a tool's failure that says so (ffmpeg's last words)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, DiskFull) or (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)):
            return True
        if NO_SPACE in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False
