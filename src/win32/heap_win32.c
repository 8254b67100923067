/* SPDX-License-Identifier: MIT */
/*
 * The heap behind IHostMalloc on Windows: one private Win32 heap per
 * IHostMalloc (HeapCreate), executable when MALLOC_EXECUTABLE asks for it
 * (HEAP_CREATE_ENABLE_EXECUTE), and a set of its live blocks.
 *
 * HeapFree of a pointer that is not a live block of the heap is undefined
 * behaviour on Windows, while heap.h promises exact validation. So every
 * block is recorded with its requested size in an open-addressing hash set
 * under the heap's lock, and Free takes a block out of the set before it
 * calls HeapFree: a double, foreign or interior free finds nothing there and
 * is refused with ERROR_INVALID_ADDRESS before the OS sees it. The set also
 * gives the live statistics and the state dump without HeapWalk.
 *
 * Serialization follows MALLOC_THREADSAFE: such a heap is an ordinary
 * serialized Win32 heap and HeapAlloc/HeapFree run outside our lock; a heap
 * without it is created with HEAP_NO_SERIALIZE, and since heap.h still
 * promises thread safety (state dumps and statistics come from other
 * threads, and a careless runtime may overlap calls), its HeapAlloc and
 * HeapFree run under our lock, which then serializes everything once.
 *
 * Blocks are 16-byte aligned (HeapAlloc's alignment on x64) and a zero-byte
 * request gets a unique block (HeapAlloc of 0 bytes does). The policy is
 * charged each block's size rounded up to 16 bytes, before HeapAlloc.
 */
#include "heap.h"

#include "os_win32.h"
#include "policy.h"

#include <stdlib.h>

_Static_assert(MEMORY_ALLOCATION_ALIGNMENT >= 16, "HeapAlloc aligns blocks to 16 bytes");

#define EMPTY ((uintptr_t)0)
#define DELETED ((uintptr_t)1)

struct slot {
	uintptr_t ptr; /* EMPTY, DELETED or a live block */
	uint64_t size;
};

struct heap {
	HANDLE handle;
	uint32_t type;
	bool serialized; /* MALLOC_THREADSAFE: the OS heap takes its own lock */
	struct policy *policy;
	SRWLOCK lock; /* the set below, and the OS heap when !serialized */
	struct slot *slots;
	size_t capacity, count, used; /* used: count plus tombstones */
	uint64_t live_bytes;
	uint64_t os_bytes; /* what the policy was charged */
};

/* ---------- The live-block set (lock held) ---------- */

static size_t slot_of(const struct heap *h, uintptr_t p)
{
	return (size_t)(((uint64_t)(p >> 4) * 0x9e3779b97f4a7c15ull) >> 20) & (h->capacity - 1);
}

/* Rebuilds the set with cap slots, dropping the tombstones. */
static bool set_rebuild(struct heap *h, size_t cap)
{
	struct slot *old = h->slots, *n = calloc(cap, sizeof(*n));
	size_t old_cap = h->capacity, i;

	if (!n) {
		return false;
	}
	h->slots = n;
	h->capacity = cap;
	h->used = 0;
	for (i = 0; i < old_cap; i++) {
		if (old[i].ptr > DELETED) {
			size_t j = slot_of(h, old[i].ptr);

			while (n[j].ptr != EMPTY) {
				j = (j + 1) & (cap - 1);
			}
			n[j] = old[i];
			h->used++;
		}
	}
	free(old);
	return true;
}

/* Makes room for one more block: false when memory for the set runs out. */
static bool set_room(struct heap *h)
{
	if ((h->used + 1) * 4 <= h->capacity * 3) {
		return true;
	}
	if (!h->capacity) {
		return set_rebuild(h, 256);
	}
	/* Mostly tombstones: rebuilding at the same size is enough. */
	return set_rebuild(h, (h->count + 1) * 2 <= h->capacity ? h->capacity : h->capacity * 2);
}

/* Adds a new live block (set_room succeeded). */
static void set_add(struct heap *h, uintptr_t p, uint64_t size)
{
	size_t i = slot_of(h, p);

	while (h->slots[i].ptr > DELETED) {
		i = (i + 1) & (h->capacity - 1);
	}
	h->used += h->slots[i].ptr == EMPTY;
	h->slots[i].ptr = p;
	h->slots[i].size = size;
	h->count++;
	h->live_bytes += size;
}

/* The slot of live block p, or NULL. */
static struct slot *set_find(struct heap *h, uintptr_t p)
{
	size_t i;

	if (!h->capacity || p <= DELETED) {
		return NULL;
	}
	for (i = slot_of(h, p); h->slots[i].ptr != EMPTY; i = (i + 1) & (h->capacity - 1)) {
		if (h->slots[i].ptr == p) {
			return &h->slots[i];
		}
	}
	return NULL;
}

static void set_take(struct heap *h, struct slot *s)
{
	h->live_bytes -= s->size;
	h->count--;
	s->ptr = DELETED;
	s->size = 0;
}

/* ---------- Heap ---------- */

static uint64_t charged_size(size_t size)
{
	return ((uint64_t)size + 15) & ~(uint64_t)15;
}

int clrmemtrace__heap_create(uint32_t malloc_type, struct policy *policy, struct heap **out)
{
	struct heap *h = calloc(1, sizeof(*h));
	DWORD options = 0;

	if (!h) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	h->type = malloc_type;
	h->serialized = (malloc_type & MALLOC_THREADSAFE) != 0;
	h->policy = policy;
	if (!h->serialized) {
		options |= HEAP_NO_SERIALIZE;
	}
	if (malloc_type & MALLOC_EXECUTABLE) {
		options |= HEAP_CREATE_ENABLE_EXECUTE;
	}
	h->handle = HeapCreate(options, 0, 0);
	if (!h->handle) {
		int err = clrmemtrace__last_error();

		free(h);
		return err;
	}
	InitializeSRWLock(&h->lock);
	*out = h;
	return 0;
}

void clrmemtrace__heap_destroy(struct heap *h)
{
	if (!h) {
		return;
	}
	HeapDestroy(h->handle);
	if (h->policy && h->os_bytes) {
		clrmemtrace__policy_uncharge(h->policy, h->os_bytes, h->os_bytes);
	}
	free(h->slots);
	free(h);
}

int clrmemtrace__heap_alloc(struct heap *h, size_t size, int level, void **out, heap_block_fn fn,
			    void *ctx)
{
	uint64_t charged = charged_size(size);
	void *p;
	int err;

	*out = NULL;
	if (size > clrmemtrace__sys.user_limit / 2) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	if (h->policy) {
		err = clrmemtrace__policy_charge(h->policy, charged, charged, level);
		if (err) {
			return err;
		}
	}
	if (h->serialized) {
		/* The OS heap has its own lock: allocate without ours. */
		p = HeapAlloc(h->handle, 0, size);
		if (!p) {
			err = ERROR_NOT_ENOUGH_MEMORY;
			goto uncharge;
		}
		AcquireSRWLockExclusive(&h->lock);
		if (!set_room(h)) {
			ReleaseSRWLockExclusive(&h->lock);
			HeapFree(h->handle, 0, p);
			err = ERROR_NOT_ENOUGH_MEMORY;
			goto uncharge;
		}
	} else {
		AcquireSRWLockExclusive(&h->lock);
		p = set_room(h) ? HeapAlloc(h->handle, HEAP_NO_SERIALIZE, size) : NULL;
		if (!p) {
			ReleaseSRWLockExclusive(&h->lock);
			err = ERROR_NOT_ENOUGH_MEMORY;
			goto uncharge;
		}
	}
	set_add(h, (uintptr_t)p, size);
	h->os_bytes += charged;
	/* Under the lock: the block's event precedes any free of it. */
	if (fn) {
		fn(ctx, p, size);
	}
	ReleaseSRWLockExclusive(&h->lock);
	*out = p;
	return 0;
uncharge:
	if (h->policy) {
		clrmemtrace__policy_uncharge(h->policy, charged, charged);
	}
	return err;
}

int clrmemtrace__heap_free(struct heap *h, void *ptr, heap_block_fn fn, void *ctx)
{
	struct slot *s;
	uint64_t size, charged;

	AcquireSRWLockExclusive(&h->lock);
	s = set_find(h, (uintptr_t)ptr);
	if (!s) {
		ReleaseSRWLockExclusive(&h->lock);
		return ERROR_INVALID_ADDRESS; /* freed already, interior, or not this heap's */
	}
	size = s->size;
	charged = charged_size(size);
	set_take(h, s);
	/* Under the lock, out of the set and not yet given back: no one else has the block. */
	if (fn) {
		fn(ctx, ptr, size);
	}
	h->os_bytes -= charged;
	if (h->serialized) {
		/* Out of the set: no other caller can free it; the OS heap serializes. */
		ReleaseSRWLockExclusive(&h->lock);
		HeapFree(h->handle, 0, ptr);
	} else {
		HeapFree(h->handle, HEAP_NO_SERIALIZE, ptr);
		ReleaseSRWLockExclusive(&h->lock);
	}
	if (h->policy) {
		clrmemtrace__policy_uncharge(h->policy, charged, charged);
	}
	return 0;
}

void clrmemtrace__heap_lock_all(struct heap *h)
{
	AcquireSRWLockExclusive(&h->lock);
}

void clrmemtrace__heap_unlock_all(struct heap *h)
{
	ReleaseSRWLockExclusive(&h->lock);
}

void clrmemtrace__heap_stats_locked(struct heap *h, struct heap_stats *stats)
{
	stats->live_blocks = h->count;
	stats->live_bytes = h->live_bytes;
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
	size_t i;

	for (i = 0; i < h->capacity; i++) {
		if (h->slots[i].ptr > DELETED) {
			int ret = fn(ctx, (void *)h->slots[i].ptr, (size_t)h->slots[i].size);

			if (ret) {
				return ret;
			}
		}
	}
	return 0;
}
