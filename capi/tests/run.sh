#!/usr/bin/env bash
# The C and C++ side, end to end:
# 1. the committed include/tensorlane.h is what cbindgen makes of capi/src (with
#    --bless, rewrites it instead);
# 2. installs the library under a temporary prefix (capi/install.sh, debug build)
#    and compiles, with the system compilers and pkg-config, the C checks and the
#    examples (C99/C11 and C++17, warnings as errors);
# 3. runs each example across processes against the Rust peer
#    (shm/examples/peer.rs): C writer -> Rust reader, Rust writer -> C reader
#    (queue and stream), Rust publisher -> C++ subscribers, Rust producer -> C++
#    Eigen consumer (skipped, loudly, without Eigen); and the C writer's metadata
#    and realtime clock read back by `tensorlane inspect --json` and the C reader;
# 4. builds a CMake project that find_package(tensorlane)s it (skipped, loudly,
#    without cmake) and runs it against the peer.
#
#   capi/tests/run.sh [--bless]
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
names=()
cleanup() {
    for name in "${names[@]}"; do rm -f "/dev/shm/tensorlane.$name" "/dev/shm/tensorlane.$name-stream"; done
    rm -rf "$work"
}
trap cleanup EXIT

echo "--- header: include/tensorlane.h against cbindgen"
command -v cbindgen >/dev/null || { echo "cbindgen is not installed (cargo install cbindgen --version ^0.29 --locked)"; exit 1; }
cbindgen --quiet --config capi/cbindgen.toml --crate tensorlane-capi --output "$work/tensorlane.h"
if [ "${1:-}" = --bless ]; then
    cp "$work/tensorlane.h" include/tensorlane.h
    echo "include/tensorlane.h rewritten"
elif ! diff -u include/tensorlane.h "$work/tensorlane.h"; then
    echo "include/tensorlane.h is out of date: run capi/tests/run.sh --bless and commit it"
    exit 1
fi

echo "--- build and install under a temporary prefix"
TENSORLANE_PROFILE=debug capi/install.sh "$work/prefix" >/dev/null
cargo build -q -p tensorlane-shm --example peer --bin tensorlane
peer="$target/debug/examples/peer"
tensorlane="$target/debug/tensorlane"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
cflags=$(pkg-config --cflags tensorlane)
libs="$(pkg-config --libs tensorlane) -Wl,-rpath,$work/prefix/lib"
cc=${CC:-cc}
cxx=${CXX:-c++}
strict="-Wall -Wextra -Werror"
bin="$work/bin"
mkdir -p "$bin"
$cc -std=c99 -pedantic $strict $cflags capi/tests/c/abi_check.c -o "$bin/abi_check" $libs
$cc -std=c11 $strict $cflags capi/examples/queue_writer.c -o "$bin/queue_writer" $libs
$cc -std=c11 $strict -D_POSIX_C_SOURCE=200809L $cflags capi/examples/reader.c -o "$bin/reader" $libs
$cxx -std=c++17 $strict $cflags capi/examples/topic_subscriber.cpp -o "$bin/topic_subscriber" $libs
# The static library links too.
$cc -std=c11 $strict $cflags capi/examples/queue_writer.c -o "$bin/queue_writer_static" \
    "$work/prefix/lib/libtensorlane.a" $(pkg-config --static --libs-only-l tensorlane | sed 's/-ltensorlane//')
eigen=""
if pkg-config --exists eigen3; then
    eigen=$(pkg-config --cflags eigen3)
    $cxx -std=c++17 $strict $cflags $eigen capi/examples/eigen_consumer.cpp -o "$bin/eigen_consumer" $libs
fi

lane() {
    local name="capi-run-$$-$1"
    names+=("$name")
    rm -f "/dev/shm/tensorlane.$name"
    printf '%s' "$name"
}
count=64

echo "--- C, one process: the boundary's error codes"
"$bin/abi_check" "$(lane abi)"

echo "--- C writer -> Rust reader (queue, copies and loans; the static build)"
name=$(lane c-to-rust)
"$bin/queue_writer_static" "$name" 4
"$peer" queue-read "$name" 4
echo "--- C writer -> Rust reader (queue, both running)"
name=$(lane c-to-rust-live)
"$bin/queue_writer" "$name" $count &
writer=$!
until [ -e "/dev/shm/tensorlane.$name" ]; do sleep 0.01; done
"$peer" queue-read "$name" $count
wait $writer

echo "--- C writer with metadata and a realtime clock -> tensorlane inspect, C reader"
name=$(lane c-metadata)
"$bin/queue_writer" "$name" 4
"$tensorlane" inspect "$name" --json >"$work/inspect.json"
python3 - "$work/inspect.json" <<'PY'
import json, sys
lane = json.load(open(sys.argv[1]))
want = {"units": "m/s", "frame": "base_link"}
assert lane["metadata"] == want, f"inspect shows metadata {lane['metadata']}, not {want}"
assert lane["clock"] == "realtime", f"inspect shows clock {lane['clock']}"
print("inspect: metadata", lane["metadata"], "clock", lane["clock"])
PY
"$bin/reader" queue "$name" 4 units=m/s frame=base_link clock=realtime

echo "--- Rust writer -> C reader (queue, both running)"
name=$(lane rust-to-c)
"$peer" queue-write "$name" $count &
writer=$!
"$bin/reader" queue "$name" $count
wait $writer

echo "--- Rust writer -> C reader (stream, both running)"
name=$(lane rust-to-c-stream)
"$peer" stream-write "$name" $count &
writer=$!
"$bin/reader" stream "$name" $count
wait $writer

echo "--- Rust publisher -> C++ subscribers (lossless and lossy)"
name=$(lane topic)
"$peer" topic-write "$name" $count &
writer=$!
"$bin/topic_subscriber" "$name" $count
wait $writer

echo "--- Rust producer -> C++ consumer mapping each tensor with Eigen::Map"
if [ -n "$eigen" ]; then
    name=$(lane eigen)
    "$peer" queue-write "$name" $count &
    writer=$!
    "$bin/eigen_consumer" "$name" $count
    wait $writer
else
    echo "SKIPPED: Eigen is not installed (apt-get install libeigen3-dev); the Eigen example was not built or run"
fi

# Canaries: each example, run against a broken writer, must fail with the message
# that names the bug (as `#[should_panic(expected = ...)]` does for the checkers).
must_fail() {
    local expected=$1
    shift
    if "$@" >"$work/out" 2>&1; then
        echo "canary not caught: $* passed"
        exit 1
    fi
    if ! grep -q -- "$expected" "$work/out"; then
        echo "canary caught for another reason: $* said:"
        cat "$work/out"
        exit 1
    fi
    echo "caught: $(grep -m1 -- "$expected" "$work/out")"
}
echo "--- canaries: the examples against broken writers"
name=$(lane canary-skewed)
"$peer" queue-write-skewed "$name" 4 >/dev/null
must_fail "seq 1 holds 1" "$bin/reader" queue "$name" 4
if [ -n "$eigen" ]; then
    name=$(lane canary-eigen)
    "$peer" queue-write-skewed "$name" 4 >/dev/null
    must_fail "item 0 is not the expected matrix" "$bin/eigen_consumer" "$name" 4
fi
# A writer that stops one item short: every reader notices the lost item.
name=$(lane canary-short-queue)
"$peer" queue-write "$name" 3 >/dev/null
must_fail ": TL_ERR_WRITER_GONE" "$bin/reader" queue "$name" 4
name=$(lane canary-short-stream)
"$peer" stream-write "$name" 3 >/dev/null
must_fail "the last value is seq 3, not 4" "$bin/reader" stream "$name" 4
name=$(lane canary-short-topic)
"$peer" topic-write "$name" 3 >/dev/null
must_fail "TL_ERR_WRITER_GONE" "$bin/topic_subscriber" "$name" 4
# A writer that drops the metadata or the clock: the C reader notices.
name=$(lane canary-no-metadata)
"$peer" queue-write "$name" 4 >/dev/null
must_fail "the lane has no metadata units" "$bin/reader" queue "$name" 4 units=m/s
must_fail "the lane's clock is monotonic, not realtime" "$bin/reader" queue "$name" 4 clock=realtime
name=$(lane canary-short-c)
"$bin/queue_writer" "$name" 3 >/dev/null
must_fail "writer side is gone" "$peer" queue-read "$name" 4

echo "--- CMake: find_package(tensorlane) and its imported targets"
if command -v cmake >/dev/null; then
    cmake -S capi/tests/cmake -B "$work/cmake" -DCMAKE_PREFIX_PATH="$work/prefix" \
        -DCMAKE_CXX_FLAGS="$strict" >/dev/null
    cmake --build "$work/cmake" >/dev/null
    for variant in topic_subscriber topic_subscriber_static; do
        name=$(lane "cmake-$variant")
        "$peer" topic-write "$name" 8 &
        writer=$!
        "$work/cmake/$variant" "$name" 8
        wait $writer
    done
else
    echo "SKIPPED: cmake is not installed (apt-get install cmake); the CMake package file was not checked"
fi
echo "--- C and C++: all passed"
