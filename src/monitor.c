/* SPDX-License-Identifier: MIT */
/*
 * The memory-notification monitor: see monitor.h.
 */
#include "monitor.h"

#include "hostmem.h"
#include "policy.h"
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>

/* How long a pressure stall keeps the level at Low: the trigger's window (pressure.c). */
#define STALL_HOLD_NS 2000000000ull

struct monitor {
	struct hostmem *m;
	struct clrmemtrace_pressure *pressure;
	struct clrmemtrace_thread *thread;
	int stop;                 /* atomic */
	int detached;             /* atomic: stopped from its own thread, frees itself */
	unsigned registrations;   /* atomic: bumped by each registration */
	int level;                /* the level last delivered (0: none yet) */
	uint64_t stall_until_ns;
};

struct verdict {
	uint32_t load;
	char reason[96];
};

/* The load the level follows: the budget's, the system's, or a pressure stall. */
static void evaluate(struct monitor *mon, struct verdict *v)
{
	struct policy *p = &mon->m->policy;
	uint64_t avail, total;
	uint32_t sys_load;

	v->load = 0;
	snprintf(v->reason, sizeof(v->reason), "no measure");
	if (p->commit_budget) {
		v->load = clrmemtrace__policy_budget_load(p, &avail);
		snprintf(v->reason, sizeof(v->reason), "commit budget %u%% used", v->load);
	}
	if (clrmemtrace__memory_status(&sys_load, &avail, &total) == 0 &&
	    (!p->commit_budget || sys_load > v->load)) {
		v->load = sys_load;
		snprintf(v->reason, sizeof(v->reason), "system memory %u%% used", sys_load);
	}
	if (clrmemtrace__now_ns() < mon->stall_until_ns && v->load < p->low_percent) {
		v->load = p->low_percent;
		snprintf(v->reason, sizeof(v->reason), "memory pressure stall (%s)",
			 clrmemtrace__pressure_source(mon->pressure));
	}
}

/*
 * Calls the registered callback with no lock held, and traces the delivery.
 * The callback may release the manager: nothing of it is touched afterwards.
 */
static void deliver(struct monitor *mon, int level, const struct verdict *v)
{
	struct hostmem *m = mon->m;
	ICLRMemoryNotificationCallback *cb;
	bool trace = m->trace;
	uint64_t id = m->id, t0;
	HRESULT hr;

	clrmemtrace_mutex_lock(&m->lock);
	cb = m->callback;
	if (cb) {
		cb->lpVtbl->AddRef(cb);
	}
	clrmemtrace_mutex_unlock(&m->lock);
	if (!cb) {
		return;
	}
	t0 = clrmemtrace__now_ns();
	hr = cb->lpVtbl->OnMemoryNotification(cb, (EMemoryAvailable)level);
	if (trace && CLRMEMTRACE_TRACE_ON(memory_notification)) {
		struct ctev_memory_notification ev = {
			.manager_id = id,
			.callback = (uintptr_t)cb,
			.level = level,
			.hr = hr,
			.load = v->load,
			.duration_ns = clrmemtrace__now_ns() - t0,
			.reason = v->reason,
		};

		CLRMEMTRACE_TRACE(memory_notification, &ev);
	}
	cb->lpVtbl->Release(cb);
}

/*
 * How long to wait: the poll interval, or less while a stall holds the
 * level at Low, so that Low ends with the hold and not at the next poll
 * (which may be minutes away where triggers make polling rare).
 */
static uint32_t wait_ms(const struct monitor *mon, uint32_t poll_ms)
{
	uint64_t now = clrmemtrace__now_ns(), left;

	if (mon->stall_until_ns <= now) {
		return poll_ms;
	}
	left = (mon->stall_until_ns - now + 999999) / 1000000;
	return left < poll_ms ? (uint32_t)left : poll_ms;
}

static void *monitor_thread(void *arg)
{
	struct monitor *mon = arg;
	struct policy *p = &mon->m->policy;
	unsigned seen_registrations = 0;

	clrmemtrace__thread_name("clrmemtrace-mon");
	while (!__atomic_load_n(&mon->stop, __ATOMIC_ACQUIRE)) {
		unsigned registrations = __atomic_load_n(&mon->registrations, __ATOMIC_ACQUIRE);
		struct verdict v;
		bool stall = false;
		int level;

		evaluate(mon, &v);
		level = clrmemtrace__policy_level(p, mon->level, v.load);
		if (level != mon->level) {
			/* The first evaluation is no transition: only Low is worth telling then. */
			if (mon->level || level == eMemoryAvailableLow) {
				deliver(mon, level, &v);
			}
			mon->level = level;
		} else if (registrations != seen_registrations && level == eMemoryAvailableLow) {
			/* A callback registered while memory is low learns it at once. */
			deliver(mon, level, &v);
		}
		if (__atomic_load_n(&mon->stop, __ATOMIC_ACQUIRE)) {
			break;
		}
		seen_registrations = registrations;
		clrmemtrace__pressure_wait(mon->pressure, wait_ms(mon, p->poll_interval_ms), &stall);
		if (stall) {
			mon->stall_until_ns = clrmemtrace__now_ns() + STALL_HOLD_NS;
		}
	}
	if (__atomic_load_n(&mon->detached, __ATOMIC_ACQUIRE)) {
		clrmemtrace__pressure_close(mon->pressure);
		free(mon);
	}
	return NULL;
}

int clrmemtrace__monitor_start(struct hostmem *m)
{
	struct monitor *mon;
	int err = 0;

	/*
	 * Under the manager's lock: registrations racing on other threads must
	 * find the one monitor, not each start their own (the others would be
	 * left running, never stopped, on a manager that is freed).
	 */
	clrmemtrace_mutex_lock(&m->lock);
	mon = __atomic_load_n(&m->monitor, __ATOMIC_ACQUIRE);
	if (mon) {
		__atomic_add_fetch(&mon->registrations, 1, __ATOMIC_RELEASE);
		clrmemtrace__pressure_kick(mon->pressure);
		goto out;
	}
	mon = calloc(1, sizeof(*mon));
	if (!mon) {
		err = ERROR_NOT_ENOUGH_MEMORY;
		goto out;
	}
	mon->m = m;
	mon->registrations = 1;
	err = clrmemtrace__pressure_open(&mon->pressure);
	if (err) {
		free(mon);
		goto out;
	}
	err = clrmemtrace__thread_start(monitor_thread, mon, &mon->thread);
	if (err) {
		clrmemtrace__pressure_close(mon->pressure);
		free(mon);
		goto out;
	}
	__atomic_store_n(&m->monitor, mon, __ATOMIC_RELEASE);
out:
	clrmemtrace_mutex_unlock(&m->lock);
	return err;
}

void clrmemtrace__monitor_kick(struct hostmem *m)
{
	struct monitor *mon = __atomic_load_n(&m->monitor, __ATOMIC_ACQUIRE);

	if (mon) {
		clrmemtrace__pressure_kick(mon->pressure);
	}
}

void clrmemtrace__monitor_stop(struct hostmem *m)
{
	struct monitor *mon = __atomic_exchange_n(&m->monitor, NULL, __ATOMIC_ACQ_REL);

	if (!mon) {
		return;
	}
	if (clrmemtrace__thread_is_current(mon->thread)) {
		__atomic_store_n(&mon->detached, 1, __ATOMIC_RELEASE);
		__atomic_store_n(&mon->stop, 1, __ATOMIC_RELEASE);
		clrmemtrace__thread_detach(mon->thread);
		return;
	}
	__atomic_store_n(&mon->stop, 1, __ATOMIC_RELEASE);
	clrmemtrace__pressure_kick(mon->pressure);
	clrmemtrace__thread_join(mon->thread);
	clrmemtrace__pressure_close(mon->pressure);
	free(mon);
}
