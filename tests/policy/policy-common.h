/* SPDX-License-Identifier: MIT */
/*
 * Shared pieces of the policy suite (budgets, notifications, pressure,
 * decorators): exact HRESULT checks, a notification callback that records
 * every delivery, clocks, and views of this process's threads.
 *
 * Everything here uses the public header only; the suite tests the library
 * as a host sees it.
 */
#ifndef CLRMEMTRACE_POLICY_COMMON_H
#define CLRMEMTRACE_POLICY_COMMON_H

#include <clrmemtrace.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)

/* Windows reserves address space in units of 64 KiB: sizes in the suite are multiples of it. */
#define GRAN ((size_t)0x10000)

/* The page size, set by policy_init(). */
extern size_t page;

/*
 * Call first in main(): sets the page size and clears every CLRMEMTRACE_
 * policy variable, so the caller's environment cannot change what a test
 * expects.
 */
void policy_init(void);

/* The policy environment variables, NULL-terminated. */
extern const char *const policy_env_vars[];

/* Unsets every policy environment variable (a teardown for tests that set some). */
int policy_env_clear(void **state);

/* ---------- Exact results ---------- */

void check_hr_(HRESULT expected, HRESULT actual, const char *expr, const char *file, int line);

/* Compares HRESULTs exactly and names both on a mismatch. */
#define assert_hr(expected, expr) check_hr_((expected), (expr), #expr, __FILE__, __LINE__)

/* Options of the given size with everything else zero. */
clrmemtrace_options policy_options(void);

/* A manager made with opts, failing the test unless clrmemtrace_create succeeds. */
IHostMemoryManager *create_ok_(const clrmemtrace_options *opts, const char *file, int line);
#define create_ok(opts) create_ok_((opts), __FILE__, __LINE__)

/* Releases the test's reference, which must be the last one. */
void release_last_(IHostMemoryManager *mm, const char *file, int line);
#define release_last(mm) release_last_((mm), __FILE__, __LINE__)

/* VirtualAlloc expected to succeed; returns the address. */
void *alloc_ok_(IHostMemoryManager *mm, void *addr, SIZE_T size, DWORD type, int level,
		const char *file, int line);
#define alloc_ok(mm, addr, size, type, level) \
	alloc_ok_((mm), (void *)(addr), (size), (type), (level), __FILE__, __LINE__)

/* VirtualAlloc expected to fail with hr, leaving *ppMem NULL. */
void alloc_fails_(IHostMemoryManager *mm, void *addr, SIZE_T size, DWORD type, int level,
		  HRESULT hr, const char *file, int line);
#define alloc_fails(mm, addr, size, type, level, hr) \
	alloc_fails_((mm), (void *)(addr), (size), (type), (level), (hr), __FILE__, __LINE__)

/* GetMemoryLoad, expected to succeed. */
void memory_load_(IHostMemoryManager *mm, DWORD *load, SIZE_T *avail, const char *file, int line);
#define memory_load(mm, load, avail) memory_load_((mm), (load), (avail), __FILE__, __LINE__)

/* The system's memory load, as a manager without a budget reports it. */
DWORD system_memory_load(void);

/* ---------- Time and threads ---------- */

uint64_t now_ns(void);
void sleep_ms(unsigned ms);
pid_t current_tid(void);

/* Entries of /proc/self/task: this process's threads. */
int count_tasks(void);

/*
 * Waits up to timeout_ms for count_tasks() to reach `want`; the final count.
 * A thread another has joined may still be listed for a moment: the kernel
 * wakes the joiner before it has reaped the thread.
 */
int wait_tasks(int want, unsigned timeout_ms);

/* Threads of this process whose name (comm) is `name`. */
int count_threads_named(const char *name);

/* Waits up to timeout_ms for count_threads_named(name) to reach `want`; the final count. */
int wait_threads_named(const char *name, int want, unsigned timeout_ms);

/* The name of thread tid of this process ("" if it is gone). */
void thread_name(pid_t tid, char *buf, size_t len);

/*
 * Microseconds some task of the system stalled on memory (PSI "some"
 * total); 0 where the kernel has no pressure-stall information.
 */
uint64_t memory_stall_us(void);

/*
 * A system stall that may have driven a delivery. The library's trigger
 * fires at 300 ms within 2 s (src/posix/pressure.c), but the totals lag the
 * triggers (a trigger has fired with the total 0 ms further): any stall
 * worth the name counts.
 */
#define STALL_EXCUSE_US 10000u

/* What the library names its notification thread. */
#define MONITOR_THREAD "clrmemtrace-mon"

/* ---------- A notification callback that records its deliveries ---------- */

#define MAX_DELIVERIES 64

struct delivery {
	int level;   /* EMemoryAvailable */
	uint64_t ns; /* when OnMemoryNotification was entered */
	pid_t tid;   /* the thread that called it */
};

struct test_cb;
typedef void (*test_cb_hook)(struct test_cb *cb, int level);

struct test_cb {
	ICLRMemoryNotificationCallback iface;
	uint32_t refs;        /* atomic; starts at 1, the test's own reference */
	HRESULT answer;       /* what OnMemoryNotification returns */
	test_cb_hook hook;    /* optional: runs inside OnMemoryNotification, after recording */
	void *ctx;            /* for the hook */
	unsigned entered;     /* atomic: calls begun */
	unsigned returned;    /* atomic: calls finished */
	pthread_mutex_t lock; /* guards log and count */
	struct delivery log[MAX_DELIVERIES];
	unsigned count;
	unsigned checked;     /* deliveries a test has looked at so far (test_cb_next) */
};

void test_cb_init(struct test_cb *cb);

/* Checks that only the test's own reference is left, then frees the lock. */
void test_cb_fini_(struct test_cb *cb, const char *file, int line);
#define test_cb_fini(cb) test_cb_fini_((cb), __FILE__, __LINE__)

static inline ICLRMemoryNotificationCallback *test_cb_iface(struct test_cb *cb)
{
	return &cb->iface;
}

unsigned test_cb_count(struct test_cb *cb);
uint32_t test_cb_refs(struct test_cb *cb);
struct delivery test_cb_get(struct test_cb *cb, unsigned i);

/*
 * Waits up to timeout_ms for at least `want` deliveries; returns the count.
 * When they do not come and a call is still inside OnMemoryNotification 3 s
 * later (it called into the manager and never came back: a lock was held),
 * the program aborts with a message, since the manager could not be
 * released any more.
 */
unsigned test_cb_wait(struct test_cb *cb, unsigned want, unsigned timeout_ms);

/*
 * The next delivery no check has looked at yet, waiting up to timeout_ms for
 * it; false if none came.
 */
bool test_cb_next(struct test_cb *cb, unsigned timeout_ms, struct delivery *d);

/* Waits up to timeout_ms until no call is inside OnMemoryNotification. */
bool test_cb_wait_idle(struct test_cb *cb, unsigned timeout_ms);

/* Whether the levels delivered so far are exactly these, in order. */
bool test_cb_levels_are(struct test_cb *cb, const int *levels, unsigned n);

/* Checks the levels delivered so far, in order. */
void test_cb_expect_(struct test_cb *cb, const int *levels, unsigned n, const char *file,
		     int line);
#define test_cb_expect(cb, ...)                                                          \
	do {                                                                            \
		static const int want_[] = { __VA_ARGS__ };                             \
		test_cb_expect_((cb), want_, sizeof(want_) / sizeof(want_[0]), __FILE__, \
				__LINE__);                                              \
	} while (0)
#define test_cb_expect_none(cb) test_cb_expect_((cb), NULL, 0, __FILE__, __LINE__)

const char *level_name(int level);

#endif /* CLRMEMTRACE_POLICY_COMMON_H */
