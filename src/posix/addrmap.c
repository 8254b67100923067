/* SPDX-License-Identifier: MIT */
/*
 * RCU granule map: see addrmap.h.
 *
 * Slots hold 0 (unmapped), an object pointer (bit 0 clear), or a child node
 * pointer with bit 0 set. Level 0 is the root; an entry at level l covers
 * 2^shift[l] granules. Writers publish a child node before any value below
 * it, and clear values before unlinking an emptied node, so a reader always
 * sees either the old or the new mapping of each granule.
 */
#include "addrmap.h"

#include "internal.h"
#include "rcu.h"

#include <stdlib.h>
#include <string.h>

#define LEAF_BITS ADDRMAP_LEAF_BITS
#define MID_BITS ADDRMAP_MID_BITS
#define LEVELS 3u
#define GRANULE_SHIFT ADDRMAP_GRANULE_SHIFT

_Static_assert(sizeof(struct rcu_head) <= sizeof(((struct addrmap_node *)0)->rcu_head_space),
	       "addrmap_node has room for an RCU head");

#define NODE_RCU(n) ((struct rcu_head *)(n)->rcu_head_space)

unsigned clrmemtrace__addrmap_granule_bits;

static void compute_granule_bits(void)
{
	uintptr_t last = (clrmemtrace__sys.user_limit - 1) >> GRANULE_SHIFT;
	unsigned bits = 0;

	while (last) {
		bits++;
		last >>= 1;
	}
	if (bits <= LEAF_BITS + MID_BITS) {
		bits = LEAF_BITS + MID_BITS + 1;
	}
	__atomic_store_n(&clrmemtrace__addrmap_granule_bits, bits, __ATOMIC_RELAXED);
}

static inline unsigned granule_bits(void)
{
	return clrmemtrace__addrmap_granule_bits;
}

static unsigned level_shift(unsigned level)
{
	static const unsigned shift[LEVELS] = { LEAF_BITS + MID_BITS, LEAF_BITS, 0 };

	return shift[level];
}

static uintptr_t level_slots(unsigned level)
{
	if (level == 0) {
		return (uintptr_t)1 << (granule_bits() - LEAF_BITS - MID_BITS);
	}
	return (uintptr_t)1 << (level == 1 ? MID_BITS : LEAF_BITS);
}

static uintptr_t total_granules(void)
{
	return (uintptr_t)1 << granule_bits();
}

static struct addrmap_node *node_new(unsigned level)
{
	size_t n = level_slots(level);
	struct addrmap_node *node = calloc(1, sizeof(*node) + n * sizeof(uintptr_t));

	if (node) {
		node->level = level;
	}
	return node;
}

static void node_free_rcu(struct rcu_head *head)
{
	rcu_after_grace_period(head);
	free((struct addrmap_node *)((char *)head - offsetof(struct addrmap_node, rcu_head_space)));
}

static bool is_node(uintptr_t e)
{
	return e & 1u;
}

static struct addrmap_node *as_node(uintptr_t e)
{
	return (struct addrmap_node *)(e & ~(uintptr_t)1);
}

static uintptr_t load_slot(const struct addrmap_node *n, uintptr_t i)
{
	return __atomic_load_n(&n->slot[i], __ATOMIC_ACQUIRE);
}

static void store_slot(struct addrmap_node *n, uintptr_t i, uintptr_t v)
{
	__atomic_store_n(&n->slot[i], v, __ATOMIC_RELEASE);
}

/* Every non-root node with no entry is counted in m->empty_nodes. */
static void node_used_inc(struct addrmap *m, struct addrmap_node *n)
{
	if (n->used++ == 0 && n->level != 0) {
		m->empty_nodes--;
	}
}

static void node_used_dec(struct addrmap *m, struct addrmap_node *n)
{
	if (--n->used == 0 && n->level != 0) {
		m->empty_nodes++;
	}
}

int clrmemtrace__addrmap_init(struct addrmap *m)
{
	m->empty_nodes = 0;
	if (!granule_bits()) {
		compute_granule_bits();
	}
	m->root = node_new(0);
	return m->root ? 0 : ERROR_NOT_ENOUGH_MEMORY;
}

static void free_tree(struct addrmap_node *n)
{
	uintptr_t i, slots = level_slots(n->level);

	for (i = 0; i < slots && n->used; i++) {
		if (is_node(n->slot[i])) {
			free_tree(as_node(n->slot[i]));
		}
	}
	free(n);
}

void clrmemtrace__addrmap_fini(struct addrmap *m)
{
	if (m->root) {
		free_tree(m->root);
		m->root = NULL;
	}
}

/* Leaf: one entry per granule, entries i..last each wholly covered. */
static void leaf_fill(struct addrmap *m, struct addrmap_node *n, uintptr_t i, uintptr_t last,
		      void *value)
{
	if (n->used == 0) {
		m->empty_nodes--;
	}
	n->used += (uint32_t)(last - i + 1);
	for (; i <= last; i++) {
		store_slot(n, i, (uintptr_t)value);
	}
}

static void leaf_clear(struct addrmap *m, struct addrmap_node *n, uintptr_t i, uintptr_t last)
{
	uint32_t cleared = 0;

	/* No branch per slot: clearing an empty slot again changes nothing. */
	for (; i <= last; i++) {
		cleared += n->slot[i] != 0;
		__atomic_store_n(&n->slot[i], 0, __ATOMIC_RELAXED);
	}
	if (cleared) {
		n->used -= cleared;
		if (n->used == 0) {
			m->empty_nodes++;
		}
	}
}

/*
 * Stores value in the entries of node n (covering granules from `first`)
 * for [gb, ge), creating child nodes on the way. On failure some entries
 * may hold value already; the caller removes them.
 */
static int walk_insert(struct addrmap *m, struct addrmap_node *n, uintptr_t first, uintptr_t gb,
		       uintptr_t ge, void *value)
{
	unsigned shift = level_shift(n->level);
	uintptr_t span = (uintptr_t)1 << shift;
	uintptr_t i = (gb - first) >> shift, last = (ge - 1 - first) >> shift;

	if (n->level == LEVELS - 1) {
		leaf_fill(m, n, i, last, value);
		return 0;
	}
	for (; i <= last; i++) {
		uintptr_t ef = first + (i << shift), ee = ef + span;
		uintptr_t lo = gb > ef ? gb : ef, hi = ge < ee ? ge : ee;
		uintptr_t e = n->slot[i];
		struct addrmap_node *child;
		int err;

		if (lo == ef && hi == ee && !is_node(e)) {
			store_slot(n, i, (uintptr_t)value);
			node_used_inc(m, n);
			continue;
		}
		if (!is_node(e)) {
			child = node_new(n->level + 1);
			if (!child) {
				return ERROR_NOT_ENOUGH_MEMORY;
			}
			m->empty_nodes++;
			store_slot(n, i, (uintptr_t)child | 1u);
			node_used_inc(m, n);
		} else {
			child = as_node(e);
		}
		err = walk_insert(m, child, ef, lo, hi, value);
		if (err) {
			return err;
		}
	}
	return 0;
}

/* Clears the entries for [gb, ge) below n; emptied nodes stay linked. */
static void walk_remove(struct addrmap *m, struct addrmap_node *n, uintptr_t first, uintptr_t gb,
			uintptr_t ge)
{
	unsigned shift = level_shift(n->level);
	uintptr_t i = (gb - first) >> shift, last = (ge - 1 - first) >> shift;
	uintptr_t span = (uintptr_t)1 << shift;

	if (n->level == LEVELS - 1) {
		leaf_clear(m, n, i, last);
		return;
	}
	for (; i <= last; i++) {
		uintptr_t ef = first + (i << shift), ee = ef + span;
		uintptr_t lo = gb > ef ? gb : ef, hi = ge < ee ? ge : ee;
		uintptr_t e = n->slot[i];

		if (!e) {
			continue;
		}
		if (!is_node(e)) {
			store_slot(n, i, 0);
			node_used_dec(m, n);
			continue;
		}
		walk_remove(m, as_node(e), ef, lo, hi);
	}
}

/* Unlinks every empty node below n (children first); they are freed after readers. */
static void prune(struct addrmap *m, struct addrmap_node *n)
{
	uintptr_t i, slots = level_slots(n->level);

	for (i = 0; i < slots; i++) {
		uintptr_t e = n->slot[i];

		if (!is_node(e)) {
			continue;
		}
		prune(m, as_node(e));
		if (as_node(e)->used == 0) {
			store_slot(n, i, 0);
			m->empty_nodes--;
			node_used_dec(m, n);
			rcu_defer(NODE_RCU(as_node(e)), node_free_rcu);
		}
	}
}

#define PRUNE_THRESHOLD 64

/*
 * Writers: the leaf holding the entries of granules [gb, ge) when they all
 * lie under one leaf that exists already (the common case: objects smaller
 * than a leaf's 64 MiB, next to others), else NULL. The walks would end in
 * that leaf too, at greater cost.
 */
static struct addrmap_node *one_leaf(const struct addrmap *m, uintptr_t gb, uintptr_t ge)
{
	uintptr_t e;

	if (gb >> LEAF_BITS != (ge - 1) >> LEAF_BITS) {
		return NULL;
	}
	e = m->root->slot[gb >> (LEAF_BITS + MID_BITS)];
	if (!is_node(e)) {
		return NULL;
	}
	e = as_node(e)->slot[(gb >> LEAF_BITS) & ((1u << MID_BITS) - 1)];
	return is_node(e) ? as_node(e) : NULL;
}

int clrmemtrace__addrmap_insert(struct addrmap *m, uintptr_t base, uintptr_t end, void *value)
{
	uintptr_t gb = base >> GRANULE_SHIFT;
	uintptr_t ge = (end + CLRMEMTRACE_GRANULARITY - 1) >> GRANULE_SHIFT;
	struct addrmap_node *leaf;
	int err;

	if (ge > total_granules() || gb >= ge || ((uintptr_t)value & 1u)) {
		return ERROR_INVALID_PARAMETER;
	}
	leaf = one_leaf(m, gb, ge);
	if (leaf) {
		uintptr_t i = gb & ((1u << LEAF_BITS) - 1);

		leaf_fill(m, leaf, i, i + (ge - gb) - 1, value);
		return 0;
	}
	err = walk_insert(m, m->root, 0, gb, ge, value);
	if (err) {
		/* The range was empty: take back what was stored, and the nodes made for it. */
		walk_remove(m, m->root, 0, gb, ge);
		prune(m, m->root);
	}
	return err;
}

void clrmemtrace__addrmap_remove(struct addrmap *m, uintptr_t base, uintptr_t end)
{
	uintptr_t gb = base >> GRANULE_SHIFT;
	uintptr_t ge = (end + CLRMEMTRACE_GRANULARITY - 1) >> GRANULE_SHIFT;
	struct addrmap_node *leaf;

	if (ge > total_granules() || gb >= ge) {
		return;
	}
	leaf = one_leaf(m, gb, ge);
	if (leaf) {
		uintptr_t i = gb & ((1u << LEAF_BITS) - 1);

		leaf_clear(m, leaf, i, i + (ge - gb) - 1);
	} else {
		walk_remove(m, m->root, 0, gb, ge);
	}
	if (m->empty_nodes > PRUNE_THRESHOLD) {
		prune(m, m->root);
	}
}

/* Smallest mapped granule >= g below n (covering granules from first). */
static void *find_next(const struct addrmap_node *n, uintptr_t first, uintptr_t g)
{
	unsigned shift = level_shift(n->level);
	uintptr_t i = g > first ? (g - first) >> shift : 0, slots = level_slots(n->level);

	for (; i < slots; i++) {
		uintptr_t e = load_slot(n, i);
		uintptr_t ef = first + (i << shift);
		void *found;

		if (!e) {
			continue;
		}
		if (!is_node(e)) {
			return (void *)e;
		}
		found = find_next(as_node(e), ef, g > ef ? g : ef);
		if (found) {
			return found;
		}
	}
	return NULL;
}

/* Largest mapped granule < g below n (covering granules from first); g > first. */
static void *find_prev(const struct addrmap_node *n, uintptr_t first, uintptr_t g)
{
	unsigned shift = level_shift(n->level);
	uintptr_t slots = level_slots(n->level);
	uintptr_t i = ((g - 1 - first) >> shift) + 1;

	if (i > slots) {
		i = slots;
	}
	while (i-- > 0) {
		uintptr_t e = load_slot(n, i);
		uintptr_t ef = first + (i << shift), ee = ef + ((uintptr_t)1 << shift);
		void *found;

		if (!e) {
			continue;
		}
		if (!is_node(e)) {
			return (void *)e;
		}
		found = find_prev(as_node(e), ef, g < ee ? g : ee);
		if (found) {
			return found;
		}
	}
	return NULL;
}

void *clrmemtrace__addrmap_next(const struct addrmap *m, uintptr_t addr)
{
	uintptr_t g = addr >> GRANULE_SHIFT;

	if (g >= total_granules()) {
		return NULL;
	}
	return find_next(m->root, 0, g);
}

void *clrmemtrace__addrmap_prev(const struct addrmap *m, uintptr_t addr)
{
	uintptr_t g = addr >> GRANULE_SHIFT;

	if (g == 0) {
		return NULL;
	}
	if (g > total_granules()) {
		g = total_granules();
	}
	return find_prev(m->root, 0, g);
}
