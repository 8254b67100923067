/* SPDX-License-Identifier: MIT */
/*
 * The POSIX heap behind IHostMalloc: size-class spans on memory mapped for
 * this heap alone, so every block can be validated exactly, with per-thread
 * caches so the common case takes no lock.
 *
 * - Blocks up to SMALL_MAX bytes live in 64 KiB spans, aligned to 64 KiB, of
 *   one size class. The span header holds one 16-bit word per block: zero
 *   when free, else a live bit and the size the caller asked for. Larger
 *   blocks get a mapping of their own.
 * - Every span is registered in a process-wide RCU granule map, so Free can
 *   tell, without touching memory that may be unmapped, whether a pointer is
 *   in a span at all, of which heap, and whether it starts a live block. The
 *   map's entry carries the heap's tag and the span's class beside the span's
 *   address, and a class's layout is the same in every span, so the fast
 *   paths never read the span header.
 * - Each thread keeps, per heap it uses, a cache of free blocks per class
 *   (like glibc's tcache): Alloc pops from it, Free pushes to it, and only
 *   refills and overflows take the heap's lock, a batch at a time.
 * - The word is written by the thread that owns the block at that moment
 *   (the allocator, then the freeing thread), so operations on one block are
 *   ordered by the application's own hand-over; a state dump reads the words
 *   (see heap.h).
 * - Emptied spans beyond one per class are unmapped after an RCU grace
 *   period; destroying the heap unmaps everything.
 */
#define _LGPL_SOURCE /* inline read-side functions, which liburcu allows */
#include "heap.h"

#include "addrmap.h"
#include "os_posix.h"
#include "policy.h"
#include "rcu.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SPAN_SIZE ((size_t)65536)
#define SPAN_MASK (~(uintptr_t)(SPAN_SIZE - 1))
#define SMALL_MAX 16384u
#define NCLASSES 40u
#define LARGE_HEADER ((size_t)256)
#define CACHE_CAP 64u  /* blocks per class in a thread cache */
#define CACHE_MOVE 32u /* blocks moved per refill or flush */
#define TLS_HEAPS 4u   /* heaps a thread caches for at once */
#define META_OFF 128u  /* the per-block words, after the header */
#define RECENT 64u     /* a heap's recently used small spans, by granule */

enum span_kind { SPAN_SMALL = 1, SPAN_LARGE = 2 };

struct span {
	struct rcu_head rcu;
	uint8_t kind;
	uint8_t cls;
	uint8_t dead;
	uint8_t in_partial;
	uint32_t block_size;
	struct heap *heap;
	struct span *next, *prev;  /* partial list of this class */
	struct span *all_next;     /* all spans of the heap */
	struct span *all_prev;
	size_t map_len;
	uint32_t nblocks, first, nfree, bump;
	uint32_t recip;
	void *free_list;   /* free blocks not in any thread cache */
	uint64_t large_size;
	uint16_t *meta;    /* per block: 0 when free, META_LIVE | requested size when live */
	uintptr_t entry;   /* the span's entry in the granule map */
};

#define META_LIVE 0x8000u

_Static_assert(sizeof(struct span) <= META_OFF, "span header fits before the block words");
_Static_assert(sizeof(struct span) <= LARGE_HEADER, "span header fits before a large block");

/*
 * A span's entry in the granule map: the span's address (64 KiB-aligned),
 * its heap's tag in bits 7-15 and, for a small span, its class + 1 in bits
 * 1-6 (0 for a large span). Bit 0 is the map's own and stays clear.
 */
#define ENTRY_CLASS_SHIFT 1u
#define ENTRY_CLASS_MASK ((uintptr_t)0x3f << ENTRY_CLASS_SHIFT)
#define ENTRY_TAG_SHIFT 7u
#define ENTRY_TAG_MASK ((uintptr_t)0x1ff << ENTRY_TAG_SHIFT)
#define NTAGS 512u /* tag 0: none, for heaps beyond the 511th, which check the header */

_Static_assert(NCLASSES + 1 <= 0x3f, "a class fits in an entry");
_Static_assert(ENTRY_TAG_MASK < SPAN_SIZE, "an entry's bits fit below the span's address");

struct bin {
	uint32_t count;
	void *blocks[CACHE_CAP];
};

/* One thread's cache for one heap. */
struct tcache {
	struct tcache *next, *prev; /* heap's list */
	struct heap *heap;
	struct bin bins[NCLASSES];
};

struct heap {
	uint64_t id;
	uintptr_t tag; /* in an entry's place (ENTRY_TAG_MASK); 1 (matches none) when untagged */
	/*
	 * Map entries of small spans of this heap that gave out blocks lately,
	 * at their granule number modulo RECENT, or 0: a free finds its span
	 * here with one load, or else in the map. Written under the lock and
	 * cleared before a span is retired (see span_retire).
	 */
	uintptr_t recent[RECENT];
	uint32_t type;
	int prot;
	pthread_mutex_t lock; /* spans, partial lists, the tcache list, heap_stats */
	struct span *partial[NCLASSES];
	struct span *all;
	struct tcache *caches;
	uint64_t os_bytes;
	struct policy *policy; /* charged for os_bytes; may be NULL */
	struct heap *reg_next; /* registry of live heaps */
};

/* Per thread: which heaps it has caches for. Ids are never reused. */
struct tls_heaps {
	uint64_t id[TLS_HEAPS];
	struct tcache *cache[TLS_HEAPS];
	unsigned next_victim;
};

static const uint32_t class_size[NCLASSES] = {
	16,   32,   48,   64,   80,   96,   112,  128,  144,   160,   176,   192,   208,   224,
	240,  256,  320,  384,  448,  512,  640,  768,  896,  1024,  1280,  1536,  1792,  2048,
	2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384,
};

/* Per class: the first block's offset in a span, and the last block's from the first. */
static struct {
	uint32_t size, recip, first, last;
} class_layout[NCLASSES];

static struct addrmap span_map;
static pthread_mutex_t span_map_lock = PTHREAD_MUTEX_INITIALIZER;

/* Live heaps, so a thread leaving can tell whether its caches still have an owner. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct heap *registry;
static uint64_t last_heap_id;
static uint32_t tags_used[NTAGS / 32]; /* registry_lock; tag 0 is never handed out */
static unsigned next_tag;              /* registry_lock: tags are handed out in turn */

static pthread_once_t heap_once = PTHREAD_ONCE_INIT;
static int heap_init_error;
static pthread_key_t exit_key;
static __thread struct tls_heaps tls __attribute__((tls_model("initial-exec")));

/* ---------- Size classes ---------- */

static inline unsigned class_of(size_t size)
{
	size_t s;
	unsigned b;

	if (size <= 256) {
		return size ? (unsigned)((size + 15) / 16 - 1) : 0;
	}
	s = size - 1;
	b = (unsigned)(63 - __builtin_clzll((unsigned long long)s));
	return 16 + (b - 8) * 4 + (unsigned)((s >> (b - 2)) & 3);
}

/* The layout of each class: as many blocks as fit after the header and their words. */
static void compute_layouts(void)
{
	unsigned c;

	for (c = 0; c < NCLASSES; c++) {
		uint32_t bs = class_size[c];
		uint32_t n = (uint32_t)((SPAN_SIZE - META_OFF) / (bs + 2));
		uint32_t first;

		for (;;) {
			first = (uint32_t)((META_OFF + (size_t)n * 2 + 15) & ~(size_t)15);
			if (first + (size_t)n * bs <= SPAN_SIZE) {
				break;
			}
			n--;
		}
		class_layout[c].size = bs;
		class_layout[c].first = first;
		class_layout[c].last = (n - 1) * bs;
		class_layout[c].recip = (uint32_t)((((uint64_t)1 << 32) + bs - 1) / bs);
	}
}

/* The per-block words of the small span at base. */
static inline uint16_t *meta_of(uintptr_t base)
{
	return (uint16_t *)(base + META_OFF);
}

static void thread_exit(void *arg);

static void heap_init(void)
{
	compute_layouts();
	heap_init_error = clrmemtrace__addrmap_init(&span_map);
	if (!heap_init_error && pthread_key_create(&exit_key, thread_exit) != 0) {
		heap_init_error = ERROR_NOT_ENOUGH_MEMORY;
	}
}

/* ---------- Spans ---------- */

static void *block_at(const struct span *s, uint32_t i)
{
	return (char *)s + s->first + (size_t)i * s->block_size;
}

/*
 * The index of the block starting at p (inside span s), or UINT32_MAX if no
 * block starts there. Blocks never handed out have a zero word, like free ones.
 */
static inline uint32_t block_index(const struct span *s, uintptr_t p)
{
	uintptr_t base = (uintptr_t)s + s->first, off;
	uint32_t i;

	if (p < base) {
		return UINT32_MAX;
	}
	off = p - base;
	i = (uint32_t)(((uint64_t)off * s->recip) >> 32);
	return i < s->nblocks && (uintptr_t)i * s->block_size == off ? i : UINT32_MAX;
}

/* The span of a granule map entry (NULL for none). */
static inline struct span *span_of_entry(void *entry)
{
	return (struct span *)((uintptr_t)entry & SPAN_MASK);
}

static void span_unmap_rcu(struct rcu_head *head)
{
	struct span *s = container_of(head, struct span, rcu);

	rcu_after_grace_period(head);
	munmap(s, s->map_len);
}

/* Maps and registers a span; heap lock held. *err tells why when it returns NULL. */
static struct span *span_new(struct heap *h, enum span_kind kind, unsigned cls, size_t map_len,
			     int level, int *errp)
{
	uintptr_t entry;
	struct span *s;
	void *p;
	int err;

	if (h->policy) {
		err = clrmemtrace__policy_charge(h->policy, map_len, map_len, level);
		if (err) {
			*errp = err;
			return NULL;
		}
	}
	err = clrmemtrace__os_map_aligned(map_len, SPAN_SIZE, h->prot, 0, &p);
	if (err) {
		if (h->policy) {
			clrmemtrace__policy_uncharge(h->policy, map_len, map_len);
		}
		*errp = err;
		return NULL;
	}
	s = p;
	s->kind = (uint8_t)kind;
	s->cls = (uint8_t)cls;
	s->heap = h;
	s->map_len = map_len;
	entry = (uintptr_t)s | (h->tag & ENTRY_TAG_MASK);
	if (kind == SPAN_SMALL) {
		s->block_size = class_size[cls];
		s->first = class_layout[cls].first;
		s->nblocks = class_layout[cls].last / s->block_size + 1;
		s->recip = class_layout[cls].recip;
		s->nfree = s->nblocks;
		s->meta = meta_of((uintptr_t)s);
		entry |= (uintptr_t)(cls + 1) << ENTRY_CLASS_SHIFT;
	}
	s->entry = entry;
	pthread_mutex_lock(&span_map_lock);
	err = clrmemtrace__addrmap_insert(&span_map, (uintptr_t)s, (uintptr_t)s + map_len,
					  (void *)entry);
	pthread_mutex_unlock(&span_map_lock);
	if (err) {
		/* A free may have glimpsed the span: unmap it after readers. */
		s->dead = 1;
		rcu_defer(&s->rcu, span_unmap_rcu);
		if (h->policy) {
			clrmemtrace__policy_uncharge(h->policy, map_len, map_len);
		}
		*errp = err;
		return NULL;
	}
	s->all_next = h->all;
	if (h->all) {
		h->all->all_prev = s;
	}
	h->all = s;
	h->os_bytes += map_len;
	return s;
}

static void partial_push(struct heap *h, struct span *s)
{
	s->prev = NULL;
	s->next = h->partial[s->cls];
	if (s->next) {
		s->next->prev = s;
	}
	h->partial[s->cls] = s;
	s->in_partial = 1;
}

static void partial_remove(struct heap *h, struct span *s)
{
	if (s->prev) {
		s->prev->next = s->next;
	} else {
		h->partial[s->cls] = s->next;
	}
	if (s->next) {
		s->next->prev = s->prev;
	}
	s->next = s->prev = NULL;
	s->in_partial = 0;
}

static inline uintptr_t *recent_slot(struct heap *h, uintptr_t p)
{
	return &h->recent[(p / SPAN_SIZE) % RECENT];
}

/*
 * Unregisters a span and unmaps it after readers are done; heap lock held.
 * A free that found the span in the map or among the recent ones did so in
 * a read-side section begun before rcu_defer, so the span outlives it.
 */
static void span_retire(struct heap *h, struct span *s)
{
	uintptr_t *slot = recent_slot(h, (uintptr_t)s);

	if (s->in_partial) {
		partial_remove(h, s);
	}
	if (*slot == s->entry) {
		__atomic_store_n(slot, 0, __ATOMIC_RELAXED);
	}
	pthread_mutex_lock(&span_map_lock);
	clrmemtrace__addrmap_remove(&span_map, (uintptr_t)s, (uintptr_t)s + s->map_len);
	pthread_mutex_unlock(&span_map_lock);
	__atomic_store_n(&s->dead, 1, __ATOMIC_RELEASE);
	if (s->all_prev) {
		s->all_prev->all_next = s->all_next;
	} else {
		h->all = s->all_next;
	}
	if (s->all_next) {
		s->all_next->all_prev = s->all_prev;
	}
	h->os_bytes -= s->map_len;
	if (h->policy) {
		clrmemtrace__policy_uncharge(h->policy, s->map_len, s->map_len);
	}
	rcu_defer(&s->rcu, span_unmap_rcu);
}

/* Returns a free small block to its span; heap lock held. */
static void span_put(struct heap *h, void *b)
{
	struct span *s = (struct span *)((uintptr_t)b & SPAN_MASK);

	*(void **)b = s->free_list;
	s->free_list = b;
	s->nfree++;
	if (!s->in_partial) {
		partial_push(h, s);
	} else if (s->nfree == s->nblocks && (s->prev || s->next)) {
		/* Empty and not the class's only partial span: give it back. */
		span_retire(h, s);
	}
}

/*
 * Takes up to n free blocks of class c into out; heap lock held. Returns how
 * many; when none, *err tells why.
 */
static uint32_t span_take(struct heap *h, unsigned c, void **out, uint32_t n, int level, int *err)
{
	uint32_t got = 0;

	while (got < n) {
		struct span *s = h->partial[c];

		if (!s) {
			s = span_new(h, SPAN_SMALL, c, SPAN_SIZE, level, err);
			if (!s) {
				break;
			}
			partial_push(h, s);
		}
		/* The heap lock orders this with span_retire's clearing. */
		__atomic_store_n(recent_slot(h, (uintptr_t)s), s->entry, __ATOMIC_RELEASE);
		while (got < n && s->nfree) {
			void *b;

			if (s->free_list) {
				b = s->free_list;
				s->free_list = *(void **)b;
			} else {
				b = block_at(s, s->bump);
				__atomic_store_n(&s->bump, s->bump + 1, __ATOMIC_RELEASE);
			}
			s->nfree--;
			out[got++] = b;
		}
		if (!s->nfree) {
			partial_remove(h, s);
		}
	}
	return got;
}

/* ---------- Thread caches ---------- */

static void cache_flush(struct heap *h, struct tcache *tc)
{
	unsigned c;

	for (c = 0; c < NCLASSES; c++) {
		struct bin *bin = &tc->bins[c];

		while (bin->count) {
			span_put(h, bin->blocks[--bin->count]);
		}
	}
}

/* Detaches a cache from its heap (heap lock held) and gives its blocks back. */
static void cache_retire(struct heap *h, struct tcache *tc)
{
	cache_flush(h, tc);
	if (tc->prev) {
		tc->prev->next = tc->next;
	} else {
		h->caches = tc->next;
	}
	if (tc->next) {
		tc->next->prev = tc->prev;
	}
	free(tc);
}

static struct heap *registry_find(uint64_t id)
{
	struct heap *h;

	for (h = registry; h; h = h->reg_next) {
		if (h->id == id) {
			return h;
		}
	}
	return NULL;
}

/* Gives back a thread's cache for heap `id` if that heap still exists. */
static void cache_release(uint64_t id)
{
	struct heap *h;
	unsigned i;

	pthread_mutex_lock(&registry_lock);
	h = registry_find(id);
	if (h) {
		for (i = 0; i < TLS_HEAPS; i++) {
			if (tls.id[i] == id) {
				pthread_mutex_lock(&h->lock);
				cache_retire(h, tls.cache[i]);
				pthread_mutex_unlock(&h->lock);
			}
		}
	}
	pthread_mutex_unlock(&registry_lock);
}

static void thread_exit(void *arg)
{
	unsigned i;

	(void)arg;
	for (i = 0; i < TLS_HEAPS; i++) {
		if (tls.id[i]) {
			cache_release(tls.id[i]);
			tls.id[i] = 0;
			tls.cache[i] = NULL;
		}
	}
}

static struct tcache *cache_slow(struct heap *h)
{
	struct tcache *tc;
	unsigned i = TLS_HEAPS;

	for (unsigned j = 0; j < TLS_HEAPS; j++) {
		if (!tls.id[j]) {
			i = j;
			break;
		}
	}
	if (i == TLS_HEAPS) {
		/* Every slot busy: hand one heap's cache back to it. */
		i = tls.next_victim++ % TLS_HEAPS;
		cache_release(tls.id[i]);
		tls.id[i] = 0;
		tls.cache[i] = NULL;
	}
	tc = calloc(1, sizeof(*tc));
	if (!tc) {
		return NULL;
	}
	tc->heap = h;
	pthread_mutex_lock(&h->lock);
	tc->next = h->caches;
	if (h->caches) {
		h->caches->prev = tc;
	}
	h->caches = tc;
	pthread_mutex_unlock(&h->lock);
	/* Any non-NULL value makes the key's destructor run when the thread exits. */
	pthread_setspecific(exit_key, &tls);
	tls.cache[i] = tc;
	__atomic_store_n(&tls.id[i], h->id, __ATOMIC_RELAXED);
	return tc;
}

static inline struct tcache *cache_of(struct heap *h)
{
	unsigned i;

	for (i = 0; i < TLS_HEAPS; i++) {
		if (tls.id[i] == h->id) {
			return tls.cache[i];
		}
	}
	return cache_slow(h);
}

/* ---------- Heap ---------- */

/*
 * A tag no live heap has, in an entry's place, or 1 (which no entry matches)
 * when all are taken; registry_lock held. Tags go round, so a freed one is
 * the last to be handed out again.
 */
static uintptr_t tag_take(void)
{
	unsigned i, t;

	for (i = 0; i < NTAGS; i++) {
		t = (next_tag + i) % NTAGS;
		if (t && !(tags_used[t / 32] & (1u << (t % 32)))) {
			tags_used[t / 32] |= 1u << (t % 32);
			next_tag = t + 1;
			return (uintptr_t)t << ENTRY_TAG_SHIFT;
		}
	}
	return 1;
}

/* registry_lock held; the heap's spans are out of the map. */
static void tag_put(uintptr_t tag)
{
	unsigned t = (unsigned)(tag >> ENTRY_TAG_SHIFT);

	if (tag != 1) {
		tags_used[t / 32] &= ~(1u << (t % 32));
	}
}

int clrmemtrace__heap_create(uint32_t malloc_type, struct policy *policy, struct heap **out)
{
	struct heap *h;

	if (pthread_once(&heap_once, heap_init) != 0 || heap_init_error) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	h->type = malloc_type;
	h->policy = policy;
	h->prot = PROT_READ | PROT_WRITE | ((malloc_type & MALLOC_EXECUTABLE) ? PROT_EXEC : 0);
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_lock(&registry_lock);
	h->id = ++last_heap_id;
	h->tag = tag_take();
	h->reg_next = registry;
	registry = h;
	pthread_mutex_unlock(&registry_lock);
	*out = h;
	return 0;
}

void clrmemtrace__heap_destroy(struct heap *h)
{
	struct heap **pp;

	if (!h) {
		return;
	}
	pthread_mutex_lock(&registry_lock);
	for (pp = &registry; *pp; pp = &(*pp)->reg_next) {
		if (*pp == h) {
			*pp = h->reg_next;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	/* Threads still caching for this id will never match it again. */
	pthread_mutex_lock(&h->lock);
	while (h->caches) {
		struct tcache *tc = h->caches;

		h->caches = tc->next;
		free(tc);
	}
	while (h->all) {
		span_retire(h, h->all);
	}
	pthread_mutex_unlock(&h->lock);
	pthread_mutex_lock(&registry_lock);
	tag_put(h->tag);
	pthread_mutex_unlock(&registry_lock);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static int alloc_large(struct heap *h, size_t size, int level, void **out, heap_block_fn fn,
		       void *ctx)
{
	size_t page = clrmemtrace__sys.page_size, len;
	int err = ERROR_NOT_ENOUGH_MEMORY;
	struct span *s;

	if (size > clrmemtrace__sys.user_limit / 2) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	len = (LARGE_HEADER + size + page - 1) & ~(page - 1);
	pthread_mutex_lock(&h->lock);
	s = span_new(h, SPAN_LARGE, 0, len, level, &err);
	pthread_mutex_unlock(&h->lock);
	if (!s) {
		return err;
	}
	s->large_size = size;
	*out = (char *)s + LARGE_HEADER;
	__atomic_store_n(&s->nfree, 1, __ATOMIC_RELEASE); /* 1: live */
	if (fn) {
		fn(ctx, *out, size);
	}
	return 0;
}

/* Everything but a cache hit: refills, large blocks, a thread's first use of the heap. */
static __attribute__((noinline)) int alloc_slow(struct heap *h, size_t size, int level, void **out,
						 heap_block_fn fn, void *ctx)
{
	struct tcache *tc = cache_of(h);
	struct bin *bin;
	struct span *s;
	unsigned c;
	uint32_t i;
	void *b;

	if (!tc) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	if (size > SMALL_MAX) {
		return alloc_large(h, size, level, out, fn, ctx);
	}
	c = class_of(size);
	bin = &tc->bins[c];
	if (!bin->count) {
		int err = ERROR_NOT_ENOUGH_MEMORY;

		pthread_mutex_lock(&h->lock);
		bin->count = span_take(h, c, bin->blocks, CACHE_MOVE, level, &err);
		pthread_mutex_unlock(&h->lock);
		if (!bin->count) {
			return err;
		}
	}
	b = bin->blocks[--bin->count];
	s = (struct span *)((uintptr_t)b & SPAN_MASK);
	i = block_index(s, (uintptr_t)b);
	__atomic_store_n(&s->meta[i], (uint16_t)(META_LIVE | size), __ATOMIC_RELEASE);
	if (fn) {
		fn(ctx, b, size);
	}
	*out = b;
	return 0;
}

/* The thread's cache for h if it has one already (no allocation). */
static inline struct tcache *cache_hit(const struct heap *h)
{
	unsigned i;

	for (i = 0; i < TLS_HEAPS; i++) {
		if (tls.id[i] == h->id) {
			return tls.cache[i];
		}
	}
	return NULL;
}

int clrmemtrace__heap_alloc(struct heap *h, size_t size, int level, void **out, heap_block_fn fn,
			    void *ctx)
{
	struct tcache *tc = cache_hit(h);

	/* Every other case is a tail call, so this path saves no registers. */
	if (likely(tc && size <= SMALL_MAX && !fn)) {
		unsigned c = class_of(size);
		struct bin *bin = &tc->bins[c];

		if (likely(bin->count)) {
			void *b = bin->blocks[--bin->count];
			uintptr_t base = (uintptr_t)b & SPAN_MASK;
			/* A cached block starts a block of class c: no checks, and no header read. */
			uint32_t i = (uint32_t)(((uint64_t)((uintptr_t)b - base - class_layout[c].first) *
						 class_layout[c].recip) >> 32);

			__atomic_store_n(&meta_of(base)[i], (uint16_t)(META_LIVE | size),
					 __ATOMIC_RELEASE);
			*out = b;
			return 0;
		}
	}
	return alloc_slow(h, size, level, out, fn, ctx);
}

static int free_large(struct heap *h, struct span *s, uintptr_t p, heap_block_fn fn, void *ctx)
{
	size_t size;

	pthread_mutex_lock(&h->lock);
	if (s->dead || p != (uintptr_t)s + LARGE_HEADER || s->nfree != 1) {
		pthread_mutex_unlock(&h->lock);
		return ERROR_INVALID_ADDRESS;
	}
	size = s->large_size;
	s->nfree = 0;
	if (fn) {
		fn(ctx, (void *)p, size);
	}
	span_retire(h, s);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

/* A full cache bin: half of it goes back to the spans. */
static __attribute__((noinline)) void bin_overflow(struct heap *h, struct bin *bin)
{
	uint32_t k;

	pthread_mutex_lock(&h->lock);
	for (k = 0; k < CACHE_MOVE; k++) {
		span_put(h, bin->blocks[--bin->count]);
	}
	pthread_mutex_unlock(&h->lock);
}

/* bin_overflow, then ptr goes into the bin; out of line, so the caller needs no frame. */
static __attribute__((noinline)) int bin_overflow_push(struct heap *h, struct bin *bin, void *ptr)
{
	bin_overflow(h, bin);
	bin->blocks[bin->count++] = ptr;
	return 0;
}

/* Everything but an untraced free of a small block by a thread with a cache. */
static __attribute__((noinline)) int free_slow(struct heap *h, void *ptr, heap_block_fn fn,
					       void *ctx)
{
	uintptr_t p = (uintptr_t)ptr;
	struct tcache *tc = cache_of(h);
	struct span *s;
	struct bin *bin;
	uint32_t i;
	uint16_t meta;
	int err;

	rcu_lock();
	s = span_of_entry(clrmemtrace__addrmap_lookup(&span_map, p));
	if (!s || s->heap != h) {
		rcu_unlock();
		return ERROR_INVALID_ADDRESS;
	}
	if (s->kind == SPAN_LARGE) {
		/* free_large checks under the heap lock; the span cannot go away before. */
		err = free_large(h, s, p, fn, ctx);
		rcu_unlock();
		return err;
	}
	i = block_index(s, p);
	if (i == UINT32_MAX || !((meta = __atomic_load_n(&s->meta[i], __ATOMIC_ACQUIRE)) & META_LIVE)) {
		rcu_unlock();
		return ERROR_INVALID_ADDRESS; /* interior pointer, never allocated, or freed already */
	}
	/*
	 * The event goes out once the word is cleared (a state dump that still
	 * saw the block live sees its free come after it) and while this thread
	 * still owns the block (before any other thread can be handed it).
	 */
	if (!tc) {
		/*
		 * No cache for this thread and no memory to make one: the block goes
		 * straight back to its span. It is a valid free all the same.
		 */
		pthread_mutex_lock(&h->lock);
		__atomic_store_n(&s->meta[i], 0, __ATOMIC_RELEASE);
		if (fn) {
			fn(ctx, ptr, meta & ~META_LIVE);
		}
		span_put(h, ptr);
		pthread_mutex_unlock(&h->lock);
		rcu_unlock();
		return 0;
	}
	__atomic_store_n(&s->meta[i], 0, __ATOMIC_RELEASE);
	if (fn) {
		fn(ctx, ptr, meta & ~META_LIVE);
	}
	bin = &tc->bins[s->cls];
	rcu_unlock();
	if (bin->count == CACHE_CAP) {
		bin_overflow(h, bin);
	}
	bin->blocks[bin->count++] = ptr;
	return 0;
}

/*
 * The untraced free of a small block by a thread with a cache: the map's
 * entry says whether the span is this heap's and of which class, and the
 * class's layout where its blocks and their words are; the span header is
 * not read.
 */
int clrmemtrace__heap_free(struct heap *h, void *ptr, heap_block_fn fn, void *ctx)
{
	uintptr_t p = (uintptr_t)ptr, entry, base, off;
	struct tcache *tc = cache_hit(h);
	struct bin *bin;
	uint16_t *meta;
	unsigned c;
	uint32_t i;

	if (unlikely(!tc || fn || !rcu_registered())) {
		return free_slow(h, ptr, fn, ctx);
	}
	rcu_lock();
	entry = __atomic_load_n(recent_slot(h, p), __ATOMIC_ACQUIRE);
	if (unlikely((entry ^ p) & SPAN_MASK)) {
		entry = (uintptr_t)clrmemtrace__addrmap_lookup(&span_map, p);
		if (unlikely((entry & ENTRY_TAG_MASK) != h->tag)) {
			/* Not in a span, another heap's, or this heap is untagged. */
			rcu_unlock();
			return free_slow(h, ptr, fn, ctx);
		}
	}
	c = (unsigned)((entry & ENTRY_CLASS_MASK) >> ENTRY_CLASS_SHIFT) - 1u;
	if (unlikely(c >= NCLASSES)) {
		rcu_unlock();
		return free_slow(h, ptr, fn, ctx); /* a large block */
	}
	base = entry & SPAN_MASK;
	off = p - base - class_layout[c].first; /* wraps when p is before the blocks */
	i = (uint32_t)(((uint64_t)off * class_layout[c].recip) >> 32);
	if (unlikely(off > class_layout[c].last || (uintptr_t)i * class_layout[c].size != off)) {
		rcu_unlock();
		return ERROR_INVALID_ADDRESS; /* not the start of a block */
	}
	meta = &meta_of(base)[i];
	if (unlikely(!(__atomic_load_n(meta, __ATOMIC_ACQUIRE) & META_LIVE))) {
		rcu_unlock();
		return ERROR_INVALID_ADDRESS; /* never allocated, or freed already */
	}
	__atomic_store_n(meta, 0, __ATOMIC_RELEASE);
	rcu_unlock();
	bin = &tc->bins[c];
	if (unlikely(bin->count == CACHE_CAP)) {
		return bin_overflow_push(h, bin, ptr);
	}
	bin->blocks[bin->count++] = ptr;
	return 0;
}

void clrmemtrace__heap_lock_all(struct heap *h)
{
	pthread_mutex_lock(&h->lock);
}

void clrmemtrace__heap_unlock_all(struct heap *h)
{
	pthread_mutex_unlock(&h->lock);
}

static int count_live(void *ctx, void *ptr, size_t size)
{
	struct heap_stats *stats = ctx;

	(void)ptr;
	stats->live_blocks++;
	stats->live_bytes += size;
	return 0;
}

void clrmemtrace__heap_stats_locked(struct heap *h, struct heap_stats *stats)
{
	memset(stats, 0, sizeof(*stats));
	clrmemtrace__heap_foreach_live_locked(h, count_live, stats);
	stats->os_bytes = h->os_bytes;
}

void clrmemtrace__heap_stats(struct heap *h, struct heap_stats *stats)
{
	clrmemtrace__heap_lock_all(h);
	clrmemtrace__heap_stats_locked(h, stats);
	clrmemtrace__heap_unlock_all(h);
}

int clrmemtrace__heap_foreach_live_locked(struct heap *h, heap_live_fn fn, void *ctx)
{
	const struct span *s;

	for (s = h->all; s; s = s->all_next) {
		uint32_t i, bump;
		int ret;

		if (s->kind == SPAN_LARGE) {
			if (__atomic_load_n(&s->nfree, __ATOMIC_ACQUIRE) == 1) {
				ret = fn(ctx, (char *)s + LARGE_HEADER, s->large_size);
				if (ret) {
					return ret;
				}
			}
			continue;
		}
		bump = __atomic_load_n(&s->bump, __ATOMIC_ACQUIRE);
		for (i = 0; i < bump; i++) {
			uint16_t meta = __atomic_load_n(&s->meta[i], __ATOMIC_ACQUIRE);

			if (meta & META_LIVE) {
				ret = fn(ctx, block_at(s, i), meta & ~META_LIVE);
				if (ret) {
					return ret;
				}
			}
		}
	}
	return 0;
}
