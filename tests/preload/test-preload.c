/* SPDX-License-Identifier: MIT */
/*
 * The interposer's hooks, built into this test with recorders in place of
 * tracepoints (preload-testing.h): one event per call at depth 1 only, calls
 * made while recording are not traced, errno is what the real call left,
 * the hooks work before the real functions are resolved (raw system calls),
 * and a state dump precedes the first traced call after tracing turns on.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "preload-testing.h"

void clrmemtrace__preload_forget_real(void);
void clrmemtrace__preload_resolve(void);

int test_trace_enabled;

/* When set, recording an event maps and unmaps memory and clobbers errno, as a tracer might. */
static int disturb;

#define MAX_RECORDS 4096

static struct {
	const char *event;
	unsigned long long first;
} records[MAX_RECORDS];
static int nrecords;

void test_record(const char *event, unsigned long long first, ...)
{
	if (nrecords < MAX_RECORDS) {
		records[nrecords].event = event;
		records[nrecords].first = first;
		nrecords++;
	}
	if (disturb) {
		void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p != MAP_FAILED) {
			munmap(p, 4096);
		}
		errno = 12345;
	}
}

static int count_event(const char *event)
{
	int i, n = 0;

	for (i = 0; i < nrecords; i++) {
		n += strcmp(records[i].event, event) == 0;
	}
	return n;
}

static int reset(void **state)
{
	(void)state;
	nrecords = 0;
	disturb = 0;
	return 0;
}

/* Runs one call of each hook (with MAP_FIXED remapping inside the first mapping). */
static void exercise(void)
{
	char *p = mmap(NULL, 1 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *q;

	assert_true(p != MAP_FAILED);
	assert_int_equal(mprotect(p, 65536, PROT_READ | PROT_WRITE), 0);
	memset(p, 1, 65536);
	assert_int_equal(madvise(p, 65536, MADV_DONTNEED), 0);
	assert_int_equal(p[0], 0);
	assert_int_equal(posix_madvise(p, 65536, POSIX_MADV_NORMAL), 0);
	q = mremap(p, 65536, 131072, MREMAP_MAYMOVE);
	assert_true(q != MAP_FAILED);
	assert_int_equal(munmap(q, 131072), 0);
	assert_int_equal(munmap(p + 65536, (1 << 20) - 65536), 0);
}

static void test_preload_untraced_calls_work(void **state)
{
	(void)state;
	test_trace_enabled = 0;
	exercise();
	assert_int_equal(nrecords, 0);
}

static void test_preload_one_event_per_call(void **state)
{
	(void)state;
	test_trace_enabled = 1;
	exercise();
	test_trace_enabled = 0;
	assert_int_equal(count_event("mmap"), 1);
	assert_int_equal(count_event("mprotect"), 1);
	assert_int_equal(count_event("madvise"), 1);
	assert_int_equal(count_event("posix_madvise"), 1);
	assert_int_equal(count_event("mremap"), 1);
	assert_int_equal(count_event("munmap"), 2);
}

static void test_preload_calls_made_while_tracing_are_not_traced(void **state)
{
	(void)state;
	disturb = 1;
	test_trace_enabled = 1;
	exercise();
	test_trace_enabled = 0;
	/* The recorder's own mmap/munmap ran at depth 2 and left no record. */
	assert_int_equal(count_event("mmap"), 1);
	assert_int_equal(count_event("munmap"), 2);
}

static void test_preload_errno_is_the_real_calls(void **state)
{
	(void)state;
	disturb = 1;
	test_trace_enabled = 1;
	errno = 0;
	assert_int_equal(munmap((void *)1, 10), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(mprotect((void *)1, 10, PROT_READ), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_true(mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED);
	assert_int_equal(errno, EINVAL);
	/* A call that succeeds leaves errno as it was, whatever the tracer did. */
	errno = 77;
	assert_int_equal(posix_madvise(NULL, 0, POSIX_MADV_NORMAL), 0);
	assert_int_equal(errno, 77);
	test_trace_enabled = 0;
	/* The failed calls were recorded with their arguments. */
	assert_int_equal(count_event("munmap"), 1);
	assert_int_equal(count_event("mprotect"), 1);
}

static void test_preload_works_before_the_constructor(void **state)
{
	(void)state;
	clrmemtrace__preload_forget_real();
	test_trace_enabled = 1;
	exercise();
	errno = 0;
	assert_int_equal(munmap((void *)1, 10), -1);
	assert_int_equal(errno, EINVAL);
	test_trace_enabled = 0;
	clrmemtrace__preload_resolve();
	/* Raw system calls are traced the same way. */
	assert_int_equal(count_event("mmap"), 1);
	assert_int_equal(count_event("munmap"), 3);
}

static void test_preload_dump_when_tracing_starts(void **state)
{
	int begins;

	(void)state;
	test_trace_enabled = 0;
	exercise();
	test_trace_enabled = 1;
	exercise();
	begins = count_event("maps_begin");
	assert_int_equal(begins, 1);
	assert_true(count_event("maps_mapping") > 5);
	assert_int_equal(count_event("maps_end"), 1);
	/* The dump comes first: before the first traced call. */
	assert_string_equal(records[0].event, "maps_begin");
	exercise();
	assert_int_equal(count_event("maps_begin"), 1);
	/* Off and on again: another dump. */
	test_trace_enabled = 0;
	exercise();
	test_trace_enabled = 1;
	exercise();
	test_trace_enabled = 0;
	assert_int_equal(count_event("maps_begin"), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_preload_untraced_calls_work, reset),
		cmocka_unit_test_setup(test_preload_dump_when_tracing_starts, reset),
		cmocka_unit_test_setup(test_preload_one_event_per_call, reset),
		cmocka_unit_test_setup(test_preload_calls_made_while_tracing_are_not_traced, reset),
		cmocka_unit_test_setup(test_preload_errno_is_the_real_calls, reset),
		cmocka_unit_test_setup(test_preload_works_before_the_constructor, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
