#!/usr/bin/env bash
# Model-check the Promela models of tensorlane's lock-free algorithms with spin.
#
#   verification/spin/check.sh            default set (about 2 minutes on 2 vCPUs)
#   verification/spin/check.sh --full     default set plus larger configurations
#                                         (about 5 minutes, ~6.5 GiB of memory)
#   JOBS=N verification/spin/check.sh     run N pan searches at a time (default: nproc, max 2)
#
# Every run happens in its own directory under verification/spin/out/<run>/
# (gitignored): the model is copied there, `spin -a` generates pan.c, gcc builds
# pan, pan's output is kept in pan.out and a counterexample in <model>.pml.trail.
# Replay one with:
#   cd verification/spin/out/<run> && spin -t -p <defines> <model>.pml
#
# Each run is one of:
#   pass     the model with its properties: pan must report 0 errors
#   canary   a deliberately broken variant: pan must report an error, and the
#            error must be the expected one (the failed assertion text or an
#            invalid end state), so that a canary caught for an unrelated reason
#            does not count
#   witness  a check that some behaviour is reachable (asserts it never happens):
#            must fail the same way as a canary
# Exit status 1 if any run does not meet its expectation.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/out"
full=0
for arg in "$@"; do
	case "$arg" in
	--full) full=1 ;;
	-h | --help)
		sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "unknown argument: $arg" >&2
		exit 2
		;;
	esac
done

# ------------------------------------------------------------------- tools
if ! command -v spin >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "spin not found: installing it with apt-get" >&2
		apt-get install -y spin >/dev/null 2>&1 ||
			{ apt-get update >/dev/null 2>&1 && apt-get install -y spin >/dev/null 2>&1; } ||
			true
	fi
	if ! command -v spin >/dev/null 2>&1; then
		echo "spin is not installed: run 'sudo apt-get install -y spin' (spin 6.5.2)" >&2
		exit 1
	fi
fi
if ! command -v gcc >/dev/null 2>&1; then
	echo "gcc is required to build pan: run 'sudo apt-get install -y gcc'" >&2
	exit 1
fi

if [ -z "${JOBS:-}" ]; then
	JOBS="$(nproc 2>/dev/null || echo 1)"
	if [ "$JOBS" -gt 2 ]; then JOBS=2; fi
fi

# -------------------------------------------------------------------- runs
# name | model | kind (pass/canary/witness) | spin defines | pan mode | expected error text
# pan mode: safety = assertions and invalid end states; assert = assertions only
# (pan -E); np = non-progress cycles (pan -l; no progress labels, so any cycle
# at all is reported, i.e. every execution must be finite)
runs=(
	"seqlock-n2|seqlock|pass|-DN=2 -DMAXW=4|safety|"
	"seqlock-n1|seqlock|pass|-DN=1 -DMAXW=3|safety|"
	"seqlock-n1-stall|seqlock|witness|-DN=1 -DMAXW=3 -DCHECK_QUIET_READS|safety|quiet&&"
	"seqlock-zombie|seqlock|witness|-DZOMBIE|safety|assertion violated"
	"seqlock-no-second-check|seqlock|canary|-DCANARY_NO_SECOND_CHECK|safety|(v0==p)&&(v1==p)"
	"seqlock-early-publish|seqlock|canary|-DCANARY_EARLY_PUBLISH|safety|quiet&&"
	"seqlock-takeover-rewrite|seqlock|canary|-DCANARY_TAKEOVER_REWRITE|safety|quiet&&"

	"spsc|spsc|pass||safety|"
	"spsc-cap3|spsc|pass|-DCAP=3|safety|"
	"spsc-no-kill|spsc|pass|-DNO_KILL|safety|"
	"spsc-posmod|spsc|witness|-DCAP=3 -DPOSMOD=4|safety|assertion violated"
	"spsc-zombie|spsc|witness|-DZOMBIE|assert|assertion violated"
	"spsc-tail-first|spsc|canary|-DCANARY_TAIL_FIRST|safety|(reading!="
	"spsc-head-first|spsc|canary|-DCANARY_HEAD_FIRST|safety|(reading!="
	"spsc-full-off-by-1|spsc|canary|-DCANARY_FULL_OFF_BY_1|safety|assertion violated"

	"broadcast|broadcast|pass||safety|"
	"broadcast-rejoin|broadcast|pass|-DNPUB=3 -DJOINS0=2 -DJOINS1=2 -DMODE0=LOSSLESS -DMODE1=LOSSLESS|safety|"
	"broadcast-cycles|broadcast|pass|-DNPUB=3|np|"
	"broadcast-odd-jump|broadcast|pass|-DPRODUCER_CRASH -DLOSSY_ODD_JUMP -DNPUB=3|safety|"
	"broadcast-backpressure|broadcast|witness|-DWITNESS_BACKPRESSURE|safety|!(pfull)"
	"broadcast-producer-crash|broadcast|witness|-DPRODUCER_CRASH|safety|invalid end state"
	"broadcast-no-epoch-bump|broadcast|canary|-DCANARY_NO_EPOCH_BUMP|safety|violated evicted[i]"
	"broadcast-no-epoch-check|broadcast|canary|-DCANARY_NO_EPOCH_CHECK|safety|violated evicted[i]"
	"broadcast-no-recheck|broadcast|canary|-DCANARY_NO_RECHECK|safety|violated evicted[i]"
	"broadcast-stale-min|broadcast|canary|-DCANARY_STALE_MIN|safety|!(pfull)||"
	"broadcast-epoch-load-store|broadcast|canary|-DCANARY_EPOCH_LOAD_STORE -DNPUB=3 -DJOINS0=2 -DJOINS1=2 -DMODE0=LOSSLESS -DMODE1=LOSSLESS -DEVICTIONS=0|safety|violated evicted[i]"
	"broadcast-publisher-evicts|broadcast|pass|-DPUBLISHER_EVICTS -DJOINS0=2 -DMODE0=LOSSLESS -DEVICTIONS=0|safety|"
	"broadcast-evict-reread|broadcast|canary|-DPUBLISHER_EVICTS -DCANARY_EVICT_REREAD -DJOINS0=2 -DMODE0=LOSSLESS -DEVICTIONS=0|safety|violated (live[bi]!=eg)"

	"futex|futex|pass||safety|"
	"futex-one-notifier|futex|pass|-DNOTIFIERS=1 -DEVENTS=2|safety|"
	"futex-one-waiter|futex|pass|-DWAITERS=1 -DEVENTS=2|safety|"
	"futex-sleeps|futex|witness|-DWITNESS_SLEEP|safety|!(queued[me])"
	"futex-stale-flag|futex|witness|-DWITNESS_STALE|safety|((word&1)==0)"
	"futex-no-clear|futex|canary|-DCANARY_NO_CLEAR|safety|((word&1)==0)"
	"futex-wake-first|futex|canary|-DCANARY_WAKE_FIRST|safety|invalid end state"
	"futex-no-bump|futex|canary|-DCANARY_NO_BUMP|safety|invalid end state"
	"futex-no-recheck|futex|canary|-DCANARY_NO_RECHECK|safety|invalid end state"
	"futex-count|futex|witness|-DCOUNT|safety|(count==0)"
	"futex-count-reset|futex|witness|-DCOUNT -DRESET|safety|invalid end state"
)
if [ "$full" = 1 ]; then
	runs+=(
		"seqlock-n1-w4|seqlock|pass|-DN=1 -DMAXW=4|safety|"
		"seqlock-n3|seqlock|pass|-DN=3 -DMAXW=4|safety|"
		"spsc-long|spsc|pass|-DK=10 -DGENS=5|safety|"
		"broadcast-cap3|broadcast|pass|-DCAP=3|safety|"
		"broadcast-rejoin-mixed|broadcast|pass|-DNPUB=3 -DJOINS0=2 -DMODE1=LOSSLESS|safety|"
		"broadcast-maxlag1|broadcast|pass|-DMAXLAG=1|safety|"
		"broadcast-lossy-maxlag3|broadcast|pass|-DMODE0=LOSSY -DMODE1=LOSSY -DMAXLAG=3|safety|"
		"broadcast-rejoin-any|broadcast|pass|-DNPUB=3 -DJOINS0=2 -DJOINS1=2|safety|"
		"broadcast-odd-jump-4|broadcast|pass|-DPRODUCER_CRASH -DLOSSY_ODD_JUMP|safety|"
		"broadcast-evicts-supervisor|broadcast|pass|-DPUBLISHER_EVICTS -DJOINS0=2 -DMODE0=LOSSLESS|safety|"
		"broadcast-evicts-cycles|broadcast|pass|-DPUBLISHER_EVICTS -DJOINS0=2 -DMODE0=LOSSLESS -DEVICTIONS=0|np|"
	)
fi

# One run: build and search in out/<name>; pan's output goes to out/<name>/pan.out.
run_one() {
	local name="$1" model="$2" defines="$3" mode="$4"
	local dir="$out/$name"
	rm -rf "$dir"
	mkdir -p "$dir"
	cp "$here/$model.pml" "$dir/"
	(
		cd "$dir"
		local t0 t1
		t0="$(date +%s.%N)"
		# shellcheck disable=SC2086 # defines is a list of words
		spin $defines -a "$model.pml" >spin.out 2>&1 || { echo "spin -a failed" >>pan.out; exit 0; }
		if [ "$mode" = np ]; then
			gcc -O2 -w -DNP -DCOLLAPSE -o pan pan.c >gcc.out 2>&1 || { echo "gcc failed" >>pan.out; exit 0; }
			./pan -l -m100000 -w26 >pan.out 2>&1 || true
		elif [ "$mode" = assert ]; then
			gcc -O2 -w -DSAFETY -DCOLLAPSE -o pan pan.c >gcc.out 2>&1 || { echo "gcc failed" >>pan.out; exit 0; }
			./pan -E -m100000 -w26 >pan.out 2>&1 || true
		else
			gcc -O2 -w -DSAFETY -DCOLLAPSE -o pan pan.c >gcc.out 2>&1 || { echo "gcc failed" >>pan.out; exit 0; }
			./pan -m100000 -w26 >pan.out 2>&1 || true
		fi
		t1="$(date +%s.%N)"
		echo "$t0 $t1" | awk '{ printf "%.1f\n", $2 - $1 }' >wall.out
	)
}
export -f run_one
export out here

# run_spec "name|model|defines|mode"
run_spec() {
	local name model defines mode
	IFS='|' read -r name model defines mode <<<"$1"
	run_one "$name" "$model" "$defines" "$mode"
}
export -f run_spec

mkdir -p "$out"
# Two check.sh at once would clobber each other's run directories: wait for the
# other one to finish.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$out/.lock"
	if ! flock -n 9; then
		echo "another check.sh is running on $out: waiting for it" >&2
		flock 9
	fi
fi
# the long broadcast searches first, so that short runs fill the gaps
printf '%s\n' "${runs[@]}" |
	awk -F'|' '{ line = $1 "|" $2 "|" $4 "|" $5 }
		$2 == "broadcast" && $3 == "pass" { print line; next }
		{ rest[++n] = line }
		END { for (i = 1; i <= n; i++) print rest[i] }' |
	xargs -d '\n' -P "$JOBS" -n 1 bash -c 'run_spec "$1"' _

# ----------------------------------------------------------------- summary
bad=0
printf '%-28s %-8s %12s %7s %8s  %s\n' run kind states errors time result
for spec in "${runs[@]}"; do
	IFS='|' read -r name model kind defines mode expect <<<"$spec"
	f="$out/$name/pan.out"
	states="$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$f" | head -n1)"
	errors="$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$f" | head -n1)"
	wall="$(cat "$out/$name/wall.out" 2>/dev/null || echo '?')"
	states="${states:-?}"
	errors="${errors:-?}"
	result=ok
	why=""
	if [ "$errors" = "?" ]; then
		result=FAIL
		why="no pan result (see $f)"
	elif grep -q 'search depth too small' "$f"; then
		result=FAIL
		why="search depth too small"
	elif [ "$kind" = pass ]; then
		if [ "$errors" != 0 ]; then
			result=FAIL
			why="$(grep -m1 '^pan:1:' "$f" || true)"
		fi
	else
		if [ "$errors" = 0 ]; then
			result=FAIL
			why="expected an error, none found"
		elif ! grep '^pan:1:' "$f" | grep -qF -- "$expect"; then
			result=FAIL
			why="wrong error: $(grep -m1 '^pan:1:' "$f" || true)"
		else
			why="$(grep -m1 '^pan:1:' "$f" | sed 's/^pan:1: //; s/ (at depth [0-9]*)//' | cut -c1-64)"
		fi
	fi
	[ "$result" = ok ] || bad=1
	printf '%-28s %-8s %12s %7s %7ss  %s%s\n' "$name" "$kind" "$states" "$errors" "$wall" "$result" "${why:+  $why}"
done

if [ "$bad" != 0 ]; then
	echo "spin: FAILED (details in $out/<run>/pan.out)"
	exit 1
fi
echo "spin: all runs as expected"
