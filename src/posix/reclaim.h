/* SPDX-License-Identifier: MIT */
/*
 * Deferred reclamation in batches, freed by writers.
 *
 * Objects that readers may still be looking at (a replaced page-state array,
 * a released reservation) are retired into a batch; a full batch waits one
 * RCU grace period (call_rcu) and is then handed back, and the next writer
 * to call clrmemtrace__reclaim() frees it. Batching makes one grace period
 * cover many objects, and freeing in a writer's thread lets malloc reuse
 * the memory locally instead of receiving it from liburcu's thread.
 */
#ifndef CLRMEMTRACE_RECLAIM_H
#define CLRMEMTRACE_RECLAIM_H

struct retired {
	struct retired *next;
	void (*dtor)(struct retired *r);
};

/* An owner's open batch; guarded by the owner's lock. */
struct reclaimer {
	struct retired *open;
	unsigned count;
};

/* Retires r: dtor(r) runs after every reader that could see r is gone. */
void clrmemtrace__retire(struct reclaimer *rc, struct retired *r, void (*dtor)(struct retired *));

/* Frees the owner's open batch now: only when no reader can exist any more. */
void clrmemtrace__retire_now(struct reclaimer *rc);

/* Frees the batches whose grace period has passed; cheap when there are none. */
void clrmemtrace__reclaim(void);

#endif /* CLRMEMTRACE_RECLAIM_H */
