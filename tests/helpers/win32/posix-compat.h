/* SPDX-License-Identifier: MIT */
/*
 * POSIX functions the conformance sources use that mingw-w64's C library
 * lacks, for their Windows build (included before everything else with
 * -include, so the sources stay as they are).
 */
#ifndef CLRMEMTRACE_TEST_WIN32_POSIX_COMPAT_H
#define CLRMEMTRACE_TEST_WIN32_POSIX_COMPAT_H

/* rand_r as glibc's TYPE_0 generator computes it. */
static inline int rand_r(unsigned int *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (int)((*seed / 65536u) % 32768u);
}

#endif /* CLRMEMTRACE_TEST_WIN32_POSIX_COMPAT_H */
