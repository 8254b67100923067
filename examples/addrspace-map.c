/* SPDX-License-Identifier: MIT */
/*
 * A small host: it hands out memory the way the CLR asks for it (a GC
 * segment, a loader heap, a JIT patch, native heap blocks) and prints the
 * address-space map the manager reports, VirtualQuery by VirtualQuery.
 *
 * Usage: addrspace-map
 */
#include <clrmemtrace.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MiB ((SIZE_T)1 << 20)
#define PAGE ((SIZE_T)4096)

static void check(const char *what, HRESULT hr)
{
	if (hr != S_OK) {
		fprintf(stderr, "addrspace-map: %s failed: %s\n", what, clrmemtrace_hresult_name(hr));
		exit(1);
	}
}

static const char *state_name(DWORD s)
{
	switch (s) {
	case MEM_COMMIT:
		return "commit";
	case MEM_RESERVE:
		return "reserve";
	case MEM_FREE:
		return "free";
	default:
		return "?";
	}
}

static const char *protect_name(DWORD p, char *buf, size_t len)
{
	static const struct {
		DWORD value;
		const char *name;
	} names[] = {
		{ PAGE_NOACCESS, "NOACCESS" },         { PAGE_READONLY, "READONLY" },
		{ PAGE_READWRITE, "READWRITE" },       { PAGE_EXECUTE, "EXECUTE" },
		{ PAGE_EXECUTE_READ, "EXECUTE_READ" }, { PAGE_EXECUTE_READWRITE, "EXECUTE_READWRITE" },
	};
	size_t i;

	if (p == 0) {
		return "-";
	}
	snprintf(buf, len, "0x%lx", (unsigned long)p);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((p & 0xff) == names[i].value) {
			snprintf(buf, len, "%s%s", names[i].name, (p & PAGE_GUARD) ? "|GUARD" : "");
		}
	}
	return buf;
}

/* Prints every run of one reservation, the way VMMap or !address would. */
static void print_reservation(IHostMemoryManager *mm, const char *label, void *base)
{
	char *p = base;

	printf("%s\n", label);
	for (;;) {
		MEMORY_BASIC_INFORMATION m;
		SIZE_T res;
		char buf[32];

		check("VirtualQuery", IHostMemoryManager_VirtualQuery(mm, p, &m, sizeof(m), &res));
		if (m.AllocationBase != base) {
			break;
		}
		printf("  %p  %10zu KiB  %-8s %s\n", m.BaseAddress, (size_t)(m.RegionSize >> 10),
		       state_name(m.State), protect_name(m.Protect, buf, sizeof(buf)));
		p += m.RegionSize;
	}
}

int main(void)
{
	clrmemtrace_options opts = { .size = sizeof(opts), .name = "addrspace-map" };
	IHostMemoryManager *mm;
	IHostMalloc *heap;
	void *segment, *loader, *piece, *blocks[1000];
	MEMORY_BASIC_INFORMATION m;
	SIZE_T res, avail;
	DWORD old, load;
	int i, local = 0;

	printf("clrmemtrace %s: an example host\n\n", clrmemtrace_version());
	check("clrmemtrace_create", clrmemtrace_create(&opts, &mm));

	/* Start-up, as the CLR does it: one thread-safe heap. */
	check("CreateMalloc", IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap));

	/* A workstation GC segment: reserve 256 MiB, commit 2 pages, grow by 16. */
	check("reserve segment", IHostMemoryManager_VirtualAlloc(mm, NULL, 256 * MiB, MEM_RESERVE,
								 PAGE_READWRITE, eProcessCritical,
								 &segment));
	check("commit", IHostMemoryManager_VirtualAlloc(mm, segment, 2 * PAGE, MEM_COMMIT,
							PAGE_READWRITE, eProcessCritical, &piece));
	check("grow", IHostMemoryManager_VirtualAlloc(mm, (char *)segment + 2 * PAGE, 16 * PAGE,
						      MEM_COMMIT, PAGE_READWRITE, eTaskCritical,
						      &piece));

	/* A loader heap: reserve no-access, commit code and data pieces. */
	check("reserve loader heap",
	      IHostMemoryManager_VirtualAlloc(mm, NULL, 1 * MiB, MEM_RESERVE, PAGE_NOACCESS,
					      eProcessCritical, &loader));
	check("commit code", IHostMemoryManager_VirtualAlloc(mm, loader, 4 * PAGE, MEM_COMMIT,
							     PAGE_EXECUTE_READWRITE, eTaskCritical,
							     &piece));
	check("commit data", IHostMemoryManager_VirtualAlloc(mm, (char *)loader + 8 * PAGE, 2 * PAGE,
							     MEM_COMMIT, PAGE_READWRITE,
							     eTaskCritical, &piece));
	/* JIT patching: make a code page read-only-executable, as after a fix-up. */
	check("protect", IHostMemoryManager_VirtualProtect(mm, loader, PAGE, PAGE_EXECUTE_READ, &old));

	/* Native heap blocks, a share of them with a file and line. */
	for (i = 0; i < 1000; i++) {
		if (i % 4 == 0) {
			check("DebugAlloc", IHostMalloc_DebugAlloc(heap, 24 + (SIZE_T)i, eTaskCritical,
								   (char *)__FILE__, __LINE__,
								   &blocks[i]));
		} else {
			check("Alloc", IHostMalloc_Alloc(heap, 24 + (SIZE_T)i, eTaskCritical, &blocks[i]));
		}
	}

	print_reservation(mm, "GC segment (256 MiB reserved):", segment);
	print_reservation(mm, "Loader heap (1 MiB reserved):", loader);

	/* Memory the manager does not own is answered from the kernel's view. */
	check("VirtualQuery(stack)", IHostMemoryManager_VirtualQuery(mm, &local, &m, sizeof(m), &res));
	printf("This thread's stack: allocation base %p, %s, %s\n", m.AllocationBase,
	       state_name(m.State), m.Type == MEM_PRIVATE ? "private" : "other");

	check("GetMemoryLoad", IHostMemoryManager_GetMemoryLoad(mm, &load, &avail));
	printf("Memory load %lu%%, %.1f GiB available\n", (unsigned long)load,
	       (double)avail / (1024.0 * 1024 * 1024));

	for (i = 0; i < 1000; i++) {
		check("Free", IHostMalloc_Free(heap, blocks[i]));
	}
	check("release segment", IHostMemoryManager_VirtualFree(mm, segment, 0, MEM_RELEASE));
	check("release loader heap", IHostMemoryManager_VirtualFree(mm, loader, 0, MEM_RELEASE));
	printf("Freed 1000 heap blocks and released both reservations.\n");
	IHostMalloc_Release(heap);
	IHostMemoryManager_Release(mm);
	return 0;
}
