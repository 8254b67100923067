/* SPDX-License-Identifier: MIT */
/*
 * Memory notifications (README.md, "Host policy"): once a callback is
 * registered, a monitor thread delivers eMemoryAvailableLow / Neutral / High
 * on transitions of the load, woken at once when the commit budget crosses a
 * threshold. The callback is called with no lock held, a registration
 * replaces the one before it (and releases it), and the thread stops when
 * the manager is released, even when the callback releases it.
 *
 * The manager under test has a commit budget of 100 units of 64 KiB, so
 * committing n units makes the load exactly n percent, and a poll interval
 * of ten minutes, so every delivery within the tests' bounds (2 s) comes
 * from the budget waking the monitor, not from polling.
 *
 * The level follows the larger of the budget's load and the system's, so
 * the thresholds are set above the system's load when the tests start:
 * High at 40 % (or 10 points above the system's load), Low 40 points
 * higher. A machine whose memory is too full for that skips them.
 */
#include "policy-common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(POLICY_HAVE_URCU_BP)
#include <urcu/urcu-bp.h>
#endif

#define UNIT ((SIZE_T)0x10000)
#define BUDGET (100 * UNIT)
#define LOW 80
#define HIGH 40
#define GAP 40 /* between the High and Low thresholds */
#define HYSTERESIS 5
/* Longer than any test: deliveries come from the budget's wake-ups alone. */
#define POLL_MS 600000

/* How long a transition may take to arrive, and how long to watch for strays. */
#define DELIVERY_MS 2000
#define QUIET_MS 150
/*
 * How long a joined thread may still be listed in /proc/self/task: the
 * kernel wakes the joiner before it has reaped the thread.
 */
#define REAP_MS 1000

/*
 * What a test registers lives here, not on its stack: should a check fail
 * and end the test early, the teardown still releases the manager (and so
 * the callbacks) while they exist.
 */
struct reentry {
	IHostMemoryManager *mm;
	struct test_cb *next; /* registered from inside the callback */
	HRESULT hr[16];
	unsigned calls;
	DWORD load;
	ULONG refs_after_addref, refs_after_release;
};

struct slow {
	unsigned calls;
};

struct fixture {
	unsigned low, high;   /* the thresholds, above the system's load */
	uint64_t stall_start; /* the system's memory stall total when the test began */
	IHostMemoryManager *mm;
	char *base;       /* a reservation of BUDGET bytes */
	unsigned percent; /* units committed from base */
	uint64_t changed; /* when the commit last changed */
	struct test_cb cb[3];
	struct reentry reentry;
	struct slow slow;
};

static clrmemtrace_options notify_options(unsigned low, unsigned high)
{
	clrmemtrace_options o = policy_options();

	o.name = "test-notify";
	o.commit_budget = BUDGET;
	o.low_memory_percent = low;
	o.high_memory_percent = high;
	o.hysteresis_percent = HYSTERESIS;
	o.poll_interval_ms = POLL_MS;
	return o;
}

static int fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	DWORD sys = system_memory_load();
	clrmemtrace_options o;
	unsigned i;

	assert_non_null(f);
	f->high = sys + 10 > HIGH ? (unsigned)sys + 10 : HIGH;
	f->low = f->high + GAP;
	if (f->low > 95) {
		/* need_quiet_system() skips the test; the manager is still made for the teardown. */
		f->high = HIGH;
		f->low = LOW;
	}
	o = notify_options(f->low, f->high);
	f->stall_start = memory_stall_us();
	for (i = 0; i < 3; i++) {
		test_cb_init(&f->cb[i]);
	}
	f->mm = create_ok(&o);
	f->base = alloc_ok(f->mm, NULL, BUDGET, MEM_RESERVE, eTaskCritical);
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;
	unsigned i;

	if (f->mm) {
		assert_hr(S_OK, IHostMemoryManager_VirtualFree(f->mm, f->base, 0, MEM_RELEASE));
		release_last(f->mm);
	}
	/* Released with the manager: only the test's own references are left. */
	for (i = 0; i < 3; i++) {
		test_cb_fini(&f->cb[i]);
	}
	free(f);
	assert_int_equal(wait_threads_named(MONITOR_THREAD, 0, REAP_MS), 0);
	return 0;
}

/*
 * What the machine does drives deliveries too: a memory stall anywhere
 * reads as Low for the trigger's window, and the system's load counts when
 * it exceeds the budget's. When either may have interfered during the test
 * (a stall, or the load risen to the High threshold), an unexpected
 * delivery proves nothing, and the test is inconclusive.
 */
static void skip_if_stalled(const struct fixture *f)
{
	uint64_t stalled = memory_stall_us() - f->stall_start;
	DWORD sys = system_memory_load();

	if (stalled >= STALL_EXCUSE_US) {
		print_message("the system stalled %.0f ms on memory during the test: "
			      "inconclusive\n",
			      (double)stalled / 1000);
		skip();
	}
	if (sys + HYSTERESIS >= f->high) {
		print_message("the system's memory load rose to %u %% during the test: "
			      "inconclusive\n",
			      (unsigned)sys);
		skip();
	}
}

/* The levels delivered so far are exactly these (unless a stall excuses it). */
#define expect_levels(f, cb, ...)                                                        \
	do {                                                                            \
		static const int want_[] = { __VA_ARGS__ };                             \
		const unsigned n_ = sizeof(want_) / sizeof(want_[0]);                   \
		if (!test_cb_levels_are((cb), want_, n_)) {                             \
			skip_if_stalled(f);                                             \
		}                                                                       \
		test_cb_expect_((cb), want_, n_, __FILE__, __LINE__);                   \
	} while (0)

#define expect_no_levels(f, cb)                                    \
	do {                                                      \
		if (test_cb_count(cb)) {                          \
			skip_if_stalled(f);                       \
		}                                                 \
		test_cb_expect_((cb), NULL, 0, __FILE__, __LINE__); \
	} while (0)

/* Releases the manager (and its reservation) before the end of a test. */
static void release_manager(struct fixture *f)
{
	assert_hr(S_OK, IHostMemoryManager_VirtualFree(f->mm, f->base, 0, MEM_RELEASE));
	release_last(f->mm);
	f->mm = NULL;
}

/* Commits or decommits from the top so that exactly `percent` units are committed. */
static void set_load(struct fixture *f, unsigned percent)
{
	if (percent > f->percent) {
		alloc_ok(f->mm, f->base + f->percent * UNIT, (percent - f->percent) * UNIT,
			 MEM_COMMIT, eTaskCritical);
	} else if (percent < f->percent) {
		assert_hr(S_OK, IHostMemoryManager_VirtualFree(f->mm, f->base + percent * UNIT,
							       (f->percent - percent) * UNIT,
							       MEM_DECOMMIT));
	}
	f->percent = percent;
	f->changed = now_ns();
}

/*
 * The next delivery the test has not looked at yet arrives within
 * DELIVERY_MS of the change (or has arrived already), with `level`.
 */
static void expect_next_(struct fixture *f, struct test_cb *cb, int level, uint64_t *worst,
			 const char *file, int line)
{
	struct delivery d;

	if (!test_cb_next(cb, DELIVERY_MS, &d)) {
		skip_if_stalled(f);
		print_error("no %s notification within %d ms of the load becoming %u %%\n",
			    level_name(level), DELIVERY_MS, f->percent);
		_fail(file, line);
	}
	if (d.level != level) {
		skip_if_stalled(f);
		print_error("at %u %% the notification was %s, expected %s\n", f->percent,
			    level_name(d.level), level_name(level));
		_fail(file, line);
	}
	if (worst && d.ns > f->changed && d.ns - f->changed > *worst) {
		*worst = d.ns - f->changed;
	}
}
#define expect_next(f, cb, level, worst) expect_next_((f), (cb), (level), (worst), __FILE__, __LINE__)

/* Nothing is delivered beyond what the test has looked at, for QUIET_MS. */
static void expect_quiet_(struct fixture *f, struct test_cb *cb, const char *file, int line)
{
	sleep_ms(QUIET_MS);
	if (test_cb_count(cb) != cb->checked) {
		skip_if_stalled(f);
		print_error("at %u %% an unexpected %s notification came\n", f->percent,
			    level_name(test_cb_get(cb, cb->checked).level));
		_fail(file, line);
	}
}
#define expect_quiet(f, cb) expect_quiet_((f), (cb), __FILE__, __LINE__)

/*
 * With the system's load too high to fit the thresholds above it (a budget
 * at 0 % could not be High), the test cannot run.
 */
static void need_quiet_system(const struct fixture *f)
{
	DWORD sys = system_memory_load();

	if (sys + 10 > f->high) {
		print_message("the system's memory load is %u %%: the tests need it under %u %%\n",
			      (unsigned)sys, f->high - 10);
		skip();
	}
}

/* ---------- Transitions ---------- */

/*
 * The full walk through the thresholds and their hysteresis: every
 * transition delivered exactly once, in order, within the bound, and
 * nothing between them. The callback's failure HRESULT changes nothing.
 */
static void test_transitions_in_order(void **state)
{
	struct fixture *f = *state;
	struct test_cb *cb = &f->cb[0];
	uint64_t worst = 0;
	pid_t me = current_tid();
	char name[64];
	unsigned i;

	need_quiet_system(f);
	cb->answer = E_FAIL;
	/* No thread until a callback is registered. */
	assert_int_equal(count_threads_named(MONITOR_THREAD), 0);
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(f->mm, &cb->iface));
	assert_int_equal(wait_threads_named(MONITOR_THREAD, 1, DELIVERY_MS), 1);
	/* The first evaluation (High at 0 %) is not a transition. */
	expect_quiet(f, cb);

	set_load(f, f->low + 5);
	expect_next(f, cb, eMemoryAvailableLow, &worst);
	expect_quiet(f, cb);
	set_load(f, f->low - 4); /* within the hysteresis: still Low */
	expect_quiet(f, cb);
	set_load(f, f->low - 6);
	expect_next(f, cb, eMemoryAvailableNeutral, &worst);
	set_load(f, f->low - 1);
	expect_quiet(f, cb);
	set_load(f, f->low);
	expect_next(f, cb, eMemoryAvailableLow, &worst);
	set_load(f, f->low - 10);
	expect_next(f, cb, eMemoryAvailableNeutral, &worst);
	set_load(f, f->high + 2); /* above High's threshold */
	expect_quiet(f, cb);
	set_load(f, f->high);
	expect_next(f, cb, eMemoryAvailableHigh, &worst);
	set_load(f, f->high + 5); /* within the hysteresis: still High */
	expect_quiet(f, cb);
	set_load(f, f->high + 6);
	expect_next(f, cb, eMemoryAvailableNeutral, &worst);
	set_load(f, 100);
	expect_next(f, cb, eMemoryAvailableLow, &worst);
	set_load(f, 0); /* straight from Low to High */
	expect_next(f, cb, eMemoryAvailableHigh, &worst);
	expect_quiet(f, cb);

	expect_levels(f, cb, eMemoryAvailableLow, eMemoryAvailableNeutral, eMemoryAvailableLow,
		       eMemoryAvailableNeutral, eMemoryAvailableHigh, eMemoryAvailableNeutral,
		       eMemoryAvailableLow, eMemoryAvailableHigh);
	/* All from the monitor thread, in time order. */
	for (i = 0; i < test_cb_count(cb); i++) {
		struct delivery d = test_cb_get(cb, i);

		assert_int_not_equal(d.tid, me);
		assert_int_equal(d.tid, test_cb_get(cb, 0).tid);
		if (i) {
			assert_true(d.ns >= test_cb_get(cb, i - 1).ns);
		}
	}
	thread_name(test_cb_get(cb, 0).tid, name, sizeof(name));
	assert_string_equal(name, MONITOR_THREAD);
	print_message("slowest delivery: %.3f ms after the change\n", (double)worst / 1e6);

	release_manager(f);
	assert_int_equal(wait_threads_named(MONITOR_THREAD, 0, REAP_MS), 0);
}

/* A callback registered while memory is already low hears it at once. */
static void test_registered_while_low(void **state)
{
	struct fixture *f = *state;
	struct test_cb *cb = &f->cb[0];

	need_quiet_system(f);
	set_load(f, f->low + 5);
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(f->mm, &cb->iface));
	expect_next(f, cb, eMemoryAvailableLow, NULL);
	expect_quiet(f, cb);
	set_load(f, f->high / 2);
	expect_next(f, cb, eMemoryAvailableHigh, NULL);
	set_load(f, 0);
	expect_quiet(f, cb);
	expect_levels(f, cb, eMemoryAvailableLow, eMemoryAvailableHigh);
}

/* ---------- Replacement ---------- */

static void test_registration_replaces(void **state)
{
	struct fixture *f = *state;
	struct test_cb *cb1 = &f->cb[0], *cb2 = &f->cb[1], *cb3 = &f->cb[2];

	need_quiet_system(f);
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(f->mm, &cb1->iface));
	assert_true(test_cb_refs(cb1) >= 2);
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(f->mm, &cb2->iface));
	/* The first registration was released before Register returned. */
	assert_int_equal(test_cb_refs(cb1), 1);
	assert_true(test_cb_refs(cb2) >= 2);
	/* One monitor for the manager, however many registrations. */
	assert_int_equal(wait_threads_named(MONITOR_THREAD, 1, DELIVERY_MS), 1);

	set_load(f, f->low + 5);
	expect_next(f, cb2, eMemoryAvailableLow, NULL);
	/* NULL is refused and changes nothing. */
	assert_hr(E_INVALIDARG, IHostMemoryManager_RegisterMemoryNotificationCallback(f->mm, NULL));
	set_load(f, f->high + GAP / 2);
	expect_next(f, cb2, eMemoryAvailableNeutral, NULL);
	set_load(f, f->low + 5);
	expect_next(f, cb2, eMemoryAvailableLow, NULL);

	/* Replaced while Low: the new one is told Low, the old one is released. */
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(f->mm, &cb3->iface));
	expect_next(f, cb3, eMemoryAvailableLow, NULL);
	assert_true(test_cb_wait_idle(cb2, DELIVERY_MS));
	assert_int_equal(test_cb_refs(cb2), 1);
	set_load(f, 0);
	expect_next(f, cb3, eMemoryAvailableHigh, NULL);
	expect_quiet(f, cb3);

	expect_no_levels(f, cb1);
	expect_levels(f, cb2, eMemoryAvailableLow, eMemoryAvailableNeutral, eMemoryAvailableLow);
	expect_levels(f, cb3, eMemoryAvailableLow, eMemoryAvailableHigh);
	assert_int_equal(count_threads_named(MONITOR_THREAD), 1);
	/* The teardown's release drops the last registration (test_cb_fini checks). */
}

/* ---------- No lock held while the callback runs ---------- */

static void record(struct reentry *r, HRESULT hr)
{
	if (r->calls < sizeof(r->hr) / sizeof(r->hr[0])) {
		r->hr[r->calls] = hr;
	}
	r->calls++;
}

/* Every kind of call into the manager, from inside OnMemoryNotification. */
static void reenter_hook(struct test_cb *cb, int level)
{
	struct reentry *r = cb->ctx;
	IHostMemoryManager *mm = r->mm;
	MEMORY_BASIC_INFORMATION mbi;
	IHostMalloc *heap = NULL;
	void *p = NULL, *block = NULL;
	void *v = (void *)(uintptr_t)0x7e0040000000ull;
	SIZE_T got = 0, avail = 0;
	DWORD old = 0;

	if (level != eMemoryAvailableLow || r->calls) {
		return;
	}
	record(r, IHostMemoryManager_GetMemoryLoad(mm, &r->load, &avail));
	record(r, IHostMemoryManager_VirtualAlloc(mm, NULL, UNIT, MEM_RESERVE, PAGE_READWRITE,
						  eTaskCritical, &p));
	record(r, IHostMemoryManager_VirtualQuery(mm, p, &mbi, sizeof(mbi), &got));
	record(r, IHostMemoryManager_VirtualAlloc(mm, p, page, MEM_COMMIT, PAGE_READWRITE,
						  eProcessCritical, &p));
	record(r, IHostMemoryManager_VirtualProtect(mm, p, page, PAGE_READONLY, &old));
	record(r, IHostMemoryManager_VirtualFree(mm, p, 0, MEM_RELEASE));
	record(r, IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap));
	if (heap) {
		record(r, IHostMalloc_Alloc(heap, 16, eProcessCritical, &block));
		record(r, IHostMalloc_Free(heap, block));
		IHostMalloc_Release(heap);
	}
	record(r, IHostMemoryManager_NeedsVirtualAddressSpace(mm, NULL, UNIT));
	record(r, IHostMemoryManager_AcquiredVirtualAddressSpace(mm, v, UNIT));
	record(r, IHostMemoryManager_ReleasedVirtualAddressSpace(mm, v));
	r->refs_after_addref = IHostMemoryManager_AddRef(mm);
	r->refs_after_release = IHostMemoryManager_Release(mm);
	record(r, IHostMemoryManager_RegisterMemoryNotificationCallback(mm, &r->next->iface));
}

static void test_callback_reenters_manager(void **state)
{
	struct fixture *f = *state;
	struct test_cb *cb = &f->cb[0], *next = &f->cb[1];
	struct reentry *r = &f->reentry;
	unsigned i;

	need_quiet_system(f);
	r->mm = f->mm;
	r->next = next;
	cb->hook = reenter_hook;
	cb->ctx = r;
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(f->mm, &cb->iface));
	/* Room left in the budget for what the hook commits (a heap span and a page). */
	set_load(f, f->low + 2);
	/* A lock held around the call would hang the hook: test_cb_wait then aborts. */
	expect_next(f, cb, eMemoryAvailableLow, NULL);
	assert_true(test_cb_wait_idle(cb, DELIVERY_MS));
	assert_int_equal(r->calls, 13);
	for (i = 0; i < r->calls; i++) {
		if (r->hr[i] != S_OK) {
			fail_msg("call %u from inside the callback returned %s", i,
				 clrmemtrace_hresult_name(r->hr[i]));
		}
	}
	assert_true(r->load >= f->low);
	assert_int_equal(r->refs_after_addref, 2);
	assert_int_equal(r->refs_after_release, 1);
	/* The registration made inside the callback took over, while Low. */
	expect_next(f, next, eMemoryAvailableLow, NULL);
	set_load(f, 0);
	expect_next(f, next, eMemoryAvailableHigh, NULL);
	expect_levels(f, cb, eMemoryAvailableLow);
	assert_int_equal(test_cb_refs(cb), 1);
}

/* While a callback runs slowly, the manager serves other threads, and Release waits for it. */
#define SLOW_MS 600

static void slow_hook(struct test_cb *cb, int level)
{
	struct slow *s = cb->ctx;

	(void)level;
	if (s->calls++ == 0) {
		sleep_ms(SLOW_MS);
	}
}

static uint64_t elapsed_ms(uint64_t t0)
{
	return (now_ns() - t0) / 1000000u;
}

static void test_slow_callback_blocks_nothing(void **state)
{
	struct fixture *f = *state;
	struct test_cb *cb = &f->cb[0], *other = &f->cb[1];
	IHostMalloc *heap = NULL;
	MEMORY_BASIC_INFORMATION mbi;
	void *block = NULL;
	SIZE_T got = 0, avail = 0;
	DWORD load = 0;
	uint64_t t0;

	need_quiet_system(f);
	cb->hook = slow_hook;
	cb->ctx = &f->slow;
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(f->mm, &cb->iface));
	set_load(f, f->low + 2);
	assert_int_equal(test_cb_wait(cb, 1, DELIVERY_MS), 1);

	/* The callback sleeps; every call of the manager still returns at once. */
	t0 = now_ns();
	set_load(f, f->low + 3);
	set_load(f, f->low + 2);
	assert_hr(S_OK, IHostMemoryManager_GetMemoryLoad(f->mm, &load, &avail));
	assert_hr(S_OK, IHostMemoryManager_VirtualQuery(f->mm, f->base, &mbi, sizeof(mbi), &got));
	assert_hr(S_OK, IHostMemoryManager_CreateMalloc(f->mm, MALLOC_THREADSAFE, &heap));
	assert_hr(S_OK, IHostMalloc_Alloc(heap, 100, eProcessCritical, &block));
	assert_hr(S_OK, IHostMalloc_Free(heap, block));
	assert_int_equal(IHostMalloc_Release(heap), 0);
	/* Replaced while it runs: its caller's reference keeps it alive until it returns. */
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(f->mm,
									      &other->iface));
	assert_true(elapsed_ms(t0) < SLOW_MS / 2);
	assert_int_not_equal(__atomic_load_n(&cb->entered, __ATOMIC_ACQUIRE),
			     __atomic_load_n(&cb->returned, __ATOMIC_ACQUIRE));
	assert_true(test_cb_refs(cb) >= 2);

	/* Releasing the manager waits for the callback, then for the thread. */
	t0 = now_ns();
	release_manager(f);
	assert_int_equal(__atomic_load_n(&cb->entered, __ATOMIC_ACQUIRE),
			 __atomic_load_n(&cb->returned, __ATOMIC_ACQUIRE));
	assert_int_equal(wait_threads_named(MONITOR_THREAD, 0, REAP_MS), 0);
	print_message("Release waited %.0f ms for the callback\n", (double)elapsed_ms(t0));
	expect_levels(f, cb, eMemoryAvailableLow);
	/* The replacement may or may not have heard Low before the release stopped the thread. */
	assert_true(test_cb_count(other) <= 1);
}

/* ---------- The thread's life ---------- */

/* Whatever threads the library or its tracer start once are running before the counts. */
static void warm_up(void)
{
	static struct test_cb cb;
	clrmemtrace_options o = notify_options(LOW, HIGH);
	IHostMemoryManager *mm = create_ok(&o);
	IHostMalloc *heap = NULL;
	void *p, *block = NULL;

	test_cb_init(&cb);
	p = alloc_ok(mm, NULL, UNIT, MEM_RESERVE | MEM_COMMIT, eTaskCritical);
	assert_hr(S_OK, IHostMemoryManager_VirtualFree(mm, p, UNIT, MEM_DECOMMIT));
	assert_hr(S_OK, IHostMemoryManager_VirtualFree(mm, p, 0, MEM_RELEASE));
	assert_hr(S_OK, IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap));
	assert_hr(S_OK, IHostMalloc_Alloc(heap, 100000, eTaskCritical, &block));
	assert_hr(S_OK, IHostMalloc_Free(heap, block));
	IHostMalloc_Release(heap);
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(mm, &cb.iface));
	release_last(mm);
	test_cb_fini(&cb);
#if defined(POLICY_HAVE_URCU_BP)
	urcu_bp_barrier();
#endif
}

static void test_thread_stops_on_release(void **state)
{
	/* Static: a failed check leaves managers behind that still point at them. */
	static struct test_cb cb[3];
	clrmemtrace_options o = notify_options(LOW, HIGH);
	IHostMemoryManager *mm[3];
	int before, i;

	(void)state;
	before = count_tasks();
	assert_true(before > 0);
	assert_int_equal(count_threads_named(MONITOR_THREAD), 0);

	mm[0] = create_ok(&o);
	assert_int_equal(count_tasks(), before);
	test_cb_init(&cb[0]);
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(mm[0], &cb[0].iface));
	assert_int_equal(count_tasks(), before + 1);
	assert_int_equal(wait_threads_named(MONITOR_THREAD, 1, DELIVERY_MS), 1);
	/* Joined before Release returns (test_slow_callback_blocks_nothing shows it waits). */
	release_last(mm[0]);
	assert_int_equal(wait_tasks(before, REAP_MS), before);
	assert_int_equal(count_threads_named(MONITOR_THREAD), 0);
	test_cb_fini(&cb[0]);

	/* A thread per manager, each stopped by its own manager. */
	for (i = 0; i < 3; i++) {
		mm[i] = create_ok(&o);
		test_cb_init(&cb[i]);
		assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(mm[i],
										      &cb[i].iface));
	}
	assert_int_equal(count_tasks(), before + 3);
	assert_int_equal(wait_threads_named(MONITOR_THREAD, 3, DELIVERY_MS), 3);
	for (i = 0; i < 3; i++) {
		release_last(mm[i]);
		assert_int_equal(wait_tasks(before + 2 - i, REAP_MS), before + 2 - i);
		test_cb_fini(&cb[i]);
	}
	assert_int_equal(count_threads_named(MONITOR_THREAD), 0);

	/* Released while the thread is still starting. */
	for (i = 0; i < 50; i++) {
		IHostMemoryManager *m = create_ok(&o);

		test_cb_init(&cb[0]);
		assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(m,
										      &cb[0].iface));
		release_last(m);
		test_cb_fini(&cb[0]);
	}
	assert_int_equal(wait_tasks(before, REAP_MS), before);
	assert_int_equal(count_threads_named(MONITOR_THREAD), 0);
}

/* Registrations racing from several threads still make one monitor. */
#define RACERS 8

struct racer {
	IHostMemoryManager *mm;
	pthread_barrier_t *go;
	struct test_cb cb;
	HRESULT hr;
};

static void *race_register(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->go);
	r->hr = IHostMemoryManager_RegisterMemoryNotificationCallback(r->mm, &r->cb.iface);
	return NULL;
}

static void test_concurrent_registrations(void **state)
{
	static struct racer r[RACERS];
	clrmemtrace_options o = notify_options(LOW, HIGH);
	pthread_t t[RACERS];
	pthread_barrier_t go;
	int round, i, monitors, before;

	(void)state;
	before = count_tasks();
	for (round = 0; round < 20; round++) {
		IHostMemoryManager *mm = create_ok(&o);

		assert_int_equal(pthread_barrier_init(&go, NULL, RACERS), 0);
		for (i = 0; i < RACERS; i++) {
			r[i].mm = mm;
			r[i].go = &go;
			test_cb_init(&r[i].cb);
			assert_int_equal(pthread_create(&t[i], NULL, race_register, &r[i]), 0);
		}
		for (i = 0; i < RACERS; i++) {
			pthread_join(t[i], NULL);
			assert_hr(S_OK, r[i].hr);
		}
		pthread_barrier_destroy(&go);
		/* Once the racers are reaped, what is left beyond `before` are monitors. */
		monitors = wait_tasks(before + 1, REAP_MS) - before;
		release_last(mm);
		if (monitors != 1) {
			fail_msg("round %d: %d monitor threads for one manager", round, monitors);
		}
		assert_int_equal(wait_tasks(before, REAP_MS), before);
		for (i = 0; i < RACERS; i++) {
			test_cb_fini(&r[i].cb);
		}
	}
}

/*
 * The callback drops the last reference to the manager from inside
 * OnMemoryNotification: the manager goes, and its thread ends on its own
 * once the callback returns, touching nothing freed (AddressSanitizer) and
 * leaking nothing (LeakSanitizer).
 */
struct last_ref {
	IHostMemoryManager *mm;
	int test_released; /* atomic: the test has dropped its own reference */
	ULONG left;        /* what the callback's Release returned */
	bool released;
};

static void release_hook(struct test_cb *cb, int level)
{
	struct last_ref *l = cb->ctx;
	uint64_t end = now_ns() + 5000000000ull;

	if (level != eMemoryAvailableLow || l->released) {
		return;
	}
	/* Be the last: wait for the test's Release (bounded, should the test fail first). */
	while (!__atomic_load_n(&l->test_released, __ATOMIC_ACQUIRE) && now_ns() < end) {
		sleep_ms(1);
	}
	l->released = true;
	l->left = IHostMemoryManager_Release(l->mm);
}

static void test_callback_releases_last_reference(void **state)
{
	static struct last_ref l;
	static struct test_cb cb;
	clrmemtrace_options o = notify_options(LOW, HIGH);
	char *base;
	int round, before;

	(void)state;
	before = count_tasks();
	for (round = 0; round < 5; round++) {
		memset(&l, 0, sizeof(l));
		test_cb_init(&cb);
		cb.hook = release_hook;
		cb.ctx = &l;
		l.mm = create_ok(&o);
		base = alloc_ok(l.mm, NULL, BUDGET, MEM_RESERVE, eTaskCritical);
		alloc_ok(l.mm, base, 90 * UNIT, MEM_COMMIT, eTaskCritical);
		/* The callback's reference, then the registration that is told Low at once. */
		assert_int_equal(IHostMemoryManager_AddRef(l.mm), 2);
		assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(l.mm,
										      &cb.iface));
		assert_int_equal(IHostMemoryManager_Release(l.mm), 1);
		__atomic_store_n(&l.test_released, 1, __ATOMIC_RELEASE);

		assert_int_equal(test_cb_wait(&cb, 1, DELIVERY_MS), 1);
		assert_true(test_cb_wait_idle(&cb, DELIVERY_MS));
		assert_true(l.released);
		assert_int_equal(l.left, 0);
		/* The detached thread cleans up and ends by itself. */
		assert_int_equal(wait_threads_named(MONITOR_THREAD, 0, DELIVERY_MS), 0);
		test_cb_expect(&cb, eMemoryAvailableLow);
		test_cb_fini(&cb);
		/* The manager leaves reservations to the process: give this one back. */
		assert_int_equal(munmap(base, BUDGET), 0);
	}
	assert_int_equal(wait_tasks(before, REAP_MS), before);
}

#define FIXTURE(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		FIXTURE(test_transitions_in_order),
		FIXTURE(test_registered_while_low),
		FIXTURE(test_registration_replaces),
		FIXTURE(test_callback_reenters_manager),
		FIXTURE(test_slow_callback_blocks_nothing),
		cmocka_unit_test(test_thread_stops_on_release),
		cmocka_unit_test(test_concurrent_registrations),
		cmocka_unit_test(test_callback_releases_last_reference),
	};
	int rc;

	policy_init();
	/*
	 * Threads started once, on first use (liburcu's call_rcu worker, the
	 * tracer's), start now, from this thread: later counts are exact, and
	 * none inherits the name of a monitor that happened to start it.
	 */
	warm_up();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
#if defined(POLICY_HAVE_URCU_BP)
	urcu_bp_barrier();
#endif
	return rc;
}
