"""Bad input gets a clear exception of its class, never a cast, reshape or crash."""
import numpy as np
import pytest
import tensorlane as tl


def test_wrong_arrays_are_refused_with_what_was_expected(lane):
    writer = tl.StreamWriter.create(lane, (2, 3), np.float32)
    reader = tl.StreamReader.open(lane)
    for bad in (np.zeros((2, 3)), np.zeros((3, 2), np.float32), np.zeros(6, np.float32),
                [[1, 2, 3], [4, 5, 6]], np.zeros((2, 3), ">f4")):
        with pytest.raises(tl.WrongSpec, match=r"dtype float32 and shape \[2, 3\]"):
            writer.write(bad)
    # A non-contiguous array of the right dtype and shape is written as it reads.
    wide = np.arange(12, dtype=np.float32).reshape(2, 6)[:, ::2]
    writer.write(wide)
    np.testing.assert_array_equal(reader.read().array, wide)
    for out, message in ((np.zeros((2, 3)), "dtype"),
                         (np.zeros((2, 6), np.float32)[:, ::2], "C-contiguous"),
                         (np.zeros((2, 3), np.float32)[()].view(), None),
                         ([0.0] * 6, "numpy.ndarray")):
        if message is None:
            out.flags.writeable = False
            message = "read-only"
        with pytest.raises(tl.WrongSpec, match=message):
            reader.read(out=out)
    assert isinstance(tl.WrongSpec("x"), ValueError)


def test_create_and_open_errors(lane):
    with pytest.raises(tl.InvalidArgument):
        tl.StreamWriter.create("bad/name", (2,), np.float32)
    with pytest.raises(tl.WrongSpec, match="cannot carry"):
        tl.StreamWriter.create(lane, (2,), object)
    with pytest.raises(tl.InvalidArgument, match="clock"):
        tl.StreamWriter.create(lane, (2,), np.float32, clock="sundial")
    with pytest.raises(tl.InvalidArgument):
        tl.QueueProducer.create(lane, (2,), np.float32, capacity=0)
    with pytest.raises(tl.NotFound):
        tl.StreamReader.open(lane)
    writer = tl.StreamWriter.create(lane, (2,), np.float32)
    with pytest.raises(tl.AlreadyExists):
        tl.StreamWriter.create(lane, (2,), np.float32)
    with pytest.raises(FileExistsError):
        tl.QueueProducer.create(lane, (2,), np.float32)
    with pytest.raises(tl.WrongKind):
        tl.QueueConsumer.open(lane)
    with pytest.raises(tl.WrongSpec):
        tl.StreamReader.open(lane, shape=(3,), dtype=np.float32)
    with pytest.raises(tl.InvalidArgument, match="both"):
        tl.StreamReader.open(lane, shape=(2,))
    with pytest.raises(tl.RoleTaken):
        tl.StreamWriter.take_over(lane)
    writer.close()
    tl.StreamWriter.take_over(lane)


def test_timeouts_and_closed_handles(lane):
    producer = tl.QueueProducer.create(lane, (1,), np.int8, capacity=1)
    consumer = tl.QueueConsumer.open(lane)
    with pytest.raises(ValueError, match="non-negative"):
        consumer.pop(timeout=-1)
    with pytest.raises(tl.Timeout):
        consumer.pop(timeout=0)
    import time
    with pytest.raises(tl.Timeout):
        consumer.pop(deadline=time.monotonic() + 0.02)
    with pytest.raises(TimeoutError):
        consumer.pop(timeout=0.01)
    with pytest.raises(tl.RoleTaken):
        tl.QueueConsumer.open(lane)
    consumer.close()
    consumer.close()
    with pytest.raises(ValueError, match="closed QueueConsumer"):
        consumer.pop()
    tl.QueueConsumer.open(lane)  # the role was given back
    producer.close()


def test_every_class_the_extension_raises_exists():
    # The extension raises errors by class name (python/src/errors.rs): each name
    # must be a LaneError subclass the package exports, or a raise would itself fail.
    import pathlib
    import re
    source = pathlib.Path(__file__).resolve().parents[1] / "src"
    names = set()
    for path in source.glob("*.rs"):
        text = path.read_text()
        names |= set(re.findall(r'=> "([A-Z][A-Za-z]+)"', text))
        names |= set(re.findall(r'raise\(\s*py,\s*"([A-Z][A-Za-z]+)"', text))
        names |= set(re.findall(r'is_class\(py, &e, "([A-Z][A-Za-z]+)"', text))
    assert {"WrongSpec", "Timeout", "LoanEscaped", "LoanOpen", "LaneError"} <= names
    for name in names:
        assert issubclass(getattr(tl, name), tl.LaneError), name
