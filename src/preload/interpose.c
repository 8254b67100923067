/* SPDX-License-Identifier: MIT */
/*
 * libclrmemtrace-preload.so: traces the mmap family of an unmodified
 * process. LD_PRELOAD it (`clrmemtrace record --preload` does) and every
 * call to mmap, mmap64, munmap, mprotect, madvise, posix_madvise and mremap
 * through libc goes to the real function and then emits one event of the
 * clrmemtrace_os provider with every argument, the result and errno.
 *
 * - The real functions are resolved with dlsym(RTLD_NEXT) in the
 *   constructor. Until then (LTTng-UST's own constructors map memory before
 *   ours runs) and while dlsym itself runs, calls go straight to the kernel
 *   with syscall().
 * - An initial-exec thread-local depth guards against re-entry: only calls
 *   made by the program itself (depth 1) are traced, not those made while
 *   emitting an event or resolving symbols.
 * - The hooks use no stdio and no malloc, and leave errno as the real call
 *   left it.
 * - When a session starts recording maps_begin, the next traced call dumps
 *   /proc/self/maps first (maps_begin, maps_mapping..., maps_end), holding a
 *   lock that traced calls take for reading, so the dump and the calls are
 *   ordered and a trace that starts mid-run rebuilds exactly.
 * - Only the interposed functions are exported.
 */
#if defined(CLRMEMTRACE_PRELOAD_TESTING)
/* Unit tests replace the tracepoints with recorders (tests/preload/). */
#include "preload-testing.h"
#else
#define LTTNG_UST_TRACEPOINT_DEFINE
#define LTTNG_UST_TRACEPOINT_PROBE_DYNAMIC_LINKAGE
#include "clrmemtrace_os_tp.h"
#endif

#include "mapsread.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define PROVIDER_NAME "libclrmemtrace-os-lttng.so"

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);
typedef int (*mprotect_fn)(void *, size_t, int);
typedef int (*madvise_fn)(void *, size_t, int);
typedef int (*posix_madvise_fn)(void *, size_t, int);
typedef void *(*mremap_fn)(void *, size_t, size_t, int, ...);

static struct {
	mmap_fn mmap;
	mmap_fn mmap64;
	munmap_fn munmap;
	mprotect_fn mprotect;
	madvise_fn madvise;
	posix_madvise_fn posix_madvise;
	mremap_fn mremap;
} real;

/* Nesting of hooks in this thread; initial-exec so reading it never allocates. */
static __thread int depth __attribute__((tls_model("initial-exec")));

/* Traced calls hold it for reading, a state dump for writing. */
static pthread_rwlock_t dump_lock = PTHREAD_RWLOCK_INITIALIZER;
static int dump_seen;
static bool tracing_off;

/* ---------- Resolution ---------- */

static void resolve_all(void);

static void *resolve(const char *name)
{
	void *p;

	depth++;
	p = dlsym(RTLD_NEXT, name);
	depth--;
	return p;
}

#if defined(CLRMEMTRACE_PRELOAD_TESTING)
/* Forgets the real functions, as before the constructor ran. */
void clrmemtrace__preload_forget_real(void);
void clrmemtrace__preload_forget_real(void)
{
	memset(&real, 0, sizeof(real));
}

void clrmemtrace__preload_resolve(void);
void clrmemtrace__preload_resolve(void)
{
	resolve_all();
}
#endif

static void resolve_all(void)
{
	void *p;

	/* Published one by one: a hook sees either NULL (raw syscall) or the real function. */
	p = resolve("mmap");
	__atomic_store_n((void **)&real.mmap, p, __ATOMIC_RELEASE);
	p = resolve("mmap64");
	__atomic_store_n((void **)&real.mmap64, p, __ATOMIC_RELEASE);
	p = resolve("munmap");
	__atomic_store_n((void **)&real.munmap, p, __ATOMIC_RELEASE);
	p = resolve("mprotect");
	__atomic_store_n((void **)&real.mprotect, p, __ATOMIC_RELEASE);
	p = resolve("madvise");
	__atomic_store_n((void **)&real.madvise, p, __ATOMIC_RELEASE);
	p = resolve("posix_madvise");
	__atomic_store_n((void **)&real.posix_madvise, p, __ATOMIC_RELEASE);
	p = resolve("mremap");
	__atomic_store_n((void **)&real.mremap, p, __ATOMIC_RELEASE);
}

#define REAL(name) __atomic_load_n(&real.name, __ATOMIC_ACQUIRE)

/* ---------- State dump ---------- */

static void dump_maps(void)
{
	struct maps_reader reader;
	struct vma v;
	uint64_t n = 0;

	lttng_ust_tracepoint(clrmemtrace_os, maps_begin, (uint64_t)sysconf(_SC_PAGESIZE));
	if (clrmemtrace__maps_open(&reader) == 0) {
		while (clrmemtrace__maps_next(&reader, &v)) {
			lttng_ust_tracepoint(clrmemtrace_os, maps_mapping, v.start, v.end, v.prot,
					     v.shared, v.offset, v.major, v.minor, v.ino, v.path,
					     v.path_len);
			n++;
		}
		clrmemtrace__maps_close(&reader);
	}
	lttng_ust_tracepoint(clrmemtrace_os, maps_end, n);
}

/*
 * At depth 1, before a traced call: dumps the mappings when a session has
 * just started recording maps_begin. Returns whether the call is traced, in
 * which case the caller holds dump_lock for reading until trace_end().
 */
static bool trace_begin(void)
{
	int on;

	if (tracing_off) {
		return false;
	}
	on = lttng_ust_tracepoint_enabled(clrmemtrace_os, maps_begin) ? 1 : 0;
	if (on != __atomic_load_n(&dump_seen, __ATOMIC_RELAXED)) {
		pthread_rwlock_wrlock(&dump_lock);
		if (on && !dump_seen) {
			dump_maps();
		}
		__atomic_store_n(&dump_seen, on, __ATOMIC_RELAXED);
		pthread_rwlock_unlock(&dump_lock);
	}
	if (!on) {
		return false;
	}
	pthread_rwlock_rdlock(&dump_lock);
	return true;
}

static void trace_end(bool traced)
{
	if (traced) {
		pthread_rwlock_unlock(&dump_lock);
	}
}

/* The file behind fd, for the trace; "" when it cannot be told. No allocation, no stdio. */
static const char *fd_path(int fd, char *buf, size_t len)
{
	static const char prefix[] = "/proc/self/fd/";
	char link[sizeof(prefix) + 12], digits[12];
	size_t n_digits = 0, i;
	ssize_t n;

	if (fd < 0) {
		return "";
	}
	do {
		digits[n_digits++] = (char)('0' + fd % 10);
		fd /= 10;
	} while (fd && n_digits < sizeof(digits));
	memcpy(link, prefix, sizeof(prefix) - 1);
	for (i = 0; i < n_digits; i++) {
		link[sizeof(prefix) - 1 + i] = digits[n_digits - 1 - i];
	}
	link[sizeof(prefix) - 1 + n_digits] = '\0';
	n = readlink(link, buf, len - 1);
	if (n <= 0) {
		return "";
	}
	buf[n] = '\0';
	return buf;
}

/* ---------- Hooks ---------- */

static void *do_mmap(mmap_fn fn, void *addr, size_t length, int prot, int flags, int fd,
		     off_t offset)
{
	bool traced = false;
	void *r;
	int err;

	if (++depth == 1) {
		traced = trace_begin();
	}
	r = fn ? fn(addr, length, prot, flags, fd, offset)
	       : (void *)syscall(SYS_mmap, addr, length, prot, flags, fd, offset);
	err = errno;
	if (traced && lttng_ust_tracepoint_enabled(clrmemtrace_os, mmap)) {
		char path[PATH_MAX];

		lttng_ust_do_tracepoint(clrmemtrace_os, mmap, (uintptr_t)addr, length, prot, flags,
					fd, (int64_t)offset, (uintptr_t)r, r == MAP_FAILED ? err : 0,
					fd_path(fd, path, sizeof(path)));
	}
	trace_end(traced);
	depth--;
	errno = err; /* as the real call left it */
	return r;
}

EXPORT void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
	return do_mmap(REAL(mmap), addr, length, prot, flags, fd, offset);
}

EXPORT void *mmap64(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
	return do_mmap(REAL(mmap64), addr, length, prot, flags, fd, offset);
}

EXPORT int munmap(void *addr, size_t length)
{
	munmap_fn fn = REAL(munmap);
	bool traced = false;
	int r, err;

	if (++depth == 1) {
		traced = trace_begin();
	}
	r = fn ? fn(addr, length) : (int)syscall(SYS_munmap, addr, length);
	err = errno;
	if (traced && lttng_ust_tracepoint_enabled(clrmemtrace_os, munmap)) {
		lttng_ust_do_tracepoint(clrmemtrace_os, munmap, (uintptr_t)addr, length, r,
					r ? err : 0);
	}
	trace_end(traced);
	depth--;
	errno = err; /* as the real call left it */
	return r;
}

EXPORT int mprotect(void *addr, size_t length, int prot)
{
	mprotect_fn fn = REAL(mprotect);
	bool traced = false;
	int r, err;

	if (++depth == 1) {
		traced = trace_begin();
	}
	r = fn ? fn(addr, length, prot) : (int)syscall(SYS_mprotect, addr, length, prot);
	err = errno;
	if (traced && lttng_ust_tracepoint_enabled(clrmemtrace_os, mprotect)) {
		lttng_ust_do_tracepoint(clrmemtrace_os, mprotect, (uintptr_t)addr, length, prot, r,
					r ? err : 0);
	}
	trace_end(traced);
	depth--;
	errno = err; /* as the real call left it */
	return r;
}

EXPORT int madvise(void *addr, size_t length, int advice)
{
	madvise_fn fn = REAL(madvise);
	bool traced = false;
	int r, err;

	if (++depth == 1) {
		traced = trace_begin();
	}
	r = fn ? fn(addr, length, advice) : (int)syscall(SYS_madvise, addr, length, advice);
	err = errno;
	if (traced && lttng_ust_tracepoint_enabled(clrmemtrace_os, madvise)) {
		lttng_ust_do_tracepoint(clrmemtrace_os, madvise, (uintptr_t)addr, length, advice, r,
					r ? err : 0);
	}
	trace_end(traced);
	depth--;
	errno = err; /* as the real call left it */
	return r;
}

EXPORT int posix_madvise(void *addr, size_t length, int advice)
{
	posix_madvise_fn fn = REAL(posix_madvise);
	bool traced = false;
	int r, saved = errno;

	if (++depth == 1) {
		traced = trace_begin();
	}
	if (fn) {
		r = fn(addr, length, advice);
	} else {
		/* POSIX_MADV_DONTNEED is advisory in glibc, and posix_madvise never sets errno. */
		r = advice == POSIX_MADV_DONTNEED
			    ? 0
			    : (syscall(SYS_madvise, addr, length, advice) == 0 ? 0 : errno);
	}
	if (traced && lttng_ust_tracepoint_enabled(clrmemtrace_os, posix_madvise)) {
		lttng_ust_do_tracepoint(clrmemtrace_os, posix_madvise, (uintptr_t)addr, length,
					advice, r);
	}
	trace_end(traced);
	depth--;
	errno = saved;
	return r;
}

EXPORT void *mremap(void *old_addr, size_t old_length, size_t new_length, int flags, ...)
{
	mremap_fn fn = REAL(mremap);
	void *new_addr = NULL, *r;
	bool traced = false;
	int err;

	if (flags & MREMAP_FIXED) {
		va_list ap;

		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	if (++depth == 1) {
		traced = trace_begin();
	}
	r = fn ? fn(old_addr, old_length, new_length, flags, new_addr)
	       : (void *)syscall(SYS_mremap, old_addr, old_length, new_length, flags, new_addr);
	err = errno;
	if (traced && lttng_ust_tracepoint_enabled(clrmemtrace_os, mremap)) {
		lttng_ust_do_tracepoint(clrmemtrace_os, mremap, (uintptr_t)old_addr, old_length,
					new_length, flags, (uintptr_t)new_addr, (uintptr_t)r,
					r == MAP_FAILED ? err : 0);
	}
	trace_end(traced);
	depth--;
	errno = err; /* as the real call left it */
	return r;
}

/* ---------- Start-up ---------- */

static bool env_says_off(const char *name)
{
	const char *v = getenv(name);

	return v && (strcmp(v, "0") == 0 || strcasecmp(v, "off") == 0 ||
		     strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0);
}

/* Loads the clrmemtrace_os provider from this object's directory (or the environment's). */
static void load_provider(void)
{
	const char *override = getenv("CLRMEMTRACE_OS_PROVIDER");
	char path[PATH_MAX];
	bool set_timeout;
	Dl_info info;
	const char *slash;

	if (override && *override) {
		snprintf(path, sizeof(path), "%s", override);
	} else if (dladdr((void *)&resolve_all, &info) && info.dli_fname &&
		   (slash = strrchr(info.dli_fname, '/')) != NULL) {
		snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - info.dli_fname),
			 info.dli_fname, PROVIDER_NAME);
	} else {
		snprintf(path, sizeof(path), "%s", PROVIDER_NAME);
	}
	if (access(path, R_OK) != 0) {
		return;
	}
	set_timeout = getenv("LTTNG_UST_REGISTER_TIMEOUT") == NULL;
	if (set_timeout) {
		setenv("LTTNG_UST_REGISTER_TIMEOUT", "0", 0);
	}
	if (!dlopen(path, RTLD_NOW | RTLD_LOCAL) && getenv("CLRMEMTRACE_DEBUG")) {
		fprintf(stderr, "clrmemtrace-preload: tracing off, cannot load %s: %s\n", path,
			dlerror());
	}
	if (set_timeout) {
		unsetenv("LTTNG_UST_REGISTER_TIMEOUT");
	}
}

static void fork_prepare(void)
{
	pthread_rwlock_wrlock(&dump_lock);
}

static void fork_release(void)
{
	pthread_rwlock_unlock(&dump_lock);
}

/*
 * In the child, the lock fork_prepare took cannot be unlocked: glibc tells
 * a writer's unlock by the thread id that locked it, and the child's thread
 * has another one (the unlock would release a read lock and leave the lock
 * unusable). The child's only thread held it, so it starts afresh.
 *
 * The child's sessions are its own (LTTng-UST registers it anew, with
 * liblttng-ust-fork.so): forgetting that the parent's sessions saw a dump
 * makes the first traced call after one enables maps_begin dump the child's
 * mappings.
 */
static void fork_child(void)
{
	pthread_rwlock_init(&dump_lock, NULL);
	__atomic_store_n(&dump_seen, 0, __ATOMIC_RELAXED);
}

__attribute__((constructor)) static void interpose_init(void)
{
	resolve_all();
	pthread_atfork(fork_prepare, fork_release, fork_child);
	if (env_says_off("CLRMEMTRACE_TRACE")) {
		tracing_off = true;
		return;
	}
	depth++;
	load_provider();
	depth--;
}
