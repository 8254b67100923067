/* SPDX-License-Identifier: MIT */
/*
 * A hash map from 64-bit keys to non-NULL pointers: open addressing with
 * linear probing and backward-shift deletion (no tombstones), Fibonacci
 * hashing, grown at 70% load. Processes, managers and heaps are found
 * through it.
 */
#ifndef CLRMEMTRACE_ANALYSIS_MAP_H
#define CLRMEMTRACE_ANALYSIS_MAP_H

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

#endif /* CLRMEMTRACE_ANALYSIS_MAP_H */
