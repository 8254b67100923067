/* SPDX-License-Identifier: MIT */
#include "bench-common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool bench_options(int argc, char **argv, bool *quick, bool *json)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			*quick = true;
		} else if (strcmp(argv[i], "--json") == 0) {
			*json = true;
		} else {
			fprintf(stderr, "usage: %s [--quick] [--json]\n", argv[0]);
			return false;
		}
	}
	return true;
}

uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t now_ns(void)
{
	return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void report(bool json, const char *name, double ratio, double target, const char *detail)
{
	if (json) {
		printf("{\"benchmark\": \"%s\", \"ratio\": %.3f, \"target\": %.2f, \"pass\": %s, "
		       "\"detail\": \"%s\"}\n",
		       name, ratio, target, ratio <= target ? "true" : "false", detail);
	} else {
		printf("%-14s %6.3f  target <= %.2f  %s   (%s)\n", name, ratio, target,
		       ratio <= target ? "PASS" : "FAIL", detail);
	}
	fflush(stdout);
}

void report_skip(bool json, const char *name, double target, const char *why)
{
	if (json) {
		printf("{\"benchmark\": \"%s\", \"ratio\": null, \"target\": %.2f, "
		       "\"pass\": false, \"detail\": \"%s\"}\n",
		       name, target, why);
	} else {
		printf("%-14s %6s  target <= %.2f  SKIP   (%s)\n", name, "-", target, why);
	}
	fflush(stdout);
}
