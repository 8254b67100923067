/* SPDX-License-Identifier: MIT */
/*
 * The POSIX heap behind IHostMalloc: size-class spans on memory mapped for
 * this heap alone, so every block can be validated exactly.
 *
 * - Blocks up to SMALL_MAX bytes live in 64 KiB spans of one size class; the
 *   span header holds, per block, a live flag and the size the caller asked
 *   for. Larger blocks get a mapping of their own.
 * - Every span is registered in a process-wide RCU granule map, so free()
 *   can tell, without touching unmapped memory, whether a pointer belongs to
 *   a span at all, to which heap, and whether it is a live block start.
 * - A heap has several arenas, each with its own lock; a thread always
 *   allocates from the same arena (glibc's scheme), and a block is freed
 *   into the arena that owns its span. The arena lock orders the operations
 *   on a block, so trace events emitted under it are in order.
 * - Emptied spans beyond one spare per class are unmapped after an RCU grace
 *   period; destroying the heap unmaps everything.
 */
#include "heap.h"

#include "addrmap.h"
#include "os_posix.h"
#include "rcu.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SPAN_SIZE ((size_t)65536)
#define SMALL_MAX 16384u
#define NCLASSES 40u
#define MAX_ARENAS 8u
#define SPAN_MAGIC 0x48504e53u /* "SNPH" */
#define LARGE_HEADER ((size_t)256)

enum span_kind { SPAN_SMALL = 1, SPAN_LARGE = 2 };

struct arena;

struct span {
	struct rcu_head rcu;
	uint32_t magic;
	uint8_t kind;
	uint8_t cls;
	uint8_t dead;
	uint8_t large_live;
	struct heap *heap;
	struct arena *arena;
	struct span *next, *prev;   /* arena's partial list of this class */
	struct span *all_next;      /* arena's list of all spans */
	struct span *all_prev;
	size_t map_len;
	uint32_t block_size, nblocks, first, nfree, bump;
	uint32_t recip;
	void *free_list;
	uint64_t large_size;
	uint16_t *req;  /* per block: requested size */
	uint8_t *state; /* per block: 1 when live */
};

_Static_assert(sizeof(struct span) <= LARGE_HEADER, "span header fits before a large block");

struct arena {
	pthread_mutex_t lock;
	struct span *partial[NCLASSES];
	struct span *all;
	struct heap_stats stats;
} __attribute__((aligned(64)));

struct heap {
	uint32_t type;
	int prot;
	unsigned narenas;
	struct arena arenas[];
};

static const uint32_t class_size[NCLASSES] = {
	16,   32,   48,   64,   80,   96,   112,  128,  144,   160,   176,   192,   208,   224,
	240,  256,  320,  384,  448,  512,  640,  768,  896,  1024,  1280,  1536,  1792,  2048,
	2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384,
};

/* Per class: blocks per span and offset of the first block. */
static struct {
	uint32_t nblocks, first, recip;
} class_layout[NCLASSES];

static struct addrmap span_map;
static pthread_mutex_t span_map_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t heap_once = PTHREAD_ONCE_INIT;
static int heap_init_error;
static unsigned next_thread_slot;
static __thread unsigned thread_slot __attribute__((tls_model("initial-exec")));

/* ---------- Size classes ---------- */

static unsigned class_of(size_t size)
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

static void compute_layouts(void)
{
	unsigned c;

	for (c = 0; c < NCLASSES; c++) {
		uint32_t bs = class_size[c];
		uint32_t n = (uint32_t)((SPAN_SIZE - sizeof(struct span)) / (bs + 3));
		uint32_t first;

		for (;;) {
			first = (uint32_t)((sizeof(struct span) + (size_t)n * 3 + 15) & ~(size_t)15);
			if (first + (size_t)n * bs <= SPAN_SIZE) {
				break;
			}
			n--;
		}
		class_layout[c].nblocks = n;
		class_layout[c].first = first;
		class_layout[c].recip = (uint32_t)((((uint64_t)1 << 32) + bs - 1) / bs);
	}
}

static void heap_init(void)
{
	compute_layouts();
	heap_init_error = clrmemtrace__addrmap_init(&span_map);
}

static unsigned current_slot(void)
{
	unsigned s = thread_slot;

	if (unlikely(!s)) {
		s = __atomic_add_fetch(&next_thread_slot, 1, __ATOMIC_RELAXED);
		if (!s) {
			s = __atomic_add_fetch(&next_thread_slot, 1, __ATOMIC_RELAXED);
		}
		thread_slot = s;
	}
	return s;
}

/* ---------- Spans ---------- */

static void span_unmap_rcu(struct rcu_head *head)
{
	struct span *s = container_of(head, struct span, rcu);

	munmap(s, s->map_len);
}

/* Maps a span and registers it; arena lock held. */
static struct span *span_new(struct heap *h, struct arena *a, enum span_kind kind, unsigned cls,
			     size_t map_len)
{
	struct span *s;
	void *p;
	int err;

	err = clrmemtrace__os_map_aligned(map_len, SPAN_SIZE, h->prot, 0, &p);
	if (err) {
		return NULL;
	}
	s = p;
	s->magic = SPAN_MAGIC;
	s->kind = (uint8_t)kind;
	s->cls = (uint8_t)cls;
	s->heap = h;
	s->arena = a;
	s->map_len = map_len;
	if (kind == SPAN_SMALL) {
		s->block_size = class_size[cls];
		s->nblocks = class_layout[cls].nblocks;
		s->first = class_layout[cls].first;
		s->recip = class_layout[cls].recip;
		s->nfree = s->nblocks;
		s->req = (uint16_t *)(s + 1);
		s->state = (uint8_t *)(s->req + s->nblocks);
	}
	pthread_mutex_lock(&span_map_lock);
	err = clrmemtrace__addrmap_insert(&span_map, (uintptr_t)s, (uintptr_t)s + map_len, s);
	pthread_mutex_unlock(&span_map_lock);
	if (err) {
		munmap(p, map_len);
		return NULL;
	}
	s->all_next = a->all;
	if (a->all) {
		a->all->all_prev = s;
	}
	a->all = s;
	a->stats.os_bytes += map_len;
	return s;
}

/* Unregisters a span and unmaps it after a grace period; arena lock held. */
static void span_retire(struct arena *a, struct span *s)
{
	pthread_mutex_lock(&span_map_lock);
	clrmemtrace__addrmap_remove(&span_map, (uintptr_t)s, (uintptr_t)s + s->map_len);
	pthread_mutex_unlock(&span_map_lock);
	s->dead = 1;
	if (s->all_prev) {
		s->all_prev->all_next = s->all_next;
	} else {
		a->all = s->all_next;
	}
	if (s->all_next) {
		s->all_next->all_prev = s->all_prev;
	}
	a->stats.os_bytes -= s->map_len;
	rcu_defer(&s->rcu, span_unmap_rcu);
}

static void partial_push(struct arena *a, struct span *s)
{
	s->prev = NULL;
	s->next = a->partial[s->cls];
	if (s->next) {
		s->next->prev = s;
	}
	a->partial[s->cls] = s;
}

static void partial_remove(struct arena *a, struct span *s)
{
	if (s->prev) {
		s->prev->next = s->next;
	} else {
		a->partial[s->cls] = s->next;
	}
	if (s->next) {
		s->next->prev = s->prev;
	}
	s->next = s->prev = NULL;
}

static void *block_at(const struct span *s, uint32_t i)
{
	return (char *)s + s->first + (size_t)i * s->block_size;
}

/* The index of the block starting at p, or UINT32_MAX if p starts no handed-out block. */
static uint32_t block_index(const struct span *s, uintptr_t p)
{
	uintptr_t off = p - ((uintptr_t)s + s->first);
	uint32_t i;

	if (p < (uintptr_t)s + s->first || off >= (uintptr_t)s->bump * s->block_size) {
		return UINT32_MAX;
	}
	i = (uint32_t)(((uint64_t)off * s->recip) >> 32);
	return (uintptr_t)i * s->block_size == off ? i : UINT32_MAX;
}

/* ---------- Heap ---------- */

int clrmemtrace__heap_create(uint32_t malloc_type, struct heap **out)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = 1, i;
	struct heap *h;

	if (pthread_once(&heap_once, heap_init) != 0 || heap_init_error) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	/* One arena serves a heap whose callers serialize; otherwise a power of two per CPU. */
	if (malloc_type & MALLOC_THREADSAFE) {
		while (n < MAX_ARENAS && (long)n < ncpu) {
			n <<= 1;
		}
	}
	h = aligned_alloc(64, (sizeof(*h) + n * sizeof(struct arena) + 63) & ~(size_t)63);
	if (!h) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	memset(h, 0, sizeof(*h) + n * sizeof(struct arena));
	h->type = malloc_type;
	h->prot = PROT_READ | PROT_WRITE | ((malloc_type & MALLOC_EXECUTABLE) ? PROT_EXEC : 0);
	h->narenas = n;
	for (i = 0; i < n; i++) {
		pthread_mutex_init(&h->arenas[i].lock, NULL);
	}
	*out = h;
	return 0;
}

void clrmemtrace__heap_destroy(struct heap *h)
{
	unsigned i;

	if (!h) {
		return;
	}
	for (i = 0; i < h->narenas; i++) {
		struct arena *a = &h->arenas[i];

		pthread_mutex_lock(&a->lock);
		while (a->all) {
			span_retire(a, a->all);
		}
		pthread_mutex_unlock(&a->lock);
		pthread_mutex_destroy(&a->lock);
	}
	free(h);
}

static int alloc_large(struct heap *h, struct arena *a, size_t size, void **out, heap_block_fn fn,
		       void *ctx)
{
	size_t page = clrmemtrace__sys.page_size, len;
	struct span *s;

	if (size > clrmemtrace__sys.user_limit / 2) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	len = (LARGE_HEADER + size + page - 1) & ~(page - 1);
	pthread_mutex_lock(&a->lock);
	s = span_new(h, a, SPAN_LARGE, 0, len);
	if (!s) {
		pthread_mutex_unlock(&a->lock);
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	s->large_size = size;
	s->large_live = 1;
	a->stats.live_blocks++;
	a->stats.live_bytes += size;
	a->stats.allocs++;
	*out = (char *)s + LARGE_HEADER;
	if (fn) {
		fn(ctx, *out, size);
	}
	pthread_mutex_unlock(&a->lock);
	return 0;
}

int clrmemtrace__heap_alloc(struct heap *h, size_t size, void **out, heap_block_fn fn, void *ctx)
{
	struct arena *a = &h->arenas[current_slot() & (h->narenas - 1)];
	unsigned c;
	struct span *s;
	void *b;
	uint32_t i;

	if (size > SMALL_MAX) {
		return alloc_large(h, a, size, out, fn, ctx);
	}
	c = class_of(size);
	pthread_mutex_lock(&a->lock);
	s = a->partial[c];
	if (unlikely(!s)) {
		s = span_new(h, a, SPAN_SMALL, c, SPAN_SIZE);
		if (!s) {
			pthread_mutex_unlock(&a->lock);
			return ERROR_NOT_ENOUGH_MEMORY;
		}
		partial_push(a, s);
	}
	if (s->free_list) {
		b = s->free_list;
		s->free_list = *(void **)b;
		i = block_index(s, (uintptr_t)b);
	} else {
		i = s->bump++;
		b = block_at(s, i);
	}
	s->state[i] = 1;
	s->req[i] = (uint16_t)size;
	if (--s->nfree == 0) {
		partial_remove(a, s);
	}
	a->stats.live_blocks++;
	a->stats.live_bytes += size;
	a->stats.allocs++;
	if (fn) {
		fn(ctx, b, size);
	}
	pthread_mutex_unlock(&a->lock);
	*out = b;
	return 0;
}

int clrmemtrace__heap_free(struct heap *h, void *ptr, heap_block_fn fn, void *ctx)
{
	uintptr_t p = (uintptr_t)ptr;
	struct arena *a;
	struct span *s;
	size_t size;
	uint32_t i;

	rcu_lock();
	s = clrmemtrace__addrmap_lookup(&span_map, p);
	if (!s || s->heap != h) {
		rcu_unlock();
		return ERROR_INVALID_ADDRESS;
	}
	a = s->arena;
	pthread_mutex_lock(&a->lock);
	if (s->dead) {
		/* Retired after the lookup: still mapped until we leave the read side. */
		pthread_mutex_unlock(&a->lock);
		rcu_unlock();
		return ERROR_INVALID_ADDRESS;
	}
	/* A live span is retired only under its arena lock, which we now hold. */
	rcu_unlock();
	if (s->kind == SPAN_LARGE) {
		if (p != (uintptr_t)s + LARGE_HEADER || !s->large_live) {
			goto invalid;
		}
		size = s->large_size;
		s->large_live = 0;
		span_retire(a, s);
	} else {
		i = block_index(s, p);
		if (i == UINT32_MAX || s->state[i] != 1) {
			goto invalid; /* interior pointer, never allocated, or freed already */
		}
		s->state[i] = 0;
		size = s->req[i];
		*(void **)ptr = s->free_list;
		s->free_list = ptr;
		if (s->nfree++ == 0) {
			partial_push(a, s);
		}
		if (s->nfree == s->nblocks && (s->prev || s->next)) {
			/* Empty and not the class's last partial span: give it back. */
			partial_remove(a, s);
			span_retire(a, s);
		}
	}
	a->stats.live_blocks--;
	a->stats.live_bytes -= size;
	a->stats.frees++;
	if (fn) {
		fn(ctx, ptr, size);
	}
	pthread_mutex_unlock(&a->lock);
	return 0;
invalid:
	pthread_mutex_unlock(&a->lock);
	return ERROR_INVALID_ADDRESS;
}

void clrmemtrace__heap_lock_all(struct heap *h)
{
	unsigned i;

	for (i = 0; i < h->narenas; i++) {
		pthread_mutex_lock(&h->arenas[i].lock);
	}
}

void clrmemtrace__heap_unlock_all(struct heap *h)
{
	unsigned i = h->narenas;

	while (i-- > 0) {
		pthread_mutex_unlock(&h->arenas[i].lock);
	}
}

void clrmemtrace__heap_stats_locked(struct heap *h, struct heap_stats *stats)
{
	unsigned i;

	memset(stats, 0, sizeof(*stats));
	for (i = 0; i < h->narenas; i++) {
		const struct heap_stats *a = &h->arenas[i].stats;

		stats->live_blocks += a->live_blocks;
		stats->live_bytes += a->live_bytes;
		stats->allocs += a->allocs;
		stats->frees += a->frees;
		stats->os_bytes += a->os_bytes;
	}
}

void clrmemtrace__heap_stats(struct heap *h, struct heap_stats *stats)
{
	clrmemtrace__heap_lock_all(h);
	clrmemtrace__heap_stats_locked(h, stats);
	clrmemtrace__heap_unlock_all(h);
}

int clrmemtrace__heap_foreach_live_locked(struct heap *h, heap_live_fn fn, void *ctx)
{
	unsigned a;

	for (a = 0; a < h->narenas; a++) {
		const struct span *s;

		for (s = h->arenas[a].all; s; s = s->all_next) {
			uint32_t i;
			int ret;

			if (s->kind == SPAN_LARGE) {
				if (s->large_live) {
					ret = fn(ctx, (char *)s + LARGE_HEADER, s->large_size);
					if (ret) {
						return ret;
					}
				}
				continue;
			}
			for (i = 0; i < s->bump; i++) {
				if (s->state[i] == 1) {
					ret = fn(ctx, block_at(s, i), s->req[i]);
					if (ret) {
						return ret;
					}
				}
			}
		}
	}
	return 0;
}
