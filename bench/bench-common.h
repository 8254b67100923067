/* SPDX-License-Identifier: MIT */
/*
 * What the benchmarks share (bench-common.c): their clocks, the median of
 * the per-round ratios, and the result line each benchmark prints, as text
 * or, with --json, as the JSON line bench/run reads.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/*
 * The options of a benchmark that takes only --quick (fewer rounds) and
 * --json (machine-readable lines). False, after printing the usage line, on
 * anything else.
 */
bool bench_options(int argc, char **argv, bool *quick, bool *json);

/* Nanoseconds on `clock`. */
uint64_t clock_ns(clockid_t clock);

/*
 * The process's CPU time (system calls and the library's own threads
 * included), so that other programs on a busy machine do not decide the
 * result.
 */
uint64_t now_ns(void);

/* Sorts v[0..n) and returns its median. */
double median(double *v, int n);

/* One benchmark's result: its ratio against the target (lower is better). */
void report(bool json, const char *name, double ratio, double target, const char *detail);

/* A benchmark that could not run: never a pass. */
void report_skip(bool json, const char *name, double target, const char *why);

#endif /* BENCH_COMMON_H */
