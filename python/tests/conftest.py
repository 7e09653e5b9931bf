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


@pytest.fixture(scope="session")
def peer():
    """The Rust peer process (shm/examples/peer.rs), built with cargo."""
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("SKIPPED LOUDLY: no cargo on PATH to build the Rust peer")
    subprocess.run(
        [cargo, "build", "-q", "-p", "tensorlane-shm", "--example", "peer"],
        cwd=REPO, check=True,
    )
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "debug" / "examples" / "peer")
