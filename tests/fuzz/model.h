/* SPDX-License-Identifier: MIT */
/*
 * A reference model of what an IHostMemoryManager and its IHostMalloc heaps
 * must answer, for the operation-sequence fuzzer (fuzz-ops.c).
 *
 * It is written from the behaviour catalogue (win32-vm-semantics.md, cited
 * as "#n"), DESIGN.md and the documented decisions of the POSIX backend,
 * not from the library: every reservation is a plain array with one entry
 * per page, and every answer is recomputed from those arrays by scanning
 * them. The model shares no code and no data structure with src/.
 *
 * Each call is split in two. A prediction (struct pred) is computed from
 * the current state without changing it; the fuzzer then makes the call,
 * compares, and applies the prediction to the model only when the call
 * succeeded. Where the answer depends on something the model cannot know
 * (what else the process has mapped at an explicit address, where the
 * kernel places a new reservation), the prediction says so and the fuzzer
 * asks the kernel.
 */
#ifndef CLRMEMTRACE_FUZZ_MODEL_H
#define CLRMEMTRACE_FUZZ_MODEL_H

#include <clrmemtrace.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds that keep one input small and its inputs independent. */
#define MODEL_MAX_RES 8
#define MODEL_MAX_HEAPS 6
#define MODEL_MAX_BLOCKS 256
#define MODEL_MAX_VAS 16
#define MODEL_MAX_HEAP_REFS 16

/* The page-state value of a page that is reserved but not committed. */
#define MODEL_RESERVED 0

/* One page of a reservation. */
struct mpage {
	/* MODEL_RESERVED, or the page's Win32 protection (a base value, maybe | PAGE_GUARD). */
	uint16_t prot;
	/* MEM_RESET hit the page after its pattern was written: it reads as the pattern or as zero. */
	uint8_t maybe_reset;
	/* 0: the page reads as zero; else the pattern the fuzzer wrote last (fuzz-ops.c). */
	uint32_t tag;
};

/* One reservation: a VirtualAlloc that reserved address space. */
struct mres {
	bool live;
	uintptr_t base; /* 64 KiB aligned */
	uintptr_t end;  /* page aligned */
	/* The reserving call's protection, modifiers included, PAGE_TARGETS_INVALID dropped. */
	uint32_t alloc_protect;
	/* PAGE_NOCACHE or PAGE_WRITECOMBINE of the reserving call: allocation-wide (#66). */
	uint32_t cache;
	size_t pages;
	struct mpage *page;
};

struct mheap {
	bool live;
	uint32_t refs;
	uint32_t type;
	void *handle; /* the fuzzer's IHostMalloc pointer */
};

struct mblock {
	bool live;
	int heap;
	void *ptr;
	size_t size;
	uint32_t seed; /* the fuzzer's fill pattern */
};

struct mvas {
	bool live;
	uintptr_t start;
	size_t size;
};

struct model {
	size_t page_size;
	uintptr_t user_min;   /* lowest address a reservation may start at */
	uintptr_t user_limit; /* first address above user space */
	/* NULL-address reservations of this many bytes or more find no hole: E_OUTOFMEMORY. */
	uintptr_t no_hole;
	struct mres res[MODEL_MAX_RES];
	struct mheap heap[MODEL_MAX_HEAPS];
	struct mblock block[MODEL_MAX_BLOCKS];
	struct mvas vas[MODEL_MAX_VAS];
	uint32_t manager_refs;
};

enum pred_kind {
	/* The call fails with pred.hr and changes nothing. */
	P_FAIL,
	/* S_OK: a new reservation of `len` bytes at a 64 KiB aligned address of the library's choice. */
	P_RESERVE,
	/*
	 * [base, base + len) holds none of the manager's reservations: S_OK with
	 * a reservation there, or ERROR_INVALID_ADDRESS when something the
	 * manager does not own is mapped in the range.
	 */
	P_RESERVE_AT,
	/* S_OK at `base`: pages [first, last) of reservation `res` become `prot`. */
	P_COMMIT,
	/* S_OK at `base`: committed pages of [first, last) may lose their contents. */
	P_RESET,
	/* S_OK: pages [first, last) of `res` become reserved and lose their contents. */
	P_DECOMMIT,
	/* S_OK: reservation `res` is gone. */
	P_RELEASE,
	/* S_OK with *old = `old`; pages [first, last) of `res` become `prot` (none if empty). */
	P_PROTECT,
};

struct pred {
	enum pred_kind kind;
	HRESULT hr; /* S_OK unless P_FAIL */
	int res;
	uintptr_t base;
	size_t len;
	size_t first, last;
	uint16_t prot;
	uint32_t alloc_protect, cache;
	uint32_t old;
	const char *why; /* the rule that decided, for the operation log */
};

/* Query answers. */
enum qkind {
	Q_FAIL,    /* pred hr */
	Q_OWNED,   /* exact: mbi */
	Q_FOREIGN, /* not the manager's: only consistency can be checked */
};

void model_init(struct model *m, size_t page_size, uintptr_t user_min, uintptr_t user_limit);
/* Forgets everything (frees the page arrays). */
void model_clear(struct model *m);

/* Whether a Win32 protection is valid for private memory; its page state and cache bits. */
bool model_protect_valid(uint32_t protect, uint16_t *prot, uint32_t *cache);

/* The live reservation holding addr, or -1. */
int model_find(const struct model *m, uintptr_t addr);
/* Whether [lo, hi) meets a live reservation. */
bool model_overlaps(const struct model *m, uintptr_t lo, uintptr_t hi);
int model_live_reservations(const struct model *m);

/* IHostMemoryManager::VirtualAlloc; out_null: ppMem is NULL. */
void model_virtual_alloc(const struct model *m, uintptr_t addr, size_t size, uint32_t type,
			 uint32_t protect, int level, bool out_null, struct pred *p);
/* After a successful P_RESERVE or P_RESERVE_AT at base: the new reservation's index, -1 if full. */
int model_add_reservation(struct model *m, const struct pred *p, uintptr_t base);
/* IHostMemoryManager::VirtualFree. */
void model_virtual_free(const struct model *m, uintptr_t addr, size_t size, uint32_t type,
			struct pred *p);
/* IHostMemoryManager::VirtualProtect; old_null: pflOldProtect is NULL. */
void model_virtual_protect(const struct model *m, uintptr_t addr, size_t size, uint32_t protect,
			   bool old_null, struct pred *p);
/* Applies a successful P_COMMIT, P_RESET, P_DECOMMIT, P_RELEASE or P_PROTECT. */
void model_apply(struct model *m, const struct pred *p);

/*
 * IHostMemoryManager::VirtualQuery. On Q_FAIL *hr is the expected HRESULT;
 * on Q_OWNED *mbi is the exact answer.
 */
enum qkind model_virtual_query(const struct model *m, uintptr_t addr, bool buf_null, size_t len,
			       bool result_null, HRESULT *hr, MEMORY_BASIC_INFORMATION *mbi);

/* Heaps. Each returns the expected HRESULT. */
HRESULT model_create_malloc(const struct model *m, uint32_t type, bool out_null);
/* Heap Alloc/DebugAlloc of `size` at `level`. */
HRESULT model_heap_alloc(const struct model *m, size_t size, int level, bool out_null);
/* Heap Free of ptr: the index of the block it frees in *block (or -1). */
HRESULT model_heap_free(const struct model *m, int heap, const void *ptr, int *block);
/* The live block holding [p, p + n), or -1 (any heap). */
int model_block_overlapping(const struct model *m, uintptr_t p, size_t n);

/* The VAS callbacks; *slot is the acquired range concerned, or -1. */
HRESULT model_needs_vas(const struct model *m, uintptr_t start, size_t size);
HRESULT model_acquired_vas(const struct model *m, uintptr_t start, size_t size, int *slot);
HRESULT model_released_vas(const struct model *m, uintptr_t start, int *slot);

#endif /* CLRMEMTRACE_FUZZ_MODEL_H */
