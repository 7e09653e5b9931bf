"""Functions the multiprocessing tests run in spawned processes."""
import numpy as np
import tensorlane as tl


def write_stream(name, count):
    with tl.StreamWriter.create(name, (2, 3), np.float64) as writer:
        for i in range(count):
            writer.write(np.full((2, 3), i, np.float64))


def push_queue(name, count):
    producer = tl.QueueProducer.create(name, (2, 3), np.float64, capacity=4)
    for i in range(count):
        producer.push(np.full((2, 3), i, np.float64), timeout=10)


def pop_queue(name, count, results):
    consumer = tl.QueueConsumer.open(name)
    got = [float(consumer.pop(timeout=10).array[0, 0]) for _ in range(count)]
    results.put(got)
