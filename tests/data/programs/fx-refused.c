/* SPDX-License-Identifier: MIT */
/*
 * Calls the library refuses, each recorded with its HRESULT: a double free, a
 * free of a pointer the heap never handed out, a commit no reservation holds,
 * a protect of reserved pages, a double release, a release of an address never
 * reserved, and a few invalid parameters.
 */
#include "fixture.h"

#define REFUSED HOST_E_INVALIDOPERATION
#define BAD_ADDRESS HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS)
#define BAD_PARAMETER HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER)

int main(void)
{
	IHostMemoryManager *mm = fx_manager("refused");
	IHostMalloc *heap;
	MEMORY_BASIC_INFORMATION m;
	char *r, *gone, *block, local[64];
	void *p;
	SIZE_T res;
	DWORD old;

	fx_ok("CreateMalloc", IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap));
	fx_ok("DebugAlloc", IHostMalloc_DebugAlloc(heap, 64, eTaskCritical, (char *)"twice.c", 5,
						   (void **)&block));
	fx_ok("Free", IHostMalloc_Free(heap, block));
	fx_fails("Free (double)", IHostMalloc_Free(heap, block), REFUSED);
	fx_fails("Free (unknown)", IHostMalloc_Free(heap, local), REFUSED);
	fx_ok("Free (NULL)", IHostMalloc_Free(heap, NULL));

	r = fx_reserve(mm, 256 * KiB, MEM_RESERVE, PAGE_NOACCESS);
	fx_commit(mm, r, PAGE, PAGE_READWRITE);
	gone = fx_reserve(mm, 64 * KiB, MEM_RESERVE, PAGE_READWRITE);
	fx_ok("VirtualFree", IHostMemoryManager_VirtualFree(mm, gone, 0, MEM_RELEASE));

	/* No reservation holds the range any more. */
	fx_fails("commit outside", IHostMemoryManager_VirtualAlloc(mm, gone, PAGE, MEM_COMMIT,
								   PAGE_READWRITE, eTaskCritical,
								   &p),
		 BAD_ADDRESS);
	/* Reserved pages cannot be protected. */
	fx_fails("protect reserved", IHostMemoryManager_VirtualProtect(mm, r + 4 * PAGE, PAGE,
								       PAGE_READONLY, &old),
		 BAD_ADDRESS);
	fx_fails("release twice", IHostMemoryManager_VirtualFree(mm, gone, 0, MEM_RELEASE),
		 BAD_ADDRESS);
	fx_fails("release unknown", IHostMemoryManager_VirtualFree(mm, local, 0, MEM_RELEASE),
		 BAD_ADDRESS);
	/* Invalid parameters: not anomalies, only failures. */
	fx_fails("reserve 0 bytes", IHostMemoryManager_VirtualAlloc(mm, NULL, 0, MEM_RESERVE,
								    PAGE_READWRITE, eTaskCritical,
								    &p),
		 BAD_PARAMETER);
	fx_fails("release with a size", IHostMemoryManager_VirtualFree(mm, r, PAGE, MEM_RELEASE),
		 BAD_PARAMETER);
	fx_fails("bad protection", IHostMemoryManager_VirtualProtect(mm, r, PAGE, 0x3, &old),
		 BAD_PARAMETER);
	fx_fails("query with a short buffer",
		 IHostMemoryManager_VirtualQuery(mm, r, &m, 8, &res),
		 HRESULT_FROM_WIN32(ERROR_BAD_LENGTH));
	fx_walk(mm, r);
	fx_ok("VirtualFree", IHostMemoryManager_VirtualFree(mm, r, 0, MEM_RELEASE));
	IHostMalloc_Release(heap);
	IHostMemoryManager_Release(mm);
	return 0;
}
