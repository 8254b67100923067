/* SPDX-License-Identifier: MIT */
/*
 * System pressure (README.md, "Host policy"): where the kernel offers
 * pressure-stall information, a memory stall anywhere the manager's monitor
 * watches makes it deliver eMemoryAvailableLow, although the memory load
 * stays low; and Low ends with the trigger's window once the stall does.
 *
 * The stall is real: a child process in a small memory cgroup reads a file
 * three times the size of its limit at random through a shared mapping, so
 * it keeps reclaiming and refaulting its own page cache. The manager has no
 * budget and polls only every ten minutes: a Low within the bound can only
 * come from a pressure-stall trigger, and its end from the monitor waking
 * when the stall's hold runs out.
 *
 * Exits with 77 (meson's skip) when the kernel has no PSI triggers, when no
 * memory cgroup can be made here, or when the monitor would watch a cgroup
 * the child cannot be put under; the message says which. The cgroup, the
 * child and its file are always removed, on failure and on SIGTERM too.
 */
#include "policy-common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(POLICY_HAVE_URCU_BP)
#include <urcu/urcu-bp.h>
#endif

#define SKIP 77

#define CGROUP_LIMIT ((uint64_t)16 << 20)
#define FILE_SIZE ((size_t)48 << 20)
/* How long the child thrashes at most, and how long the parent waits for Low. */
#define THRASH_SECONDS 30
#define LOW_TIMEOUT_MS 20000
#define POLL_MS 600000
/*
 * Low from 98 % only (and High to 60 %), so a busy machine's load does not
 * bring Low by itself; with the load at MAX_LOAD or more the test skips.
 */
#define LOW_PERCENT 98
#define HIGH_PERCENT 60
#define MAX_LOAD 90
/*
 * How long Low may last once the child is gone: the trigger's 2 s window,
 * once more for a last trigger from the child's final moments, and slack.
 */
#define RECOVER_MS 8000

#define TMPFS_MAGIC_ 0x01021994
#define RAMFS_MAGIC_ 0x858458f6

/* What must be undone at exit, signals included. */
static char cgroup_dir[4096];
static volatile pid_t child_pid;

static void cleanup(void)
{
	int i;

	if (child_pid > 0) {
		kill(child_pid, SIGKILL);
		waitpid(child_pid, NULL, 0);
		child_pid = 0;
	}
	if (cgroup_dir[0]) {
		/* An emptied cgroup may stay busy for a moment while its last task goes. */
		for (i = 0; i < 200 && rmdir(cgroup_dir) != 0 && errno == EBUSY; i++) {
			struct timespec ts = { 0, 10000000 };

			nanosleep(&ts, NULL);
		}
		cgroup_dir[0] = '\0';
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---------- Files ---------- */

static bool read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		return false;
	}
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0) {
		return false;
	}
	buf[n] = '\0';
	return true;
}

static bool write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	bool ok;

	if (fd < 0) {
		return false;
	}
	ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	close(fd);
	return ok;
}

/* ---------- Prerequisites ---------- */

/* Whether the kernel lets this process set a memory pressure-stall trigger at all. */
static bool psi_triggers(const char **why)
{
	/* Privileged processes may use 1 s windows; everyone may use 2 s ones (Linux 6.4+). */
	static const char *const triggers[] = { "some 150000 1000000", "some 300000 2000000" };
	size_t i;

	if (access("/proc/pressure/memory", R_OK) != 0) {
		*why = "the kernel has no pressure-stall information (/proc/pressure/memory)";
		return false;
	}
	for (i = 0; i < sizeof(triggers) / sizeof(triggers[0]); i++) {
		int fd = open("/proc/pressure/memory", O_RDWR | O_NONBLOCK | O_CLOEXEC);
		bool ok;

		if (fd < 0) {
			*why = "/proc/pressure/memory cannot be opened for writing (a trigger needs it)";
			return false;
		}
		ok = write(fd, triggers[i], strlen(triggers[i]) + 1) > 0;
		close(fd);
		if (ok) {
			return true;
		}
	}
	*why = "the kernel refuses memory pressure-stall triggers to this process";
	return false;
}

/* This process's cgroup v2 path ("0::/path"), or "" when it has none. */
static void cgroup_v2_path(char *out, size_t len)
{
	char buf[4096], *line, *save = NULL;

	out[0] = '\0';
	if (!read_file("/proc/self/cgroup", buf, sizeof(buf))) {
		return;
	}
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "0::", 3) == 0) {
			snprintf(out, len, "%s", line + 3);
			return;
		}
	}
}

/*
 * The monitor's trigger is on the cgroup's memory.pressure when this process
 * is in a cgroup v2 group that has one (src/posix/pressure.c), which sees
 * only stalls in that group: the child would have to be put under it.
 */
static bool monitor_watches_own_cgroup(char *path, size_t len)
{
	char cg[4096];

	cgroup_v2_path(cg, sizeof(cg));
	if (!cg[0]) {
		return false;
	}
	snprintf(path, len, "/sys/fs/cgroup%s/memory.pressure", strcmp(cg, "/") == 0 ? "" : cg);
	return strcmp(cg, "/") != 0 && access(path, W_OK) == 0;
}

/* Where a filesystem of `type` with `option` in its super options is mounted. */
static bool find_mount(const char *type, const char *option, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192];
	bool found = false;

	if (!f) {
		return false;
	}
	while (!found && fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - "), mnt[4096], fstype[64], source[256], opts[4096];

		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s %255s %4095s", fstype, source, opts) != 3) {
			continue;
		}
		if (strcmp(fstype, type) == 0 && (!option || strstr(opts, option))) {
			snprintf(out, len, "%s", mnt);
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* This process's path in the cgroup v1 hierarchy that has `controller`. */
static bool cgroup_v1_path(const char *controller, char *out, size_t len)
{
	char buf[4096], *line, *save = NULL;

	if (!read_file("/proc/self/cgroup", buf, sizeof(buf))) {
		return false;
	}
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

		if (!c2) {
			continue;
		}
		*c2 = '\0';
		if (strstr(c1 + 1, controller)) {
			snprintf(out, len, "%s", c2 + 1);
			return true;
		}
	}
	return false;
}

struct cgroup {
	bool v2;
	char procs[4200];
};

/* Makes dir/<name> and sets its limit; false (nothing left behind) if it cannot. */
static bool make_cgroup(const char *parent, bool v2, struct cgroup *cg)
{
	char path[4200], limit[32];

	if (snprintf(cgroup_dir, sizeof(cgroup_dir), "%s/clrmemtrace-pressure-%d", parent,
		     (int)getpid()) >= (int)sizeof(cgroup_dir) ||
	    mkdir(cgroup_dir, 0755) != 0) {
		cgroup_dir[0] = '\0';
		return false;
	}
	snprintf(limit, sizeof(limit), "%llu", (unsigned long long)CGROUP_LIMIT);
	snprintf(path, sizeof(path), "%s/%s", cgroup_dir,
		 v2 ? "memory.max" : "memory.limit_in_bytes");
	if (!write_file(path, limit)) {
		cleanup();
		return false;
	}
	if (v2) {
		/* With swap the child's page cache could go elsewhere: keep it to memory. */
		snprintf(path, sizeof(path), "%s/memory.swap.max", cgroup_dir);
		write_file(path, "0");
	}
	cg->v2 = v2;
	snprintf(cg->procs, sizeof(cg->procs), "%s/cgroup.procs", cgroup_dir);
	return true;
}

/*
 * A memory cgroup for the child: in the cgroup v2 hierarchy where a group
 * on this process's path (or the root) delegates the memory controller,
 * else in the v1 memory hierarchy under this process's own group.
 */
static bool create_cgroup(struct cgroup *cg, const char **why)
{
	char mnt[4096], rel[4096], dir[8300], ctl[8400], buf[256];

	if (find_mount("cgroup2", NULL, mnt, sizeof(mnt))) {
		cgroup_v2_path(rel, sizeof(rel));
		for (;;) {
			char *slash;

			snprintf(dir, sizeof(dir), "%s%s", mnt, strcmp(rel, "/") == 0 ? "" : rel);
			snprintf(ctl, sizeof(ctl), "%s/cgroup.subtree_control", dir);
			if (read_file(ctl, buf, sizeof(buf)) && strstr(buf, "memory") &&
			    make_cgroup(dir, true, cg)) {
				return true;
			}
			slash = strrchr(rel, '/');
			if (!rel[0] || strcmp(rel, "/") == 0 || !slash) {
				break;
			}
			if (slash == rel) {
				strcpy(rel, "/");
			} else {
				*slash = '\0';
			}
		}
	}
	if (find_mount("cgroup", "memory", mnt, sizeof(mnt))) {
		if (cgroup_v1_path("memory", rel, sizeof(rel))) {
			snprintf(dir, sizeof(dir), "%s%s", mnt, strcmp(rel, "/") == 0 ? "" : rel);
			if (make_cgroup(dir, false, cg)) {
				return true;
			}
		}
		if (make_cgroup(mnt, false, cg)) {
			return true;
		}
	}
	*why = "no memory cgroup can be created here (no cgroup v2 group delegating the memory "
	       "controller, no writable cgroup v1 memory hierarchy)";
	return false;
}

/* A directory on a filesystem whose page cache can be reclaimed, with room for the file. */
static bool find_disk_dir(char *out, size_t len, const char **why)
{
	const char *candidates[] = { getenv("TMPDIR"), "/var/tmp", "/tmp", "." };
	size_t i;

	for (i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		struct statfs fs;
		struct statvfs vfs;

		if (!candidates[i] || statfs(candidates[i], &fs) != 0 ||
		    statvfs(candidates[i], &vfs) != 0 || access(candidates[i], W_OK) != 0) {
			continue;
		}
		/* tmpfs pages are not page cache that reclaim can drop (there is no swap to go to). */
		if ((unsigned long)fs.f_type == TMPFS_MAGIC_ ||
		    (unsigned long)fs.f_type == RAMFS_MAGIC_) {
			continue;
		}
		if ((uint64_t)vfs.f_bavail * vfs.f_frsize < 4 * (uint64_t)FILE_SIZE) {
			continue;
		}
		snprintf(out, len, "%s", candidates[i]);
		return true;
	}
	*why = "no disk-backed directory with room for the child's file ($TMPDIR, /var/tmp, /tmp, .)";
	return false;
}

/* ---------- The child ---------- */

/*
 * In the cgroup: writes a file three times the limit, then reads it at
 * random through a shared mapping until killed, so its page cache is
 * reclaimed and refaulted again and again (memory stalls).
 */
static void thrash(const struct cgroup *cg, const char *dir)
{
	char path[4200], pid[32], buf[65536];
	unsigned long long x = 88172645463325252ull, sum = 0;
	time_t end = time(NULL) + THRASH_SECONDS;
	unsigned char *p;
	size_t off;
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (!write_file(cg->procs, pid)) {
		_exit(2);
	}
	snprintf(path, sizeof(path), "%s/clrmemtrace-pressure-%d.bin", dir, (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		_exit(3);
	}
	/* Gone from the directory at once: nothing is left behind however the child ends. */
	unlink(path);
	memset(buf, 0x5a, sizeof(buf));
	for (off = 0; off < FILE_SIZE; off += sizeof(buf)) {
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
			_exit(4);
		}
	}
	p = mmap(NULL, FILE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		_exit(5);
	}
	while (time(NULL) < end) {
		int i;

		for (i = 0; i < 4096; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			sum += p[x % FILE_SIZE];
		}
	}
	_exit(sum == 42 ? 6 : 0);
}

/* ---------- The test ---------- */

/* Set when the test skips itself, so main() exits with SKIP (cmocka's skip exits 0). */
static bool skipped;

/* The cgroup and the directory main() found. */
static struct {
	struct cgroup cg;
	char dir[4096];
} setup;

static void test_stall_delivers_low(void **state)
{
	clrmemtrace_options o = policy_options();
	static struct test_cb cb;
	uint64_t stall_before;
	IHostMemoryManager *mm;
	struct delivery d;
	uint64_t t0;
	DWORD load = 0;
	SIZE_T avail = 0;
	pid_t pid;

	(void)state;
	o.name = "test-pressure";
	o.poll_interval_ms = POLL_MS;
	o.low_memory_percent = LOW_PERCENT;
	o.high_memory_percent = HIGH_PERCENT;
	mm = create_ok(&o);
	memory_load(mm, &load, &avail);
	if (load >= MAX_LOAD) {
		release_last(mm);
		printf("SKIP: the system's memory load is already %u %%: Low would not tell a "
		       "stall from the load\n",
		       (unsigned)load);
		skipped = true;
		skip();
	}
	test_cb_init(&cb);
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(mm, &cb.iface));
	/* Quiet before: a stall from elsewhere would prove nothing. */
	if (test_cb_wait(&cb, 1, 1500) != 0) {
		release_last(mm);
		test_cb_fini(&cb);
		printf("SKIP: memory notifications came before any pressure was made (the system "
		       "is under pressure already)\n");
		skipped = true;
		skip();
	}

	stall_before = memory_stall_us();
	t0 = now_ns();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		thrash(&setup.cg, setup.dir);
	}
	child_pid = pid;

	if (!test_cb_next(&cb, LOW_TIMEOUT_MS, &d)) {
		uint64_t stalled = memory_stall_us() - stall_before;

		cleanup();
		release_last(mm);
		fail_msg("no notification within %d ms of the child thrashing; the system stalled "
			 "%.0f ms on memory meanwhile",
			 LOW_TIMEOUT_MS, (double)stalled / 1000);
	}
	print_message("%s after %.0f ms, the system having stalled %.0f ms on memory\n",
		      level_name(d.level), (double)(d.ns - t0) / 1e6,
		      (double)(memory_stall_us() - stall_before) / 1000);
	assert_int_equal(d.level, eMemoryAvailableLow);

	/*
	 * The pressure ends with the child: Low ends with the trigger's window,
	 * although the monitor would not poll for ten minutes.
	 */
	cleanup();
	t0 = now_ns();
	stall_before = memory_stall_us();
	if (!test_cb_next(&cb, RECOVER_MS, &d)) {
		uint64_t stalled = memory_stall_us() - stall_before;

		memory_load(mm, &load, &avail);
		release_last(mm);
		if (load >= MAX_LOAD) {
			printf("SKIP: the system's memory load rose to %u %%: it may hold Low by "
			       "itself\n",
			       (unsigned)load);
			skipped = true;
			skip();
		}
		if (stalled >= STALL_EXCUSE_US) {
			printf("SKIP: the system kept stalling on memory (%.0f ms) after the child "
			       "was gone\n",
			       (double)stalled / 1000);
			skipped = true;
			skip();
		}
		fail_msg("still Low %d ms after the pressure ended", RECOVER_MS);
	}
	print_message("%s %.0f ms after the child was gone\n", level_name(d.level),
		      (double)(d.ns - t0) / 1e6);
	memory_load(mm, &load, &avail);
	release_last(mm);
	assert_int_not_equal(d.level, eMemoryAvailableLow);
	test_cb_fini(&cb);
	if (load >= MAX_LOAD) {
		/* The machine filled up meanwhile: the load may have brought Low as well. */
		printf("SKIP: the system's memory load rose to %u %% during the test\n",
		       (unsigned)load);
		skipped = true;
		skip();
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stall_delivers_low),
	};
	const char *why = NULL;
	char path[4200];
	int rc;

	policy_init();
	if (!psi_triggers(&why) || !find_disk_dir(setup.dir, sizeof(setup.dir), &why)) {
		printf("SKIP: %s\n", why);
		return SKIP;
	}
	if (monitor_watches_own_cgroup(path, sizeof(path))) {
		printf("SKIP: the monitor watches this process's own cgroup (%s), and a child "
		       "cgroup with a memory limit cannot be made under a group that holds "
		       "processes\n",
		       path);
		return SKIP;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGHUP, on_signal);
	atexit(cleanup);
	if (!create_cgroup(&setup.cg, &why)) {
		printf("SKIP: %s\n", why);
		return SKIP;
	}
	printf("cgroup %s (%s), file in %s\n", cgroup_dir, setup.cg.v2 ? "v2" : "v1", setup.dir);
	fflush(stdout);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	cleanup();
	if (rc == 0 && skipped) {
		rc = SKIP;
	}
#if defined(POLICY_HAVE_URCU_BP)
	urcu_bp_barrier();
#endif
	return rc;
}
