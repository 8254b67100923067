/* SPDX-License-Identifier: MIT */
/*
 * OS failures forced in turn. The executable is linked with --wrap for
 * mmap, munmap, mprotect, madvise and msync, so every call the library makes
 * goes through the wrappers below. For each operation of a scripted
 * scenario, the wrapper fails the operation's first OS call, then (with the
 * state unchanged, as the contract requires) its second, and so on, until a
 * run makes fewer calls than the index to fail: that run succeeds and the
 * script goes on from its result.
 *
 * After every failing run the test checks the exact HRESULT, that the
 * out-parameters are NULL/0, that VirtualQuery over the reservation answers
 * exactly as before, that the manager's statistics and sequence number did
 * not move, that readable pages kept their contents, that /proc/self/maps
 * agrees with the manager, and that no mapping the call created survives.
 *
 * Only calls made by the thread under test, between arm and disarm, are
 * counted or failed: liburcu's call_rcu thread unmaps retired heap spans
 * through the same wrappers and must not disturb the count.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <urcu/urcu-bp.h>

#include "heap.h"
#include "hostmem.h"
#include "internal.h"
#include "maps.h"
#include "vm.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define PAGE 4096u
#define MAX_CALLS 16

/* ---------- The wrappers ---------- */

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__real_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_munmap(void *addr, size_t len);
int __real_mprotect(void *addr, size_t len, int prot);
int __real_madvise(void *addr, size_t len, int advice);
int __real_msync(void *addr, size_t len, int flags);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_munmap(void *addr, size_t len);
int __wrap_mprotect(void *addr, size_t len, int prot);
int __wrap_madvise(void *addr, size_t len, int advice);
int __wrap_msync(void *addr, size_t len, int flags);

/* How an injected failure behaves. */
enum mode {
	/* The call does nothing and fails. */
	CLEAN,
	/* mprotect changes the first half of the range, then fails (the kernel may). */
	PARTIAL,
	/* A MAP_FIXED mmap unmaps the range, then fails (kernels before 6.12 may). */
	UNMAPPED,
};

struct fault {
	int err;
	enum mode mode;
};

struct range {
	uintptr_t start, end;
};

static struct {
	int armed;
	pthread_t thread;
	int calls;
	/* Per call index: the failure to inject, err == 0 for none. */
	struct fault fail[MAX_CALLS];
	bool fired;
	char log[MAX_CALLS][12];
	/* Mappings created by the armed thread and not unmapped since. */
	struct range fresh[64];
	int nfresh;
} plan;

static void fresh_add(uintptr_t start, size_t len)
{
	if (plan.nfresh < (int)ARRAY_SIZE(plan.fresh)) {
		plan.fresh[plan.nfresh].start = start;
		plan.fresh[plan.nfresh].end = start + len;
		plan.nfresh++;
	}
}

/* Removes [start, start+len) from the fresh set, splitting ranges as needed. */
static void fresh_remove(uintptr_t start, size_t len)
{
	uintptr_t end = start + len;
	int i;

	for (i = 0; i < plan.nfresh; i++) {
		struct range r = plan.fresh[i];

		if (r.end <= start || r.start >= end) {
			continue;
		}
		plan.fresh[i] = plan.fresh[--plan.nfresh];
		if (r.start < start) {
			fresh_add(r.start, start - r.start);
		}
		if (r.end > end) {
			fresh_add(end, r.end - end);
		}
		i = -1; /* the array changed: scan it again */
	}
}

/* The index of this call if the armed thread makes it, else -1. */
static int count_call(const char *name)
{
	int k;

	if (!__atomic_load_n(&plan.armed, __ATOMIC_ACQUIRE) ||
	    !pthread_equal(pthread_self(), plan.thread)) {
		return -1;
	}
	k = plan.calls++;
	if (k < MAX_CALLS) {
		snprintf(plan.log[k], sizeof(plan.log[k]), "%s", name);
	}
	return k;
}

/* The failure to inject into call k, or NULL. */
static const struct fault *fault_for(int k)
{
	if (k < 0 || k >= MAX_CALLS || plan.fail[k].err == 0) {
		return NULL;
	}
	plan.fired = true;
	return &plan.fail[k];
}

static void *wrapped_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	int k = count_call("mmap");
	const struct fault *f = fault_for(k);
	void *p;

	if (f) {
		if (f->mode == UNMAPPED && (flags & MAP_FIXED)) {
			__real_munmap(addr, len);
		}
		errno = f->err;
		return MAP_FAILED;
	}
	p = __real_mmap64(addr, len, prot, flags, fd, off);
	if (k >= 0 && p != MAP_FAILED && !(flags & MAP_FIXED)) {
		fresh_add((uintptr_t)p, len);
	}
	return p;
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return wrapped_mmap(addr, len, prot, flags, fd, off);
}

void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return wrapped_mmap(addr, len, prot, flags, fd, off);
}

int __wrap_munmap(void *addr, size_t len)
{
	int k = count_call("munmap");
	const struct fault *f = fault_for(k);
	int ret;

	if (f) {
		errno = f->err;
		return -1;
	}
	ret = __real_munmap(addr, len);
	if (k >= 0 && ret == 0) {
		fresh_remove((uintptr_t)addr, len);
	}
	return ret;
}

int __wrap_mprotect(void *addr, size_t len, int prot)
{
	const struct fault *f = fault_for(count_call("mprotect"));

	if (f) {
		size_t half = (len / PAGE / 2) * PAGE;

		if (f->mode == PARTIAL && half) {
			__real_mprotect(addr, half, prot);
		}
		errno = f->err;
		return -1;
	}
	return __real_mprotect(addr, len, prot);
}

int __wrap_madvise(void *addr, size_t len, int advice)
{
	const struct fault *f = fault_for(count_call("madvise"));

	if (f) {
		errno = f->err;
		return -1;
	}
	return __real_madvise(addr, len, advice);
}

int __wrap_msync(void *addr, size_t len, int flags)
{
	const struct fault *f = fault_for(count_call("msync"));

	if (f) {
		errno = f->err;
		return -1;
	}
	return __real_msync(addr, len, flags);
}

/* Counts (and fails as planned) this thread's calls until disarm. */
static void arm(const struct fault *fail, int nfail)
{
	int i;

	memset(plan.fail, 0, sizeof(plan.fail));
	for (i = 0; i < nfail && i < MAX_CALLS; i++) {
		plan.fail[i] = fail[i];
	}
	plan.thread = pthread_self();
	plan.calls = 0;
	plan.fired = false;
	plan.nfresh = 0;
	memset(plan.log, 0, sizeof(plan.log));
	__atomic_store_n(&plan.armed, 1, __ATOMIC_RELEASE);
}

/* Fails call k only, as f says. */
static void arm_at(int k, struct fault f)
{
	struct fault fail[MAX_CALLS] = { 0 };

	fail[k] = f;
	arm(fail, k + 1);
}

static void disarm(void)
{
	__atomic_store_n(&plan.armed, 0, __ATOMIC_RELEASE);
}

static const char *call_log(void)
{
	static char buf[MAX_CALLS * 13];
	int i;

	buf[0] = '\0';
	for (i = 0; i < plan.calls && i < MAX_CALLS; i++) {
		strcat(buf, i ? " " : "");
		strcat(buf, plan.log[i]);
	}
	return buf;
}

/* ---------- The manager's view of a reservation ---------- */

#define SNAP_MAX 64

struct snapshot {
	int n;
	MEMORY_BASIC_INFORMATION mbi[SNAP_MAX];
	unsigned char head[SNAP_MAX][16]; /* first bytes of each readable run */
	uint64_t seq;
	struct vm_stats stats;
};

struct fx {
	IHostMemoryManager *mm;
	struct vm *vm;
};

static bool readable(const MEMORY_BASIC_INFORMATION *m)
{
	DWORD p = m->Protect & 0xff;

	return m->State == MEM_COMMIT && !(m->Protect & PAGE_GUARD) && p != PAGE_NOACCESS;
}

static void take_snapshot(struct fx *fx, uintptr_t base, size_t size, struct snapshot *s)
{
	uintptr_t a = base;

	memset(s, 0, sizeof(*s));
	while (size && a < base + size) {
		MEMORY_BASIC_INFORMATION *m = &s->mbi[s->n];
		SIZE_T len = 0;

		assert_true(s->n < SNAP_MAX);
		assert_int_equal(IHostMemoryManager_VirtualQuery(fx->mm, (void *)a, m, sizeof(*m), &len),
				 S_OK);
		assert_true(m->RegionSize > 0);
		if (readable(m)) {
			memcpy(s->head[s->n], m->BaseAddress, sizeof(s->head[0]));
		}
		if (m->State == MEM_FREE) {
			/* Free space is bounded by foreign mappings, which may move: keep the state only. */
			m->RegionSize = 0;
		}
		a += m->RegionSize ? m->RegionSize : size;
		s->n++;
	}
	clrmemtrace__vm_lock(fx->vm);
	clrmemtrace__vm_stats(fx->vm, &s->stats);
	clrmemtrace__vm_unlock(fx->vm);
	s->seq = clrmemtrace__vm_seq(fx->vm);
}

static void describe(const MEMORY_BASIC_INFORMATION *m, char *buf, size_t len)
{
	snprintf(buf, len, "%p+%#zx state %#x protect %#x alloc %p/%#x", m->BaseAddress,
		 (size_t)m->RegionSize, (unsigned)m->State, (unsigned)m->Protect, m->AllocationBase,
		 (unsigned)m->AllocationProtect);
}

static void check_same(const char *what, const struct snapshot *a, const struct snapshot *b)
{
	char da[160], db[160];
	int i;

	if (a->n != b->n) {
		fail_msg("%s: %d regions before, %d after", what, a->n, b->n);
	}
	for (i = 0; i < a->n; i++) {
		if (memcmp(&a->mbi[i], &b->mbi[i], sizeof(a->mbi[i])) != 0) {
			describe(&a->mbi[i], da, sizeof(da));
			describe(&b->mbi[i], db, sizeof(db));
			fail_msg("%s: region %d was %s, is %s", what, i, da, db);
		}
		if (readable(&a->mbi[i]) && memcmp(a->head[i], b->head[i], sizeof(a->head[i])) != 0) {
			fail_msg("%s: contents of region %d changed", what, i);
		}
	}
	if (a->seq != b->seq) {
		fail_msg("%s: sequence number moved from %" PRIu64 " to %" PRIu64, what, a->seq,
			 b->seq);
	}
	if (memcmp(&a->stats, &b->stats, sizeof(a->stats)) != 0) {
		fail_msg("%s: statistics changed (regions %" PRIu64 " -> %" PRIu64
			 ", committed %" PRIu64 " -> %" PRIu64 ")",
			 what, a->stats.regions, b->stats.regions, a->stats.committed_bytes,
			 b->stats.committed_bytes);
	}
}

static void check_maps(const char *what, struct fx *fx, uintptr_t base, size_t size)
{
	char why[256];

	if (size && !maps_agree(fx->mm, (void *)base, size, why, sizeof(why))) {
		fail_msg("%s: the kernel disagrees with the manager: %s", what, why);
	}
}

/* ---------- Operations ---------- */

enum op_kind { OP_ALLOC, OP_FREE, OP_PROTECT };

struct op {
	const char *name;
	enum op_kind kind;
	void *addr;
	SIZE_T size;
	DWORD type;    /* allocation or free type */
	DWORD protect; /* OP_ALLOC, OP_PROTECT */
	/* The reservation whose view must not change on failure. */
	uintptr_t watch;
	size_t watch_size;
	/* OS calls a successful run makes, or -1 when it depends on placement. */
	int calls;
};

struct outcome {
	HRESULT hr;
	void *mem;
	DWORD old;
};

static struct outcome run_op(struct fx *fx, const struct op *op)
{
	struct outcome o = { 0 };

	o.mem = (void *)(uintptr_t)0xdeadbeef;
	o.old = 0xdeadbeef;
	switch (op->kind) {
	case OP_ALLOC:
		o.hr = IHostMemoryManager_VirtualAlloc(fx->mm, op->addr, op->size, op->type,
						       op->protect, eTaskCritical, &o.mem);
		break;
	case OP_FREE:
		o.hr = IHostMemoryManager_VirtualFree(fx->mm, op->addr, op->size, op->type);
		break;
	case OP_PROTECT:
		o.hr = IHostMemoryManager_VirtualProtect(fx->mm, op->addr, op->size, op->protect,
							 &o.old);
		break;
	}
	return o;
}

/* What the library must return when a call fails with err. */
static HRESULT expected_hr(int err)
{
	switch (err) {
	case ENOMEM:
	case EAGAIN:
		return E_OUTOFMEMORY;
	case EEXIST:
		return HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS);
	case EINVAL:
		return HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER);
	case EACCES:
	case EPERM:
		return HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED);
	default:
		return HRESULT_FROM_WIN32(ERROR_INTERNAL_ERROR);
	}
}

/* Checks a run that an injected fault made fail. */
static void check_failed(struct fx *fx, const struct op *op, const char *what,
			 const struct outcome *o, HRESULT want, const struct snapshot *before)
{
	struct snapshot after;

	if (o->hr != want) {
		fail_msg("%s: returned %s (%#x), want %s (calls: %s)", what,
			 clrmemtrace_hresult_name(o->hr), (unsigned)o->hr,
			 clrmemtrace_hresult_name(want), call_log());
	}
	if (op->kind == OP_ALLOC && o->mem != NULL) {
		fail_msg("%s: *ppMem is %p, want NULL", what, o->mem);
	}
	if (op->kind == OP_PROTECT && o->old != 0) {
		fail_msg("%s: *pflOldProtect is %#x, want 0", what, (unsigned)o->old);
	}
	if (plan.nfresh) {
		fail_msg("%s: a mapping made by the failed call survives at %#" PRIxPTR "-%#" PRIxPTR,
			 what, plan.fresh[0].start, plan.fresh[0].end);
	}
	take_snapshot(fx, op->watch, op->watch_size, &after);
	check_same(what, before, &after);
	check_maps(what, fx, op->watch, op->watch_size);
}

/*
 * Runs op with each of its OS calls failed in turn, each failure in every
 * way of `faults`; then lets it succeed. Returns the successful outcome.
 */
static struct outcome fault_each_call(struct fx *fx, const struct op *op,
				      const struct fault *faults, int nfaults)
{
	struct snapshot before;
	struct outcome o;
	char what[160];
	int k, i;

	take_snapshot(fx, op->watch, op->watch_size, &before);
	for (k = 0; k < MAX_CALLS; k++) {
		for (i = 0; i < nfaults; i++) {
			arm_at(k, faults[i]);
			o = run_op(fx, op);
			disarm();
			if (!plan.fired) {
				/* The operation made only k calls: it has succeeded. */
				if (o.hr != S_OK) {
					fail_msg("%s: returned %s with no fault injected", op->name,
						 clrmemtrace_hresult_name(o.hr));
				}
				print_message("%-34s %d OS call(s): %s\n", op->name, k, call_log());
				if (op->calls >= 0 && op->calls != k) {
					fail_msg("%s: %d OS calls (%s), want %d", op->name, k,
						 call_log(), op->calls);
				}
				check_maps(op->name, fx, op->watch, op->watch_size);
				return o;
			}
			snprintf(what, sizeof(what), "%s, call %d (%s) failing with %s%s", op->name,
				 k, plan.log[k], strerror(faults[i].err),
				 faults[i].mode == PARTIAL ? " after a partial change" : "");
			check_failed(fx, op, what, &o, expected_hr(faults[i].err), &before);
		}
	}
	fail_msg("%s: more than %d OS calls", op->name, MAX_CALLS);
	return o;
}

static const struct fault f_nomem = { ENOMEM, CLEAN };
static const struct fault faults_map[] = { { ENOMEM, CLEAN }, { EACCES, CLEAN } };
static const struct fault faults_protect[] = {
	{ ENOMEM, CLEAN },
	{ EACCES, CLEAN },
	{ ENOMEM, PARTIAL },
};

static int setup(void **state)
{
	static struct fx fx;

	if (clrmemtrace_create(NULL, &fx.mm) != S_OK) {
		return -1;
	}
	fx.vm = impl_from_IHostMemoryManager(fx.mm)->vm;
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	IHostMemoryManager_Release(fx->mm);
	return 0;
}

static void write_pattern(uintptr_t a, size_t len, unsigned char seed)
{
	size_t i;

	for (i = 0; i < len; i += PAGE) {
		memset((void *)(a + i), (int)(seed + i / PAGE), 16);
	}
}

/* VirtualQuery(a) must report this state and protection. */
static void expect_state(struct fx *fx, uintptr_t a, DWORD state, DWORD protect, SIZE_T size)
{
	MEMORY_BASIC_INFORMATION m;
	SIZE_T len;

	assert_int_equal(IHostMemoryManager_VirtualQuery(fx->mm, (void *)a, &m, sizeof(m), &len),
			 S_OK);
	assert_int_equal(m.State, state);
	assert_int_equal(m.Protect, protect);
	if (size) {
		assert_int_equal(m.RegionSize, size);
	}
}

/* ---------- Scenarios ---------- */

static void test_fault_reserve_commit_protect_decommit_release(void **state)
{
	struct fx *fx = *state;
	struct op op;
	struct outcome o;
	uintptr_t r1, r2;

	/* Reserve 16 pages anywhere: map, then trim to 64 KiB alignment. */
	op = (struct op){ .name = "reserve NULL", .kind = OP_ALLOC, .size = 16 * PAGE,
			  .type = MEM_RESERVE, .protect = PAGE_NOACCESS, .calls = -1 };
	o = fault_each_call(fx, &op, faults_map, ARRAY_SIZE(faults_map));
	r1 = (uintptr_t)o.mem;
	assert_int_equal(r1 & 0xffff, 0);
	expect_state(fx, r1, MEM_RESERVE, 0, 16 * PAGE);

	/* Reserve and commit 32 pages in one call. */
	op = (struct op){ .name = "reserve+commit NULL", .kind = OP_ALLOC, .size = 32 * PAGE,
			  .type = MEM_RESERVE | MEM_COMMIT, .protect = PAGE_READWRITE, .calls = -1 };
	o = fault_each_call(fx, &op, faults_map, ARRAY_SIZE(faults_map));
	r2 = (uintptr_t)o.mem;
	expect_state(fx, r2, MEM_COMMIT, PAGE_READWRITE, 32 * PAGE);
	write_pattern(r2, 32 * PAGE, 0x40);

	/* Commit pages 2..5 (one mprotect). */
	op = (struct op){ .name = "commit 2..5", .kind = OP_ALLOC, .addr = (void *)(r1 + 2 * PAGE),
			  .size = 4 * PAGE, .type = MEM_COMMIT, .protect = PAGE_READWRITE,
			  .watch = r1, .watch_size = 16 * PAGE, .calls = 1 };
	o = fault_each_call(fx, &op, faults_protect, ARRAY_SIZE(faults_protect));
	assert_ptr_equal(o.mem, (void *)(r1 + 2 * PAGE));
	expect_state(fx, r1 + 2 * PAGE, MEM_COMMIT, PAGE_READWRITE, 4 * PAGE);
	write_pattern(r1 + 2 * PAGE, 4 * PAGE, 0x10);

	/* Commit 4..9 read-only: over committed and reserved pages, so the restore has two runs. */
	op = (struct op){ .name = "commit 4..9 over 2 runs", .kind = OP_ALLOC,
			  .addr = (void *)(r1 + 4 * PAGE), .size = 6 * PAGE, .type = MEM_COMMIT,
			  .protect = PAGE_READONLY, .watch = r1, .watch_size = 16 * PAGE, .calls = 1 };
	fault_each_call(fx, &op, faults_protect, ARRAY_SIZE(faults_protect));
	expect_state(fx, r1 + 4 * PAGE, MEM_COMMIT, PAGE_READONLY, 6 * PAGE);

	/* Protect 2..9 (a read-write and a read-only run) to execute-read. */
	op = (struct op){ .name = "protect 2..9", .kind = OP_PROTECT,
			  .addr = (void *)(r1 + 2 * PAGE), .size = 8 * PAGE,
			  .protect = PAGE_EXECUTE_READ, .watch = r1, .watch_size = 16 * PAGE,
			  .calls = 1 };
	o = fault_each_call(fx, &op, faults_protect, ARRAY_SIZE(faults_protect));
	assert_int_equal(o.old, PAGE_READWRITE);
	expect_state(fx, r1 + 2 * PAGE, MEM_COMMIT, PAGE_EXECUTE_READ, 8 * PAGE);

	/* A guard page. */
	op = (struct op){ .name = "protect 2..3 guard", .kind = OP_PROTECT,
			  .addr = (void *)(r1 + 2 * PAGE), .size = 2 * PAGE,
			  .protect = PAGE_READWRITE | PAGE_GUARD, .watch = r1,
			  .watch_size = 16 * PAGE, .calls = 1 };
	o = fault_each_call(fx, &op, faults_protect, ARRAY_SIZE(faults_protect));
	assert_int_equal(o.old, PAGE_EXECUTE_READ);
	expect_state(fx, r1 + 2 * PAGE, MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD, 2 * PAGE);

	/* Decommit 3..6: fresh PROT_NONE pages mapped over the range. */
	op = (struct op){ .name = "decommit 3..6", .kind = OP_FREE, .addr = (void *)(r1 + 3 * PAGE),
			  .size = 4 * PAGE, .type = MEM_DECOMMIT, .watch = r1,
			  .watch_size = 16 * PAGE, .calls = 1 };
	fault_each_call(fx, &op, faults_map, ARRAY_SIZE(faults_map));
	expect_state(fx, r1 + 3 * PAGE, MEM_RESERVE, 0, 4 * PAGE);

	/* Decommit of reserved pages needs no OS call. */
	op = (struct op){ .name = "decommit reserved 10..15", .kind = OP_FREE,
			  .addr = (void *)(r1 + 10 * PAGE), .size = 6 * PAGE, .type = MEM_DECOMMIT,
			  .watch = r1, .watch_size = 16 * PAGE, .calls = 0 };
	fault_each_call(fx, &op, faults_map, ARRAY_SIZE(faults_map));

	/* MEM_RESET of committed pages: one madvise. */
	op = (struct op){ .name = "reset r2 0..3", .kind = OP_ALLOC, .addr = (void *)r2,
			  .size = 4 * PAGE, .type = MEM_RESET, .protect = PAGE_NOACCESS,
			  .watch = r2, .watch_size = 32 * PAGE, .calls = 1 };
	fault_each_call(fx, &op, &f_nomem, 1);
	expect_state(fx, r2, MEM_COMMIT, PAGE_READWRITE, 32 * PAGE);

	/* Decommit the whole of r2 (size 0 at the base). */
	op = (struct op){ .name = "decommit r2 whole", .kind = OP_FREE, .addr = (void *)r2,
			  .size = 0, .type = MEM_DECOMMIT, .watch = r2, .watch_size = 32 * PAGE,
			  .calls = 1 };
	fault_each_call(fx, &op, faults_map, ARRAY_SIZE(faults_map));
	expect_state(fx, r2, MEM_RESERVE, 0, 32 * PAGE);

	/* Release both. */
	op = (struct op){ .name = "release r1", .kind = OP_FREE, .addr = (void *)r1,
			  .type = MEM_RELEASE, .watch = r1, .watch_size = 16 * PAGE, .calls = 1 };
	fault_each_call(fx, &op, faults_map, ARRAY_SIZE(faults_map));
	expect_state(fx, r1, MEM_FREE, PAGE_NOACCESS, 0);
	op = (struct op){ .name = "release r2", .kind = OP_FREE, .addr = (void *)r2,
			  .type = MEM_RELEASE, .watch = r2, .watch_size = 32 * PAGE, .calls = 1 };
	fault_each_call(fx, &op, faults_map, ARRAY_SIZE(faults_map));
	expect_state(fx, r2, MEM_FREE, PAGE_NOACCESS, 0);
}

static void test_fault_reserve_at_address(void **state)
{
	static const struct fault faults[] = {
		{ ENOMEM, CLEAN },
		{ EEXIST, CLEAN },
		{ EACCES, CLEAN },
	};
	struct fx *fx = *state;
	struct outcome o;
	struct op op;
	void *probe = NULL;
	uintptr_t at;

	/* Find free address space, then reserve it explicitly. */
	assert_int_equal(IHostMemoryManager_VirtualAlloc(fx->mm, NULL, 0x20000, MEM_RESERVE,
							 PAGE_NOACCESS, eTaskCritical, &probe),
			 S_OK);
	at = (uintptr_t)probe;
	assert_int_equal(IHostMemoryManager_VirtualFree(fx->mm, probe, 0, MEM_RELEASE), S_OK);
	op = (struct op){ .name = "reserve at address", .kind = OP_ALLOC, .addr = (void *)at,
			  .size = 0x20000, .type = MEM_RESERVE, .protect = PAGE_READWRITE,
			  .watch = at, .watch_size = 0x20000, .calls = 1 };
	o = fault_each_call(fx, &op, faults, ARRAY_SIZE(faults));
	assert_ptr_equal(o.mem, (void *)at);

	/* Commit the whole range at its explicit address. */
	op = (struct op){ .name = "commit at address", .kind = OP_ALLOC, .addr = (void *)at,
			  .size = 0x20000, .type = MEM_COMMIT, .protect = PAGE_EXECUTE_READWRITE,
			  .watch = at, .watch_size = 0x20000, .calls = 1 };
	fault_each_call(fx, &op, faults_protect, ARRAY_SIZE(faults_protect));
	expect_state(fx, at, MEM_COMMIT, PAGE_EXECUTE_READWRITE, 0x20000);

	op = (struct op){ .name = "release at address", .kind = OP_FREE, .addr = (void *)at,
			  .type = MEM_RELEASE, .watch = at, .watch_size = 0x20000, .calls = 1 };
	fault_each_call(fx, &op, faults_map, ARRAY_SIZE(faults_map));
}

/*
 * A NULL-address reservation first tries just below the previous one. When
 * something else is there, the kernel maps elsewhere, usually unaligned; the
 * library must then give that mapping back whatever happens next.
 */
static void test_fault_reserve_hint_taken(void **state)
{
	struct fx *fx = *state;
	struct op op = { .name = "reserve NULL, hint taken", .kind = OP_ALLOC, .size = 0x10000,
			 .type = MEM_RESERVE, .protect = PAGE_NOACCESS, .calls = -1 };
	void *fillers[8];
	int nfill = 0, attempt;
	bool exercised = false;

	for (attempt = 0; attempt < 8 && !exercised; attempt++) {
		struct outcome o;
		void *r = NULL, *blocker;

		/* The next reservation's preferred place is the 64 KiB just below r. */
		assert_int_equal(IHostMemoryManager_VirtualAlloc(fx->mm, NULL, 0x10000, MEM_RESERVE,
								 PAGE_NOACCESS, eTaskCritical, &r),
				 S_OK);
		blocker = __real_mmap64((char *)r - PAGE, PAGE, PROT_NONE,
					MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		assert_ptr_equal(blocker, (char *)r - PAGE);
		/* A dry run: does the kernel's other choice need trimming? */
		arm(NULL, 0);
		o = run_op(fx, &op);
		disarm();
		assert_int_equal(o.hr, S_OK);
		exercised = plan.calls > 1;
		assert_int_equal(IHostMemoryManager_VirtualFree(fx->mm, o.mem, 0, MEM_RELEASE), S_OK);
		if (exercised) {
			/* The dry run moved the hint: put r back on top. */
			assert_int_equal(IHostMemoryManager_VirtualFree(fx->mm, r, 0, MEM_RELEASE), S_OK);
			assert_int_equal(IHostMemoryManager_VirtualAlloc(fx->mm, r, 0x10000, MEM_RESERVE,
									 PAGE_NOACCESS, eTaskCritical,
									 &o.mem),
					 S_OK);
			o = fault_each_call(fx, &op, faults_map, ARRAY_SIZE(faults_map));
			assert_int_equal(IHostMemoryManager_VirtualFree(fx->mm, o.mem, 0, MEM_RELEASE),
					 S_OK);
		}
		assert_int_equal(IHostMemoryManager_VirtualFree(fx->mm, r, 0, MEM_RELEASE), S_OK);
		__real_munmap(blocker, PAGE);
		/* The kernel chose an aligned place by chance: shift its next choice by a page. */
		fillers[nfill++] = __real_mmap64(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
						 -1, 0);
	}
	while (nfill > 0) {
		__real_munmap(fillers[--nfill], PAGE);
	}
	if (!exercised) {
		print_message("the kernel never placed the fallback mapping unaligned\n");
		skip();
	}
}

/* MEM_RESET falls back from MADV_FREE to MADV_DONTNEED when the kernel lacks the former. */
static void test_fault_reset_fallback(void **state)
{
	struct fx *fx = *state;
	struct snapshot before;
	struct outcome o;
	struct op op;
	void *p = NULL;
	const struct fault both[] = { { EINVAL, CLEAN }, { ENOMEM, CLEAN } };

	assert_int_equal(IHostMemoryManager_VirtualAlloc(fx->mm, NULL, 8 * PAGE,
							 MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
							 eTaskCritical, &p),
			 S_OK);
	op = (struct op){ .name = "reset", .kind = OP_ALLOC, .addr = p, .size = 8 * PAGE,
			  .type = MEM_RESET, .protect = PAGE_READWRITE, .watch = (uintptr_t)p,
			  .watch_size = 8 * PAGE };
	take_snapshot(fx, op.watch, op.watch_size, &before);

	/* MADV_FREE unknown (EINVAL): the fallback succeeds. */
	arm_at(0, (struct fault){ EINVAL, CLEAN });
	o = run_op(fx, &op);
	disarm();
	assert_true(plan.fired);
	assert_int_equal(o.hr, S_OK);
	assert_ptr_equal(o.mem, p);
	assert_int_equal(plan.calls, 2);
	assert_string_equal(plan.log[1], "madvise");

	/* Both fail: the second error is reported and nothing changes. */
	arm(both, 2);
	o = run_op(fx, &op);
	disarm();
	check_failed(fx, &op, "reset with both madvise calls failing", &o, E_OUTOFMEMORY, &before);
	assert_int_equal(IHostMemoryManager_VirtualFree(fx->mm, p, 0, MEM_RELEASE), S_OK);
}

/*
 * Decommit maps fresh pages over the range with MAP_FIXED. Kernels before
 * 6.12 may have unmapped the range when such an mmap fails; the library then
 * maps a reservation back, so the pages are decommitted after all.
 */
static void test_fault_decommit_unmapped_by_failed_mmap(void **state)
{
	struct fx *fx = *state;
	struct outcome o;
	struct op op;
	void *p = NULL;
	char why[256];

	assert_int_equal(IHostMemoryManager_VirtualAlloc(fx->mm, NULL, 16 * PAGE,
							 MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
							 eTaskCritical, &p),
			 S_OK);
	write_pattern((uintptr_t)p, 16 * PAGE, 0x70);
	op = (struct op){ .name = "decommit", .kind = OP_FREE, .addr = (char *)p + 4 * PAGE,
			  .size = 4 * PAGE, .type = MEM_DECOMMIT };
	arm_at(0, (struct fault){ ENOMEM, UNMAPPED });
	o = run_op(fx, &op);
	disarm();
	assert_true(plan.fired);
	assert_int_equal(o.hr, S_OK);
	expect_state(fx, (uintptr_t)p, MEM_COMMIT, PAGE_READWRITE, 4 * PAGE);
	expect_state(fx, (uintptr_t)p + 4 * PAGE, MEM_RESERVE, 0, 4 * PAGE);
	expect_state(fx, (uintptr_t)p + 8 * PAGE, MEM_COMMIT, PAGE_READWRITE, 8 * PAGE);
	if (!maps_agree(fx->mm, p, 16 * PAGE, why, sizeof(why))) {
		fail_msg("after the recovered decommit: %s", why);
	}
	/* The neighbours kept their data; recommitted pages read zero. */
	assert_int_equal(*((unsigned char *)p + 3 * PAGE), 0x73);
	assert_int_equal(*((unsigned char *)p + 8 * PAGE), 0x78);
	assert_int_equal(IHostMemoryManager_VirtualAlloc(fx->mm, (char *)p + 4 * PAGE, 4 * PAGE,
							 MEM_COMMIT, PAGE_READWRITE, eTaskCritical,
							 &o.mem),
			 S_OK);
	assert_int_equal(*((unsigned char *)p + 4 * PAGE), 0);

	/* The mmap fails cleanly and the check that follows fails too: still nothing changes. */
	{
		const struct fault both[] = { { ENOMEM, CLEAN }, { ENOMEM, CLEAN } };
		struct snapshot before;

		op.watch = (uintptr_t)p;
		op.watch_size = 16 * PAGE;
		take_snapshot(fx, op.watch, op.watch_size, &before);
		arm(both, 2);
		o = run_op(fx, &op);
		disarm();
		check_failed(fx, &op, "decommit with mmap and msync failing", &o, E_OUTOFMEMORY,
			     &before);
	}
	assert_int_equal(IHostMemoryManager_VirtualFree(fx->mm, p, 0, MEM_RELEASE), S_OK);
}

/* ---------- Heaps ---------- */

/* Runs alloc with each OS call failed in turn; returns the block of the successful run. */
static void *heap_alloc_each_call(struct heap *h, size_t size, const char *name)
{
	struct heap_stats before, after;
	void *p;
	int k, err;

	clrmemtrace__heap_stats(h, &before);
	for (k = 0; k < MAX_CALLS; k++) {
		p = NULL;
		arm_at(k, f_nomem);
		err = clrmemtrace__heap_alloc(h, size, eTaskCritical, &p, NULL, NULL);
		disarm();
		if (!plan.fired) {
			assert_int_equal(err, 0);
			assert_non_null(p);
			print_message("%-34s %d OS call(s): %s\n", name, k, call_log());
			return p;
		}
		if (err != ERROR_NOT_ENOUGH_MEMORY) {
			fail_msg("%s, call %d (%s) failing: error %d", name, k, plan.log[k], err);
		}
		assert_int_equal(clrmemtrace__hresult(err), E_OUTOFMEMORY);
		if (plan.nfresh) {
			fail_msg("%s, call %d (%s) failing: a mapping survives at %#" PRIxPTR, name, k,
				 plan.log[k], plan.fresh[0].start);
		}
		clrmemtrace__heap_stats(h, &after);
		assert_memory_equal(&before, &after, sizeof(before));
	}
	fail_msg("%s: more than %d OS calls", name, MAX_CALLS);
	return NULL;
}

static void test_fault_heap(void **state)
{
	struct fx *fx = *state;
	struct heap_stats st;
	struct heap *h = NULL;
	void *small, *large;
	IHostMalloc *malloc_iface = NULL;
	void *mem = (void *)(uintptr_t)0xdeadbeef;

	arm(NULL, 0);
	assert_int_equal(clrmemtrace__heap_create(MALLOC_THREADSAFE, NULL, &h), 0);
	disarm();
	assert_int_equal(plan.calls, 0);

	small = heap_alloc_each_call(h, 40, "heap alloc small");
	memset(small, 0xa5, 40);
	large = heap_alloc_each_call(h, 200000, "heap alloc large");
	memset(large, 0x5a, 200000);
	clrmemtrace__heap_stats(h, &st);
	assert_int_equal(st.live_blocks, 2);

	/* Frees make no OS call in the caller: unmapping is deferred to liburcu's thread. */
	arm(NULL, 0);
	assert_int_equal(clrmemtrace__heap_free(h, small, NULL, NULL), 0);
	assert_int_equal(clrmemtrace__heap_free(h, large, NULL, NULL), 0);
	disarm();
	assert_int_equal(plan.calls, 0);
	clrmemtrace__heap_stats(h, &st);
	assert_int_equal(st.live_blocks, 0);
	clrmemtrace__heap_destroy(h);

	/* Through IHostMalloc: the HRESULT and the out-parameter. */
	assert_int_equal(IHostMemoryManager_CreateMalloc(fx->mm, MALLOC_THREADSAFE, &malloc_iface),
			 S_OK);
	arm_at(0, f_nomem);
	assert_int_equal(IHostMalloc_Alloc(malloc_iface, 64, eTaskCritical, &mem), E_OUTOFMEMORY);
	disarm();
	assert_true(plan.fired);
	assert_null(mem);
	assert_int_equal(plan.nfresh, 0);
	assert_int_equal(IHostMalloc_Alloc(malloc_iface, 64, eTaskCritical, &mem), S_OK);
	assert_non_null(mem);
	assert_int_equal(IHostMalloc_Free(malloc_iface, mem), S_OK);
	IHostMalloc_Release(malloc_iface);
	urcu_bp_barrier();
}

static void rcu_noop(struct rcu_head *head)
{
	(void)head;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fault_reserve_commit_protect_decommit_release),
		cmocka_unit_test(test_fault_reserve_at_address),
		cmocka_unit_test(test_fault_reserve_hint_taken),
		cmocka_unit_test(test_fault_reset_fallback),
		cmocka_unit_test(test_fault_decommit_unmapped_by_failed_mmap),
		cmocka_unit_test(test_fault_heap),
	};

	if (clrmemtrace__init() != 0) {
		return 1;
	}
	/*
	 * liburcu starts its call_rcu thread at the first deferred free; its
	 * stack would land in whatever hole a test just made. Start it now.
	 */
	{
		struct rcu_head head;

		urcu_bp_call_rcu(&head, rcu_noop);
		urcu_bp_barrier();
	}
	return cmocka_run_group_tests_name("fault", tests, setup, teardown);
}
