/* SPDX-License-Identifier: MIT */
/*
 * Latency histograms.
 */
#include "hist.h"

#include <string.h>

unsigned int cmt_hist_bucket(uint64_t v)
{
	unsigned int e;

	if (v < 16) {
		return (unsigned int)v;
	}
	e = 63u - (unsigned int)__builtin_clzll(v);
	return 16u + 16u * (e - 4u) + (unsigned int)((v >> (e - 4u)) & 15u);
}

uint64_t cmt_hist_upper(unsigned int bucket)
{
	unsigned int e, s;

	if (bucket < 16) {
		return bucket;
	}
	if (bucket >= CMT_HIST_BUCKETS) {
		return UINT64_MAX;
	}
	e = 4u + (bucket - 16u) / 16u;
	s = (bucket - 16u) % 16u;
	/* For the very last bucket the shift wraps to 0, and 0 - 1 is UINT64_MAX: exact. */
	return ((uint64_t)(16u + s + 1u) << (e - 4u)) - 1u;
}

void cmt_hist_init(struct cmt_hist *h)
{
	memset(h, 0, sizeof(*h));
}

void cmt_hist_add(struct cmt_hist *h, uint64_t v)
{
	if (v == 0) {
		return;
	}
	if (h->count == 0 || v < h->min) {
		h->min = v;
	}
	if (v > h->max) {
		h->max = v;
	}
	h->count++;
	h->sum += v;
	h->buckets[cmt_hist_bucket(v)]++;
}

uint64_t cmt_hist_percentile(const struct cmt_hist *h, unsigned int permille)
{
	unsigned __int128 target;
	uint64_t seen = 0;
	unsigned int b;

	if (h->count == 0) {
		return 0;
	}
	target = ((unsigned __int128)h->count * permille + 999u) / 1000u;
	if (target == 0) {
		target = 1;
	}
	for (b = 0; b < CMT_HIST_BUCKETS; b++) {
		seen += h->buckets[b];
		if (seen >= target) {
			uint64_t up = cmt_hist_upper(b);

			return up < h->max ? up : h->max;
		}
	}
	return h->max;
}

double cmt_hist_mean(const struct cmt_hist *h)
{
	if (h->count == 0) {
		return 0.0;
	}
	return (double)h->sum / (double)h->count;
}
