/* SPDX-License-Identifier: MIT */
/*
 * The LD_PRELOAD interposer's cost on an mmap + munmap loop (64 KiB), as a
 * ratio measured side by side in one run: the interposer is loaded with
 * dlopen and its mmap/munmap called through pointers, alternating in short
 * rounds with libc's, and the median of the per-round ratios is reported.
 * Times are the process's CPU time (system calls included), so that other
 * programs on a busy machine do not decide the result.
 *
 *   preload-idle      interposed vs direct calls, no session     (target <= 1.05)
 *   preload-traced    interposed vs direct calls while a session
 *                     records every clrmemtrace_os event          (target <= 1.25)
 *
 * Usage: bench-preload PRELOAD_SO [--traced] [--quick] [--json]
 * --traced expects a session to be recording (bench/run sets one up) and
 * reports preload-traced; without it, preload-idle.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void loop(mmap_fn m, munmap_fn u, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		void *p = m(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED || u(p, 65536) != 0) {
			perror("bench-preload: mmap/munmap");
			exit(1);
		}
	}
}

int main(int argc, char **argv)
{
	bool traced = false, quick = false, json = false;
	const char *so = NULL;
	double ratios[64], t_hook = 0, t_libc = 0, target;
	int rounds, per = 20000, r, i;
	mmap_fn hook_mmap;
	munmap_fn hook_munmap;
	const char *name;
	void *h;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--traced") == 0) {
			traced = true;
		} else if (strcmp(argv[i], "--quick") == 0) {
			quick = true;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (!so && argv[i][0] != '-') {
			so = argv[i];
		} else {
			fprintf(stderr, "usage: %s PRELOAD_SO [--traced] [--quick] [--json]\n", argv[0]);
			return 2;
		}
	}
	if (!so) {
		fprintf(stderr, "usage: %s PRELOAD_SO [--traced] [--quick] [--json]\n", argv[0]);
		return 2;
	}
	h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "bench-preload: cannot load %s: %s\n", so, dlerror());
		return 1;
	}
	hook_mmap = (mmap_fn)dlsym(h, "mmap");
	hook_munmap = (munmap_fn)dlsym(h, "munmap");
	if (!hook_mmap || !hook_munmap) {
		fprintf(stderr, "bench-preload: %s does not export mmap and munmap\n", so);
		return 1;
	}
	rounds = quick ? 11 : 31;
	loop(hook_mmap, hook_munmap, per / 4);
	loop(mmap, munmap, per / 4);
	for (r = 0; r < rounds; r++) {
		uint64_t a = now_ns(), b, c;

		loop(hook_mmap, hook_munmap, per);
		b = now_ns();
		loop(mmap, munmap, per);
		c = now_ns();
		ratios[r] = (double)(b - a) / (double)(c - b);
		t_hook += (double)(b - a);
		t_libc += (double)(c - b);
	}
	qsort(ratios, (size_t)rounds, sizeof(*ratios), cmp_double);
	name = traced ? "preload-traced" : "preload-idle";
	target = traced ? 1.25 : 1.05;
	if (json) {
		printf("{\"benchmark\": \"%s\", \"ratio\": %.3f, \"target\": %.2f, \"pass\": %s, "
		       "\"detail\": \"%.0f ns vs %.0f ns of CPU per mmap+munmap\"}\n",
		       name, ratios[rounds / 2], target, ratios[rounds / 2] <= target ? "true" : "false",
		       t_hook / rounds / per, t_libc / rounds / per);
	} else {
		printf("%-15s %6.3f  target <= %.2f  %s   (%.0f ns vs %.0f ns of CPU per mmap+munmap)\n", name,
		       ratios[rounds / 2], target, ratios[rounds / 2] <= target ? "PASS" : "FAIL",
		       t_hook / rounds / per, t_libc / rounds / per);
	}
	return 0;
}
