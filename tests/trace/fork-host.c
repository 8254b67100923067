/* SPDX-License-Identifier: MIT */
/*
 * A host that forks, for the tests of `clrmemtrace record` following a
 * program's descendants (tests/python/test_record_scope.py). Public API only.
 *
 * Usage: fork-host fork READY GO
 *        fork-host exec PROGRAM [ARGS...]
 *
 * Both modes first make a manager named "fork-host" hold state (a
 * reservation with committed and read-only pages, a heap with live blocks),
 * then fork.
 *
 *   fork  The child, without exec, writes its pid to READY (the whole file
 *         appears at once), waits for GO to exist, then works on what it
 *         inherited: commits, queries, protects and frees pages of the
 *         reservation, allocates and frees heap blocks, releases the heap
 *         and the manager.
 *   exec  The child execs PROGRAM.
 *
 * The parent waits for the child, queries and releases what it holds, and
 * exits with the child's status (128 + N when signal N killed it). A call
 * that fails ends the process with status 10 or more; a bad command line
 * with 2.
 */
#include <clrmemtrace.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KiB ((SIZE_T)1 << 10)
#define BLOCKS 8

static IHostMemoryManager *mm;
static IHostMalloc *heap;
static char *region;
static void *blocks[BLOCKS];

static void must(HRESULT hr, int status)
{
	if (hr != S_OK) {
		fprintf(stderr, "fork-host: call %d failed: 0x%08x\n", status, (unsigned)hr);
		exit(status);
	}
}

static void query(const void *addr, int status)
{
	MEMORY_BASIC_INFORMATION mbi;
	SIZE_T written = 0;

	must(IHostMemoryManager_VirtualQuery(mm, (void *)addr, &mbi, sizeof(mbi), &written), status);
	if (written != sizeof(mbi)) {
		exit(status);
	}
}

static void setup(void)
{
	clrmemtrace_options o = { sizeof(o), 0, "fork-host" };
	void *p;
	DWORD old;
	int i;

	must(clrmemtrace_create(&o, &mm), 10);
	must(IHostMemoryManager_VirtualAlloc(mm, NULL, 1024 * KiB, MEM_RESERVE, PAGE_NOACCESS,
					     eTaskCritical, &p),
	     11);
	region = p;
	must(IHostMemoryManager_VirtualAlloc(mm, region, 128 * KiB, MEM_COMMIT, PAGE_READWRITE,
					     eTaskCritical, &p),
	     12);
	must(IHostMemoryManager_VirtualProtect(mm, region + 64 * KiB, 64 * KiB, PAGE_READONLY,
					       &old),
	     13);
	must(IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap), 14);
	for (i = 0; i < BLOCKS; i++) {
		must(IHostMalloc_Alloc(heap, 48 + (SIZE_T)i, eTaskCritical, &blocks[i]), 15);
	}
	query(region, 16);
}

/* Writes the pid to `path` through a temporary name, so a reader never sees a part. */
static void write_pid(const char *path)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0 ||
	    rename(tmp, path) != 0) {
		exit(20);
	}
}

static void wait_for(const char *path)
{
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	int i;

	for (i = 0; access(path, F_OK) != 0; i++) {
		if (i == 6000) {
			exit(21);
		}
		nanosleep(&tick, NULL);
	}
}

static void child_work(void)
{
	DWORD old;
	void *p;
	int i;

	must(IHostMemoryManager_VirtualAlloc(mm, region + 256 * KiB, 64 * KiB, MEM_COMMIT,
					     PAGE_READWRITE, eTaskCritical, &p),
	     30);
	query(region, 31);
	query(region + 64 * KiB, 32);
	query(region + 256 * KiB, 33);
	must(IHostMemoryManager_VirtualProtect(mm, region, 64 * KiB, PAGE_READONLY, &old), 34);
	query(region, 35);
	must(IHostMemoryManager_VirtualFree(mm, region + 256 * KiB, 64 * KiB, MEM_DECOMMIT), 36);
	query(region + 256 * KiB, 37);
	for (i = 0; i < BLOCKS; i += 2) {
		must(IHostMalloc_Free(heap, blocks[i]), 38);
	}
	must(IHostMalloc_Alloc(heap, 100, eTaskCritical, &p), 39);
	must(IHostMalloc_Free(heap, p), 40);
	IHostMalloc_Release(heap);
	must(IHostMemoryManager_VirtualFree(mm, region, 0, MEM_RELEASE), 41);
	IHostMemoryManager_Release(mm);
}

int main(int argc, char **argv)
{
	int status, i;
	pid_t child;
	bool exec_mode;

	if (argc == 4 && strcmp(argv[1], "fork") == 0) {
		exec_mode = false;
	} else if (argc >= 3 && strcmp(argv[1], "exec") == 0) {
		exec_mode = true;
	} else {
		fprintf(stderr, "usage: fork-host fork READY GO\n"
				"       fork-host exec PROGRAM [ARGS...]\n");
		return 2;
	}
	setup();
	fflush(NULL);
	child = fork();
	if (child < 0) {
		perror("fork-host: fork");
		return 22;
	}
	if (child == 0) {
		if (exec_mode) {
			execvp(argv[2], argv + 2);
			fprintf(stderr, "fork-host: %s: %s\n", argv[2], strerror(errno));
			_exit(127);
		}
		write_pid(argv[2]);
		wait_for(argv[3]);
		child_work();
		return 0;
	}
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("fork-host: waitpid");
			return 23;
		}
	}
	query(region, 24);
	query(region + 64 * KiB, 25);
	for (i = 0; i < BLOCKS; i++) {
		must(IHostMalloc_Free(heap, blocks[i]), 26);
	}
	IHostMalloc_Release(heap);
	must(IHostMemoryManager_VirtualFree(mm, region, 0, MEM_RELEASE), 27);
	IHostMemoryManager_Release(mm);
	if (WIFSIGNALED(status)) {
		return 128 + WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}
