/* SPDX-License-Identifier: MIT */
/*
 * Latency histograms (analysis/README.md, "Latency"): 16 buckets per power
 * of two, so a percentile read from the buckets is within 6.25% of the exact
 * value, in a fixed 8 KiB whatever the number of calls.
 */
#ifndef CLRMEMTRACE_ANALYSIS_HIST_H
#define CLRMEMTRACE_ANALYSIS_HIST_H

#include <stdint.h>

/* Values below 16 have a bucket each; then 16 per power of two up to 2^63. */
#define CMT_HIST_BUCKETS (16 + 16 * 60)

struct cmt_hist {
	uint64_t count;
	uint64_t min;
	uint64_t max;
	unsigned __int128 sum;
	uint64_t buckets[CMT_HIST_BUCKETS];
};

/* The bucket of value v, and the largest value a bucket holds. */
unsigned int cmt_hist_bucket(uint64_t v);
uint64_t cmt_hist_upper(unsigned int bucket);

void cmt_hist_init(struct cmt_hist *h);

/* Adds one value; 0 means "not measured" and is left out. */
void cmt_hist_add(struct cmt_hist *h, uint64_t v);

/*
 * The percentile permille/1000 (500 for the median): the upper bound of the
 * first bucket where the cumulative count reaches ceil(permille * count /
 * 1000), capped at the maximum seen. 0 for an empty histogram.
 */
uint64_t cmt_hist_percentile(const struct cmt_hist *h, unsigned int permille);

/* The mean of the values added; 0 for an empty histogram. */
double cmt_hist_mean(const struct cmt_hist *h);

#endif /* CLRMEMTRACE_ANALYSIS_HIST_H */
