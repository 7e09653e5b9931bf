"""asyncio: awaitables never block the event loop, and cancelling loses nothing."""
import asyncio

import numpy as np
import pytest
import tensorlane as tl


async def ticks_while(awaitable, period=0.005):
    """Runs `awaitable`, counting how often a 5 ms ticker ran meanwhile."""
    count = 0
    done = asyncio.Event()

    async def ticker():
        nonlocal count
        while not done.is_set():
            await asyncio.sleep(period)
            count += 1

    task = asyncio.create_task(ticker())
    try:
        return await awaitable, count
    finally:
        done.set()
        await task


def test_awaiting_does_not_block_the_loop(lane):
    writer = tl.StreamWriter.create(lane, (2,), np.float32)
    reader = tl.StreamReader.open(lane)

    async def main():
        with pytest.raises(tl.Timeout):
            await ticks_while(reader.read_new_async(timeout=0.3))
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, writer.write, np.ones(2, np.float32))
        frame, ticks = await ticks_while(reader.read_new_async(timeout=5))
        assert frame.seq == 1
        assert ticks >= 10, f"the event loop ran only {ticks} times in 0.2 s"

    asyncio.run(main())


def test_cancelling_loses_no_item(lane):
    producer = tl.QueueProducer.create(lane, (1,), np.int32, capacity=4)
    consumer = tl.QueueConsumer.open(lane)

    async def main():
        task = asyncio.create_task(consumer.pop_async())
        await asyncio.sleep(0.06)  # its worker is inside a wait slice now
        producer.push(np.array([42], np.int32))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.1)  # the worker's slice ends (it may have taken 42)
        frame = await consumer.pop_async(timeout=1)
        assert (frame.seq, int(frame.array[0])) == (1, 42)

    asyncio.run(main())
    with pytest.raises(tl.Empty):
        consumer.try_pop()


def test_async_for_ends_when_the_publisher_goes(lane):
    publisher = tl.TopicPublisher.create(lane, (1,), np.uint8, capacity=8)
    subscriber = tl.TopicSubscriber.open(lane)

    async def main():
        loop = asyncio.get_running_loop()

        def publish_then_leave():
            for i in range(3):
                publisher.publish(np.array([i], np.uint8))
            publisher.close()

        loop.call_later(0.05, publish_then_leave)
        return [int(frame.array[0]) async for frame in subscriber]

    assert asyncio.run(main()) == [0, 1, 2]
