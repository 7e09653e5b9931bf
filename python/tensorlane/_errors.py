"""The exceptions of tensorlane: one base class, a subclass per error users handle
differently. Each also derives from the built-in exception Python code already
catches for that situation (``Timeout`` is a ``TimeoutError``, ``NotFound`` a
``FileNotFoundError``, ``WrongSpec`` a ``ValueError``, ...)."""


class LaneError(Exception):
    """Base class of every error a lane reports."""


class InvalidArgument(LaneError, ValueError):
    """A name, shape, dtype, geometry or metadata given to create or open is invalid."""


class AlreadyExists(LaneError, FileExistsError):
    """A lane with this name already exists."""


class NotFound(LaneError, FileNotFoundError):
    """No lane has this name."""


class PermissionDenied(LaneError, PermissionError):
    """The lane belongs to another user, or may not be opened by this one."""


class NoSpace(LaneError, OSError):
    """Shared memory (/dev/shm) has no room for the lane; nothing was left behind."""


class MemoryLockRefused(LaneError, OSError):
    """Locking the lane in memory (lock_memory=True) exceeds RLIMIT_MEMLOCK."""


class WrongKind(LaneError, TypeError):
    """The lane is of another kind (stream, queue, topic) than the one opened."""


class WrongSpec(LaneError, ValueError):
    """An array, or the lane, has another dtype or shape than expected."""


class RoleTaken(LaneError):
    """A live process holds the role (writer, consumer, subscriber entry)."""


class Corrupt(LaneError):
    """The lane's shared state or header is invalid."""


class TableFull(LaneError):
    """The topic's subscriber table is full."""


class Evicted(LaneError):
    """This lossless subscriber was evicted (its process was presumed dead)."""


class WriterGone(LaneError):
    """The lane's writer is gone and everything it wrote was read."""


class Empty(LaneError):
    """A try_ call found nothing to return now."""


class Full(LaneError):
    """A try_ call found no room now."""


class Timeout(LaneError, TimeoutError):
    """A wait ran out of time."""


class Stalled(LaneError):
    """Every read attempt raced a write until the time ran out."""


class LaneOSError(LaneError, OSError):
    """A system call on the lane's object failed."""


class LoanEscaped(LaneError):
    """A view of a loaned slot outlived its with block; the loan was not finished, and
    the handle keeps the slot (refusing other calls) until those views are gone."""


class LoanOpen(LaneError, RuntimeError):
    """A call on a handle whose loan is open: finish the with block first."""


__all__ = [name for name, value in dict(globals()).items()
           if isinstance(value, type) and issubclass(value, LaneError)]
