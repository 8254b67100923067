/* SPDX-License-Identifier: MIT */
/*
 * What tracing costs, as two ratios of variants measured side by side in one
 * run (alternating short rounds; the ratio is the median of the rounds'):
 *
 *   trace-idle   the core VM cycle (reserve 1 MiB -> commit 64 KiB ->
 *                protect 16 KiB -> decommit 64 KiB -> release, as in
 *                bench-core) through the library with tracing compiled in
 *                and no session, vs through the same sources built without
 *                tracing (CLRMEMTRACE_TRACE_NONE); both loaded with
 *                dlopen(RTLD_LOCAL) (target <= 1.02)
 *   event-cost   with a session recording, what a virtual_alloc event adds
 *                to a call (the call on a traced manager minus the same call
 *                on a CLRMEMTRACE_FLAG_NO_TRACE manager), vs what a bare
 *                LTTng-UST tracepoint with the same ten integer fields costs
 *                (target <= 1.50)
 *
 * For event-cost the benchmark runs lttng itself: it uses the session daemon
 * that answers, or starts one (and stops it, by its PID, at the end), and
 * records into a snapshot session with per-process buffers in overwrite
 * mode, so the ring buffer never fills and nothing is written to disk. It
 * takes one snapshot at the end to check that both events were recorded.
 *
 * Output: one line per benchmark, "name ratio target verdict (detail)".
 * Options: --quick (fewer rounds), --json (machine-readable lines).
 */
#include <clrmemtrace.h>

#include "bench-common.h"
#include "bench_tp.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_TRACE_LIB
#define BENCH_TRACE_LIB "libclrmemtrace.so.0"
#endif
#ifndef BENCH_NOTRACE_LIB
#define BENCH_NOTRACE_LIB "libclrmemtrace-notrace.so"
#endif

typedef HRESULT (*create_fn)(const clrmemtrace_options *options, IHostMemoryManager **out);
typedef HRESULT (*statedump_fn)(void);

static bool quick;
static bool json;

/*
 * The calling thread's CPU time, system calls included: what the variants
 * cost, without the time the thread waits while other programs run (the
 * ratios are meant to hold on a busy machine too).
 */
static uint64_t cpu_ns(void)
{
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench-trace: %s: %s\n", what, why);
	exit(1);
}

static void check(const char *what, HRESULT hr)
{
	if (hr != S_OK) {
		die(what, "failed");
	}
}

/* ---------- The two libraries ---------- */

struct lib {
	void *handle;
	create_fn create;
	statedump_fn statedump;
};

static void lib_open(struct lib *lib, const char *path)
{
	lib->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib->handle) {
		die(path, dlerror());
	}
	lib->create = (create_fn)dlsym(lib->handle, "clrmemtrace_create");
	lib->statedump = (statedump_fn)dlsym(lib->handle, "clrmemtrace_statedump");
	if (!lib->create || !lib->statedump) {
		die(path, "no clrmemtrace_create or clrmemtrace_statedump");
	}
}

static IHostMemoryManager *manager(const struct lib *lib, uint32_t flags)
{
	clrmemtrace_options opts = { .size = sizeof(opts), .flags = flags, .name = "bench-trace" };
	IHostMemoryManager *mm = NULL;

	check("clrmemtrace_create", lib->create(&opts, &mm));
	return mm;
}

/* ---------- trace-idle ---------- */

#define RESERVE_SIZE ((size_t)1 << 20)
#define COMMIT_SIZE ((size_t)64 << 10)
#define PROTECT_SIZE ((size_t)16 << 10)

static void cycle(IHostMemoryManager *mm, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		void *p = NULL, *c = NULL;
		DWORD old;

		check("reserve",
		      IHostMemoryManager_VirtualAlloc(mm, NULL, RESERVE_SIZE, MEM_RESERVE,
						      PAGE_NOACCESS, eTaskCritical, &p));
		check("commit", IHostMemoryManager_VirtualAlloc(mm, p, COMMIT_SIZE, MEM_COMMIT,
								PAGE_READWRITE, eTaskCritical, &c));
		check("protect",
		      IHostMemoryManager_VirtualProtect(mm, p, PROTECT_SIZE, PAGE_READONLY, &old));
		check("decommit", IHostMemoryManager_VirtualFree(mm, p, COMMIT_SIZE, MEM_DECOMMIT));
		check("release", IHostMemoryManager_VirtualFree(mm, p, 0, MEM_RELEASE));
	}
}

static void bench_trace_idle(const struct lib *traced, const struct lib *plain)
{
	IHostMemoryManager *a = manager(traced, 0), *b = manager(plain, 0);
	int rounds = quick ? 101 : 401, per = 200, r;
	static double ratios[401], wall[401], cost_a[401], cost_b[401];
	char detail[200];
	bool busy;

	/* Some session records clrmemtrace's events already: then tracing is not idle. */
	busy = traced->statedump() == S_OK;
	cycle(a, per / 4);
	cycle(b, per / 4);
	for (r = 0; r < rounds; r++) {
		uint64_t w0, w1, w2, c0, c1, c2;
		IHostMemoryManager *first = r % 2 ? b : a, *second = r % 2 ? a : b;
		double da, db;

		/* Which goes first alternates, so a drift in the machine's speed cancels out. */
		w0 = clock_ns(CLOCK_MONOTONIC);
		c0 = cpu_ns();
		cycle(first, per);
		w1 = clock_ns(CLOCK_MONOTONIC);
		c1 = cpu_ns();
		cycle(second, per);
		w2 = clock_ns(CLOCK_MONOTONIC);
		c2 = cpu_ns();
		da = (double)(r % 2 ? c2 - c1 : c1 - c0);
		db = (double)(r % 2 ? c1 - c0 : c2 - c1);
		ratios[r] = da / db;
		wall[r] = (double)(r % 2 ? w2 - w1 : w1 - w0) / (double)(r % 2 ? w1 - w0 : w2 - w1);
		cost_a[r] = da / per;
		cost_b[r] = db / per;
	}
	snprintf(detail, sizeof(detail),
		 "%.0f ns vs %.0f ns of CPU per cycle, tracing compiled in vs not; "
		 "wall time %.3f%s",
		 median(cost_a, rounds), median(cost_b, rounds), median(wall, rounds),
		 busy ? "; a session records clrmemtrace: not idle" : "");
	report(json, "trace-idle", median(ratios, rounds), 1.02, detail);
	IHostMemoryManager_Release(a);
	IHostMemoryManager_Release(b);
}

/* ---------- Running lttng ---------- */

extern char **environ;

/*
 * Starts argv with its standard streams on /dev/null, in a new session when
 * `setsid`. posix_spawn, not fork: fork runs the pthread_atfork handlers of
 * both copies of the library, and liburcu-bp's do not nest.
 */
static pid_t spawn(const char *const argv[], bool setsid)
{
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	sigset_t sigpipe;
	pid_t pid;
	int err;

	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
	/* The child starts with SIGPIPE back to its default, whatever this process does. */
	sigemptyset(&sigpipe);
	sigaddset(&sigpipe, SIGPIPE);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigdefault(&attr, &sigpipe);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | (setsid ? POSIX_SPAWN_SETSID : 0));
	err = posix_spawnp(&pid, argv[0], &actions, &attr, (char *const *)argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&actions);
	return err ? -1 : pid;
}

/* Runs argv (output discarded); returns its exit status, or -1. */
static int run(const char *const argv[])
{
	pid_t pid = spawn(argv, false);
	int status;

	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status)) {
		return -1;
	}
	return WEXITSTATUS(status);
}

/* Runs `lttng --no-sessiond ARGS...` (NULL-terminated); returns its exit status, or -1. */
static int lttng(const char *arg, ...)
{
	const char *argv[24] = { "lttng", "--no-sessiond" };
	size_t n = 2;
	va_list ap;

	va_start(ap, arg);
	for (; arg && n < sizeof(argv) / sizeof(argv[0]) - 1; arg = va_arg(ap, const char *)) {
		argv[n++] = arg;
	}
	va_end(ap);
	argv[n] = NULL;
	return run(argv);
}

/* Runs a shell command line; returns its exit status, or -1. */
static int shell(const char *line)
{
	const char *argv[] = { "sh", "-c", line, NULL };

	return run(argv);
}

static bool daemon_answers(void)
{
	return lttng("list", NULL) == 0;
}

/* A session daemon this benchmark started, stopped by its PID at the end. */
static pid_t own_daemon;

static bool start_daemon(void)
{
	const char *argv[] = { "lttng-sessiond", "--no-kernel", NULL };
	pid_t pid = spawn(argv, true);
	int i;

	if (pid < 0) {
		return false;
	}
	own_daemon = pid;
	for (i = 0; i < 200; i++) {
		if (daemon_answers()) {
			return true;
		}
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			own_daemon = 0;
			return false;
		}
		usleep(50000);
	}
	return false;
}

static void stop_daemon(void)
{
	if (own_daemon > 0) {
		kill(own_daemon, SIGTERM);
		waitpid(own_daemon, NULL, 0);
		own_daemon = 0;
	}
}

/* ---------- event-cost ---------- */

#define EVENT_CALLS 2000

/* A call that emits a full virtual_alloc event and does no system call: dwSize 0 is refused. */
static void failing_allocs(IHostMemoryManager *mm, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		void *p;

		if (IHostMemoryManager_VirtualAlloc(mm, NULL, 0, MEM_RESERVE, PAGE_READWRITE,
						    eTaskCritical, &p) != E_INVALIDARG) {
			die("VirtualAlloc", "a zero size was not refused");
		}
	}
}

static void bare_events(int n)
{
	struct bench_bare10 ev = { .manager_id = 1, .hr = (int32_t)E_INVALIDARG };
	int i;

	for (i = 0; i < n; i++) {
		ev.seq = (uint64_t)i;
		ev.duration_ns = (uint64_t)i * 3;
		lttng_ust_tracepoint(clrmemtrace_bench, bare10, &ev);
	}
}

/* The same loop with the tracepoint's arguments prepared but no tracepoint. */
static void empty_loop(int n)
{
	struct bench_bare10 ev = { .manager_id = 1, .hr = (int32_t)E_INVALIDARG };
	int i;

	for (i = 0; i < n; i++) {
		ev.seq = (uint64_t)i;
		ev.duration_ns = (uint64_t)i * 3;
		__asm__ __volatile__("" : : "r"(&ev) : "memory");
	}
}

/* Whether `event` is in the session's snapshot (babeltrace2 reads it). */
static bool in_snapshot(const char *dir, const char *event)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "babeltrace2 '%s' | grep -q '%s'", dir, event);
	return shell(cmd) == 0;
}

/* A signal that ends the program, caught while a session exists (0: none). */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

static bool interrupted(void)
{
	return stop_signal != 0;
}

static void measure_event_cost(const struct lib *traced, const char *session, const char *dir)
{
	IHostMemoryManager *on = manager(traced, 0);
	IHostMemoryManager *off = manager(traced, CLRMEMTRACE_FLAG_NO_TRACE);
	int rounds = quick ? 101 : 401, per = EVENT_CALLS, r;
	static double ratios[401], extra_ns[401], bare_ns[401], off_ns[401];
	char detail[256];
	/* Another program's session recording clrmemtrace would add its own cost. */
	bool busy = traced->statedump() == S_OK;

	failing_allocs(on, per / 4);
	failing_allocs(off, per / 4);
	bare_events(per / 4);
	for (r = 0; r < rounds && !interrupted(); r++) {
		uint64_t t0, t1, t2, t3, t4;

		t0 = cpu_ns();
		failing_allocs(on, per);
		t1 = cpu_ns();
		failing_allocs(off, per);
		t2 = cpu_ns();
		bare_events(per);
		t3 = cpu_ns();
		empty_loop(per);
		t4 = cpu_ns();
		extra_ns[r] = ((double)(t1 - t0) - (double)(t2 - t1)) / per;
		bare_ns[r] = ((double)(t3 - t2) - (double)(t4 - t3)) / per;
		off_ns[r] = (double)(t2 - t1) / per;
		ratios[r] = extra_ns[r] / bare_ns[r];
	}
	if (r < rounds) {
		report_skip(json, "event-cost", 1.50, "interrupted");
	} else if (lttng("snapshot", "record", "-s", session, NULL) != 0) {
		report_skip(json, "event-cost", 1.50, "lttng snapshot record failed");
	} else if (!in_snapshot(dir, "clrmemtrace:virtual_alloc") ||
		   !in_snapshot(dir, "clrmemtrace_bench:bare10")) {
		report_skip(json, "event-cost", 1.50, "the events were not recorded");
	} else {
		snprintf(detail, sizeof(detail),
			 "virtual_alloc adds %.1f ns to a %.1f ns call; bare tracepoint %.1f ns%s",
			 median(extra_ns, rounds), median(off_ns, rounds), median(bare_ns, rounds),
			 busy ? "; another session records clrmemtrace too" : "");
		report(json, "event-cost", median(ratios, rounds), 1.50, detail);
	}
	IHostMemoryManager_Release(on);
	IHostMemoryManager_Release(off);
}

/*
 * Sets up the session, measures, and always cleans up: a signal that would
 * end the program (on any of its threads) only stops the measurement, and
 * ends the program once the session is destroyed, its output removed and
 * any daemon of ours stopped.
 */
static void bench_event_cost(const struct lib *traced)
{
	static const int fatal[] = { SIGINT, SIGTERM, SIGHUP };
	char dir[] = "/tmp/bench-trace-XXXXXX", session[64], output[128], rm[160];
	struct sigaction catch = { .sa_handler = on_stop_signal, .sa_flags = SA_RESTART };
	struct sigaction ignore = { .sa_handler = SIG_IGN }, old[3], old_pipe;
	const char *channel = "bench";
	int i;

	sigemptyset(&catch.sa_mask);
	sigemptyset(&ignore.sa_mask);
	for (i = 0; i < 3; i++) {
		sigaction(fatal[i], &catch, &old[i]);
	}
	sigaction(SIGPIPE, &ignore, &old_pipe);

	if (!daemon_answers() && !start_daemon()) {
		stop_daemon();
		report_skip(json, "event-cost", 1.50,
			    "no LTTng session daemon (lttng-tools installed?)");
		goto out;
	}
	if (!mkdtemp(dir)) {
		die("mkdtemp", "failed");
	}
	snprintf(session, sizeof(session), "bench-trace-%ld", (long)getpid());
	snprintf(output, sizeof(output), "--output=%s", dir);
	if (lttng("create", session, "--snapshot", output, NULL) != 0 ||
	    lttng("enable-channel", "-u", "-s", session, "--buffers-pid", "--overwrite",
		  "--subbuf-size=1M", "--num-subbuf=4", channel, NULL) != 0 ||
	    lttng("enable-event", "-u", "-s", session, "-c", channel,
		  "clrmemtrace:virtual_alloc,clrmemtrace_bench:bare10", NULL) != 0 ||
	    lttng("add-context", "-u", "-s", session, "-c", channel, "-t", "vpid", "-t", "vtid",
		  "-t", "procname", NULL) != 0 ||
	    lttng("start", session, NULL) != 0) {
		report_skip(json, "event-cost", 1.50, "could not set up an LTTng session");
	} else {
		/* This process registers with the daemon in the background: wait for it. */
		for (i = 0; i < 200 && !interrupted() &&
			    !lttng_ust_tracepoint_enabled(clrmemtrace_bench, bare10);
		     i++) {
			usleep(50000);
		}
		measure_event_cost(traced, session, dir);
	}
	lttng("destroy", session, NULL);
	snprintf(rm, sizeof(rm), "rm -rf '%s'", dir);
	if (shell(rm) != 0) {
		fprintf(stderr, "bench-trace: could not remove %s\n", dir);
	}
out:
	stop_daemon();
	for (i = 0; i < 3; i++) {
		sigaction(fatal[i], &old[i], NULL);
	}
	sigaction(SIGPIPE, &old_pipe, NULL);
	if (stop_signal) {
		raise(stop_signal);
	}
}

int main(int argc, char **argv)
{
	struct lib traced, plain;

	if (!bench_options(argc, argv, &quick, &json)) {
		return 2;
	}
	lib_open(&traced, BENCH_TRACE_LIB);
	lib_open(&plain, BENCH_NOTRACE_LIB);
	bench_trace_idle(&traced, &plain);
	bench_event_cost(&traced);
	return 0;
}
