/* SPDX-License-Identifier: MIT */
/*
 * Shared by the stress tests: a seeded generator per thread, and failure
 * reports from worker threads. cmocka's assertions jump out of the test and
 * must only run on the thread that runs the test, so workers record the
 * first failure here and stop; the test asserts after joining them.
 */
#ifndef CLRMEMTRACE_TEST_STRESS_H
#define CLRMEMTRACE_TEST_STRESS_H

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct rng {
	uint64_t s;
};

static inline void rng_seed(struct rng *r, uint64_t seed)
{
	/* splitmix64 of the seed, so nearby seeds give unrelated sequences. */
	uint64_t z = seed + 0x9E3779B97F4A7C15ULL;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	r->s = (z ^ (z >> 31)) | 1;
}

static inline uint64_t rng_next(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545F4914F6CDD1DULL;
}

static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
	return rng_next(r) % n;
}

/* The run's seed: fixed, or CLRMEMTRACE_TEST_SEED to replay another. */
static inline uint64_t stress_seed(uint64_t fallback)
{
	const char *s = getenv("CLRMEMTRACE_TEST_SEED");

	return s && *s ? strtoull(s, NULL, 0) : fallback;
}

static pthread_mutex_t stress_failure_lock = PTHREAD_MUTEX_INITIALIZER;
static char stress_failure[1024];
static int stress_stop;

/* Records the first failure and asks every worker to stop. */
__attribute__((format(printf, 1, 2))) static inline void stress_fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&stress_failure_lock);
	if (!stress_failure[0]) {
		va_start(ap, fmt);
		vsnprintf(stress_failure, sizeof(stress_failure), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&stress_failure_lock);
	__atomic_store_n(&stress_stop, 1, __ATOMIC_RELEASE);
}

static inline bool stress_stopped(void)
{
	return __atomic_load_n(&stress_stop, __ATOMIC_ACQUIRE) != 0;
}

static inline double stress_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
