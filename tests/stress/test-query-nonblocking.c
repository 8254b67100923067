/* SPDX-License-Identifier: MIT */
/*
 * VirtualQuery must not wait for a writer, even one stopped inside an OS
 * call while it holds the manager's lock (the CLR suspends threads anywhere,
 * vm.h). The executable wraps mmap, munmap and mprotect; when armed, the
 * wrapper parks the writer thread on a semaphore inside the call. Another
 * thread must then finish its queries, on the very pages being changed, on
 * another reservation and on foreign memory, within a bounded time, and see
 * the state from before the change. Then the writer is let go and its call
 * must complete normally.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <time.h>

#include "internal.h"
#include "maps.h"

#define PAGE ((uintptr_t)4096)
#define WAIT_SECONDS 5

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__real_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_munmap(void *addr, size_t len);
int __real_mprotect(void *addr, size_t len, int prot);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_munmap(void *addr, size_t len);
int __wrap_mprotect(void *addr, size_t len, int prot);

/* Which call parks the writer: "mmap", "munmap" or "mprotect"; NULL for none. */
static const char *park_in;
static pthread_t park_thread;
static sem_t parked, release_writer, queries_done;

static void maybe_park(const char *call)
{
	const char *want = __atomic_load_n(&park_in, __ATOMIC_ACQUIRE);

	if (want && strcmp(want, call) == 0 &&
	    pthread_equal(pthread_self(), __atomic_load_n(&park_thread, __ATOMIC_ACQUIRE))) {
		__atomic_store_n(&park_in, NULL, __ATOMIC_RELEASE);
		sem_post(&parked);
		while (sem_wait(&release_writer) != 0 && errno == EINTR) {
		}
	}
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	maybe_park("mmap");
	return __real_mmap(addr, len, prot, flags, fd, off);
}

void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	maybe_park("mmap");
	return __real_mmap64(addr, len, prot, flags, fd, off);
}

int __wrap_munmap(void *addr, size_t len)
{
	maybe_park("munmap");
	return __real_munmap(addr, len);
}

int __wrap_mprotect(void *addr, size_t len, int prot)
{
	maybe_park("mprotect");
	return __real_mprotect(addr, len, prot);
}

/* sem_timedwait with a relative timeout; false when it expired. */
static bool wait_for(sem_t *s, int seconds)
{
	struct timespec ts;
	int ret;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += seconds;
	do {
		ret = sem_timedwait(s, &ts);
	} while (ret != 0 && errno == EINTR);
	return ret == 0;
}

/* ---------- The scenario ---------- */

enum writer_op { W_PROTECT, W_COMMIT, W_DECOMMIT, W_RESERVE, W_RELEASE };

struct scenario {
	IHostMemoryManager *mm;
	enum writer_op op;
	char *busy;  /* the reservation the writer changes */
	char *other; /* another reservation of the same manager */
	HRESULT writer_hr;
	void *writer_out;
	/* What the query thread saw while the writer was parked. */
	HRESULT hr[5];
	MEMORY_BASIC_INFORMATION mbi[5];
};

static int a_global;

static void *writer_main(void *arg)
{
	struct scenario *sc = arg;
	DWORD old = 0;

	/* Only this thread parks, in the first call of the armed kind. */
	__atomic_store_n(&park_thread, pthread_self(), __ATOMIC_RELEASE);
	switch (sc->op) {
	case W_PROTECT:
		sc->writer_hr = IHostMemoryManager_VirtualProtect(sc->mm, sc->busy, 4 * PAGE,
								  PAGE_READONLY, &old);
		break;
	case W_COMMIT:
		sc->writer_hr = IHostMemoryManager_VirtualAlloc(sc->mm, sc->busy + 8 * PAGE, 4 * PAGE,
								MEM_COMMIT, PAGE_READWRITE,
								eTaskCritical, &sc->writer_out);
		break;
	case W_DECOMMIT:
		sc->writer_hr = IHostMemoryManager_VirtualFree(sc->mm, sc->busy, 4 * PAGE,
							       MEM_DECOMMIT);
		break;
	case W_RESERVE:
		sc->writer_hr = IHostMemoryManager_VirtualAlloc(sc->mm, NULL, 16 * PAGE, MEM_RESERVE,
								PAGE_NOACCESS, eTaskCritical,
								&sc->writer_out);
		break;
	case W_RELEASE:
		sc->writer_hr = IHostMemoryManager_VirtualFree(sc->mm, sc->busy, 0, MEM_RELEASE);
		break;
	}
	return NULL;
}

static void *query_main(void *arg)
{
	struct scenario *sc = arg;
	int local;
	const void *where[5] = {
		sc->busy,             /* the pages being changed */
		sc->busy + 8 * PAGE,  /* reserved pages of the same reservation */
		sc->other,            /* another reservation */
		&local,               /* this thread's stack: foreign */
		&a_global,            /* the executable's data: foreign */
	};
	unsigned i, round;

	/* Many rounds, so a query that spins on the writer cannot get lucky. */
	for (round = 0; round < 200; round++) {
		for (i = 0; i < 5; i++) {
			SIZE_T len = 0;

			sc->hr[i] = IHostMemoryManager_VirtualQuery(sc->mm, (void *)where[i], &sc->mbi[i],
								    sizeof(sc->mbi[i]), &len);
		}
	}
	sem_post(&queries_done);
	return NULL;
}

static void run_scenario(enum writer_op op, const char *park)
{
	struct scenario sc;
	pthread_t writer, querier;
	bool was_parked, answered;
	void *p = NULL;
	char why[256];

	memset(&sc, 0, sizeof(sc));
	assert_int_equal(clrmemtrace_create(NULL, &sc.mm), S_OK);
	/* busy: pages 0..3 committed read-write, the rest reserved. */
	assert_int_equal(IHostMemoryManager_VirtualAlloc(sc.mm, NULL, 16 * PAGE, MEM_RESERVE,
							 PAGE_NOACCESS, eTaskCritical, &p),
			 S_OK);
	sc.busy = p;
	assert_int_equal(IHostMemoryManager_VirtualAlloc(sc.mm, sc.busy, 4 * PAGE, MEM_COMMIT,
							 PAGE_READWRITE, eTaskCritical, &p),
			 S_OK);
	sc.busy[0] = 42;
	assert_int_equal(IHostMemoryManager_VirtualAlloc(sc.mm, NULL, 4 * PAGE,
							 MEM_RESERVE | MEM_COMMIT, PAGE_EXECUTE_READ,
							 eTaskCritical, &p),
			 S_OK);
	sc.other = p;
	sc.op = op;

	assert_int_equal(sem_init(&parked, 0, 0), 0);
	assert_int_equal(sem_init(&release_writer, 0, 0), 0);
	assert_int_equal(sem_init(&queries_done, 0, 0), 0);
	__atomic_store_n(&park_in, park, __ATOMIC_RELEASE);
	assert_int_equal(pthread_create(&writer, NULL, writer_main, &sc), 0);
	was_parked = wait_for(&parked, WAIT_SECONDS);
	answered = false;
	if (was_parked) {
		assert_int_equal(pthread_create(&querier, NULL, query_main, &sc), 0);
		answered = wait_for(&queries_done, WAIT_SECONDS);
	}
	/* Let the writer go whatever happened, so every thread can be joined. */
	__atomic_store_n(&park_in, NULL, __ATOMIC_RELEASE);
	sem_post(&release_writer);
	pthread_join(writer, NULL);
	if (was_parked) {
		pthread_join(querier, NULL);
	}
	if (!was_parked) {
		fail_msg("the writer never reached %s", park);
	}
	if (!answered) {
		fail_msg("VirtualQuery did not return within %d s while a writer was parked in %s",
			 WAIT_SECONDS, park);
	}
	assert_int_equal(sc.writer_hr, S_OK);

	/* While the writer was parked, the queries saw the state from before its change. */
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(sc.hr[i], S_OK);
	}
	assert_int_equal(sc.mbi[0].State, MEM_COMMIT);
	assert_int_equal(sc.mbi[0].Protect, PAGE_READWRITE);
	assert_int_equal(sc.mbi[0].RegionSize, 4 * PAGE);
	assert_ptr_equal(sc.mbi[0].AllocationBase, sc.busy);
	assert_int_equal(sc.mbi[1].State, MEM_RESERVE);
	assert_int_equal(sc.mbi[1].RegionSize, 8 * PAGE);
	assert_int_equal(sc.mbi[2].State, MEM_COMMIT);
	assert_int_equal(sc.mbi[2].Protect, PAGE_EXECUTE_READ);
	assert_int_equal(sc.mbi[3].State, MEM_COMMIT);
	assert_int_equal(sc.mbi[3].Protect, PAGE_READWRITE);
	assert_int_equal(sc.mbi[4].State, MEM_COMMIT);

	/* Afterwards the change is there, and the kernel agrees. */
	{
		MEMORY_BASIC_INFORMATION m;
		SIZE_T len;

		assert_int_equal(IHostMemoryManager_VirtualQuery(sc.mm, sc.busy, &m, sizeof(m), &len),
				 S_OK);
		switch (op) {
		case W_PROTECT:
			assert_int_equal(m.Protect, PAGE_READONLY);
			assert_int_equal(sc.busy[0], 42);
			break;
		case W_DECOMMIT:
		case W_COMMIT:
			assert_int_equal(m.State, op == W_DECOMMIT ? MEM_RESERVE : MEM_COMMIT);
			break;
		case W_RESERVE:
			assert_non_null(sc.writer_out);
			assert_int_equal(IHostMemoryManager_VirtualFree(sc.mm, sc.writer_out, 0,
									MEM_RELEASE),
					 S_OK);
			break;
		case W_RELEASE:
			assert_int_equal(m.State, MEM_FREE);
			sc.busy = NULL;
			break;
		}
	}
	if (sc.busy) {
		if (!maps_agree(sc.mm, sc.busy, 16 * PAGE, why, sizeof(why))) {
			fail_msg("%s", why);
		}
		assert_int_equal(IHostMemoryManager_VirtualFree(sc.mm, sc.busy, 0, MEM_RELEASE), S_OK);
	}
	assert_int_equal(IHostMemoryManager_VirtualFree(sc.mm, sc.other, 0, MEM_RELEASE), S_OK);
	IHostMemoryManager_Release(sc.mm);
	sem_destroy(&parked);
	sem_destroy(&release_writer);
	sem_destroy(&queries_done);
}

static void test_query_while_writer_parked_in_protect(void **state)
{
	(void)state;
	run_scenario(W_PROTECT, "mprotect");
}

static void test_query_while_writer_parked_in_commit(void **state)
{
	(void)state;
	run_scenario(W_COMMIT, "mprotect");
}

static void test_query_while_writer_parked_in_decommit(void **state)
{
	(void)state;
	run_scenario(W_DECOMMIT, "mmap");
}

static void test_query_while_writer_parked_in_reserve(void **state)
{
	(void)state;
	run_scenario(W_RESERVE, "mmap");
}

static void test_query_while_writer_parked_in_release(void **state)
{
	(void)state;
	run_scenario(W_RELEASE, "munmap");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_while_writer_parked_in_protect),
		cmocka_unit_test(test_query_while_writer_parked_in_commit),
		cmocka_unit_test(test_query_while_writer_parked_in_decommit),
		cmocka_unit_test(test_query_while_writer_parked_in_reserve),
		cmocka_unit_test(test_query_while_writer_parked_in_release),
	};

	return cmocka_run_group_tests_name("query-nonblocking", tests, NULL, NULL);
}
