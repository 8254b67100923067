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
#include "bench-common.h"

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
	char detail[128];
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
	name = traced ? "preload-traced" : "preload-idle";
	target = traced ? 1.25 : 1.05;
	snprintf(detail, sizeof(detail), "%.0f ns vs %.0f ns of CPU per mmap+munmap",
		 t_hook / rounds / per, t_libc / rounds / per);
	report(json, name, median(ratios, rounds), target, detail);
	return 0;
}
