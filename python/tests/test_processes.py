"""Between processes: Python and Python (multiprocessing, spawn), Python and Rust,
and processes killed with SIGKILL."""
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorlane as tl

import workers

SPEC = ((2, 3), np.float64)


def spawn():
    return multiprocessing.get_context("spawn")


def open_when_created(open_lane, timeout=10):
    """Opens a lane another process is creating, once it exists."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return open_lane()
        except tl.NotFound:
            assert time.monotonic() < deadline, "the lane was never created"
            time.sleep(0.01)


def test_python_to_python_queue_both_ways(lane):
    # A spawned producer ...
    child = spawn().Process(target=workers.push_queue, args=(lane, 50))
    child.start()
    consumer = open_when_created(lambda: tl.QueueConsumer.open(lane))
    got = [float(consumer.pop(timeout=10).array[0, 0]) for _ in range(50)]
    child.join(10)
    assert got == [float(i) for i in range(50)] and child.exitcode == 0
    consumer.close()
    # ... and a spawned consumer (the producer's role taken over).
    producer = tl.QueueProducer.take_over(lane)
    results = spawn().Queue()
    child = spawn().Process(target=workers.pop_queue, args=(lane, 50, results))
    child.start()
    for i in range(50):
        producer.push(np.full((2, 3), i, np.float64), timeout=10)
    assert results.get(timeout=20) == [float(i) for i in range(50)]
    child.join(10)
    assert child.exitcode == 0


def test_python_stream_to_python_reader(lane):
    child = spawn().Process(target=workers.write_stream, args=(lane, 200))
    child.start()
    reader = open_when_created(lambda: tl.StreamReader.open(lane))
    last, seen = -1.0, 0
    while True:
        try:
            frame = reader.read_new(timeout=10)
        except tl.WriterGone:
            break
        value = frame.array[0, 0]
        assert (frame.array == value).all(), "a torn value"
        assert value > last
        last, seen = value, seen + 1
    child.join(10)
    assert last == 199 and seen >= 1


def test_rust_writes_python_reads(lane, peer):
    rust = subprocess.Popen([peer, "queue-write", lane, "100"])
    consumer = open_when_created(lambda: tl.QueueConsumer.open(lane, shape=SPEC[0], dtype=SPEC[1]))
    frames = [consumer.pop(timeout=10) for _ in range(100)]
    assert [f.seq for f in frames] == list(range(1, 101))
    assert all((f.array == i).all() for i, f in enumerate(frames))
    assert rust.wait(10) == 0


def test_python_writes_rust_reads(lane, peer):
    producer = tl.QueueProducer.create(lane, *SPEC, capacity=4)
    rust = subprocess.Popen([peer, "queue-read", lane, "100"], stdout=subprocess.PIPE, text=True)
    for i in range(100):
        producer.push(np.full((2, 3), i, np.float64), timeout=10)
    out, _ = rust.communicate(timeout=20)
    assert rust.returncode == 0 and out.strip() == "ok 100"
    publisher = tl.TopicPublisher.create(lane + "-t", *SPEC, capacity=4)
    try:
        rust = subprocess.Popen([peer, "topic-read", lane + "-t", "50"],
                                stdout=subprocess.PIPE, text=True)
        assert rust.stdout.readline().strip() == "joined"
        for i in range(50):
            publisher.publish(np.full((2, 3), i, np.float64), timeout=10)
        assert rust.stdout.readline().strip() == "ok 50" and rust.wait(10) == 0
    finally:
        tl.unlink(lane + "-t")


def python(code):
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                            stdout=subprocess.PIPE, text=True)


def test_kill_9_of_a_python_writer(lane):
    child = python(f"""
        import numpy as np, tensorlane as tl, time
        w = tl.StreamWriter.create({lane!r}, (2, 3), np.float64)
        w.write(np.full((2, 3), 5.0))
        print("ready", flush=True)
        time.sleep(60)
    """)
    assert child.stdout.readline().strip() == "ready"
    reader = tl.StreamReader.open(lane)
    assert reader.read_new(timeout=1).array[0, 0] == 5
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    with pytest.raises(tl.WriterGone):
        reader.read_new(timeout=5)
    assert reader.read().array[0, 0] == 5  # the last value stays readable
    writer = tl.StreamWriter.take_over(lane)
    writer.write(np.full((2, 3), 6.0))
    assert reader.read_new(timeout=1).array[0, 0] == 6


def test_kill_9_of_a_lossless_python_subscriber(lane):
    publisher = tl.TopicPublisher.create(lane, (1,), np.int64, capacity=4)
    child = python(f"""
        import tensorlane as tl, time
        s = tl.TopicSubscriber.open({lane!r})
        print("joined", flush=True)
        time.sleep(60)
    """)
    assert child.stdout.readline().strip() == "joined"
    for i in range(4):
        publisher.publish(np.array([i]), timeout=1)
    with pytest.raises(tl.Full):
        publisher.try_publish(np.array([4]))  # the live subscriber holds it back
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    publisher.publish(np.array([4]), timeout=5)  # evicts the dead subscriber
    assert publisher.evicted == 1


def test_ctrl_c_interrupts_a_blocking_wait(lane):
    writer = tl.StreamWriter.create(lane, (1,), np.uint8)  # alive, silent: the reader waits
    child = python(f"""
        import tensorlane as tl, time
        r = tl.StreamReader.open({lane!r})
        print("waiting", flush=True)
        try:
            r.read_new()
        except KeyboardInterrupt:
            print("interrupted", time.monotonic(), flush=True)
    """)
    assert child.stdout.readline().strip() == "waiting"
    time.sleep(0.2)  # inside the wait
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    word, when = child.stdout.readline().split()
    assert word == "interrupted"
    assert float(when) - sent < 0.1, f"KeyboardInterrupt {float(when) - sent:.3f} s after SIGINT"
    assert child.wait(10) == 0


def test_a_gpu_lanes_cpu_mirror_reads_without_cuda(lane, gpu_peer):
    # The writer runs the GPU lane protocol on the host backend; the mirror it
    # publishes is an ordinary stream, read here with no GPU and no CUDA.
    writer = subprocess.Popen([gpu_peer, "host-stream-write", lane, "20"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        mirror = tl.StreamReader.open(tl.mirror_name(lane), shape=(4,), dtype=np.float32)
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "ok 20"
        frame = mirror.read()
        assert frame.seq == 20 and (frame.array == 19).all()
    finally:
        writer.stdin.close()
        assert writer.wait(10) == 0
