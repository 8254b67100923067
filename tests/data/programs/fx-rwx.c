/* SPDX-License-Identifier: MIT */
/*
 * What a JIT does: code committed read-write and flipped to execute-read, a
 * read-write-execute commit, a reserve-and-commit with read-write-execute,
 * guard pages, a no-cache reservation, a decommit, a reset and the releases,
 * with the regions walked by VirtualQuery between the steps.
 */
#include "fixture.h"

#include <string.h>

int main(void)
{
	IHostMemoryManager *mm = fx_manager("jit");
	char *code, *stubs, *guarded, *device;
	void *p;
	DWORD old;

	code = fx_reserve(mm, 1 * MiB, MEM_RESERVE, PAGE_NOACCESS);
	fx_commit(mm, code, 4 * PAGE, PAGE_READWRITE);
	memset(code, 0xc3, 4 * PAGE);
	/* Write, then execute: the W->X flip. */
	fx_ok("VirtualProtect", IHostMemoryManager_VirtualProtect(mm, code, 2 * PAGE,
								  PAGE_EXECUTE_READ, &old));
	fx_ok("VirtualProtect", IHostMemoryManager_VirtualProtect(mm, code + 3 * PAGE, PAGE,
								  PAGE_READONLY, &old));
	fx_walk(mm, code);
	/* Read-write-execute pages, committed in the reservation. */
	fx_commit(mm, code + 16 * PAGE, 2 * PAGE, PAGE_EXECUTE_READWRITE);
	/* Reserve and commit read-write-execute at once, then drop the write. */
	stubs = fx_reserve(mm, 64 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_EXECUTE_READWRITE);
	fx_ok("VirtualProtect", IHostMemoryManager_VirtualProtect(mm, stubs, 64 * KiB,
								  PAGE_EXECUTE_READ, &old));
	fx_walk(mm, code);
	fx_walk(mm, stubs);
	/* A stack with a guard page below it. */
	guarded = fx_reserve(mm, 256 * KiB, MEM_RESERVE, PAGE_READWRITE);
	fx_commit(mm, guarded + 60 * PAGE, 4 * PAGE, PAGE_READWRITE);
	fx_ok("VirtualProtect", IHostMemoryManager_VirtualProtect(
					mm, guarded + 60 * PAGE, PAGE, PAGE_READWRITE | PAGE_GUARD, &old));
	fx_walk(mm, guarded);
	/* Uncached memory: the reservation's PAGE_NOCACHE shows on its committed pages. */
	device = fx_reserve(mm, 128 * KiB, MEM_RESERVE, PAGE_READWRITE | PAGE_NOCACHE);
	fx_commit(mm, device, 8 * PAGE, PAGE_READWRITE);
	fx_walk(mm, device);
	/* Reset, decommit and release. */
	fx_ok("VirtualAlloc(MEM_RESET)", IHostMemoryManager_VirtualAlloc(
						 mm, code + 3 * PAGE, PAGE, MEM_RESET,
						 PAGE_NOACCESS, eTaskCritical, &p));
	fx_ok("VirtualFree", IHostMemoryManager_VirtualFree(mm, code + 16 * PAGE, 2 * PAGE,
							    MEM_DECOMMIT));
	fx_walk(mm, code);
	fx_ok("VirtualFree", IHostMemoryManager_VirtualFree(mm, device, 0, MEM_DECOMMIT));
	fx_walk(mm, device);
	fx_ok("VirtualFree", IHostMemoryManager_VirtualFree(mm, stubs, 0, MEM_RELEASE));
	fx_ok("VirtualFree", IHostMemoryManager_VirtualFree(mm, guarded, 0, MEM_RELEASE));
	fx_ok("VirtualFree", IHostMemoryManager_VirtualFree(mm, device, 0, MEM_RELEASE));
	IHostMemoryManager_Release(mm);
	return 0;
}
