"""tensorlane: share numpy arrays (and torch tensors, through DLPack) between
processes through shared memory, with lock-free, model-checked algorithms.

Three lane kinds, each a named segment of ``/dev/shm``:

- ``StreamWriter`` / ``StreamReader``: the latest value (a camera frame, a state);
- ``QueueProducer`` / ``QueueConsumer``: a lossless queue, with zero-copy loans;
- ``TopicPublisher`` / ``TopicSubscriber``: broadcast to lossless and lossy
  subscribers, with history.

>>> import numpy as np, tensorlane
>>> with tensorlane.StreamWriter.create("doc-camera", (2, 3), np.float32) as w:
...     seq = w.write(np.ones((2, 3), np.float32))
...     with tensorlane.StreamReader.open("doc-camera") as r:
...         frame = r.read()
...     tensorlane.unlink("doc-camera")
>>> frame.seq, frame.array.sum()
(1, np.float32(6.0))

Every read returns a ``Frame``: ``frame.array`` (numpy; the ``out`` array when one is
given) with ``seq``, ``frame_id``, ``timestamp_ns`` and ``missed``. Errors are
subclasses of ``LaneError``.
"""

from ._errors import (
    AlreadyExists,
    Corrupt,
    Empty,
    Evicted,
    Full,
    InvalidArgument,
    LaneError,
    LaneOSError,
    LoanEscaped,
    LoanOpen,
    MemoryLockRefused,
    NoSpace,
    NotFound,
    PermissionDenied,
    RoleTaken,
    Stalled,
    TableFull,
    Timeout,
    WriterGone,
    WrongKind,
    WrongSpec,
)
from ._native import (
    ConsumerLoan,
    Frame,
    ProducerLoan,
    QueueConsumer,
    QueueProducer,
    StreamReader,
    StreamWriter,
    TopicPublisher,
    TopicSubscriber,
    inspect,
    list_lanes,
    unlink,
)

__version__ = "0.1.0"


def mirror_name(name: str) -> str:
    """The name of GPU lane ``name``'s CPU mirror: an ordinary stream or topic that
    carries the tensor itself, readable without CUDA (docs/LAYOUT.md, GPU lanes).

    >>> mirror_name("camera")
    'camera.cpu'
    """
    return f"{name}.cpu"

__all__ = [
    "AlreadyExists",
    "ConsumerLoan",
    "Corrupt",
    "Empty",
    "Evicted",
    "Frame",
    "Full",
    "InvalidArgument",
    "LaneError",
    "LaneOSError",
    "LoanEscaped",
    "LoanOpen",
    "MemoryLockRefused",
    "NoSpace",
    "NotFound",
    "PermissionDenied",
    "ProducerLoan",
    "QueueConsumer",
    "QueueProducer",
    "RoleTaken",
    "Stalled",
    "StreamReader",
    "StreamWriter",
    "TableFull",
    "Timeout",
    "TopicPublisher",
    "TopicSubscriber",
    "WriterGone",
    "WrongKind",
    "WrongSpec",
    "inspect",
    "list_lanes",
    "mirror_name",
    "unlink",
]
