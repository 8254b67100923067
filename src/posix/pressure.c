/* SPDX-License-Identifier: MIT */
/*
 * What the notification monitor waits on (monitor.h), on Linux:
 * - an eventfd, written when a budget crosses a threshold or the monitor
 *   must stop;
 * - a pressure-stall trigger (PSI): "some" memory stall of 300 ms within a
 *   2 s window, on the cgroup's memory.pressure when the process is in a
 *   cgroup v2 group that has one, else on /proc/pressure/memory;
 * - a timeout, for polling the memory load when no trigger can be set up
 *   (older kernels, no permission) and to re-evaluate after a stall.
 */
#include "monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct clrmemtrace_pressure {
	int wake_fd;
	int psi_fd;
	char source[128];
};

struct clrmemtrace_thread {
	pthread_t id;
};

/* The cgroup v2 memory.pressure of this process, if there is one. */
static bool cgroup_pressure_path(char *path, size_t len)
{
	char buf[4096];
	ssize_t n;
	int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
	char *line, *save = NULL;

	if (fd < 0) {
		return false;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		return false;
	}
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "0::", 3) == 0) {
			snprintf(path, len, "/sys/fs/cgroup%s/memory.pressure",
				 strcmp(line + 3, "/") == 0 ? "" : line + 3);
			return access(path, W_OK) == 0;
		}
	}
	return false;
}

static int psi_trigger(const char *path)
{
	/*
	 * 15 % of a 2 s window: without CAP_SYS_RESOURCE (Linux 6.4+ lets any
	 * process set triggers) the kernel takes only windows in multiples of
	 * 2 s, and refuses a 1 s one with EINVAL.
	 */
	static const char trigger[] = "some 300000 2000000";
	int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0) {
		return -1;
	}
	if (write(fd, trigger, sizeof(trigger)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int clrmemtrace__pressure_open(struct clrmemtrace_pressure **out)
{
	struct clrmemtrace_pressure *p = calloc(1, sizeof(*p));
	char path[4200];

	if (!p) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->wake_fd < 0) {
		free(p);
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	p->psi_fd = -1;
	if (cgroup_pressure_path(path, sizeof(path))) {
		p->psi_fd = psi_trigger(path);
		if (p->psi_fd >= 0) {
			snprintf(p->source, sizeof(p->source), "cgroup memory.pressure");
		}
	}
	if (p->psi_fd < 0) {
		p->psi_fd = psi_trigger("/proc/pressure/memory");
		if (p->psi_fd >= 0) {
			snprintf(p->source, sizeof(p->source), "/proc/pressure/memory");
		}
	}
	if (p->psi_fd < 0) {
		snprintf(p->source, sizeof(p->source), "polling");
	}
	*out = p;
	return 0;
}

const char *clrmemtrace__pressure_source(const struct clrmemtrace_pressure *p)
{
	return p->source;
}

void clrmemtrace__pressure_kick(struct clrmemtrace_pressure *p)
{
	uint64_t one = 1;

	/* Only fails when the counter would overflow: then a wake-up is pending anyway. */
	(void)!write(p->wake_fd, &one, sizeof(one));
}

int clrmemtrace__pressure_wait(struct clrmemtrace_pressure *p, uint32_t timeout_ms, bool *stall)
{
	struct pollfd fds[2] = {
		{ .fd = p->wake_fd, .events = POLLIN },
		{ .fd = p->psi_fd, .events = POLLPRI },
	};
	int n;

	*stall = false;
	n = poll(fds, p->psi_fd >= 0 ? 2 : 1, (int)timeout_ms);
	if (n < 0) {
		return errno == EINTR ? 0 : ERROR_INTERNAL_ERROR;
	}
	if (fds[0].revents & POLLIN) {
		uint64_t v;

		(void)!read(p->wake_fd, &v, sizeof(v));
	}
	if (p->psi_fd >= 0 && (fds[1].revents & POLLPRI)) {
		*stall = true;
	}
	if (p->psi_fd >= 0 && (fds[1].revents & POLLERR)) {
		/* The trigger went away (its cgroup was removed): poll from now on. */
		close(p->psi_fd);
		p->psi_fd = -1;
		snprintf(p->source, sizeof(p->source), "polling");
	}
	return 0;
}

void clrmemtrace__pressure_close(struct clrmemtrace_pressure *p)
{
	if (!p) {
		return;
	}
	close(p->wake_fd);
	if (p->psi_fd >= 0) {
		close(p->psi_fd);
	}
	free(p);
}

/* ---------- Threads ---------- */

int clrmemtrace__thread_start(void *(*fn)(void *), void *arg, struct clrmemtrace_thread **out)
{
	struct clrmemtrace_thread *t = malloc(sizeof(*t));
	sigset_t all, old;
	int err;

	if (!t) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	/* The thread takes no signals: they belong to the host's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&t->id, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		free(t);
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	*out = t;
	return 0;
}

bool clrmemtrace__thread_is_current(const struct clrmemtrace_thread *t)
{
	return pthread_equal(t->id, pthread_self()) != 0;
}

void clrmemtrace__thread_join(struct clrmemtrace_thread *t)
{
	pthread_join(t->id, NULL);
	free(t);
}

void clrmemtrace__thread_detach(struct clrmemtrace_thread *t)
{
	pthread_detach(t->id);
	free(t);
}

void clrmemtrace__thread_name(const char *name)
{
	pthread_setname_np(pthread_self(), name);
}
