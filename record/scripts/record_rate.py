"""What a recorder costs a publisher: publishes of a 640x480x3 uint8 topic as fast as
possible, without a recorder, with the default (lossy) recorder and with --lossless;
prints the publish rate and what the recorder got.

    cargo build --release -p tensorlane-record
    python record/scripts/record_rate.py target/release/tensorlane-record

(needs the tensorlane package: pip install ./python)."""
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorlane as tl

FRAMES = 2000
SHAPE = (480, 640, 3)


def run(binary, mode):
    lane = f"record-rate-{os.getpid()}-{mode}"
    out = os.path.join(tempfile.mkdtemp(), "rate.mcap")
    publisher = tl.TopicPublisher.create(lane, SHAPE, np.uint8, 16, 2)
    child = None
    try:
        if mode != "none":
            args = [binary, "record", lane, "-o", out] + (["--lossless"] if mode == "lossless" else [])
            child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
            assert child.stdout.readline().startswith("recording")
        frame = np.zeros(SHAPE, np.uint8)
        start = time.perf_counter()
        for i in range(FRAMES):
            frame[0, 0, 0] = i % 256
            publisher.publish(frame)
        elapsed = time.perf_counter() - start
        summary = ""
        if child is not None:
            time.sleep(0.5)
            child.send_signal(signal.SIGINT)
            summary = child.communicate(timeout=60)[0].strip()
            size = os.path.getsize(out) / 2**20
            summary += f"; file {size:.0f} MiB"
        print(f"{mode:9} {FRAMES / elapsed:8.0f} publishes/s  {summary}")
    finally:
        publisher.close()
        tl.unlink(lane)
        if os.path.exists(out):
            os.remove(out)


def main():
    binary = sys.argv[1]
    for mode in ("none", "lossy", "lossless"):
        run(binary, mode)


if __name__ == "__main__":
    main()
