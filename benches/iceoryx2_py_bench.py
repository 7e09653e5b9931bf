"""iceoryx2's Python bindings (PyPI `iceoryx2`) for benches/python_bench.py: the same
write+read and ping-pong methods on publish-subscribe services of byte slices.

Payloads are copied in and out with `ctypes.memmove` (a copy at memcpy speed), as
the tensorlane and pyshmem rows copy numpy arrays; the subscriber polls (`receive`
returns None when nothing is there), as iceoryx2 has no blocking receive on a
subscriber. No wake-up row: a blocking wake-up in iceoryx2 is a separate event
service, not the same call.

  echo PING PONG SIZE     (child of pingpong)
"""

import ctypes
import os
import subprocess
import sys
import time

import numpy as np
import iceoryx2 as iox2

import pyshmem_bench

iox2.set_log_level_from_env_or(iox2.LogLevel.Error)
STOP = 2**64 - 1
TIMEOUT = 10.0
_node = None


def node():
    global _node
    if _node is None:
        _node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
    return _node


def service(name):
    return (node().service_builder(iox2.ServiceName.new(name))
            .publish_subscribe(iox2.Slice[ctypes.c_uint8]).open_or_create())


def send(publisher, src):
    sample = publisher.loan_slice_uninit(src.nbytes)
    ctypes.memmove(sample.payload().as_ptr(), src.ctypes.data, src.nbytes)
    sample.assume_init().send()


def receive(subscriber, out, deadline=None):
    while True:
        sample = subscriber.receive()
        if sample is not None:
            ctypes.memmove(out.ctypes.data, sample.payload().as_ptr(), out.nbytes)
            sample.delete()
            return
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError("iceoryx2 receive")


def hz(prefix, size, batches, batch_ms):
    svc = service(f"{prefix}-hz-{size}")
    publisher = svc.publisher_builder().initial_max_slice_len(size).create()
    subscriber = svc.subscriber_builder().create()
    src = np.ones(size, np.uint8)
    out = np.empty(size, np.uint8)

    def step():
        send(publisher, src)
        receive(subscriber, out)

    return pyshmem_bench.batch_rate(step, batches, batch_ms)


put, get = pyshmem_bench.put, pyshmem_bench.get


def pingpong(prefix, size, samples):
    ping_name, pong_name = f"{prefix}-ping-{size}", f"{prefix}-pong-{size}"
    ping = service(ping_name).publisher_builder().initial_max_slice_len(size).create()
    pong = service(pong_name).subscriber_builder().create()
    child = subprocess.Popen([sys.executable, __file__, "echo", ping_name, pong_name, str(size)])
    try:
        buf = np.zeros(size, np.uint8)
        back = np.zeros(size, np.uint8)
        # The echo is ready when it answers a probe.
        deadline = time.monotonic() + TIMEOUT
        while True:
            put(buf, 0)
            send(ping, buf)
            if pong.receive() is not None:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the iceoryx2 echo never answered")
            time.sleep(0.01)
        while pong.receive() is not None:
            pass
        out = []
        warmup = max(10, samples // 20)
        for i in range(1, warmup + samples + 1):
            put(buf, i)
            t0 = time.perf_counter_ns()
            send(ping, buf)
            while True:
                receive(pong, back, time.monotonic() + TIMEOUT)
                if get(back) == i:
                    break
            t1 = time.perf_counter_ns()
            if i > warmup:
                out.append((t1 - t0) / 2.0)
        put(buf, STOP)
        send(ping, buf)
        child.wait(timeout=TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
    return out


def echo(ping_name, pong_name, size):
    cpu = os.environ.get("TLB_PIN_CHILD")
    if cpu is not None:
        os.sched_setaffinity(0, {int(cpu)})
    ping = service(ping_name).subscriber_builder().create()
    pong = service(pong_name).publisher_builder().initial_max_slice_len(size).create()
    buf = np.zeros(size, np.uint8)
    while True:
        receive(ping, buf, time.monotonic() + 60)
        if get(buf) == STOP:
            break
        send(pong, buf)


if __name__ == "__main__" and sys.argv[1] == "echo":
    echo(sys.argv[2], sys.argv[3], int(sys.argv[4]))
