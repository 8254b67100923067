/* SPDX-License-Identifier: MIT */
/*
 * A map from 64 KiB granules of the address space to objects, read without
 * locks under RCU.
 *
 * Every reservation (and every heap span) starts on a 64 KiB boundary, so a
 * granule belongs to at most one object. The map is a three-level radix tree
 * over granule numbers in which an entry at any level may stand for its whole
 * subtree, the way a page table maps huge pages: a 256 GiB reservation costs a
 * few entries, not four million, and a lookup is three dependent loads
 * whatever the number of objects.
 *
 * Readers (addrmap_lookup, addrmap_prev, addrmap_next) must be inside an RCU
 * read-side critical section (liburcu-bp) and never wait. Writers
 * (addrmap_insert, addrmap_remove, addrmap_fini) must be serialized by the
 * caller; nodes they unlink are freed after a grace period with call_rcu, so
 * writers never wait for readers either.
 */
#ifndef CLRMEMTRACE_ADDRMAP_H
#define CLRMEMTRACE_ADDRMAP_H

#include <stdint.h>

struct addrmap_node;

struct addrmap {
	struct addrmap_node *root;
};

/* Returns 0 or ERROR_NOT_ENOUGH_MEMORY. */
int clrmemtrace__addrmap_init(struct addrmap *m);

/* Frees every node at once. No reader or writer may be using the map. */
void clrmemtrace__addrmap_fini(struct addrmap *m);

/*
 * Maps the granules of [base, end) to value (non-NULL, at least 2-byte
 * aligned). base is granule-aligned; the granules must be unmapped. Returns 0,
 * or ERROR_NOT_ENOUGH_MEMORY with the map unchanged.
 */
int clrmemtrace__addrmap_insert(struct addrmap *m, uintptr_t base, uintptr_t end, void *value);

/* Unmaps the granules of [base, end), which were mapped by one insert. */
void clrmemtrace__addrmap_remove(struct addrmap *m, uintptr_t base, uintptr_t end);

/* The object of the granule holding addr, or NULL. */
void *clrmemtrace__addrmap_lookup(const struct addrmap *m, uintptr_t addr);

/* The object of the nearest mapped granule at or above addr's granule, or NULL. */
void *clrmemtrace__addrmap_next(const struct addrmap *m, uintptr_t addr);

/* The object of the nearest mapped granule strictly below addr's granule, or NULL. */
void *clrmemtrace__addrmap_prev(const struct addrmap *m, uintptr_t addr);

#endif /* CLRMEMTRACE_ADDRMAP_H */
