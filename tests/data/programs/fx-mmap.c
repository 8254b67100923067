/* SPDX-License-Identifier: MIT */
/*
 * fx-mmap [LOG]: a scripted run of every call the interposer traces
 * (mmap, mmap64, munmap, mprotect, madvise, posix_madvise, mremap) with the
 * flags runtimes use, failing calls included, for the preload fixture traces
 * and tests/python/test_preload_scripted.py.
 *
 * LOG (default: none) gets one line per call, in the order made, with the
 * members of the clrmemtrace_os event it must produce:
 *
 *   call mmap addr=0x0 length=4096 prot=0x3 flags=0x22 fd=-1 offset=0 result=0x7f... errnum=0 path=
 *
 * and, at each checkpoint, the call that marks it in the trace (a madvise
 * of 0 bytes at (K + 1) MiB with MADV_NORMAL, which changes nothing), then
 * "checkpoint K" and the lines of /proc/self/maps read right after it,
 * each prefixed "maps ". The first line is "tid N": the thread making the
 * calls. Every call is checked to succeed or fail as scripted; the exit
 * status is 1 if one did not.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define _LARGEFILE64_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MADV_FREE
#define MADV_FREE 8
#endif

#define PG ((size_t)4096)

static FILE *log_file;
static int checkpoints;
static const char *data_path;
static int failures;

static void say(const char *fmt, ...)
{
	va_list ap;

	if (!log_file) {
		return;
	}
	va_start(ap, fmt);
	vfprintf(log_file, fmt, ap);
	va_end(ap);
}

static void expect(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fx-mmap: %s did not go as scripted (errno %d)\n", what, errno);
		failures++;
	}
}

/* The file behind fd, as the interposer records it. */
static const char *fd_path(int fd, char *buf, size_t len)
{
	char link[64];
	ssize_t n;

	if (fd < 0) {
		return "";
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, len - 1);
	if (n <= 0) {
		return "";
	}
	buf[n] = '\0';
	return buf;
}

static void *do_mmap(int wide, void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	char path[PATH_MAX];
	void *r;
	int err;

	errno = 0;
	r = wide ? mmap64(addr, len, prot, flags, fd, off) : mmap(addr, len, prot, flags, fd, off);
	err = r == MAP_FAILED ? errno : 0;
	say("call mmap addr=%#lx length=%zu prot=%#x flags=%#x fd=%d offset=%lld result=%#lx "
	    "errnum=%d path=%s\n",
	    (unsigned long)addr, len, prot, flags, fd, (long long)off, (unsigned long)r, err,
	    fd_path(fd, path, sizeof(path)));
	errno = err;
	return r;
}

#define MMAP(...) do_mmap(0, __VA_ARGS__)

static int do_munmap(void *addr, size_t len)
{
	int r, err;

	errno = 0;
	r = munmap(addr, len);
	err = r ? errno : 0;
	say("call munmap addr=%#lx length=%zu result=%d errnum=%d\n", (unsigned long)addr, len, r,
	    err);
	errno = err;
	return r;
}

static int do_mprotect(void *addr, size_t len, int prot)
{
	int r, err;

	errno = 0;
	r = mprotect(addr, len, prot);
	err = r ? errno : 0;
	say("call mprotect addr=%#lx length=%zu prot=%#x result=%d errnum=%d\n",
	    (unsigned long)addr, len, prot, r, err);
	errno = err;
	return r;
}

static int do_madvise(void *addr, size_t len, int advice)
{
	int r, err;

	errno = 0;
	r = madvise(addr, len, advice);
	err = r ? errno : 0;
	say("call madvise addr=%#lx length=%zu advice=%d result=%d errnum=%d\n",
	    (unsigned long)addr, len, advice, r, err);
	errno = err;
	return r;
}

static int do_posix_madvise(void *addr, size_t len, int advice)
{
	int r = posix_madvise(addr, len, advice);

	say("call posix_madvise addr=%#lx length=%zu advice=%d result=%d\n", (unsigned long)addr,
	    len, advice, r);
	return r;
}

static void *do_mremap(void *old, size_t old_len, size_t new_len, int flags, void *new_addr)
{
	void *r;
	int err;

	errno = 0;
	r = (flags & MREMAP_FIXED) ? mremap(old, old_len, new_len, flags, new_addr)
				   : mremap(old, old_len, new_len, flags);
	err = r == MAP_FAILED ? errno : 0;
	say("call mremap old_addr=%#lx old_length=%zu new_length=%zu flags=%#x new_addr=%#lx "
	    "result=%#lx errnum=%d\n",
	    (unsigned long)old, old_len, new_len, flags,
	    (unsigned long)((flags & MREMAP_FIXED) ? new_addr : NULL), (unsigned long)r, err);
	errno = err;
	return r;
}

/* The trace's mark of a checkpoint, then what the kernel says. No malloc, no mmap. */
static void checkpoint(void)
{
	static char buf[1 << 18];
	size_t n = 0;
	ssize_t got;
	int fd, k = checkpoints++;
	char *line, *end;

	expect(do_madvise((void *)(((uintptr_t)k + 1) << 20), 0, MADV_NORMAL) == 0, "marker");
	fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		expect(0, "open /proc/self/maps");
		return;
	}
	while (n < sizeof(buf) - 1 && (got = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0) {
		n += (size_t)got;
	}
	close(fd);
	buf[n] = '\0';
	say("checkpoint %d\n", k);
	for (line = buf; *line; line = end + 1) {
		end = strchr(line, '\n');
		if (!end) {
			say("maps %s\n", line);
			break;
		}
		*end = '\0';
		say("maps %s\n", line);
	}
}

/* A reservation, commits, protection changes and partial unmaps, as a GC heap does. */
static void reserve_and_commit(void)
{
	char *r = MMAP(NULL, 64 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	expect(r != MAP_FAILED, "reserve");
	expect(do_mprotect(r, 8 * PG, PROT_READ | PROT_WRITE) == 0, "commit");
	expect(do_mprotect(r + 2 * PG, 2 * PG, PROT_READ) == 0, "protect a middle part");
	expect(do_mprotect(r + 8 * PG, 4 * PG, PROT_READ | PROT_WRITE) == 0, "commit more");
	r[8 * PG] = 1;
	expect(do_mprotect(r + 8 * PG, 2 * PG, PROT_READ | PROT_EXEC) == 0, "W to X");
	expect(do_mprotect(r + 10 * PG, PG, PROT_READ | PROT_WRITE | PROT_EXEC) == 0, "RWX");
	expect(do_mprotect(r + 4 * PG, 2 * PG, PROT_NONE) == 0, "decommit");
	expect(do_mprotect(r + 12 * PG, PG, PROT_EXEC) == 0, "execute only");
	expect(do_mprotect(r + 13 * PG, PG, PROT_WRITE) == 0, "write only");
	checkpoint();
	expect(do_munmap(r, 2 * PG) == 0, "unmap the head");
	expect(do_munmap(r + 60 * PG, 4 * PG) == 0, "unmap the tail");
	expect(do_munmap(r + 30 * PG, 10 * PG) == 0, "unmap the middle");
	expect(do_mprotect(r + 20 * PG, 10 * PG, PROT_READ) == 0, "protect the first piece's end");
	expect(do_mprotect(r + 40 * PG, 20 * PG, PROT_READ | PROT_WRITE) == 0,
	       "commit the second piece");
	checkpoint();
	expect(do_munmap(r, 64 * PG) == 0, "unmap all, holes included");
}

/* Each protection, private and shared anonymous memory, 32-bit and fixed mappings. */
static void anonymous(void)
{
	static const int prots[] = {
		PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC,
		PROT_READ | PROT_WRITE | PROT_EXEC, PROT_EXEC, PROT_WRITE,
	};
	char *maps[6], *shared, *low, *area, *p;
	size_t i;

	for (i = 0; i < 6; i++) {
		maps[i] = MMAP(NULL, 2 * PG, prots[i], MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		expect(maps[i] != MAP_FAILED, "mmap with a protection");
	}
	shared = MMAP(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	expect(shared != MAP_FAILED, "shared anonymous");
	low = MMAP(NULL, 16 * PG, PROT_READ | PROT_WRITE | PROT_EXEC,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	expect(low != MAP_FAILED && (uintptr_t)low < (UINT64_C(1) << 32), "32-bit RWX");
	area = do_mmap(1, NULL, 32 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	expect(area != MAP_FAILED, "mmap64 reservation");
	p = MMAP(area + 4 * PG, 4 * PG, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	expect(p == area + 4 * PG, "MAP_FIXED inside a reservation");
	p = MMAP(area + 6 * PG, 4 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	expect(p == area + 6 * PG, "MAP_FIXED decommit over two runs");
	p = MMAP(area + 28 * PG, 8 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	expect(p == area + 28 * PG, "MAP_FIXED across the reservation's end");
	expect(do_munmap(area + 16 * PG, 4 * PG) == 0, "a hole");
	p = MMAP(area + 16 * PG, 4 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0);
	expect(p == area + 16 * PG, "MAP_FIXED_NOREPLACE into the hole");
	p = MMAP(area, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	expect(p == MAP_FAILED && errno == EEXIST, "MAP_FIXED_NOREPLACE over a mapping");
	p = MMAP(area + 40 * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	expect(p != MAP_FAILED, "a hint");
	expect(do_mprotect(maps[1], 2 * PG, PROT_READ) == 0 && do_mprotect(maps[0], PG, PROT_NONE) == 0,
	       "protections");
	checkpoint();
	for (i = 0; i < 6; i++) {
		expect(do_munmap(maps[i], 2 * PG) == 0, "unmap");
	}
	expect(do_munmap(shared, 4 * PG) == 0, "unmap shared");
	expect(do_munmap(low, 16 * PG) == 0, "unmap 32-bit");
	expect(do_munmap(area, 36 * PG) == 0, "unmap the area");
	expect(do_munmap(p, PG) == 0, "unmap the hint");
}

/* Files: private, copy-on-write, shared, executable. */
static void files(void)
{
	char *r, *w, *s, *x;
	int fd = open(data_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ro = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);

	expect(fd >= 0 && ftruncate(fd, 16 * PG) == 0, "the data file");
	r = MMAP(NULL, 4 * PG, PROT_READ, MAP_PRIVATE, fd, 0);
	w = MMAP(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 4 * PG);
	s = MMAP(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 8 * PG);
	x = MMAP(NULL, 2 * PG, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 12 * PG);
	expect(r != MAP_FAILED && w != MAP_FAILED && s != MAP_FAILED && x != MAP_FAILED,
	       "file mappings");
	expect(do_mprotect(w, PG, PROT_READ) == 0, "copy-on-write made read-only");
	expect(do_mprotect(x, PG, PROT_READ | PROT_WRITE | PROT_EXEC) == 0, "writable code");
	expect(MMAP(NULL, PG, PROT_READ, MAP_PRIVATE, 1000, 0) == MAP_FAILED && errno == EBADF,
	       "a bad file descriptor");
	expect(MMAP(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0) == MAP_FAILED &&
		       errno == EACCES,
	       "a shared writable mapping of a read-only file");
	checkpoint();
	expect(do_munmap(r, 4 * PG) == 0 && do_munmap(w, 4 * PG) == 0 &&
		       do_munmap(s, 4 * PG) == 0 && do_munmap(x, 2 * PG) == 0,
	       "unmap the files");
	close(fd);
	close(ro);
}

/* madvise and posix_madvise with the advice runtimes give, and bad ones. */
static void advice(void)
{
	static const int advices[] = {
		MADV_DONTNEED, MADV_FREE, MADV_WILLNEED, MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL,
		MADV_DONTFORK, MADV_DOFORK, MADV_DONTDUMP, MADV_DODUMP, MADV_HUGEPAGE,
		MADV_NOHUGEPAGE,
	};
	static const int posix[] = {
		POSIX_MADV_NORMAL, POSIX_MADV_RANDOM, POSIX_MADV_SEQUENTIAL, POSIX_MADV_WILLNEED,
		POSIX_MADV_DONTNEED,
	};
	char *p = MMAP(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *s = MMAP(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	size_t i;

	expect(p != MAP_FAILED && s != MAP_FAILED, "memory to advise");
	memset(p, 1, 16 * PG);
	for (i = 0; i < sizeof(advices) / sizeof(advices[0]); i++) {
		/* MADV_HUGEPAGE fails where transparent huge pages are off: either is fine. */
		int r = do_madvise(p + PG * (i % 8), 2 * PG, advices[i]);

		expect(r == 0 || advices[i] == MADV_HUGEPAGE || advices[i] == MADV_NOHUGEPAGE,
		       "madvise");
	}
	expect(do_madvise(s, 2 * PG, MADV_REMOVE) == 0, "MADV_REMOVE on shared memory");
	expect(do_madvise(p, PG, 12345) == -1 && errno == EINVAL, "an unknown advice");
	expect(do_madvise(p + 1, PG, MADV_DONTNEED) == -1 && errno == EINVAL, "an unaligned madvise");
	for (i = 0; i < sizeof(posix) / sizeof(posix[0]); i++) {
		expect(do_posix_madvise(p, 4 * PG, posix[i]) == 0, "posix_madvise");
	}
	expect(do_posix_madvise(p, 4 * PG, 999) == EINVAL, "a bad posix_madvise");
	expect(do_munmap(p, 16 * PG) == 0 && do_munmap(s, 4 * PG) == 0, "unmap advised memory");
}

/* mremap: shrink, grow in place, move, move to a fixed address, keep the old pages, share. */
static void remaps(void)
{
	char *a = MMAP(NULL, 32 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *b, *c, *d, *t, *s, *dup;

	expect(a != MAP_FAILED, "memory to remap");
	expect(do_mprotect(a + 12 * PG, 2 * PG, PROT_READ) == 0, "a read-only run");
	expect(do_munmap(a + 16 * PG, 16 * PG) == 0, "free the pages after the first half");
	b = do_mremap(a, 16 * PG, 8 * PG, 0, NULL);
	expect(b == a, "shrink in place");
	b = do_mremap(a, 8 * PG, 24 * PG, 0, NULL);
	expect(b == a, "grow in place");
	c = MMAP(a + 24 * PG, 4 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0);
	expect(c == a + 24 * PG, "a mapping right after");
	d = do_mremap(a, 24 * PG, 40 * PG, MREMAP_MAYMOVE, NULL);
	expect(d != MAP_FAILED && d != a, "grow by moving");
	t = MMAP(NULL, 64 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	expect(t != MAP_FAILED, "a target");
	b = do_mremap(d, 40 * PG, 20 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, t + 8 * PG);
	expect(b == t + 8 * PG, "move to a fixed address over a mapping, shrinking");
	c = do_mremap(b, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
	expect(c != MAP_FAILED, "move and keep the old pages");
	expect(do_mprotect(b + 10 * PG, 2 * PG, PROT_READ) == 0, "protect the moved pages");
	s = MMAP(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	expect(s != MAP_FAILED, "shared memory");
	dup = do_mremap(s, 0, 4 * PG, MREMAP_MAYMOVE, NULL);
	expect(dup != MAP_FAILED && dup != s, "a second mapping of shared memory");
	checkpoint();
	expect(do_mremap(a + 1, PG, 2 * PG, 0, NULL) == MAP_FAILED && errno == EINVAL,
	       "an unaligned mremap");
	expect(do_mremap(a, PG, 2 * PG, 0x80, NULL) == MAP_FAILED && errno == EINVAL,
	       "bad mremap flags");
	expect(do_mremap(c, 4 * PG, 0, 0, NULL) == MAP_FAILED && errno == EINVAL,
	       "an mremap to nothing");
	expect(do_munmap(b, 20 * PG) == 0 && do_munmap(t, 64 * PG) == 0 &&
		       do_munmap(c, 4 * PG) == 0 && do_munmap(s, 4 * PG) == 0 &&
		       do_munmap(dup, 4 * PG) == 0 && do_munmap(a, 32 * PG) == 0,
	       "unmap the remapped memory");
	/* The old pages of the move are gone now: the kernel says so. */
	expect(do_mremap(a, PG, 2 * PG, MREMAP_MAYMOVE, NULL) == MAP_FAILED && errno == EFAULT,
	       "an mremap of nothing");
}

/* Calls the kernel refuses: they change nothing. */
static void refused(void)
{
	char *p = MMAP(NULL, 4 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	expect(p != MAP_FAILED, "memory");
	expect(do_munmap(p + 1, PG) == -1 && errno == EINVAL, "an unaligned munmap");
	expect(do_munmap(p, 0) == -1 && errno == EINVAL, "a munmap of 0 bytes");
	expect(do_mprotect(p + 1, PG, PROT_READ) == -1 && errno == EINVAL, "an unaligned mprotect");
	expect(do_munmap(p, 2 * PG) == 0, "a hole");
	/* Its first page unmapped, mprotect changes nothing (past it, it would change some). */
	expect(do_mprotect(p, 4 * PG, PROT_READ | PROT_WRITE) == -1 && errno == ENOMEM,
	       "mprotect from a hole");
	expect(MMAP(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED &&
		       errno == EINVAL,
	       "mmap of 0 bytes");
	expect(MMAP(NULL, PG, PROT_READ, MAP_ANONYMOUS, -1, 0) == MAP_FAILED && errno == EINVAL,
	       "mmap neither private nor shared");
	expect(MMAP((void *)(p + 1), PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
			   MAP_FAILED &&
		       errno == EINVAL,
	       "an unaligned MAP_FIXED");
	expect(do_munmap(p + 2 * PG, 2 * PG) == 0, "unmap");
}

int main(int argc, char **argv)
{
	char path[PATH_MAX];

	if (argc > 1) {
		log_file = fopen(argv[1], "w");
		if (!log_file) {
			perror(argv[1]);
			return 2;
		}
		setvbuf(log_file, NULL, _IOLBF, 0);
		snprintf(path, sizeof(path), "%s.data", argv[1]);
	} else {
		snprintf(path, sizeof(path), "/tmp/fx-mmap.data");
	}
	data_path = path;
	say("tid %ld\n", (long)syscall(SYS_gettid));
	reserve_and_commit();
	anonymous();
	files();
	advice();
	remaps();
	refused();
	checkpoint();
	unlink(data_path);
	if (log_file) {
		fclose(log_file);
	}
	return failures ? 1 : 0;
}
