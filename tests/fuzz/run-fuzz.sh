#!/bin/sh
# SPDX-License-Identifier: MIT
# A bounded libFuzzer run of fuzz-ops, for `meson test --suite fuzz`.
#
#   run-fuzz.sh FUZZ-OPS-BINARY SEED-CORPUS-DIRECTORY
#
# It fuzzes for CLRMEMTRACE_FUZZ_SECONDS seconds (default 60; 0 skips the
# test), starting from the seed corpus, which it only reads. New inputs and
# any crashing input go to a temporary directory, removed after a clean run
# and kept (its path printed) after a failure.
set -u

fuzzer=$1
seeds=$2
seconds=${CLRMEMTRACE_FUZZ_SECONDS:-60}

case $seconds in
'' | *[!0-9]*)
	echo "run-fuzz.sh: CLRMEMTRACE_FUZZ_SECONDS must be a number of seconds" >&2
	exit 2
	;;
esac
if [ "$seconds" -eq 0 ]; then
	echo "run-fuzz.sh: CLRMEMTRACE_FUZZ_SECONDS=0, not fuzzing"
	exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/clrmemtrace-fuzz.XXXXXX") || exit 1
mkdir "$work/corpus" || exit 1

# libFuzzer stops itself after max_total_time; the outer limit only catches a hang.
# Inputs of up to 1 KiB (64 operations) from the start: a short run has no time
# to let the length grow.
timeout --kill-after=30 $((seconds + 120)) "$fuzzer" \
	-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=60 -print_final_stats=1 \
	-max_len=1024 -len_control=0 \
	-artifact_prefix="$work/" "$work/corpus" "$seeds"
status=$?
if [ "$status" -eq 0 ]; then
	rm -rf "$work"
	exit 0
fi
echo "run-fuzz.sh: the fuzzer failed (status $status); its inputs and findings are in $work" >&2
echo "run-fuzz.sh: replay one with: fuzz-ops-replay $work/crash-..." >&2
exit 1
