/* SPDX-License-Identifier: MIT */
/*
 * POSIX primitives, start-up and system facts.
 */
#include "os_posix.h"

#include "rcu.h"
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

struct clrmemtrace_sysinfo clrmemtrace__sys;

/* ---------- Errors ---------- */

int clrmemtrace__win32_from_errno(int err)
{
	switch (err) {
	case 0:
		return 0;
	case ENOMEM:
	case EAGAIN:
		return ERROR_NOT_ENOUGH_MEMORY;
	case EEXIST:
		return ERROR_INVALID_ADDRESS;
	case EINVAL:
		return ERROR_INVALID_PARAMETER;
	case EACCES:
	case EPERM:
		return ERROR_ACCESS_DENIED;
	case EFAULT:
		return ERROR_NOACCESS;
	case ENOSYS:
	case EOPNOTSUPP:
		return ERROR_NOT_SUPPORTED;
	default:
		return ERROR_INTERNAL_ERROR;
	}
}

static int last_error(void)
{
	return clrmemtrace__win32_from_errno(errno);
}

/* ---------- Mappings ---------- */

#define ANON_FLAGS (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)

static bool aligned(uintptr_t v, size_t align)
{
	return (v & (align - 1)) == 0;
}

int clrmemtrace__os_map_aligned(size_t len, size_t align, int prot, uintptr_t hint, void **out)
{
	size_t page = clrmemtrace__sys.page_size, total, head, tail;
	uintptr_t base;
	void *p;

	if (hint) {
		/*
		 * The hinted place or nothing: a mapping the kernel put elsewhere
		 * would have to be unmapped again, and a failing munmap would leak it.
		 */
		p = mmap((void *)hint, len, prot, ANON_FLAGS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED && errno != EEXIST) {
			return last_error();
		}
		if (p != MAP_FAILED && aligned((uintptr_t)p, align)) {
			*out = p;
			return 0;
		}
		/* A kernel older than 4.17 took the address as a hint only. */
		if (p != MAP_FAILED && munmap(p, len) != 0) {
			return last_error();
		}
	}
	/* Over-map by align - page and trim both ends, as Wine does. */
	if (len > SIZE_MAX - align) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	total = len + align - page;
	p = mmap(NULL, total, prot, ANON_FLAGS, -1, 0);
	if (p == MAP_FAILED) {
		return last_error();
	}
	base = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	head = base - (uintptr_t)p;
	tail = total - head - len;
	if ((head && munmap(p, head) != 0) || (tail && munmap((void *)(base + len), tail) != 0)) {
		int err = last_error();

		munmap(p, total);
		return err;
	}
	*out = (void *)base;
	return 0;
}

int clrmemtrace__os_map_fixed_noreplace(uintptr_t addr, size_t len, int prot)
{
	void *p = mmap((void *)addr, len, prot, ANON_FLAGS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED) {
		return errno == EEXIST ? ERROR_INVALID_ADDRESS : last_error();
	}
	if ((uintptr_t)p != addr) {
		/* A kernel older than 4.17 took the address as a hint. */
		munmap(p, len);
		return ERROR_INVALID_ADDRESS;
	}
	return 0;
}

int clrmemtrace__os_map_fresh(uintptr_t addr, size_t len)
{
	void *p = mmap((void *)addr, len, PROT_NONE, ANON_FLAGS | MAP_FIXED, -1, 0);

	return p == MAP_FAILED ? last_error() : 0;
}

int clrmemtrace__os_unmap(uintptr_t addr, size_t len)
{
	return munmap((void *)addr, len) == 0 ? 0 : last_error();
}

int clrmemtrace__os_protect(uintptr_t addr, size_t len, int prot)
{
	return mprotect((void *)addr, len, prot) == 0 ? 0 : last_error();
}

int clrmemtrace__os_reset(uintptr_t addr, size_t len)
{
	if (madvise((void *)addr, len, MADV_FREE) == 0) {
		return 0;
	}
	if (errno == EINVAL && madvise((void *)addr, len, MADV_DONTNEED) == 0) {
		return 0;
	}
	return last_error();
}

bool clrmemtrace__os_is_mapped(uintptr_t addr, size_t len)
{
	return msync((void *)addr, len, MS_ASYNC) == 0 || errno != ENOMEM;
}

/* ---------- Start-up ---------- */

static void fork_prepare(void)
{
	urcu_bp_call_rcu_before_fork();
	urcu_bp_before_fork();
}

static void fork_parent(void)
{
	urcu_bp_after_fork_parent();
	urcu_bp_call_rcu_after_fork_parent();
}

/*
 * The child starts with no session of its own: LTTng-UST registers it anew
 * (liblttng-ust-fork.so), and its events stay off until a session that
 * tracks it enables them. Forgetting what the parent saw makes that
 * enabling a 0 -> 1 transition, so the child's first traced call dumps the
 * state it inherited. Plain stores only: this runs in the child of fork.
 */
static void fork_child(void)
{
	urcu_bp_after_fork_child();
	urcu_bp_call_rcu_after_fork_child();
	__atomic_store_n(&clrmemtrace__dump_seen, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&clrmemtrace__request_seen, 0, __ATOMIC_RELAXED);
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_error;

static void do_init(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	struct clrmemtrace_sysinfo *s = &clrmemtrace__sys;

	if (ps <= 0 || (ps & (ps - 1)) != 0) {
		init_error = ERROR_NOT_SUPPORTED;
		return;
	}
	s->page_size = (size_t)ps;
	s->page_shift = (unsigned)__builtin_ctzl((unsigned long)ps);
#if UINTPTR_MAX > 0xffffffffu
#if defined(__aarch64__)
	s->user_limit = (uintptr_t)1 << 48;
#else
	/* x86-64 with 4-level paging: TASK_SIZE_MAX; mmap stays below it without a hint. */
	s->user_limit = ((uintptr_t)1 << 47) - s->page_size;
#endif
#else
	s->user_limit = (uintptr_t)0xffff0000u;
#endif
	s->user_min = CLRMEMTRACE_GRANULARITY > s->page_size ? CLRMEMTRACE_GRANULARITY : s->page_size;
	if (pthread_atfork(fork_prepare, fork_parent, fork_child) != 0) {
		init_error = ERROR_NOT_ENOUGH_MEMORY;
	}
}

int clrmemtrace__init(void)
{
	if (pthread_once(&init_once, do_init) != 0) {
		return ERROR_INTERNAL_ERROR;
	}
	return init_error;
}

uint64_t clrmemtrace__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------- Memory status ---------- */

/* Reads a small file into buf (NUL-terminated); false if it cannot. */
static bool read_small_file(const char *path, char *buf, size_t size)
{
	ssize_t n;
	size_t len = 0;
	int fd;

	do {
		fd = open(path, O_RDONLY | O_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		return false;
	}
	while (len + 1 < size) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return len > 0;
}

/* The number after "key" in a "key value" file; false if absent. */
static bool find_value(const char *text, const char *key, uint64_t *value)
{
	size_t klen = strlen(key);
	const char *p = text;

	while ((p = strstr(p, key)) != NULL) {
		if ((p == text || p[-1] == '\n') && (p[klen] == ' ' || p[klen] == ':')) {
			p += klen + 1;
			while (*p == ' ' || *p == '\t') {
				p++;
			}
			*value = strtoull(p, NULL, 10);
			return true;
		}
		p += klen;
	}
	return false;
}

static bool read_u64(const char *path, uint64_t *value, bool *unlimited)
{
	char buf[64];

	if (!read_small_file(path, buf, sizeof(buf))) {
		return false;
	}
	*unlimited = strncmp(buf, "max", 3) == 0;
	*value = *unlimited ? UINT64_MAX : strtoull(buf, NULL, 10);
	return true;
}

/*
 * The tightest memory limit on the cgroup path of this process and the usage
 * to set against it (anonymous and active memory: inactive file pages can be
 * dropped). cgroup v2 limits nest, so every ancestor is checked.
 */
static bool cgroup_limit(uint64_t *limit, uint64_t *used)
{
	char cg[4096], path[4200], stat[8192], *line, *save = NULL;
	bool found = false;

	if (!read_small_file("/proc/self/cgroup", cg, sizeof(cg))) {
		return false;
	}
	*limit = UINT64_MAX;
	for (line = strtok_r(cg, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		bool v2, v1;
		char dir[4096];

		if (!c2) {
			continue;
		}
		*c2 = '\0';
		v2 = c1[1] == '\0' && strncmp(line, "0:", 2) == 0;
		v1 = strstr(c1 + 1, "memory") != NULL;
		if (!v1 && !v2) {
			continue;
		}
		snprintf(dir, sizeof(dir), "%s", c2 + 1);
		for (;;) {
			uint64_t lim, use, inactive = 0;
			bool unlimited;
			char *slash;

			snprintf(path, sizeof(path), v2 ? "/sys/fs/cgroup%s/memory.max"
							: "/sys/fs/cgroup/memory%s/memory.limit_in_bytes",
				 strcmp(dir, "/") == 0 ? "" : dir);
			if (read_u64(path, &lim, &unlimited) && !unlimited && lim < *limit) {
				snprintf(path, sizeof(path),
					 v2 ? "/sys/fs/cgroup%s/memory.current"
					    : "/sys/fs/cgroup/memory%s/memory.usage_in_bytes",
					 strcmp(dir, "/") == 0 ? "" : dir);
				if (read_u64(path, &use, &unlimited)) {
					snprintf(path, sizeof(path),
						 v2 ? "/sys/fs/cgroup%s/memory.stat"
						    : "/sys/fs/cgroup/memory%s/memory.stat",
						 strcmp(dir, "/") == 0 ? "" : dir);
					if (read_small_file(path, stat, sizeof(stat))) {
						find_value(stat, v2 ? "inactive_file" : "total_inactive_file",
							   &inactive);
					}
					*limit = lim;
					*used = use > inactive ? use - inactive : 0;
					found = true;
				}
			}
			slash = strrchr(dir, '/');
			if (!slash || strcmp(dir, "/") == 0) {
				break;
			}
			if (slash == dir) {
				strcpy(dir, "/");
			} else {
				*slash = '\0';
			}
		}
	}
	return found;
}

int clrmemtrace__memory_status(uint32_t *load_percent, uint64_t *available_bytes,
			       uint64_t *total_bytes)
{
	char meminfo[8192];
	uint64_t total_kb, avail_kb, total, avail, limit = 0, used = 0;

	if (!read_small_file("/proc/meminfo", meminfo, sizeof(meminfo)) ||
	    !find_value(meminfo, "MemTotal", &total_kb) || total_kb == 0) {
		return ERROR_NOT_SUPPORTED;
	}
	if (!find_value(meminfo, "MemAvailable", &avail_kb) &&
	    !find_value(meminfo, "MemFree", &avail_kb)) {
		return ERROR_NOT_SUPPORTED;
	}
	total = total_kb * 1024;
	avail = avail_kb * 1024;
	if (cgroup_limit(&limit, &used) && limit < total) {
		uint64_t cg_avail = limit > used ? limit - used : 0;

		total = limit;
		avail = cg_avail < avail ? cg_avail : avail;
	}
	if (avail > total) {
		avail = total;
	}
	*load_percent = (uint32_t)(((total - avail) * 100 + total / 2) / total);
	*available_bytes = avail;
	if (total_bytes) {
		*total_bytes = total;
	}
	return 0;
}
