"""Zero-copy loans: the slot is a numpy view inside the with block only."""
import numpy as np
import pytest
import tensorlane as tl


@pytest.fixture
def queue(lane):
    producer = tl.QueueProducer.create(lane, (4,), np.float32, capacity=2)
    consumer = tl.QueueConsumer.open(lane)
    return producer, consumer


def test_loans_need_the_trust_promise(queue):
    producer, consumer = queue
    with pytest.raises(ValueError, match="trust_peers=True"):
        producer.loan()
    with pytest.raises(ValueError, match="trust_peers=True"):
        consumer.loan()


def test_producer_and_consumer_loans(queue):
    producer, consumer = queue
    loan = producer.loan(trust_peers=True)
    with loan as slot:
        assert slot.shape == (4,) and slot.dtype == np.float32 and slot.flags.writeable
        slot[...] = [1, 2, 3, 4]
    assert loan.seq == 1
    # Ended: the array reaches nothing any more.
    assert slot.size == 0 and not slot.flags.writeable
    with pytest.raises(ValueError):
        slot.flags.writeable = True
    with consumer.loan(trust_peers=True) as frame:
        assert frame.seq == 1 and not frame.array.flags.writeable
        assert list(frame.array) == [1, 2, 3, 4]
        total = float(frame.array.sum())
    assert total == 10 and frame.array.size == 0
    with pytest.raises(tl.Empty):
        consumer.try_pop()


def test_an_exception_in_the_block_finishes_nothing(queue):
    producer, consumer = queue
    with pytest.raises(KeyError):
        with producer.loan(trust_peers=True) as slot:
            slot[:] = 5
            raise KeyError("stop")
    with pytest.raises(tl.Empty):
        consumer.try_pop()
    producer.push(np.full(4, 6, np.float32))
    with pytest.raises(KeyError):
        with consumer.loan(trust_peers=True):
            raise KeyError("stop")
    assert consumer.pop(timeout=1).array[0] == 6  # still there


def test_an_escaped_view_is_reported_and_the_loan_not_finished(queue):
    producer, consumer = queue
    kept = []
    with pytest.raises(tl.LoanEscaped, match="not pushed"):
        with producer.loan(trust_peers=True) as slot:
            slot[:] = 7
            kept.append(slot[1:])
    with pytest.raises(tl.Empty):
        consumer.try_pop()
    kept.clear()
    with producer.loan(trust_peers=True) as slot:
        memoryview(slot)  # a view that does not outlive the block is fine
        slot[:] = 8
    with pytest.raises(tl.LoanEscaped, match="not removed"):
        with consumer.loan(trust_peers=True) as frame:
            kept.append(frame.array.reshape(2, 2))
    kept.clear()
    assert consumer.pop(timeout=1).array[0] == 8


def test_loan_waits_for_space_with_a_timeout(queue):
    producer, consumer = queue
    producer.push(np.zeros(4, np.float32))
    producer.push(np.zeros(4, np.float32))
    with pytest.raises(tl.Timeout):
        with producer.loan(trust_peers=True, timeout=0.05):
            pass
    loan = consumer.loan(trust_peers=True)
    with loan:
        pass
    with pytest.raises(ValueError, match="once"):
        with loan:
            pass
