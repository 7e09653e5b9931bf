import itertools
import os
import pathlib
import shutil
import subprocess

import pytest
import tensorlane

_counter = itertools.count()
REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def lane():
    """A lane name unique to this test, removed afterwards."""
    name = f"pytest-{os.getpid()}-{next(_counter)}"
    yield name
    try:
        tensorlane.unlink(name)
    except tensorlane.NotFound:
        pass


def example(package, name):
    """A Rust example of the workspace, built with cargo: its path."""
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip(f"SKIPPED LOUDLY: no cargo on PATH to build the Rust example {name}")
    subprocess.run([cargo, "build", "-q", "-p", package, "--example", name], cwd=REPO, check=True)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "debug" / "examples" / name)


@pytest.fixture(scope="session")
def peer():
    """The Rust peer process (shm/examples/peer.rs)."""
    return example("tensorlane-shm", "peer")


@pytest.fixture(scope="session")
def gpu_peer():
    """A GPU lane writer on the host backend (gpu/examples/gpu_peer.rs)."""
    return example("tensorlane-gpu", "gpu_peer")
