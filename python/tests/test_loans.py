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


def test_an_escaped_view_keeps_the_slot_until_it_is_gone(queue):
    producer, consumer = queue
    kept = []
    with pytest.raises(tl.LoanEscaped, match="outlived"):
        with producer.loan(trust_peers=True) as slot:
            slot[:] = 7
            kept.append(slot[1:])
    # Nothing pushed, and the handle keeps the slot the view shows.
    with pytest.raises(tl.Empty):
        consumer.try_pop()
    with pytest.raises(tl.LoanEscaped):
        producer.push(np.full(4, 9, np.float32))
    kept[0][:] = 13  # writes only this process's own, unpublished slot
    kept.clear()
    producer.push(np.full(4, 9, np.float32))  # the views are gone: the slot is free
    assert list(consumer.pop(timeout=1).array) == [9, 9, 9, 9]


def test_an_escape_is_caught_when_the_block_raises_too(queue):
    producer, consumer = queue
    kept = []
    with pytest.raises(KeyError):
        with producer.loan(trust_peers=True) as slot:
            kept.append(slot[:])
            raise KeyError("stop")
    with pytest.raises(tl.LoanEscaped):
        producer.push(np.zeros(4, np.float32))
    kept.clear()
    producer.push(np.full(4, 3, np.float32))
    assert consumer.pop(timeout=1).array[0] == 3


def test_rebinding_the_name_to_a_view_is_an_escape(queue):
    producer, consumer = queue
    with pytest.raises(tl.LoanEscaped):
        with producer.loan(trust_peers=True) as slot:
            slot = slot.reshape(2, 2)
            slot[...] = 6
    assert slot.base is not None  # the view still exists, over an unpublished slot
    with pytest.raises(tl.Empty):
        consumer.try_pop()
    del slot
    producer.push(np.ones(4, np.float32))
    assert consumer.pop(timeout=1).array[0] == 1


def test_a_consumer_view_that_escapes_keeps_the_item(queue):
    producer, consumer = queue
    producer.push(np.full(4, 8, np.float32))
    kept = []
    with pytest.raises(tl.LoanEscaped, match="not removed"):
        with consumer.loan(trust_peers=True) as frame:
            kept.append(frame.array.reshape(2, 2))
    with pytest.raises(tl.LoanEscaped):
        consumer.try_pop()
    producer.push(np.full(4, 5, np.float32))  # cannot reach the held item's slot
    assert kept[0][0, 0] == 8
    kept.clear()
    assert [consumer.pop(timeout=1).array[0] for _ in range(2)] == [8, 5]


def test_other_calls_wait_for_the_loan(queue):
    producer, consumer = queue
    with producer.loan(trust_peers=True) as slot:
        slot[:] = 1
        with pytest.raises(tl.LoanOpen):
            producer.push(np.zeros(4, np.float32))
        with pytest.raises(tl.LoanOpen):
            with producer.loan(trust_peers=True):
                pass
    producer.push(np.full(4, 2, np.float32))
    with consumer.loan(trust_peers=True) as frame:
        with pytest.raises(tl.LoanOpen):
            consumer.try_pop()
        assert frame.array[0] == 1
    assert consumer.pop(timeout=1).array[0] == 2


def test_a_loan_never_exited_ends_when_dropped(queue):
    producer, consumer = queue
    loan = producer.loan(trust_peers=True)
    slot = loan.__enter__()
    slot[:] = 4
    del loan  # no __exit__: ended as a block that raised, nothing pushed
    assert slot.size == 0 and not slot.flags.writeable
    with pytest.raises(tl.Empty):
        consumer.try_pop()
    producer.push(np.full(4, 5, np.float32))
    assert consumer.pop(timeout=1).array[0] == 5


def test_a_detached_scalar_view_reads_its_own_zeros(lane):
    producer = tl.QueueProducer.create(lane, (8,), np.float32, capacity=2)
    with producer.loan(trust_peers=True) as slot:
        slot[:] = 1
        slot.dtype = "V32"
        slot.shape = ()
    assert slot.tobytes() == bytes(32)


def test_closing_after_a_loan_gives_the_role_back(lane):
    producer = tl.QueueProducer.create(lane, (4,), np.float32, capacity=2)
    with producer.loan(trust_peers=True) as slot:
        slot[:] = 1
    producer.close()
    tl.QueueProducer.take_over(lane)  # `slot` (detached) holds no role
    assert slot.size == 0


def test_an_item_received_by_a_cancelled_awaitable_comes_first(queue):
    producer, consumer = queue
    producer.push(np.full(4, 1, np.float32))
    producer.push(np.full(4, 2, np.float32))
    assert consumer._fill(0.0)  # what a cancelled pop_async leaves pending
    with consumer.loan(trust_peers=True) as frame:
        assert frame.seq == 1 and frame.array[0] == 1
    with consumer.loan(trust_peers=True) as frame:
        assert frame.seq == 2 and frame.array[0] == 2


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
