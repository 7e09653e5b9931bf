"""asyncio awaitables of the receiving handles.

A receive first makes one attempt on the event loop (``_poll``, which never waits,
not even for another thread using the handle); then it waits on the loop's default
executor in slices (``_fill``, at most ``SLICE_SECONDS`` each), so the event loop is
never blocked and a cancelled task leaves at most one slice running. What a slice
receives is kept by the handle and returned by its next read (``_take``), so
cancelling loses nothing."""

import asyncio

from ._errors import Timeout, WriterGone
from ._native import SLICE_SECONDS


async def receive(handle, out=None, timeout=None):
    """The next item of ``handle`` (as its blocking read), awaited."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    if handle._poll():
        frame = handle._take(out)
        if frame is not None:  # else another thread took it: wait as below
            return frame
    while True:
        remaining = SLICE_SECONDS if deadline is None else deadline - loop.time()
        if remaining <= 0:
            raise Timeout("the wait ran out of time")
        if await loop.run_in_executor(None, handle._fill, min(SLICE_SECONDS, remaining)):
            frame = handle._take(out)
            if frame is not None:
                return frame


async def next_item(handle):
    """``async for``: the next item, or the end once the writer side is gone."""
    try:
        return await receive(handle)
    except WriterGone:
        raise StopAsyncIteration from None
