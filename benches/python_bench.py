"""tensorlane's Python package against pyshmem 1.4, in Python, in one run.

The pyshmem rows are measured by the functions of pyshmem_bench.py (the compare
harness's pyshmem script, same methods); the tensorlane rows by the same methods on
tensorlane's lanes. Rounds interleave the two libraries; each figure is the median
over rounds. The parent pins itself to CPU 0 and the echoing children to CPU 1
(TLB_PIN_PARENT / TLB_PIN_CHILD, as the harness does).

  hz        write + read into a preallocated array, one process: a stream
            (StreamWriter.write, StreamReader.read(out=)) against pyshmem's
            write / read(out=); 100x100 float32 (pyshmem's headline, 40000 B),
            40 KiB and 1000x1000 float32 (4 MB); Hz, higher is better.
  pingpong  two processes, two streams: the measuring side writes a counter, the
            echo waits (read_new / read_after) and writes it back; half the round
            trip, ns, lower is better.
  wake      a reader blocked in read_new / read_after, a writer process that sleeps
            200 us and writes its time.monotonic_ns(); one way, ns.

With iceoryx2's Python bindings installed (PyPI `iceoryx2`), their write+read and
ping-pong rows are measured too (iceoryx2_py_bench.py). Needs numpy, pyshmem==1.4.0
and tensorlane installed in the interpreter:

  python3 -m venv target/pybench
  target/pybench/bin/pip install numpy pyshmem==1.4.0 iceoryx2 ./python
  target/pybench/bin/python benches/python_bench.py --out benches/results/python-DATE.json

Prints a table with the ratios and writes the JSON (every sample's summary).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pyshmem_bench as pb  # noqa: E402
import tensorlane as tl  # noqa: E402

try:
    import iceoryx2_py_bench as ib  # noqa: E402
except ImportError:
    ib = None

TIMEOUT = 10.0
STOP = 2**64 - 1
SIZES = {"100x100 f32": 40000, "40 KiB": 40960, "4 MB (1000x1000 f32)": 4000000}


def shape_of(size):
    if size == 40000:
        return (100, 100), np.float32
    if size == 4000000:
        return (1000, 1000), np.float32
    return (size // 4,), np.float32


def tl_hz(prefix, size, batches, batch_ms):
    shape, dtype = shape_of(size)
    name = f"{prefix}-hz-{size}"
    writer = tl.StreamWriter.create(name, shape, dtype, clock="monotonic")
    try:
        reader = tl.StreamReader.open(name)
        src = np.ones(shape, dtype=dtype)
        out = np.empty(shape, dtype=dtype)

        def step():
            writer.write(src)
            reader.read(out=out)

        rate = pb.batch_rate(step, batches, batch_ms)
        reader.close()
    finally:
        writer.close()
        tl.unlink(name)
    return rate


def open_retry(name):
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return tl.StreamReader.open(name)
        except tl.NotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)


def tl_pingpong(prefix, size, samples):
    ping_name, pong_name = f"{prefix}-ping-{size}", f"{prefix}-pong-{size}"
    ping = tl.StreamWriter.create(ping_name, (size,), np.uint8)
    child = subprocess.Popen([sys.executable, __file__, "echo", ping_name, pong_name, str(size)])
    try:
        pong = open_retry(pong_name)
        buf = np.zeros(size, dtype=np.uint8)
        back = np.zeros(size, dtype=np.uint8)
        out = []
        warmup = max(10, samples // 20)
        for i in range(1, warmup + samples + 1):
            pb.put(buf, i)
            t0 = time.perf_counter_ns()
            ping.write(buf)
            while True:
                pong.read_new(out=back, timeout=TIMEOUT)
                if pb.get(back) == i:
                    break
            t1 = time.perf_counter_ns()
            if i > warmup:
                out.append((t1 - t0) / 2.0)
        pb.put(buf, STOP)
        ping.write(buf)
        child.wait(timeout=TIMEOUT)
        pong.close()
    finally:
        if child.poll() is None:
            child.kill()
        ping.close()
        tl.unlink(ping_name)
    return out


def tl_echo(ping_name, pong_name, size):
    ping = open_retry(ping_name)
    pong = tl.StreamWriter.create(pong_name, (size,), np.uint8)
    buf = np.zeros(size, dtype=np.uint8)
    try:
        while True:
            ping.read_new(out=buf, timeout=TIMEOUT)
            if pb.get(buf) == STOP:
                break
            pong.write(buf)
    finally:
        pong.close()
        tl.unlink(pong_name)


def tl_wake(prefix, size, samples, gap_us):
    name = f"{prefix}-wake-{size}"
    warmup = 5
    total = warmup + samples
    pinned = os.sched_getaffinity(0)
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    env = {k: v for k, v in os.environ.items() if k != "TLB_PIN_CHILD"}
    child = subprocess.Popen(
        [sys.executable, __file__, "wake-send", name, str(size), str(total), str(gap_us)], env=env)
    try:
        reader = open_retry(name)  # the sender creates the stream
        buf = np.zeros(size, dtype=np.uint8)
        out = []
        seen = 0
        while seen < total:
            frame = reader.read_new(out=buf, timeout=TIMEOUT)
            now = time.monotonic_ns()
            seen = frame.seq
            if seen > warmup:
                out.append(float(now - pb.get(buf)))
        child.wait(timeout=TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
        tl.unlink(name)
        os.sched_setaffinity(0, pinned)
    return out


def tl_wake_send(name, size, count, gap_us):
    writer = tl.StreamWriter.create(name, (size,), np.uint8)
    buf = np.zeros(size, dtype=np.uint8)
    time.sleep(0.2)  # the reader opens and parks in read_new
    for _ in range(count):
        time.sleep(gap_us / 1e6)
        pb.put(buf, time.monotonic_ns())
        writer.write(buf)


def median(values):
    return statistics.median(values) if values else float("nan")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "echo":
        pb.pin("TLB_PIN_CHILD")
        return tl_echo(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    if len(sys.argv) > 1 and sys.argv[1] == "wake-send":
        return tl_wake_send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--wake-samples", type=int, default=200)
    parser.add_argument("--out", help="JSON file to write")
    args = parser.parse_args()
    os.environ.setdefault("TLB_PIN_PARENT", "0")
    os.environ.setdefault("TLB_PIN_CHILD", "1")
    pb.pin("TLB_PIN_PARENT")
    prefix = f"pybench{os.getpid()}"
    rows = {}

    def add(row, lib, value):
        rows.setdefault(row, {}).setdefault(lib, []).append(value)

    for r in range(args.rounds):
        for label, size in SIZES.items():
            add(f"write+read Hz, {label}", "tensorlane", tl_hz(prefix, size, 5, 100))
            add(f"write+read Hz, {label}", "pyshmem", pb.hz(prefix.replace("-", "_"), size, 5, 100))
            if ib is not None:
                add(f"write+read Hz, {label}", "iceoryx2-python", ib.hz(prefix, size, 5, 100))
        add("ping-pong one way ns, 64 B", "tensorlane", median(tl_pingpong(prefix, 64, args.samples)))
        add("ping-pong one way ns, 64 B", "pyshmem", median(pb.pingpong(prefix, 64, args.samples)))
        if ib is not None:
            add("ping-pong one way ns, 64 B", "iceoryx2-python",
                median(ib.pingpong(prefix, 64, args.samples)))
        add("wake-up one way ns, 64 B", "tensorlane", median(tl_wake(prefix, 64, args.wake_samples, 200)))
        add("wake-up one way ns, 64 B", "pyshmem", median(pb.wake(prefix, 64, args.wake_samples, 200)))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    result = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
              "cpus": os.cpu_count(), "python": platform.python_version(),
              "numpy": np.__version__, "pyshmem": pb.pyshmem.__version__,
              "iceoryx2": None if ib is None else ib.iox2.__version__ if hasattr(ib.iox2, "__version__") else "installed",
              "tensorlane": tl.__version__, "rounds": args.rounds, "rows": {}}
    if ib is None:
        print("iceoryx2's Python bindings are not installed: their rows are left out", file=sys.stderr)
    print(f"{'row':36} {'tensorlane':>12} {'pyshmem':>12} {'ratio':>7} {'iceoryx2-py':>12} {'ratio':>7}")
    for row, libs in rows.items():
        t, p = median(libs["tensorlane"]), median(libs["pyshmem"])
        i = median(libs["iceoryx2-python"]) if "iceoryx2-python" in libs else float("nan")
        higher_better = row.startswith("write+read")
        result["rows"][row] = {"tensorlane": t, "pyshmem": p, "ratio": t / p,
                               "iceoryx2-python": i, "ratio_iceoryx2": t / i,
                               "rounds": libs, "higher_is_better": higher_better}
        print(f"{row:36} {t:12.1f} {p:12.1f} {t / p:6.2f}x {i:12.1f} {t / i:6.2f}x")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
