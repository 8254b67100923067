/* SPDX-License-Identifier: MIT */
/*
 * Read-copy-update from liburcu's "bulletproof" flavour, which needs no
 * per-thread registration: the library is called from threads it does not
 * own. Readers (VirtualQuery, heap frees) never wait; writers publish new
 * versions and hand the old ones to call_rcu, so they never wait for readers
 * either, not even for a reader that the runtime has suspended mid-query.
 *
 * Grace periods under ThreadSanitizer: liburcu is not instrumented, so TSan
 * cannot see that a grace period orders every read-side section that could
 * still see an object before the object's deferred free. The functions below
 * tell it, and compile to nothing in any other build:
 * - rcu_unlock releases one process-wide sync object,
 *   clrmemtrace__rcu_tsan_readers, before it leaves the section, so that
 *   object's clock covers every access any reader made inside a section it
 *   has left;
 * - rcu_defer releases the rcu_head, so the callback comes after what the
 *   retiring thread did to the object;
 * - every callback begins with rcu_after_grace_period, which acquires both.
 * This is sound: the grace period ends only after every reader that could
 * still see the object has left its section, so each of their releases
 * precedes the callback's acquire. It is coarser than the grace period (a
 * section that ended before the callback is ordered before it, even one that
 * began after rcu_defer), never finer: a reader still inside its section
 * when the object is freed is not ordered before the free, and that race is
 * reported. Whatever a callback hands on (reclaim.c's batches, a region in
 * vm_posix.c's cache) is ordered after it through the hand-over's own lock
 * or atomics.
 */
#ifndef CLRMEMTRACE_RCU_H
#define CLRMEMTRACE_RCU_H

#include <urcu/urcu-bp.h>

#include <stdbool.h>

#if defined(__SANITIZE_THREAD__)
#define CLRMEMTRACE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CLRMEMTRACE_TSAN 1
#endif
#endif

#ifdef CLRMEMTRACE_TSAN
#include <sanitizer/tsan_interface.h>

/* The sync object every reader releases on leaving a section (reclaim.c). */
extern char clrmemtrace__rcu_tsan_readers;
#endif

static inline void rcu_lock(void)
{
	urcu_bp_read_lock();
}

static inline void rcu_unlock(void)
{
#ifdef CLRMEMTRACE_TSAN
	__tsan_release(&clrmemtrace__rcu_tsan_readers);
#endif
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

/*
 * Frees head's container after a grace period, on liburcu's call_rcu thread:
 * fn must begin with rcu_after_grace_period(head).
 */
static inline void rcu_defer(struct rcu_head *head, void (*fn)(struct rcu_head *))
{
#ifdef CLRMEMTRACE_TSAN
	__tsan_release(head);
#endif
	urcu_bp_call_rcu(head, fn);
}

/*
 * The first call of every rcu_defer callback: under ThreadSanitizer, orders
 * what follows after the readers the grace period waited for and after the
 * thread that called rcu_defer.
 */
static inline void rcu_after_grace_period(struct rcu_head *head)
{
#ifdef CLRMEMTRACE_TSAN
	__tsan_acquire(head);
	__tsan_acquire(&clrmemtrace__rcu_tsan_readers);
#else
	(void)head;
#endif
}

#endif /* CLRMEMTRACE_RCU_H */
