/* SPDX-License-Identifier: MIT */
/*
 * Read-copy-update from liburcu's "bulletproof" flavour, which needs no
 * per-thread registration: the library is called from threads it does not
 * own. Readers (VirtualQuery, heap frees) never wait; writers publish new
 * versions and hand the old ones to call_rcu, so they never wait for readers
 * either, not even for a reader that the runtime has suspended mid-query.
 */
#ifndef CLRMEMTRACE_RCU_H
#define CLRMEMTRACE_RCU_H

#include <urcu/urcu-bp.h>

#include <stdbool.h>

static inline void rcu_lock(void)
{
	urcu_bp_read_lock();
}

static inline void rcu_unlock(void)
{
	urcu_bp_read_unlock();
}

#ifdef _LGPL_SOURCE
/*
 * Whether this thread is registered with liburcu-bp already, so that
 * rcu_lock calls nothing: a fast path that checks this first and leaves
 * the first section of a thread to its slow path needs no frame of its own.
 */
static inline bool rcu_registered(void)
{
	return URCU_TLS(urcu_bp_reader) != NULL;
}
#endif

/* Loads a pointer published with rcu_publish (consume ordering). */
#define rcu_load(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
/* Publishes a fully initialised object to readers. */
#define rcu_publish(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)

/* Frees head's container after a grace period, on liburcu's call_rcu thread. */
static inline void rcu_defer(struct rcu_head *head, void (*fn)(struct rcu_head *))
{
	urcu_bp_call_rcu(head, fn);
}

#endif /* CLRMEMTRACE_RCU_H */
