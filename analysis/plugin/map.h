/* SPDX-License-Identifier: MIT */
/*
 * A hash map from 64-bit keys to non-NULL pointers: open addressing with
 * linear probing and backward-shift deletion (no tombstones), Fibonacci
 * hashing, grown at 70% load. Processes, managers and heaps are found
 * through it.
 */
#ifndef CLRMEMTRACE_ANALYSIS_MAP_H
#define CLRMEMTRACE_ANALYSIS_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cmt_map_slot {
	uint64_t key;
	void *val; /* NULL: empty */
};

struct cmt_map {
	struct cmt_map_slot *slots;
	uint32_t cap; /* 0 or a power of two */
	uint32_t count;
};

static inline uint32_t cmt_hash64(uint64_t key, uint32_t cap)
{
	return (uint32_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (cap - 1);
}

/* The value of `key`, or NULL. */
static inline void *cmt_map_get(const struct cmt_map *m, uint64_t key)
{
	uint32_t i;

	if (m->cap == 0) {
		return 0;
	}
	for (i = cmt_hash64(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slots[i].val) {
			return 0;
		}
		if (m->slots[i].key == key) {
			return m->slots[i].val;
		}
	}
}

/* Sets `key` to `val` (non-NULL). Returns 0, or -1 when memory runs out. */
int cmt_map_put(struct cmt_map *m, uint64_t key, void *val);

/* Removes `key`; returns its value, or NULL if it was absent. */
void *cmt_map_remove(struct cmt_map *m, uint64_t key);

void cmt_map_fini(struct cmt_map *m);

/*
 * An index of interned items (sites, paths) by their 64-bit hash: open
 * addressing on non-zero hashes, each slot naming an item id, grown at 70%
 * load. The items live in the caller's array, which says when two match.
 */
struct cmt_hindex {
	uint64_t *hashes; /* 0: empty */
	uint32_t *ids;
	uint32_t cap; /* 0 or a power of two */
};

/* FNV-1a of n bytes (0 is left to the caller, as it means empty). */
static inline uint64_t cmt_fnv1a(const char *s, size_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	size_t i;

	for (i = 0; i < n; i++) {
		h = (h ^ (unsigned char)s[i]) * UINT64_C(0x100000001b3);
	}
	return h;
}

/*
 * Makes room for one more item beside the index's n, the first table
 * having `first` slots (a power of two). Returns 0, or -1 when memory runs
 * out (the index is unchanged).
 */
int cmt_hindex_room(struct cmt_hindex *x, uint32_t n, uint32_t first);

/*
 * The slot holding hash h (non-zero) whose item `same` accepts, with *found
 * true; else the empty slot where such an item goes. The index has room.
 */
static inline uint32_t cmt_hindex_find(const struct cmt_hindex *x, uint64_t h,
				       bool (*same)(const void *ctx, uint32_t id), const void *ctx,
				       bool *found)
{
	uint32_t i;

	for (i = cmt_hash64(h, x->cap); x->hashes[i]; i = (i + 1) & (x->cap - 1)) {
		if (x->hashes[i] == h && same(ctx, x->ids[i])) {
			*found = true;
			return i;
		}
	}
	*found = false;
	return i;
}

/* Fills the empty `slot` cmt_hindex_find returned. */
static inline void cmt_hindex_set(struct cmt_hindex *x, uint32_t slot, uint64_t h, uint32_t id)
{
	x->hashes[slot] = h;
	x->ids[slot] = id;
}

void cmt_hindex_fini(struct cmt_hindex *x);

#endif /* CLRMEMTRACE_ANALYSIS_MAP_H */
