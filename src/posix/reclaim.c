/* SPDX-License-Identifier: MIT */
/*
 * Deferred reclamation in batches: see reclaim.h.
 */
#include "reclaim.h"

#include "internal.h"
#include "rcu.h"

#include <pthread.h>
#include <stdlib.h>

#define BATCH_SIZE 64u

#ifdef CLRMEMTRACE_TSAN
char clrmemtrace__rcu_tsan_readers;
#endif

struct batch {
	struct rcu_head rcu;
	struct batch *next, *prev;
	struct retired *list;
};

/*
 * Batches waiting for their grace period, and batches past it. Keeping the
 * waiting ones on a list of our own also keeps their objects reachable, so a
 * leak checker at exit does not take a pending free for a leak.
 */
static pthread_mutex_t ready_lock = PTHREAD_MUTEX_INITIALIZER;
static struct batch *waiting;
static struct batch *ready;

/*
 * A batch past its grace period. Under ThreadSanitizer, rcu_after_grace_period
 * orders this after the batch's readers, and ready_lock orders the reclaiming
 * writer's frees after this.
 */
static void batch_ready(struct rcu_head *head)
{
	struct batch *b = container_of(head, struct batch, rcu);

	rcu_after_grace_period(head);
	pthread_mutex_lock(&ready_lock);
	if (b->prev) {
		b->prev->next = b->next;
	} else {
		waiting = b->next;
	}
	if (b->next) {
		b->next->prev = b->prev;
	}
	b->prev = NULL;
	b->next = ready;
	__atomic_store_n(&ready, b, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&ready_lock);
}

static void run_list(struct retired *r)
{
	while (r) {
		struct retired *next = r->next;

		r->dtor(r);
		r = next;
	}
}

static void submit(struct reclaimer *rc)
{
	struct batch *b = malloc(sizeof(*b));

	if (!b) {
		return; /* the open batch keeps growing; the next retire tries again */
	}
	b->list = rc->open;
	rc->open = NULL;
	rc->count = 0;
	pthread_mutex_lock(&ready_lock);
	b->prev = NULL;
	b->next = waiting;
	if (waiting) {
		waiting->prev = b;
	}
	waiting = b;
	pthread_mutex_unlock(&ready_lock);
	rcu_defer(&b->rcu, batch_ready);
}

void clrmemtrace__retire(struct reclaimer *rc, struct retired *r, void (*dtor)(struct retired *))
{
	r->dtor = dtor;
	r->next = rc->open;
	rc->open = r;
	if (++rc->count >= BATCH_SIZE) {
		submit(rc);
	}
}

void clrmemtrace__retire_now(struct reclaimer *rc)
{
	run_list(rc->open);
	rc->open = NULL;
	rc->count = 0;
}

void clrmemtrace__reclaim(void)
{
	struct batch *b;

	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
		return;
	}
	pthread_mutex_lock(&ready_lock);
	b = ready;
	/* Atomic: other threads test it without the lock, above. */
	__atomic_store_n(&ready, NULL, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&ready_lock);
	while (b) {
		struct batch *next = b->next;

		run_list(b->list);
		free(b);
		b = next;
	}
}
