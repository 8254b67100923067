/* SPDX-License-Identifier: MIT */
/*
 * Heaps (analysis/README.md, "Heaps"): per heap, an open-addressing hash
 * table from pointer to block (linear probing, 24-byte entries, grown at
 * 70% load). Entries stay after their block is freed, marked freed, so a
 * refused free can be told a double free from a pointer never handed out;
 * when freed entries outnumber both CMT_FREED_MEMORY and twice the live
 * ones, the table is rebuilt with the live ones only.
 *
 * State dumps: a block allocated or freed during its manager's dump is
 * marked touched in the dump's generation and the dump's word about it is
 * ignored. The blocks a dump lists are kept aside until its statedump_end,
 * where they become the live set: live blocks neither listed nor touched
 * went away, and heaps the dump did not list were destroyed. A block's event
 * can come after the dump that saw its change (EVENTS.md): a listed block the
 * state did not hold is marked unseen, so that its malloc_alloc may still
 * follow, and a block of a dumped heap that the state does not hold may
 * still get its malloc_free; a listed block whose last event before the dump
 * was a malloc_free stays freed.
 */
#include "state.h"

#include <stdlib.h>
#include <string.h>

#define GEN_MASK (UINT32_MAX >> CMT_B_GEN_SHIFT)

static uint32_t block_state(const struct cmt_block *b)
{
	return b->meta & CMT_B_STATE;
}

static uint32_t block_gen(const struct cmt_block *b)
{
	return b->meta >> CMT_B_GEN_SHIFT;
}

static void block_set(struct cmt_block *b, uint32_t state, uint32_t marks, uint32_t gen)
{
	b->meta = state | marks | ((gen & GEN_MASK) << CMT_B_GEN_SHIFT);
}

static bool heap_known(const struct cmt_heap *h)
{
	return h->known && h->known_epoch == h->m->heap_epoch;
}

static void set_heap_known(struct cmt_engine *e, struct cmt_heap *h)
{
	h->known = true;
	h->known_epoch = h->m->heap_epoch;
	cmt_expose(e, h->m);
}

/* Whether b is a live block listed or touched during the manager's current dump. */
static bool is_marked(const struct cmt_heap *h, const struct cmt_block *b)
{
	return block_state(b) == CMT_B_LIVE && (b->meta & (CMT_B_TOUCHED | CMT_B_CONFIRMED)) &&
	       block_gen(b) == (h->m->dump_gen & GEN_MASK);
}

/* Keeps marked_live counting the marked live blocks of the current dump. */
static void count_marked(struct cmt_heap *h, bool before, bool after)
{
	if (h->marked_gen != h->m->dump_gen) {
		h->marked_gen = h->m->dump_gen;
		h->marked_live = 0;
		before = false;
	}
	h->marked_live = h->marked_live + after - before;
}

static uint32_t slot_of(const struct cmt_heap *h, uint64_t ptr)
{
	return cmt_hash64(ptr, h->cap);
}

/* The entry of ptr, or NULL. */
static struct cmt_block *find(const struct cmt_heap *h, uint64_t ptr)
{
	uint32_t i;

	if (!h->cap) {
		return NULL;
	}
	for (i = slot_of(h, ptr); h->tab[i].meta; i = (i + 1) & (h->cap - 1)) {
		if (h->tab[i].ptr == ptr) {
			return &h->tab[i];
		}
	}
	return NULL;
}

/* Rebuilds the table with `cap` slots, keeping freed entries unless `live_only`. */
static int rebuild(struct cmt_heap *h, uint32_t cap, bool live_only)
{
	struct cmt_block *tab = calloc(cap, sizeof(*tab));
	uint32_t i;

	if (!tab) {
		return -1;
	}
	h->used = 0;
	h->freed = 0;
	for (i = 0; i < h->cap; i++) {
		const struct cmt_block *b = &h->tab[i];
		uint32_t j;

		if (!b->meta || (live_only && block_state(b) != CMT_B_LIVE)) {
			continue;
		}
		for (j = cmt_hash64(b->ptr, cap); tab[j].meta; j = (j + 1) & (cap - 1)) {
		}
		tab[j] = *b;
		h->used++;
		if (block_state(b) == CMT_B_FREED) {
			h->freed++;
		}
	}
	free(h->tab);
	h->tab = tab;
	h->cap = cap;
	return 0;
}

/* Forgets the freed entries, in a table sized for the live ones. */
static int purge_freed(struct cmt_heap *h)
{
	uint32_t cap = h->cap;

	while (cap > 16 && (uint64_t)h->live * 10 < (uint64_t)(cap / 2) * 3) {
		cap /= 2;
	}
	return rebuild(h, cap, true);
}

/* The entry of ptr, made (empty, meta 0) if absent; NULL without memory. */
static struct cmt_block *find_or_add(struct cmt_engine *e, struct cmt_heap *h, uint64_t ptr)
{
	struct cmt_block *b = find(h, ptr);
	uint32_t i;

	if (b) {
		return b;
	}
	if (h->freed > CMT_FREED_MEMORY && h->freed > 2 * (uint64_t)h->live &&
	    purge_freed(h) != 0) {
		cmt_fail(e);
		return NULL;
	}
	if ((uint64_t)(h->used + 1) * 10 > (uint64_t)h->cap * 7) {
		uint32_t cap = h->cap ? h->cap * 2 : 16;

		if (cap == 0 || rebuild(h, cap, false) != 0) {
			cmt_fail(e);
			return NULL;
		}
	}
	for (i = slot_of(h, ptr); h->tab[i].meta; i = (i + 1) & (h->cap - 1)) {
	}
	b = &h->tab[i];
	b->ptr = ptr;
	b->size = 0;
	b->site = 0;
	return b;
}

/* Makes b (new, live or freed) a live block. */
static void make_live(struct cmt_engine *e, struct cmt_heap *h, struct cmt_block *b, uint64_t size,
		      uint32_t site, uint32_t marks, uint32_t gen)
{
	struct cmt_manager *m = h->m;
	uint32_t was = block_state(b);
	bool marked = is_marked(h, b);

	if (was == CMT_B_LIVE) {
		cmt_sub_heap_live(e, m, b->size, 0);
		cmt_total_sub(&h->live_bytes, &h->live_hi, b->size);
	} else {
		if (was == CMT_B_FREED) {
			h->freed--;
		} else {
			h->used++;
		}
		h->live++;
		m->h.live_blocks++;
		e->live_blocks++;
	}
	b->size = size;
	b->site = site;
	block_set(b, CMT_B_LIVE, marks, gen);
	count_marked(h, marked, is_marked(h, b));
	cmt_total_add(&h->live_bytes, &h->live_hi, size);
	cmt_add_heap_live(e, m, size);
}

/* Makes b (new, live or freed) a freed entry. */
static void make_freed(struct cmt_engine *e, struct cmt_heap *h, struct cmt_block *b,
		       uint32_t marks, uint32_t gen)
{
	struct cmt_manager *m = h->m;
	uint32_t was = block_state(b);

	count_marked(h, is_marked(h, b), false);
	if (was == CMT_B_LIVE) {
		cmt_sub_heap_live(e, m, b->size, 0);
		cmt_total_sub(&h->live_bytes, &h->live_hi, b->size);
		h->live--;
		h->freed++;
		m->h.live_blocks--;
		e->live_blocks--;
	} else if (was == 0) {
		h->used++;
		h->freed++;
		b->size = 0;
	}
	b->site = 0;
	block_set(b, CMT_B_FREED, marks, gen);
}

static void heap_clear(struct cmt_engine *e, struct cmt_heap *h)
{
	struct cmt_manager *m = h->m;

	cmt_sub_heap_live(e, m, h->live_bytes, h->live_hi);
	m->h.live_blocks -= h->live;
	e->live_blocks -= h->live;
	h->live_bytes = 0;
	h->live_hi = 0;
	h->live = h->used = h->freed = 0;
	h->marked_live = 0;
	free(h->tab);
	h->tab = NULL;
	h->cap = 0;
}

static struct cmt_heap *get_heap(struct cmt_engine *e, struct cmt_manager *m, uint64_t id,
				 bool known)
{
	struct cmt_heap *h = m->last_heap;

	if (h && h->id == id) {
		h->listed_gen = 0;
		return h;
	}
	h = cmt_map_get(&m->heaps, id);
	if (h) {
		h->listed_gen = 0;
	} else {
		h = calloc(1, sizeof(*h));
		if (!h) {
			cmt_fail(e);
			return NULL;
		}
		h->id = id;
		h->m = m;
		if (cmt_map_put(&m->heaps, id, h) != 0) {
			free(h);
			cmt_fail(e);
			return NULL;
		}
		m->h.heaps++;
		e->heaps++;
		if (known) {
			set_heap_known(e, h);
		} else if (!m->dump.active) {
			/* During a dump, its end says: listed, known; not listed, gone. */
			m->reasons |= CMT_R_HEAP_UNKNOWN;
		}
	}
	m->last_heap = h;
	return h;
}

static void on_alloc(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	uint64_t ptr = ev->f[CMT_F_PTR];
	struct cmt_heap *h;
	struct cmt_block *b;
	uint32_t site, marks = 0, gen = 0;

	if ((int32_t)ev->f[CMT_F_HR] != CMT_S_OK) {
		return;
	}
	e->allocs++;
	m->h.allocs++;
	h = get_heap(e, m, ev->f[CMT_F_HEAP_ID], false);
	if (!h) {
		return;
	}
	site = cmt_site_intern(e, (ev->spresent & (1u << CMT_S_FILE)) ? ev->s[CMT_S_FILE] : "",
			       (int64_t)ev->f[CMT_F_LINE]);
	b = find_or_add(e, h, ptr);
	if (!b) {
		return;
	}
	if (block_state(b) == CMT_B_LIVE && heap_known(h) && !(b->meta & CMT_B_UNSEEN)) {
		/*
		 * Handed out twice without a free between: the state missed an
		 * event. (A block a dump listed before its alloc was traced gets
		 * its malloc_alloc after the dump: that is its first event.)
		 */
		m->reasons |= CMT_R_HEAP_INCONSISTENT;
	}
	if (m->dump.active) {
		marks = CMT_B_TOUCHED;
		gen = m->dump_gen;
	}
	make_live(e, h, b, ev->f[CMT_F_SIZE], site, marks, gen);
}

static void on_free(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	uint64_t ptr = ev->f[CMT_F_PTR];
	struct cmt_heap *h = get_heap(e, m, ev->f[CMT_F_HEAP_ID], false);
	struct cmt_block *b;
	uint32_t marks = 0, gen = 0;

	if (!h) {
		return;
	}
	if ((int32_t)ev->f[CMT_F_HR] != CMT_S_OK) {
		if (!ptr) {
			return;
		}
		b = find(h, ptr);
		if (b && block_state(b) == CMT_B_FREED) {
			cmt_anomaly(e, CMT_A_DOUBLE_FREE, m, ev, ptr, 0,
				    "free of a block of heap %llu already freed",
				    (unsigned long long)h->id);
		} else if (!b && heap_known(h)) {
			cmt_anomaly(e, CMT_A_FREE_UNKNOWN, m, ev, ptr, 0,
				    "free of a pointer heap %llu never handed out",
				    (unsigned long long)h->id);
		}
		return;
	}
	if (!ptr) {
		/* Free(NULL) succeeds and frees nothing. */
		return;
	}
	e->frees++;
	m->h.frees++;
	b = find_or_add(e, h, ptr);
	if (!b) {
		return;
	}
	if (block_state(b) != CMT_B_LIVE && heap_known(h) && !m->dump.active &&
	    !(h->dumped && (block_state(b) == 0 || (b->meta & CMT_B_DROPPED)))) {
		/*
		 * A free of a block the heap did not hold: the state missed an
		 * event. (A block a dump did not list, or dropped, with no event
		 * since, may have been freed just before the dump read the heap,
		 * its malloc_free traced after: that is its first event.)
		 */
		m->reasons |= CMT_R_HEAP_INCONSISTENT;
	}
	if (m->dump.active) {
		marks = CMT_B_TOUCHED;
		gen = m->dump_gen;
	}
	make_freed(e, h, b, marks, gen);
}

/* The heap went away with its blocks: they are not leaks, and it is forgotten. */
static void destroy_heap(struct cmt_engine *e, struct cmt_heap *h)
{
	struct cmt_manager *m = h->m;

	heap_clear(e, h);
	cmt_map_remove(&m->heaps, h->id);
	if (m->last_heap == h) {
		m->last_heap = NULL;
	}
	free(h);
}

#define MAX_DUMP_BLOCKS (UINT64_C(1) << 26)

/* A block a dump lists: kept until statedump_end, where the dump replaces the live set. */
static void on_dump_block(struct cmt_engine *e, struct cmt_manager *m,
			  const struct cmt_event *ev)
{
	struct cmt_dump *d = &m->dump;
	struct cmt_dblock *b;

	if (!d->active) {
		m->reasons |= CMT_R_INCONSISTENT;
		return;
	}
	if (d->nblocks == d->cap_blocks) {
		size_t cap = d->cap_blocks ? d->cap_blocks * 2 : 256;
		struct cmt_dblock *v;

		if (cap > MAX_DUMP_BLOCKS) {
			m->reasons |= CMT_R_INCONSISTENT;
			d->active = false;
			return;
		}
		v = realloc(d->blocks, cap * sizeof(*v));
		if (!v) {
			cmt_fail(e);
			d->active = false;
			return;
		}
		d->blocks = v;
		d->cap_blocks = cap;
	}
	b = &d->blocks[d->nblocks++];
	b->heap_id = ev->f[CMT_F_HEAP_ID];
	b->ptr = ev->f[CMT_F_PTR];
	b->size = ev->f[CMT_F_SIZE];
}

/*
 * Whether the last event of a block the dump lists, before the dump, was a
 * successful malloc_free (b: its entry, or NULL): the block is free, the dump
 * having read it before the free took effect (earlier versions of the
 * library traced a free before clearing the block's word). Should it have
 * been handed out again meanwhile, its malloc_alloc comes after the dump.
 */
static bool freed_before(const struct cmt_manager *m, const struct cmt_heap *h,
			 const struct cmt_block *b, uint64_t ptr)
{
	if (b) {
		return block_state(b) == CMT_B_FREED && !(b->meta & CMT_B_DROPPED) && heap_known(h);
	}
	return m->awaiting && (uintptr_t)h->id &&
	       cmt_map_get(&m->awaiting_freed, ptr) == (void *)(uintptr_t)h->id;
}

/* Makes the blocks the dump listed live, unless an event said otherwise. */
static void apply_dump_blocks(struct cmt_engine *e, struct cmt_manager *m)
{
	struct cmt_dump *d = &m->dump;
	size_t i;

	for (i = 0; i < d->nblocks; i++) {
		struct cmt_heap *h;
		struct cmt_block *b;
		uint32_t site = 0, marks = CMT_B_CONFIRMED;

		if (cmt_map_get(&m->dump_destroyed, d->blocks[i].heap_id)) {
			/* Released during the dump: its blocks went with it. */
			continue;
		}
		h = get_heap(e, m, d->blocks[i].heap_id, true);
		if (!h) {
			return;
		}
		h->dump_gen = m->dump_gen;
		b = find(h, d->blocks[i].ptr);
		if (b && block_gen(b) == (m->dump_gen & GEN_MASK) && (b->meta & CMT_B_TOUCHED)) {
			/* An alloc or free during the dump says more than the dump. */
			continue;
		}
		if (freed_before(m, h, b, d->blocks[i].ptr)) {
			if (!b) {
				/* Freed while the manager awaited its dump: remembered from now. */
				b = find_or_add(e, h, d->blocks[i].ptr);
				if (!b) {
					return;
				}
				make_freed(e, h, b, 0, 0);
			}
			continue;
		}
		if (!b) {
			b = find_or_add(e, h, d->blocks[i].ptr);
			if (!b) {
				return;
			}
		}
		if (block_state(b) != CMT_B_LIVE || (b->meta & CMT_B_UNSEEN)) {
			marks |= CMT_B_UNSEEN;
		} else if (b->size == d->blocks[i].size) {
			site = b->site;
		}
		make_live(e, h, b, d->blocks[i].size, site, marks, m->dump_gen);
	}
}

/*
 * A heap call of a manager awaiting its first dump: counted, and nothing
 * more (the dump lists what such calls left).
 */
static void awaiting_call(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	uint64_t ptr = ev->f[CMT_F_PTR], id = ev->f[CMT_F_HEAP_ID];

	if ((int32_t)ev->f[CMT_F_HR] != CMT_S_OK) {
		return;
	}
	if (ev->type == CMT_EV_MALLOC_ALLOC) {
		e->allocs++;
		m->h.allocs++;
		cmt_map_remove(&m->awaiting_freed, ptr);
	} else if (ev->type == CMT_EV_MALLOC_FREE && ptr) {
		e->frees++;
		m->h.frees++;
		/* For the dump, which may still list it (freed_before). */
		if (!(uintptr_t)id) {
			cmt_map_remove(&m->awaiting_freed, ptr);
		} else if (cmt_map_put(&m->awaiting_freed, ptr, (void *)(uintptr_t)id) != 0) {
			cmt_fail(e);
		} else if (m->awaiting_freed.count > CMT_FREED_MEMORY) {
			cmt_map_fini(&m->awaiting_freed);
		}
		cmt_expose(e, m);
	}
}

/* Marks heap `id` released during the current dump (or not, for false). */
static void mark_destroyed(struct cmt_engine *e, struct cmt_manager *m, uint64_t id, bool yes)
{
	if (!yes) {
		cmt_map_remove(&m->dump_destroyed, id);
	} else if (cmt_map_put(&m->dump_destroyed, id, (void *)1) != 0) {
		cmt_fail(e);
	}
}

void cmt_heap_event(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	struct cmt_heap *h;
	bool listed;

	if (m->awaiting && !m->dump.active && ev->type != CMT_EV_STATEDUMP_HEAP &&
	    ev->type != CMT_EV_STATEDUMP_BLOCK) {
		awaiting_call(e, m, ev);
		return;
	}
	switch (ev->type) {
	case CMT_EV_MALLOC_CREATE:
		if ((int32_t)ev->f[CMT_F_HR] != CMT_S_OK) {
			return;
		}
		h = get_heap(e, m, ev->f[CMT_F_HEAP_ID], true);
		if (h && !heap_known(h)) {
			set_heap_known(e, h);
		}
		if (h && m->dump.active) {
			/* Made during the dump: it stays, listed or not. */
			h->created_gen = m->dump_gen;
			mark_destroyed(e, m, h->id, false);
		}
		break;
	case CMT_EV_MALLOC_ALLOC:
		on_alloc(e, m, ev);
		break;
	case CMT_EV_MALLOC_FREE:
		on_free(e, m, ev);
		break;
	case CMT_EV_MALLOC_DESTROY:
		if (m->dump.active) {
			/* Its listing in this dump, if any, is older than this. */
			mark_destroyed(e, m, ev->f[CMT_F_HEAP_ID], true);
		} else if (m->dumped && !cmt_map_get(&m->heaps, ev->f[CMT_F_HEAP_ID])) {
			/*
			 * A heap the last dump did not list was gone before it: this
			 * is its release, traced after the dump (the library takes a
			 * heap off its manager's list before it traces the release).
			 */
			return;
		}
		h = get_heap(e, m, ev->f[CMT_F_HEAP_ID], false);
		if (!h) {
			return;
		}
		/*
		 * What the heap still held when it went: a known heap must agree,
		 * unless the dump under way listed it (its blocks wait for the end).
		 */
		if (heap_known(h) && !(m->dump.active && h->dump_gen == m->dump_gen) &&
		    (ev->present & (UINT64_C(1) << CMT_F_LIVE_BLOCKS)) &&
		    (ev->present & (UINT64_C(1) << CMT_F_LIVE_BYTES)) &&
		    (ev->f[CMT_F_LIVE_BLOCKS] != h->live ||
		     h->live_hi != 0 || ev->f[CMT_F_LIVE_BYTES] != h->live_bytes)) {
			m->reasons |= CMT_R_HEAP_INCONSISTENT;
		}
		destroy_heap(e, h);
		break;
	case CMT_EV_STATEDUMP_HEAP:
		if (!m->dump.active) {
			m->reasons |= CMT_R_INCONSISTENT;
			return;
		}
		listed = !cmt_map_get(&m->heaps, ev->f[CMT_F_HEAP_ID]);
		h = get_heap(e, m, ev->f[CMT_F_HEAP_ID], true);
		if (h) {
			h->dump_gen = m->dump_gen;
			if (listed) {
				h->listed_gen = m->dump_gen;
			}
		}
		break;
	case CMT_EV_STATEDUMP_BLOCK:
		on_dump_block(e, m, ev);
		break;
	default:
		break;
	}
}

/* Drops the live blocks of h the current dump neither listed nor saw touched. */
static void sweep(struct cmt_engine *e, struct cmt_heap *h)
{
	uint32_t j;

	if (h->marked_gen == h->m->dump_gen && h->marked_live == h->live) {
		return;
	}
	/* The sweep reads the whole table: forget the freed entries when find_or_add would. */
	if (h->freed > CMT_FREED_MEMORY && h->freed > 2 * (uint64_t)h->live &&
	    purge_freed(h) != 0) {
		cmt_fail(e);
		return;
	}
	for (j = 0; j < h->cap; j++) {
		struct cmt_block *b = &h->tab[j];

		if (block_state(b) == CMT_B_LIVE && !is_marked(h, b)) {
			make_freed(e, h, b, CMT_B_DROPPED, 0);
		}
	}
}

/* The heaps of m in an array (the map cannot change while its slots are read). */
static struct cmt_heap **heap_list(struct cmt_engine *e, struct cmt_manager *m, uint32_t *n)
{
	struct cmt_heap **v;
	uint32_t i;

	*n = 0;
	if (!m->heaps.count) {
		return NULL;
	}
	v = malloc(m->heaps.count * sizeof(*v));
	if (!v) {
		cmt_fail(e);
		return NULL;
	}
	for (i = 0; i < m->heaps.cap; i++) {
		if (m->heaps.slots[i].val) {
			v[(*n)++] = m->heaps.slots[i].val;
		}
	}
	return v;
}

void cmt_heap_dump_end(struct cmt_engine *e, struct cmt_manager *m)
{
	struct cmt_heap **v;
	uint32_t i, n;

	apply_dump_blocks(e, m);
	v = heap_list(e, m, &n);
	for (i = 0; i < n; i++) {
		struct cmt_heap *h = v[i];

		if (cmt_map_get(&m->dump_destroyed, h->id)) {
			/* Released during the dump. */
			destroy_heap(e, h);
			continue;
		}
		if (h->dump_gen != m->dump_gen) {
			if (h->created_gen == m->dump_gen) {
				/* Made during the dump, after it listed the heaps. */
				continue;
			}
			/* Not listed: destroyed while its events were not seen. */
			destroy_heap(e, h);
			continue;
		}
		sweep(e, h);
		set_heap_known(e, h);
		h->dumped = true;
	}
	free(v);
	cmt_heap_dump_dropped(m);
	cmt_heap_awaited(m);
}

bool cmt_heap_shown(const struct cmt_heap *h)
{
	/* Listed by the dump under way, and not called since: it counts from the dump's end. */
	return !(h->m->dump.active && h->listed_gen == h->m->dump_gen);
}

void cmt_heap_dump_dropped(struct cmt_manager *m)
{
	cmt_map_fini(&m->dump_destroyed);
}

void cmt_heap_awaited(struct cmt_manager *m)
{
	cmt_map_fini(&m->awaiting_freed);
}

void cmt_heap_mark_unknown(struct cmt_manager *m)
{
	m->heap_epoch++;
	if (m->heaps.count) {
		m->reasons |= CMT_R_HEAP_UNKNOWN;
	}
}

void cmt_heap_destroy_all(struct cmt_engine *e, struct cmt_manager *m)
{
	struct cmt_heap **v;
	uint32_t i, n;

	v = heap_list(e, m, &n);
	for (i = 0; i < n; i++) {
		destroy_heap(e, v[i]);
	}
	free(v);
}

void cmt_heap_fini(struct cmt_manager *m)
{
	uint32_t i;

	for (i = 0; i < m->heaps.cap; i++) {
		struct cmt_heap *h = m->heaps.slots[i].val;

		if (h) {
			free(h->tab);
			free(h);
		}
	}
	cmt_map_fini(&m->heaps);
	cmt_map_fini(&m->awaiting_freed);
	m->last_heap = NULL;
}

void cmt_heap_foreach_live(const struct cmt_heap *h,
			   void (*fn)(void *ctx, const struct cmt_block *b), void *ctx)
{
	uint32_t i;

	for (i = 0; i < h->cap; i++) {
		if (block_state(&h->tab[i]) == CMT_B_LIVE) {
			fn(ctx, &h->tab[i]);
		}
	}
}
