"""pyshmem measurements for the tensorlane comparison harness (benches/src/pyshmem.rs).

Run by the harness inside a virtual environment holding pyshmem and numpy; prints
one JSON object on stdout.

  run PREFIX SIZES LAT_SIZES SAMPLES WAKE_SAMPLES GAP_US BATCH_MS BATCHES
      hz:       write + read (into a preallocated array) of one stream in one
                process, per size in SIZES (float32; 100x100 for 40000 bytes,
                1000x1000 for 4000000 bytes, flat otherwise): median of BATCHES
                batches of about BATCH_MS ms, in Hz.
      pingpong: per size in LAT_SIZES, two processes and two notify streams; the
                measuring side writes a payload carrying a counter, the echoing side
                waits with read_after and writes the payload back; half the round
                trip, in ns (pyshmem's own request/acknowledge method).
      wake:     per size in LAT_SIZES, the receiver creates a notify stream and
                parks in read_after; the sender (another process) sleeps GAP_US and
                writes a payload carrying time.monotonic_ns(); the receiver subtracts
                it from its own clock when read_after returns: one way, in ns.
  The measuring process pins itself to CPU $TLB_PIN_PARENT and the second
  processes to CPU $TLB_PIN_CHILD when these are set.

  echo PING PONG SIZE          (child of pingpong)
  wake-send NAME SIZE COUNT GAP_US   (child of wake)
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pyshmem

STOP = 2**64 - 1
TIMEOUT = 10.0


def pin(variable):
    """Pins this process to the CPU named by environment variable `variable`."""
    cpu = os.environ.get(variable)
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {int(cpu)})
        except OSError:
            pass


def shape_of(size):
    if size == 40000:
        return (100, 100), np.float32
    if size == 4000000:
        return (1000, 1000), np.float32
    if size % 4 == 0:
        return (size // 4,), np.float32
    return (size,), np.uint8


def open_retry(name):
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return pyshmem.open(name)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)


def put(buf, value):
    buf[:8].view(np.uint64)[0] = value


def get(buf):
    return int(buf[:8].view(np.uint64)[0])


def batch_rate(step, batches, batch_ms):
    """Calls of `step` per second: batches of about `batch_ms` ms (the size found by
    doubling until a batch takes a quarter of that), median of `batches` batches."""
    per_batch = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(per_batch):
            step()
        took = time.perf_counter() - t0
        if took >= batch_ms / 4000.0:
            per_batch = max(1, int(per_batch * (batch_ms / 1000.0) / took))
            break
        per_batch *= 2
    rates = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(per_batch):
            step()
        rates.append(per_batch / (time.perf_counter() - t0))
    rates.sort()
    return rates[len(rates) // 2]


def hz(prefix, size, batches, batch_ms):
    shape, dtype = shape_of(size)
    name = f"{prefix}_hz_{size}"
    writer = pyshmem.create(name, shape=shape, dtype=dtype)
    try:
        reader = pyshmem.open(name)
        src = np.ones(shape, dtype=dtype)
        out = np.empty(shape, dtype=dtype)

        def step():
            writer.write(src)
            reader.read(out=out)

        rate = batch_rate(step, batches, batch_ms)
        reader.close()
    finally:
        writer.unlink()
    return rate


def pingpong(prefix, size, samples):
    ping_name, pong_name = f"{prefix}_ping_{size}", f"{prefix}_pong_{size}"
    ping = pyshmem.create(ping_name, shape=(size,), dtype=np.uint8, notify=True)
    child = subprocess.Popen(
        [sys.executable, __file__, "echo", ping_name, pong_name, str(size)]
    )
    try:
        pong = open_retry(pong_name)
        buf = np.zeros(size, dtype=np.uint8)
        back = np.zeros(size, dtype=np.uint8)
        after = pong.count
        out = []
        warmup = max(10, samples // 20)
        for i in range(1, warmup + samples + 1):
            put(buf, i)
            t0 = time.perf_counter_ns()
            ping.write(buf)
            while True:
                pong.read_after(after, timeout=TIMEOUT, out=back)
                after = pong.last_read_count
                if get(back) == i:
                    break
            t1 = time.perf_counter_ns()
            if i > warmup:
                out.append((t1 - t0) / 2.0)
        put(buf, STOP)
        ping.write(buf)
        child.wait(timeout=TIMEOUT)
        pong.close()
    finally:
        if child.poll() is None:
            child.kill()
        ping.unlink()
    return out


def echo(ping_name, pong_name, size):
    ping = open_retry(ping_name)
    pong = pyshmem.create(pong_name, shape=(size,), dtype=np.uint8, notify=True)
    buf = np.zeros(size, dtype=np.uint8)
    after = ping.count
    try:
        while True:
            ping.read_after(after, timeout=TIMEOUT, out=buf)
            after = ping.last_read_count
            if get(buf) == STOP:
                break
            pong.write(buf)
    finally:
        ping.close()
        pong.unlink()


def wake(prefix, size, samples, gap_us):
    name = f"{prefix}_wake_{size}"
    warmup = 5
    total = warmup + samples
    reader = pyshmem.create(name, shape=(size,), dtype=np.uint8, notify=True)
    # Wake-ups run unpinned (a woken process pinned to a busy CPU would wait for it).
    pinned = None
    if hasattr(os, "sched_getaffinity"):
        pinned = os.sched_getaffinity(0)
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    env = {k: v for k, v in os.environ.items() if k != "TLB_PIN_CHILD"}
    child = subprocess.Popen(
        [sys.executable, __file__, "wake-send", name, str(size), str(total), str(gap_us)],
        env=env,
    )
    try:
        buf = np.zeros(size, dtype=np.uint8)
        after = reader.count
        out = []
        while after < total:
            reader.read_after(after, timeout=TIMEOUT, out=buf)
            now = time.monotonic_ns()
            after = reader.last_read_count
            if after > warmup:
                out.append(float(now - get(buf)))
        child.wait(timeout=TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
        reader.unlink()
        if pinned is not None:
            os.sched_setaffinity(0, pinned)
    return out


def wake_send(name, size, count, gap_us):
    writer = open_retry(name)
    buf = np.zeros(size, dtype=np.uint8)
    try:
        for _ in range(count):
            time.sleep(gap_us / 1e6)
            put(buf, time.monotonic_ns())
            writer.write(buf)
    finally:
        writer.close()


def main():
    role = sys.argv[1]
    pin("TLB_PIN_PARENT" if role == "run" else "TLB_PIN_CHILD")
    if role == "echo":
        echo(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif role == "wake-send":
        wake_send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif role == "run":
        prefix = sys.argv[2]
        sizes = [int(s) for s in sys.argv[3].split(",") if s]
        lat_sizes = [int(s) for s in sys.argv[4].split(",") if s]
        samples, wake_samples, gap_us = map(int, sys.argv[5:8])
        batch_ms, batches = int(sys.argv[8]), int(sys.argv[9])
        result = {
            "version": pyshmem.__version__,
            "numpy": np.__version__,
            "pid": os.getpid(),
            "hz": {str(s): hz(prefix, s, batches, batch_ms) for s in sizes},
            "pingpong": {str(s): pingpong(prefix, s, samples) for s in lat_sizes},
            "wake": {str(s): wake(prefix, s, wake_samples, gap_us) for s in lat_sizes},
        }
        json.dump(result, sys.stdout)
    else:
        sys.exit(f"unknown role {role}")


if __name__ == "__main__":
    main()
