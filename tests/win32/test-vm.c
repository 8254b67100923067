/* SPDX-License-Identifier: MIT */
/*
 * The vm.h contract of the Windows backend (src/win32/vm_win32.c): the
 * reservations it tracks and reads back for state dumps, its statistics,
 * the policy charges counted with VirtualQuery, sequence numbers, and
 * other owners' memory left alone.
 */
#include "policy.h"
#include "vm.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define PAGE ((size_t)4096)

struct runs {
	size_t n;
	struct vm_run run[16];
};

static int collect(void *ctx, const struct vm_run *run)
{
	struct runs *r = ctx;

	if (r->n < 16) {
		r->run[r->n] = *run;
	}
	r->n++;
	return 0;
}

static void check_run(const struct vm_run *r, uintptr_t base, uintptr_t abase, size_t size,
		      uint32_t state, uint32_t protect)
{
	assert_int_equal(r->base, base);
	assert_int_equal(r->allocation_base, abase);
	assert_int_equal(r->size, size);
	assert_int_equal(r->state, state);
	assert_int_equal(r->protect, protect);
	assert_int_equal(r->allocation_protect, PAGE_NOACCESS);
}

static void test_vm_tracking_stats_and_charges(void **state)
{
	clrmemtrace_options opts = { .size = sizeof(opts), .commit_budget = 16 * PAGE };
	struct policy policy;
	struct vm_stats st;
	struct runs runs = { 0 };
	const char *what;
	struct vm *vm;
	uint64_t seq;
	uint32_t old;
	uintptr_t b;
	void *p;

	(void)state;
	assert_int_equal(clrmemtrace__init(), 0);
	assert_int_equal(clrmemtrace__policy_init(&policy, &opts, &what), 0);
	assert_int_equal(clrmemtrace__vm_create(&policy, &vm), 0);
	clrmemtrace__vm_lock(vm);
	assert_int_equal(clrmemtrace__vm_alloc(vm, NULL, 8 * PAGE, MEM_RESERVE, PAGE_NOACCESS,
					       eTaskCritical, &p),
			 0);
	b = (uintptr_t)p;
	clrmemtrace__vm_stats(vm, &st);
	assert_int_equal(st.regions, 1);
	assert_int_equal(st.reserved_bytes, 8 * PAGE);
	assert_int_equal(st.committed_bytes, 0);
	assert_int_equal(policy.reserved, 8 * PAGE);
	seq = clrmemtrace__vm_seq(vm);

	/* Commits count only the pages they add. */
	assert_int_equal(clrmemtrace__vm_alloc(vm, (void *)(b + PAGE), 3 * PAGE, MEM_COMMIT,
					       PAGE_READWRITE, eTaskCritical, &p),
			 0);
	assert_int_equal(clrmemtrace__vm_alloc(vm, (void *)(b + 3 * PAGE), 2 * PAGE, MEM_COMMIT,
					       PAGE_READWRITE, eTaskCritical, &p),
			 0);
	clrmemtrace__vm_stats(vm, &st);
	assert_int_equal(st.committed_bytes, 4 * PAGE);
	assert_int_equal(policy.committed, 4 * PAGE);
	assert_int_equal(clrmemtrace__vm_seq(vm), seq + 2);

	/* Committing all of it adds four pages; decommitting gives all eight back. */
	assert_int_equal(clrmemtrace__vm_alloc(vm, (void *)b, 8 * PAGE, MEM_COMMIT, PAGE_READWRITE,
					       eTaskCritical, &p),
			 0);
	assert_int_equal(policy.committed, 8 * PAGE);
	clrmemtrace__vm_stats(vm, &st);
	assert_int_equal(st.committed_bytes, 8 * PAGE);
	assert_int_equal(clrmemtrace__vm_free(vm, (void *)b, 8 * PAGE, MEM_DECOMMIT), 0);
	assert_int_equal(policy.committed, 0);
	assert_int_equal(clrmemtrace__vm_alloc(vm, (void *)(b + PAGE), 4 * PAGE, MEM_COMMIT,
					       PAGE_READWRITE, eTaskCritical, &p),
			 0);
	/* Over the budget: refused before the OS is asked, nothing committed. */
	assert_int_equal(clrmemtrace__vm_alloc(vm, NULL, 13 * PAGE, MEM_COMMIT, PAGE_READWRITE,
					       eTaskCritical, &p),
			 ERROR_COMMITMENT_LIMIT);
	assert_null(p);
	assert_int_equal(policy.committed, 4 * PAGE);

	/* The runs a state dump reports, read back with VirtualQuery. */
	assert_int_equal(clrmemtrace__vm_protect(vm, (void *)(b + 4 * PAGE), PAGE, PAGE_READONLY,
						 &old),
			 0);
	assert_int_equal(old, PAGE_READWRITE);
	assert_int_equal(clrmemtrace__vm_foreach_run(vm, collect, &runs), 0);
	assert_int_equal(runs.n, 4);
	check_run(&runs.run[0], b, b, PAGE, MEM_RESERVE, 0);
	check_run(&runs.run[1], b + PAGE, b, 3 * PAGE, MEM_COMMIT, PAGE_READWRITE);
	check_run(&runs.run[2], b + 4 * PAGE, b, PAGE, MEM_COMMIT, PAGE_READONLY);
	check_run(&runs.run[3], b + 5 * PAGE, b, 3 * PAGE, MEM_RESERVE, 0);

	/* Releasing gives everything back. */
	assert_int_equal(clrmemtrace__vm_free(vm, (void *)b, 0, MEM_RELEASE), 0);
	clrmemtrace__vm_stats(vm, &st);
	assert_int_equal(st.regions, 0);
	assert_int_equal(st.reserved_bytes, 0);
	assert_int_equal(st.committed_bytes, 0);
	assert_int_equal(policy.committed, 0);
	assert_int_equal(policy.reserved, 0);
	runs.n = 0;
	assert_int_equal(clrmemtrace__vm_foreach_run(vm, collect, &runs), 0);
	assert_int_equal(runs.n, 0);
	clrmemtrace__vm_unlock(vm);
	clrmemtrace__vm_destroy(vm);
}

/* Memory the manager did not reserve is refused, after the checks Windows makes first. */
static void test_vm_other_owners(void **state)
{
	char *foreign = VirtualAlloc(NULL, 2 * PAGE, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
	struct vm *vm;
	uint32_t old;
	void *p;

	(void)state;
	assert_non_null(foreign);
	foreign[0] = 0x42;
	assert_int_equal(clrmemtrace__vm_create(NULL, &vm), 0);
	clrmemtrace__vm_lock(vm);
	assert_int_equal(clrmemtrace__vm_free(vm, foreign, 0, MEM_RELEASE), ERROR_INVALID_ADDRESS);
	assert_int_equal(clrmemtrace__vm_free(vm, foreign, PAGE, MEM_DECOMMIT),
			 ERROR_INVALID_ADDRESS);
	assert_int_equal(clrmemtrace__vm_free(vm, foreign, 0, 0), ERROR_INVALID_PARAMETER);
	assert_int_equal(clrmemtrace__vm_free(vm, foreign, PAGE, MEM_RELEASE),
			 ERROR_INVALID_PARAMETER);
	assert_int_equal(clrmemtrace__vm_protect(vm, foreign, PAGE, PAGE_NOACCESS, &old),
			 ERROR_INVALID_ADDRESS);
	assert_int_equal(clrmemtrace__vm_alloc(vm, foreign, PAGE, MEM_COMMIT, PAGE_NOACCESS,
					       eTaskCritical, &p),
			 ERROR_INVALID_ADDRESS);
	assert_int_equal(clrmemtrace__vm_alloc(vm, foreign, PAGE, MEM_RESET, PAGE_NOACCESS,
					       eTaskCritical, &p),
			 ERROR_INVALID_ADDRESS);
	clrmemtrace__vm_unlock(vm);
	clrmemtrace__vm_destroy(vm);
	assert_int_equal(foreign[0], 0x42);
	assert_true(VirtualFree(foreign, 0, MEM_RELEASE));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_tracking_stats_and_charges),
		cmocka_unit_test(test_vm_other_owners),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
