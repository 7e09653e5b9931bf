#!/usr/bin/env python3
"""Every ordering needed, or gone: weakens each memory ordering of the concurrent
code, one at a time, and runs the suites most likely to notice.

Sites: every `Ordering::Release`, `Acquire`, `AcqRel` and `SeqCst` argument and every
`fence(...)` call in `core/src/*.rs` and `core/src/*/*.rs` (test modules excepted; the
futex protocol is `core/src/futex.rs`), `shm/src/futex.rs` and `gpu/src/protocol.rs`, as
they are when the script runs. Each site gives one mutant:
the ordering replaced by `Relaxed`, or the fence call removed (replaced by `()`).
An atomic read-modify-write with two orderings gives one mutant per ordering.

Each mutant is made in a scratch copy of the tree (never in the working tree), then
the suites for its file run in order, cheapest first (`SUITES` below: the loom
scenarios of that structure, then the threaded scenarios), stopping at the first
failure. Every suite command runs under a time limit; a mutant that outlives it is
reported as `timeout`, not as caught.

    verification/orderings.py --list                # the sites, nothing run
    verification/orderings.py                       # the whole campaign
    verification/orderings.py --files seqlock.rs,spsc.rs --timeout 300
    verification/orderings.py --files broadcast.rs  # every file of core/src/broadcast/
    verification/orderings.py --files broadcast/producer.rs
    verification/orderings.py --sites seqlock.rs:278,broadcast/table.rs:144

A file is named by its path under `core/src` (`seqlock.rs`, `broadcast/producer.rs`),
or by its own name outside `core` (`futex.rs`, `protocol.rs`). The files of a module
directory (`core/src/broadcast/`, `core/src/spsc/`) also answer to the module's name
(`broadcast.rs`, `spsc.rs`), which is also their key in `SUITES`.
    verification/orderings.py --miri                # also Miri on the threaded scenarios

The result is a Markdown table (site, mutant, first test that failed, seconds) on
stdout and in `--out` (default `target/orderings.md` in the scratch copy's parent).
Set `CARGO_TARGET_DIR` to a directory of its own: every mutant rebuilds the crates
that depend on the mutated file.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ORDERING = re.compile(r"Ordering::(Release|Acquire|AcqRel|SeqCst)\b")
FENCE = re.compile(r"\b(?:[A-Za-z_]+::)*fence\(\s*Ordering::\w+\s*\)")

LOOM = ["cargo", "test", "-p", "tensorlane-verification", "--features", "loom",
        "--test", "loom", "--", "--exact"]
THREADS = ["cargo", "test", "-p", "tensorlane-verification", "--test", "threads"]
MIRI = ["cargo", "+nightly", "miri", "test", "-p", "tensorlane-verification",
        "--test", "threads"]


def loom(name):
    return ("loom " + name, LOOM + [name], {})


THREADS_SUITE = ("threads", THREADS, {})

# The suites for each file, cheapest first. Scenario names are those of
# verification/tests/loom.rs; a file not listed gets every scenario.
SUITES = {
    "seqlock.rs": [
        loom("register_writer_hand_over"),
        loom("register_range_reads_race_the_writer"),
        loom("gpu_host_event_completion"),
        loom("gpu_slot_reuse_and_recheck"),
        loom("register_takeover_after_a_writer_stops_at_every_step"),
        loom("register_one_writer_two_readers"),
        THREADS_SUITE,
    ],
    "spsc.rs": [
        loom("queue_wraps_around"),
        loom("queue_batches_wrap_around"),
        loom("queue_wraps_around_through_byte_loans"),
        loom("queue_producer_takeover_with_items_in_flight"),
        loom("queue_consumer_takeover_with_items_in_flight"),
        THREADS_SUITE,
    ],
    "broadcast.rs": [
        loom("broadcast_join_races_a_publishing_producer"),
        loom("broadcast_inspection_races_a_join"),
        loom("broadcast_lossless_batches_against_a_publishing_producer"),
        loom("broadcast_eviction_races_a_read"),
        loom("broadcast_join_and_leave_race_a_publishing_producer"),
        loom("broadcast_history_reads_race_a_publishing_producer"),
        loom("broadcast_two_lossless_subscribers_hold_the_producer_back"),
        loom("broadcast_stale_eviction_and_reclaim_race_a_join"),
        loom("broadcast_producer_takeover_with_subscribers_reading"),
        loom("broadcast_lossless_and_lossy_subscribers"),
        THREADS_SUITE,
    ],
    "protocol.rs": [
        loom("gpu_host_event_completion"),
        loom("gpu_slot_reuse_and_recheck"),
        ("host_lanes", ["cargo", "test", "-p", "tensorlane-gpu", "--test", "host_lanes"], {}),
    ],
    "futex.rs": [
        ("loom futex", ["cargo", "test", "-p", "tensorlane-verification", "--features", "loom",
                        "--test", "loom_futex"], {}),
        ("shm futex", ["cargo", "test", "-p", "tensorlane-shm", "--test", "futex"], {}),
        ("shm processes", ["cargo", "test", "-p", "tensorlane-shm", "--test", "processes"], {}),
    ],
}
ALL_LOOM = [s for name in ("seqlock.rs", "spsc.rs", "broadcast.rs") for s in SUITES[name][:-1]]
# Role claims: the one loom scenario that hands a role from one thread to another
# (take-overs of dead owners are the spin models' and the process tests' subject).
SUITES["claim.rs"] = [loom("register_writer_hand_over"), THREADS_SUITE]


def source_files():
    files = []
    core = os.path.join(ROOT, "core", "src")
    for name in sorted(os.listdir(core)):
        if name.endswith(".rs") and not name.endswith("tests.rs"):
            files.append(os.path.join("core", "src", name))
        elif os.path.isdir(os.path.join(core, name)):
            # A module split into a directory: its files, one level down.
            for inner in sorted(os.listdir(os.path.join(core, name))):
                if inner.endswith(".rs") and not inner.endswith("tests.rs"):
                    files.append(os.path.join("core", "src", name, inner))
    for extra in ("shm/src/futex.rs", "gpu/src/protocol.rs"):
        if os.path.exists(os.path.join(ROOT, extra)):
            files.append(extra)
    return files


def file_name(path):
    """The name `--files` and `--sites` use: the path under `core/src`, else the file's
    own name."""
    core = os.path.join("core", "src") + os.sep
    return path[len(core):] if path.startswith(core) else os.path.basename(path)


def module_name(path):
    """The `SUITES` key: the module a file belongs to (`broadcast.rs` for every file of
    `core/src/broadcast/`), else the file's name."""
    name = file_name(path)
    return name.split(os.sep, 1)[0] + ".rs" if os.sep in name else name


def sites(path):
    """(line number, column, kind, text) of each ordering site in `path`."""
    found = []
    with open(os.path.join(ROOT, path)) as f:
        lines = f.read().split("\n")
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("#[cfg(test)]") and number < len(lines) and \
                lines[number].strip().startswith("mod "):
            break  # an inline test module: the rest of the file is tests
        code = line.split("//", 1)[0]
        fences = [(m.start(), m.end()) for m in FENCE.finditer(code)]
        for start, end in fences:
            found.append((number, start, "fence", code[start:end]))
        for m in ORDERING.finditer(code):
            if any(s <= m.start() < e for s, e in fences):
                continue
            found.append((number, m.start(), "ordering", m.group(0)))
    return found


def mutate(text, number, column, kind, original):
    lines = text.split("\n")
    line = lines[number - 1]
    assert line[column:column + len(original)] == original, (number, original)
    replacement = "()" if kind == "fence" else "Ordering::Relaxed"
    lines[number - 1] = line[:column] + replacement + line[column + len(original):]
    return "\n".join(lines)


def run(command, cwd, timeout, env):
    start = time.time()
    try:
        result = subprocess.run(command, cwd=cwd, env=env, timeout=timeout,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        status = "pass" if result.returncode == 0 else "fail"
        output = result.stdout.decode(errors="replace")
        if status == "fail" and ("error[E" in output or "could not compile" in output):
            status = "build"
    except subprocess.TimeoutExpired:
        status, output = "timeout", ""
    return status, time.time() - start, output


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--list", action="store_true", help="list the sites and stop")
    parser.add_argument("--files", help="comma-separated file names to mutate (default: all)")
    parser.add_argument("--sites", help="comma-separated file:line sites (default: all)")
    parser.add_argument("--timeout", type=int, default=300,
                        help="seconds per suite command and mutant (default 300)")
    parser.add_argument("--scratch", default="/tmp/tensorlane-orderings",
                        help="scratch copy of the tree (recreated)")
    parser.add_argument("--out", help="Markdown table to write")
    parser.add_argument("--miri", action="store_true",
                        help="run Miri on the threaded scenarios as a last suite")
    args = parser.parse_args()

    chosen = args.files.split(",") if args.files else None
    plan = []
    for path in source_files():
        if chosen and file_name(path) not in chosen and module_name(path) not in chosen:
            continue
        for site in sites(path):
            if args.sites and f"{file_name(path)}:{site[0]}" not in args.sites.split(","):
                continue
            plan.append((path,) + site)

    if args.list:
        for path, number, _, kind, original in plan:
            print(f"{path}:{number}\t{kind}\t{original}")
        print(f"{len(plan)} sites", file=sys.stderr)
        return 0

    if "CARGO_TARGET_DIR" not in os.environ:
        sys.exit("set CARGO_TARGET_DIR to a target directory for the mutants")
    scratch = args.scratch
    if os.path.exists(scratch):
        shutil.rmtree(scratch)
    shutil.copytree(ROOT, scratch, ignore=shutil.ignore_patterns(".git", "target"))
    env = dict(os.environ)
    env.setdefault("RUSTFLAGS", "")
    out = args.out or os.path.join(os.path.dirname(scratch), "orderings.md")

    rows = []
    header = ("| site | mutant | caught by | seconds |\n|---|---|---|---|")
    print(header, flush=True)
    campaign = time.time()
    for path, number, column, kind, original in plan:
        target = os.path.join(scratch, path)
        with open(target) as f:
            pristine = f.read()
        with open(target, "w") as f:
            f.write(mutate(pristine, number, column, kind, original))
        suites = list(SUITES.get(module_name(path), ALL_LOOM + [THREADS_SUITE]))
        if args.miri:
            suites.append(("miri threads", MIRI, {}))
        verdict, spent = "survived", 0.0
        try:
            for label, command, extra in suites:
                status, seconds, output = run(command, scratch, args.timeout,
                                              dict(env, **extra))
                spent += seconds
                if status == "build":
                    verdict = "does not build"
                    break
                if status == "fail":
                    verdict = label
                    break
                if status == "timeout":
                    verdict = f"timeout ({label})"
                    break
        finally:
            with open(target, "w") as f:
                f.write(pristine)
        mutant = "fence removed" if kind == "fence" else \
            f"{original.split('::')[1]} -> Relaxed"
        row = f"| `{path}:{number}` | {mutant} | {verdict} | {spent:.0f} |"
        rows.append(row)
        print(row, flush=True)
    survivors = sum(1 for r in rows if "| survived |" in r)
    summary = (f"\n{len(rows)} mutants, {survivors} survived, "
               f"{time.time() - campaign:.0f} s in all")
    print(summary)
    with open(out, "w") as f:
        f.write(header + "\n" + "\n".join(rows) + "\n" + summary + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
