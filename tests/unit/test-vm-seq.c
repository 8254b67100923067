/* SPDX-License-Identifier: MIT */
/*
 * The POSIX backend's sequence numbers (src/vm.h, tracepoints/EVENTS.md):
 * every successful reserve, commit, decommit, protect and release takes the
 * next number, also one that finds nothing to change (a decommit of pages
 * none of which is committed, a protect of an empty range), as under the
 * Windows backend and a wrapping manager; MEM_RESET and failed calls take
 * none. Otherwise the event of a call that changed nothing carries the
 * number of the change before it, and a trace that lost that change's
 * event takes the no-op for it.
 */
#include "policy.h"
#include "vm.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void test_every_successful_change_call_is_numbered(void **state)
{
	clrmemtrace_options opts = { .size = sizeof(opts) };
	MEMORY_BASIC_INFORMATION mbi;
	uint64_t seq, before, after;
	struct policy policy;
	const char *what;
	struct vm *vm;
	uint32_t old;
	uintptr_t b;
	size_t page;
	void *p;

	(void)state;
	assert_int_equal(clrmemtrace__init(), 0);
	page = clrmemtrace__sys.page_size;
	assert_int_equal(clrmemtrace__policy_init(&policy, &opts, &what), 0);
	assert_int_equal(clrmemtrace__vm_create(&policy, &vm), 0);
	clrmemtrace__vm_lock(vm);
	seq = clrmemtrace__vm_seq(vm);

	/* A reservation committed, a protect of its end, a decommit that changes nothing. */
	assert_int_equal(clrmemtrace__vm_alloc(vm, NULL, 16 * page, MEM_RESERVE | MEM_COMMIT,
					       PAGE_READONLY, eTaskCritical, &p),
			 0);
	b = (uintptr_t)p;
	assert_int_equal(clrmemtrace__vm_seq(vm), ++seq);
	assert_int_equal(clrmemtrace__vm_protect(vm, (void *)(b + 14 * page), 2 * page,
						 PAGE_READWRITE, &old),
			 0);
	assert_int_equal(clrmemtrace__vm_seq(vm), ++seq);
	assert_int_equal(clrmemtrace__vm_alloc(vm, NULL, 8 * page, MEM_RESERVE, PAGE_NOACCESS,
					       eTaskCritical, &p),
			 0);
	assert_int_equal(clrmemtrace__vm_seq(vm), ++seq);
	/* Nothing committed there: nothing changes, but the call is numbered. */
	assert_int_equal(clrmemtrace__vm_free(vm, (char *)p + 2 * page, 4 * page, MEM_DECOMMIT),
			 0);
	assert_int_equal(clrmemtrace__vm_seq(vm), ++seq);
	assert_int_equal(clrmemtrace__vm_free(vm, p, 0, MEM_DECOMMIT), 0);
	assert_int_equal(clrmemtrace__vm_seq(vm), ++seq);
	assert_int_equal(clrmemtrace__vm_query(vm, (void *)(b + page), &mbi, &before, &after), 0);
	assert_int_equal(before, seq);
	assert_int_equal(after, seq);
	assert_int_equal(mbi.RegionSize, 13 * page);

	/* A protect of an empty range at a page boundary: numbered too. */
	assert_int_equal(clrmemtrace__vm_protect(vm, (void *)b, 0, PAGE_READWRITE, &old), 0);
	assert_int_equal(old, PAGE_READONLY);
	assert_int_equal(clrmemtrace__vm_seq(vm), ++seq);
	/* A commit of committed pages with their protection, a decommit of some. */
	assert_int_equal(clrmemtrace__vm_alloc(vm, (void *)b, page, MEM_COMMIT, PAGE_READONLY,
					       eTaskCritical, &p),
			 0);
	assert_int_equal(clrmemtrace__vm_seq(vm), ++seq);
	assert_int_equal(clrmemtrace__vm_free(vm, (void *)b, page, MEM_DECOMMIT), 0);
	assert_int_equal(clrmemtrace__vm_seq(vm), ++seq);
	assert_int_equal(clrmemtrace__vm_free(vm, (void *)b, page, MEM_DECOMMIT), 0);
	assert_int_equal(clrmemtrace__vm_seq(vm), ++seq);

	/* MEM_RESET keeps every page's state: no number, as in every backend. */
	assert_int_equal(clrmemtrace__vm_alloc(vm, (void *)(b + page), page, MEM_RESET,
					       PAGE_READWRITE, eTaskCritical, &p),
			 0);
	assert_int_equal(clrmemtrace__vm_seq(vm), seq);
	/* Failed calls: none. */
	assert_int_equal(clrmemtrace__vm_free(vm, (void *)(b + page), 0, MEM_RELEASE),
			 ERROR_INVALID_ADDRESS);
	assert_int_equal(clrmemtrace__vm_protect(vm, (void *)b, page, PAGE_READWRITE, &old),
			 ERROR_INVALID_ADDRESS);
	assert_int_equal(clrmemtrace__vm_seq(vm), seq);

	assert_int_equal(clrmemtrace__vm_free(vm, (void *)b, 0, MEM_RELEASE), 0);
	assert_int_equal(clrmemtrace__vm_seq(vm), ++seq);
	clrmemtrace__vm_unlock(vm);
	clrmemtrace__vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_successful_change_call_is_numbered),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
