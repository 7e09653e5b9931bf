"""Recordings of tensorlane-record read by another MCAP implementation: the `mcap`
Python package checks every frame against what was published (docs/RECORDING.md)."""
import base64
import json
import os
import pathlib
import shutil
import signal
import struct
import subprocess
import time

import numpy as np
import pytest
import tensorlane as tl

from conftest import REPO

mcap_reader = pytest.importorskip(
    "mcap.reader", reason="SKIPPED LOUDLY: the mcap package is not installed"
)
from mcap.exceptions import McapError  # noqa: E402

HEADER = struct.Struct("<4Q")


@pytest.fixture(scope="session")
def recorder():
    """The tensorlane-record binary, built with cargo."""
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("SKIPPED LOUDLY: no cargo on PATH to build tensorlane-record")
    subprocess.run(
        [cargo, "build", "-q", "-p", "tensorlane-record", "--bin", "tensorlane-record"],
        cwd=REPO,
        check=True,
    )
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "debug" / "tensorlane-record")


def start(recorder, *args):
    """Starts `tensorlane-record record ARGS`; returns once every lane is open."""
    child = subprocess.Popen(
        [recorder, "record", *args], stdout=subprocess.PIPE, text=True
    )
    line = child.stdout.readline()
    assert line.startswith("recording"), line
    return child


def frames(seed, count, shape, dtype):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return [rng.standard_normal(shape).astype(dtype) for _ in range(count)]
    return [rng.integers(0, 256, shape).astype(dtype) for _ in range(count)]


def test_every_recorded_frame_reads_back_with_the_mcap_package(lane, recorder, tmp_path):
    image_lane = lane + "-image"
    path = tmp_path / "run.mcap"
    topic = tl.TopicPublisher.create(lane, (3, 4), np.float32, 64, 4, metadata={"units": "m"})
    stream = tl.StreamWriter.create(image_lane, (4, 6, 3), np.uint8, 2)
    try:
        witness = tl.TopicSubscriber.open(lane)
        child = start(recorder, lane, image_lane, "-o", str(path), "--lossless", "--images")
        tensors = frames(1, 30, (3, 4), np.float32)
        images = frames(2, 10, (4, 6, 3), np.uint8)
        published = []
        for i, tensor in enumerate(tensors):
            topic.publish(tensor)
            published.append(witness.recv(timeout=5))
            if i % 3 == 0:
                stream.write(images[i // 3], frame_id=500 + i // 3)
                time.sleep(0.01)
        time.sleep(0.2)
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=30)
        assert child.returncode == 0, out
    finally:
        topic.close()
        stream.close()
        tl.unlink(image_lane)

    with open(path, "rb") as f:
        reader = mcap_reader.make_reader(f)
        header = reader.get_header()
        summary = reader.get_summary()
        messages = list(reader.iter_messages())
    assert header.profile == "tensorlane"
    by_topic = {}
    for schema, channel, message in messages:
        by_topic.setdefault(channel.topic, []).append((schema, channel, message))

    # The topic: every frame, bit for bit, with its id and timestamps, in order.
    recorded = by_topic[lane]
    assert len(recorded) == len(tensors)
    schema, channel, _ = recorded[0]
    assert (schema.name, schema.encoding) == ("tensorlane.Frame", "tensorlane.frame.v1")
    assert channel.message_encoding == "tensorlane.frame.v1"
    meta = channel.metadata
    assert meta["tensorlane.kind"] == "topic"
    assert meta["tensorlane.dtype"] == "float32"
    assert json.loads(meta["tensorlane.shape"]) == [3, 4]
    assert int(meta["tensorlane.bytes"]) == 48
    assert json.loads(meta["tensorlane.metadata"]) == [["units", "m"]]
    assert meta["tensorlane.read_as"] == "lossless subscriber"
    for (_, _, message), tensor, frame in zip(recorded, tensors, published):
        seq, frame_id, timestamp_ns, missed = HEADER.unpack_from(message.data)
        assert (seq, frame_id, timestamp_ns, missed) == (
            frame.seq,
            frame.frame_id,
            frame.timestamp_ns,
            0,
        )
        assert message.sequence == seq & 0xFFFFFFFF
        assert message.publish_time == timestamp_ns
        got = np.frombuffer(message.data[HEADER.size :], dtype=np.float32).reshape(3, 4)
        assert got.tobytes() == tensor.tobytes()

    # The stream: read with read_new, so values are in order, with their ids.
    recorded = by_topic[image_lane]
    assert recorded, "the stream's frames were recorded"
    previous = 0
    for _, channel, message in recorded:
        seq, frame_id, _, missed = HEADER.unpack_from(message.data)
        assert seq > previous
        assert frame_id == 499 + seq
        got = np.frombuffer(message.data[HEADER.size :], dtype=np.uint8).reshape(4, 6, 3)
        assert np.array_equal(got, images[seq - 1])
        previous = seq

    # Its images: foxglove.RawImage in JSON, the same pixels.
    shown = by_topic[image_lane + "/image"]
    assert len(shown) == len(recorded)
    for (_, _, tensor_message), (schema, channel, message) in zip(recorded, shown):
        assert (schema.name, schema.encoding) == ("foxglove.RawImage", "jsonschema")
        assert channel.message_encoding == "json"
        image = json.loads(message.data)
        assert (image["width"], image["height"], image["encoding"], image["step"]) == (
            6,
            4,
            "rgb8",
            18,
        )
        assert base64.b64decode(image["data"]) == tensor_message.data[HEADER.size :]

    # The summary counts every message.
    counts = summary.statistics.channel_message_counts
    assert counts[recorded[0][1].id] == len(recorded)
    assert sum(counts.values()) == len(messages)


def test_a_killed_recorder_leaves_a_file_the_mcap_package_reads(lane, recorder, tmp_path):
    path = tmp_path / "killed.mcap"
    topic = tl.TopicPublisher.create(lane, (8,), np.float64, 64, 2)
    try:
        child = start(recorder, lane, "-o", str(path), "--lossless", "--chunk-interval", "0.02")
        tensors = frames(3, 50, (8,), np.float64)
        for tensor in tensors[:40]:
            topic.publish(tensor)
            time.sleep(0.002)
        # The recorder cuts a chunk after the 40th frame; then more, and a kill.
        time.sleep(0.3)
        for tensor in tensors[40:]:
            topic.publish(tensor)
        child.kill()
        child.communicate(timeout=30)
    finally:
        topic.close()

    got = []
    with open(path, "rb") as f:
        reader = mcap_reader.NonSeekingReader(f)
        try:
            # In file order: a file cut short ends with EndOfFile after the messages
            # before it (log-time order would read everything first).
            for _, _, message in reader.iter_messages(log_time_order=False):
                got.append(message.data)
            ended = None
        except McapError as e:
            ended = e
    assert ended is not None, "the file has no end: the reader says so"
    assert len(got) >= 40
    for i, data in enumerate(got):
        seq = HEADER.unpack_from(data)[0]
        assert seq == i + 1
        assert data[HEADER.size :] == tensors[i].tobytes()
