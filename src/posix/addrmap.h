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
 * writers never wait for readers either. Emptied nodes stay linked until
 * enough of them accumulate, so a reserve/release cycle allocates nothing
 * but its own objects.
 */
#ifndef CLRMEMTRACE_ADDRMAP_H
#define CLRMEMTRACE_ADDRMAP_H

#include <stddef.h>
#include <stdint.h>

#define ADDRMAP_GRANULE_SHIFT 16u
#define ADDRMAP_LEAF_BITS 10u
#define ADDRMAP_MID_BITS 10u

struct addrmap_node {
	void *rcu_head_space[2]; /* a struct rcu_head, for deferred freeing */
	uint32_t used;           /* non-empty slots; writers only */
	uint32_t level;          /* 0 root, 1 mid, 2 leaf */
	uintptr_t slot[];
};

/* Granule-number bits of the user address space (set by the first addrmap_init). */
extern unsigned clrmemtrace__addrmap_granule_bits;

struct addrmap {
	struct addrmap_node *root;
	/* Nodes left empty by removals; pruned in batches, so churn does not reallocate. */
	size_t empty_nodes;
};

/* Returns 0 or ERROR_NOT_ENOUGH_MEMORY. */
int clrmemtrace__addrmap_init(struct addrmap *m);

/* Frees every node at once. No reader or writer may be using the map. */
void clrmemtrace__addrmap_fini(struct addrmap *m);

/*
 * Maps the granules of [base, end) to value (non-NULL, at least 2-byte
 * aligned). base is granule-aligned; the granules must be unmapped. Returns 0,
 * or ERROR_NOT_ENOUGH_MEMORY with the map unchanged; readers may have seen
 * value in the meantime, so the caller frees it only after a grace period.
 */
int clrmemtrace__addrmap_insert(struct addrmap *m, uintptr_t base, uintptr_t end, void *value);

/* Unmaps the granules of [base, end), which were mapped by one insert. */
void clrmemtrace__addrmap_remove(struct addrmap *m, uintptr_t base, uintptr_t end);

/* The object of the granule holding addr, or NULL. Three dependent loads. */
static inline void *clrmemtrace__addrmap_lookup(const struct addrmap *m, uintptr_t addr)
{
	uintptr_t g = addr >> ADDRMAP_GRANULE_SHIFT, e;
	const struct addrmap_node *n = m->root;

	if (g >> clrmemtrace__addrmap_granule_bits) {
		return NULL;
	}
	e = __atomic_load_n(&n->slot[g >> (ADDRMAP_LEAF_BITS + ADDRMAP_MID_BITS)], __ATOMIC_ACQUIRE);
	if (!(e & 1u)) {
		return (void *)e;
	}
	n = (const struct addrmap_node *)(e & ~(uintptr_t)1);
	e = __atomic_load_n(&n->slot[(g >> ADDRMAP_LEAF_BITS) & ((1u << ADDRMAP_MID_BITS) - 1)],
			    __ATOMIC_ACQUIRE);
	if (!(e & 1u)) {
		return (void *)e;
	}
	n = (const struct addrmap_node *)(e & ~(uintptr_t)1);
	return (void *)__atomic_load_n(&n->slot[g & ((1u << ADDRMAP_LEAF_BITS) - 1)],
				       __ATOMIC_ACQUIRE);
}

/* The object of the nearest mapped granule at or above addr's granule, or NULL. */
void *clrmemtrace__addrmap_next(const struct addrmap *m, uintptr_t addr);

/* The object of the nearest mapped granule strictly below addr's granule, or NULL. */
void *clrmemtrace__addrmap_prev(const struct addrmap *m, uintptr_t addr);

#endif /* CLRMEMTRACE_ADDRMAP_H */
