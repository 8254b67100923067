/* SPDX-License-Identifier: MIT */
/*
 * The pointer hash map.
 */
#include "map.h"

#include <stdlib.h>

static int grow(struct cmt_map *m)
{
	uint32_t cap = m->cap ? m->cap * 2 : 16, i;
	struct cmt_map_slot *slots;

	if (cap == 0) {
		return -1;
	}
	slots = calloc(cap, sizeof(*slots));
	if (!slots) {
		return -1;
	}
	for (i = 0; i < m->cap; i++) {
		uint32_t j;

		if (!m->slots[i].val) {
			continue;
		}
		for (j = cmt_hash64(m->slots[i].key, cap); slots[j].val; j = (j + 1) & (cap - 1)) {
		}
		slots[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

int cmt_map_put(struct cmt_map *m, uint64_t key, void *val)
{
	uint32_t i;

	if ((uint64_t)(m->count + 1) * 10 > (uint64_t)m->cap * 7 && grow(m) != 0) {
		return -1;
	}
	for (i = cmt_hash64(key, m->cap); m->slots[i].val; i = (i + 1) & (m->cap - 1)) {
		if (m->slots[i].key == key) {
			m->slots[i].val = val;
			return 0;
		}
	}
	m->slots[i].key = key;
	m->slots[i].val = val;
	m->count++;
	return 0;
}

void *cmt_map_remove(struct cmt_map *m, uint64_t key)
{
	uint32_t i, j, mask = m->cap - 1;
	void *val;

	if (m->cap == 0) {
		return NULL;
	}
	for (i = cmt_hash64(key, m->cap);; i = (i + 1) & mask) {
		if (!m->slots[i].val) {
			return NULL;
		}
		if (m->slots[i].key == key) {
			break;
		}
	}
	val = m->slots[i].val;
	/* Backward shift: move later entries of the cluster into the hole when allowed. */
	for (j = (i + 1) & mask; m->slots[j].val; j = (j + 1) & mask) {
		uint32_t home = cmt_hash64(m->slots[j].key, m->cap);

		/* Entry j may move to i when its home is not within (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].val = NULL;
	m->slots[i].key = 0;
	m->count--;
	return val;
}

void cmt_map_fini(struct cmt_map *m)
{
	free(m->slots);
	m->slots = NULL;
	m->cap = 0;
	m->count = 0;
}

int cmt_hindex_room(struct cmt_hindex *x, uint32_t n, uint32_t first)
{
	uint32_t cap = x->cap ? x->cap * 2 : first, i, j;
	uint64_t *hashes;
	uint32_t *ids;

	if ((uint64_t)(n + 1) * 10 <= (uint64_t)x->cap * 7) {
		return 0;
	}
	hashes = calloc(cap, sizeof(*hashes));
	ids = calloc(cap, sizeof(*ids));
	if (!hashes || !ids) {
		free(hashes);
		free(ids);
		return -1;
	}
	for (i = 0; i < x->cap; i++) {
		if (!x->hashes[i]) {
			continue;
		}
		for (j = cmt_hash64(x->hashes[i], cap); hashes[j]; j = (j + 1) & (cap - 1)) {
		}
		hashes[j] = x->hashes[i];
		ids[j] = x->ids[i];
	}
	free(x->hashes);
	free(x->ids);
	x->hashes = hashes;
	x->ids = ids;
	x->cap = cap;
	return 0;
}

void cmt_hindex_fini(struct cmt_hindex *x)
{
	free(x->hashes);
	free(x->ids);
	x->hashes = NULL;
	x->ids = NULL;
	x->cap = 0;
}
