/* SPDX-License-Identifier: MIT */
/*
 * clrmemtrace: the .NET CLR hosting memory interfaces (IHostMemoryManager,
 * IHostMalloc) over the real OS allocator, with a tracepoint on every call.
 *
 * This is the only public header. On POSIX it defines the Win32/COM types,
 * constants and the interfaces in MIDL's C layout itself; on Windows it uses
 * <windows.h> and stays compatible with the SDK's <mscoree.h>.
 */
#ifndef CLRMEMTRACE_H
#define CLRMEMTRACE_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#include <windows.h>
/*
 * The SDK's hosting header first: when it declares the memory interfaces
 * (Microsoft's MSCorEE.h), they and their enumerations and IIDs are its, and
 * this header adds only what is missing (mingw-w64's mscoree.h has
 * IHostControl and ICLRRuntimeHost but not the memory interfaces). Either
 * header may then be included again, in any order.
 */
#include <mscoree.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------- Export macro ---------- */

#if defined(_WIN32)
#if defined(CLRMEMTRACE_BUILDING)
#define CLRMEMTRACE_EXPORT __declspec(dllexport)
#elif defined(CLRMEMTRACE_STATIC)
#define CLRMEMTRACE_EXPORT
#else
#define CLRMEMTRACE_EXPORT __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define CLRMEMTRACE_EXPORT __attribute__((visibility("default")))
#else
#define CLRMEMTRACE_EXPORT
#endif

#define CLRMEMTRACE_VERSION_MAJOR 0
#define CLRMEMTRACE_VERSION_MINOR 1
#define CLRMEMTRACE_VERSION_PATCH 0

/* ---------- Win32 / COM base types on POSIX ---------- */

#if !defined(_WIN32)

typedef int32_t HRESULT;
typedef int32_t LONG;
typedef uint32_t ULONG;
typedef uint32_t DWORD;
typedef uint16_t WORD;
typedef unsigned char BYTE;
typedef int BOOL;
typedef size_t SIZE_T;
typedef uintptr_t ULONG_PTR;
typedef void *PVOID;
typedef void *LPVOID;
typedef const void *LPCVOID;

#ifndef GUID_DEFINED
#define GUID_DEFINED
typedef struct _GUID {
	uint32_t Data1;
	uint16_t Data2;
	uint16_t Data3;
	uint8_t Data4[8];
} GUID;
#endif
typedef GUID IID;
typedef const IID *REFIID;

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

/* The x64 Windows layout: 48 bytes, PartitionId in what older SDKs call padding. */
typedef struct _MEMORY_BASIC_INFORMATION {
	PVOID BaseAddress;
	PVOID AllocationBase;
	DWORD AllocationProtect;
	WORD PartitionId;
	SIZE_T RegionSize;
	DWORD State;
	DWORD Protect;
	DWORD Type;
} MEMORY_BASIC_INFORMATION, *PMEMORY_BASIC_INFORMATION;

/* Methods use the platform's C calling convention on POSIX. */
#ifndef STDMETHODCALLTYPE
#define STDMETHODCALLTYPE
#endif

/* HRESULT helpers */
#define SEVERITY_SUCCESS 0
#define SEVERITY_ERROR 1
#define FACILITY_WIN32 7
#define MAKE_HRESULT(sev, fac, code) \
	((HRESULT)(((uint32_t)(sev) << 31) | ((uint32_t)(fac) << 16) | ((uint32_t)(code))))
#define HRESULT_FROM_WIN32(x)                                    \
	((HRESULT)(x) <= 0 ? ((HRESULT)(x))                          \
			   : ((HRESULT)(((uint32_t)(x) & 0x0000FFFFu) | \
					(FACILITY_WIN32 << 16) | 0x80000000u)))
#define SUCCEEDED(hr) (((HRESULT)(hr)) >= 0)
#define FAILED(hr) (((HRESULT)(hr)) < 0)

#define S_OK ((HRESULT)0x00000000)
#define S_FALSE ((HRESULT)0x00000001)
#define E_NOTIMPL ((HRESULT)0x80004001u)
#define E_NOINTERFACE ((HRESULT)0x80004002u)
#define E_POINTER ((HRESULT)0x80004003u)
#define E_ABORT ((HRESULT)0x80004004u)
#define E_FAIL ((HRESULT)0x80004005u)
#define E_UNEXPECTED ((HRESULT)0x8000FFFFu)
#define E_ACCESSDENIED ((HRESULT)0x80070005u)
#define E_HANDLE ((HRESULT)0x80070006u)
#define E_OUTOFMEMORY ((HRESULT)0x8007000Eu)
#define E_INVALIDARG ((HRESULT)0x80070057u)

/* Win32 error codes the interfaces report (through HRESULT_FROM_WIN32). */
#define ERROR_SUCCESS 0
#define ERROR_ACCESS_DENIED 5
#define ERROR_INVALID_HANDLE 6
#define ERROR_NOT_ENOUGH_MEMORY 8
#define ERROR_INVALID_ACCESS 12
#define ERROR_OUTOFMEMORY 14
#define ERROR_BAD_LENGTH 24
#define ERROR_NOT_SUPPORTED 50
#define ERROR_INVALID_PARAMETER 87
#define ERROR_PARTIAL_COPY 299
#define ERROR_INVALID_ADDRESS 487
#define ERROR_NOACCESS 998
#define ERROR_INTERNAL_ERROR 1359
#define ERROR_COMMITMENT_LIMIT 1455

/* Allocation types, free types, states and types. */
#define MEM_COALESCE_PLACEHOLDERS 0x00000001
#define MEM_PRESERVE_PLACEHOLDER 0x00000002
#define MEM_COMMIT 0x00001000
#define MEM_RESERVE 0x00002000
#define MEM_DECOMMIT 0x00004000
#define MEM_REPLACE_PLACEHOLDER 0x00004000
#define MEM_RELEASE 0x00008000
#define MEM_FREE 0x00010000
#define MEM_PRIVATE 0x00020000
#define MEM_MAPPED 0x00040000
#define MEM_RESERVE_PLACEHOLDER 0x00040000
#define MEM_RESET 0x00080000
#define MEM_TOP_DOWN 0x00100000
#define MEM_WRITE_WATCH 0x00200000
#define MEM_PHYSICAL 0x00400000
#define MEM_ROTATE 0x00800000
#define MEM_DIFFERENT_IMAGE_BASE_OK 0x00800000
#define MEM_RESET_UNDO 0x01000000
#define MEM_IMAGE 0x01000000
#define MEM_LARGE_PAGES 0x20000000
#define MEM_4MB_PAGES 0x80000000u

/* Page protections and modifiers. */
#define PAGE_NOACCESS 0x01
#define PAGE_READONLY 0x02
#define PAGE_READWRITE 0x04
#define PAGE_WRITECOPY 0x08
#define PAGE_EXECUTE 0x10
#define PAGE_EXECUTE_READ 0x20
#define PAGE_EXECUTE_READWRITE 0x40
#define PAGE_EXECUTE_WRITECOPY 0x80
#define PAGE_GUARD 0x100
#define PAGE_NOCACHE 0x200
#define PAGE_WRITECOMBINE 0x400
#define PAGE_TARGETS_INVALID 0x40000000
#define PAGE_TARGETS_NO_UPDATE 0x40000000

#else /* _WIN32 */

/* Placeholder flags of newer SDKs' winnt.h, which older mingw-w64 headers lack. */
#ifndef MEM_COALESCE_PLACEHOLDERS
#define MEM_COALESCE_PLACEHOLDERS 0x00000001
#endif
#ifndef MEM_PRESERVE_PLACEHOLDER
#define MEM_PRESERVE_PLACEHOLDER 0x00000002
#endif
#ifndef MEM_REPLACE_PLACEHOLDER
#define MEM_REPLACE_PLACEHOLDER 0x00004000
#endif
#ifndef MEM_RESERVE_PLACEHOLDER
#define MEM_RESERVE_PLACEHOLDER 0x00040000
#endif

#endif /* _WIN32 */

/* CLR hosting HRESULTs: MAKE_HRESULT(1, FACILITY_URT = 0x13, code). */
#ifndef HOST_E_DEADLOCK
#define HOST_E_DEADLOCK ((HRESULT)0x80131020u)
#define HOST_E_INTERRUPTED ((HRESULT)0x80131021u)
#define HOST_E_INVALIDOPERATION ((HRESULT)0x80131022u)
#define HOST_E_CLRNOTAVAILABLE ((HRESULT)0x80131023u)
#define HOST_E_TIMEOUT ((HRESULT)0x80131024u)
#define HOST_E_NOT_OWNER ((HRESULT)0x80131025u)
#define HOST_E_ABANDONED ((HRESULT)0x80131026u)
#define HOST_E_EXITPROCESS_THREADABORT ((HRESULT)0x80131027u)
#define HOST_E_EXITPROCESS_ADUNLOAD ((HRESULT)0x80131028u)
#define HOST_E_EXITPROCESS_TIMEOUT ((HRESULT)0x80131029u)
#define HOST_E_EXITPROCESS_OUTOFMEMORY ((HRESULT)0x8013102Au)
#define HOST_E_EXITPROCESS_STACKOVERFLOW ((HRESULT)0x8013102Bu)
#endif

/* ---------- Hosting enumerations (MSCorEE.idl) ---------- */

#ifndef __IHostMemoryManager_INTERFACE_DEFINED__
typedef enum {
	eTaskCritical = 0,
	eAppDomainCritical = 1,
	eProcessCritical = 2
} EMemoryCriticalLevel;

typedef enum {
	eMemoryAvailableLow = 1,
	eMemoryAvailableNeutral = 2,
	eMemoryAvailableHigh = 3
} EMemoryAvailable;

typedef enum {
	MALLOC_THREADSAFE = 0x1,
	MALLOC_EXECUTABLE = 0x2
} MALLOC_TYPE;
#endif

/* ---------- Interface identifiers (defined by the library) ---------- */

/* On Windows IID_IUnknown is the SDK's (<unknwn.h>, the uuid library). */
#if !defined(_WIN32)
CLRMEMTRACE_EXPORT extern const IID IID_IUnknown;
#endif
/* Microsoft's MSCorEE.h defines these itself when it declares the interfaces. */
#ifndef __IHostMemoryManager_INTERFACE_DEFINED__
CLRMEMTRACE_EXPORT extern const IID IID_IHostMemoryManager;
CLRMEMTRACE_EXPORT extern const IID IID_IHostMalloc;
CLRMEMTRACE_EXPORT extern const IID IID_ICLRMemoryNotificationCallback;
#endif

/* ---------- Interfaces in MIDL C layout (vtable slots in IDL order) ---------- */

#ifndef __IHostMemoryManager_INTERFACE_DEFINED__
#define __IHostMemoryManager_INTERFACE_DEFINED__
#define __IHostMalloc_INTERFACE_DEFINED__
#define __ICLRMemoryNotificationCallback_INTERFACE_DEFINED__

typedef struct IHostMalloc IHostMalloc;
typedef struct IHostMemoryManager IHostMemoryManager;
typedef struct ICLRMemoryNotificationCallback ICLRMemoryNotificationCallback;

/* ICLRMemoryNotificationCallback: implemented by the runtime, called by the host. */
typedef struct ICLRMemoryNotificationCallbackVtbl {
	/* 0 */ HRESULT(STDMETHODCALLTYPE *QueryInterface)(ICLRMemoryNotificationCallback *This,
							  REFIID riid, void **ppvObject);
	/* 1 */ ULONG(STDMETHODCALLTYPE *AddRef)(ICLRMemoryNotificationCallback *This);
	/* 2 */ ULONG(STDMETHODCALLTYPE *Release)(ICLRMemoryNotificationCallback *This);
	/* 3 */ HRESULT(STDMETHODCALLTYPE *OnMemoryNotification)(ICLRMemoryNotificationCallback *This,
								EMemoryAvailable eMemoryAvailable);
} ICLRMemoryNotificationCallbackVtbl;

struct ICLRMemoryNotificationCallback {
	const ICLRMemoryNotificationCallbackVtbl *lpVtbl;
};

/* IHostMalloc: a heap handed to the runtime by IHostMemoryManager::CreateMalloc. */
typedef struct IHostMallocVtbl {
	/* 0 */ HRESULT(STDMETHODCALLTYPE *QueryInterface)(IHostMalloc *This, REFIID riid,
							  void **ppvObject);
	/* 1 */ ULONG(STDMETHODCALLTYPE *AddRef)(IHostMalloc *This);
	/* 2 */ ULONG(STDMETHODCALLTYPE *Release)(IHostMalloc *This);
	/* 3 */ HRESULT(STDMETHODCALLTYPE *Alloc)(IHostMalloc *This, SIZE_T cbSize,
						 EMemoryCriticalLevel eCriticalLevel, void **ppMem);
	/* 4 */ HRESULT(STDMETHODCALLTYPE *DebugAlloc)(IHostMalloc *This, SIZE_T cbSize,
						      EMemoryCriticalLevel eCriticalLevel,
						      char *pszFileName, int iLineNo, void **ppMem);
	/* 5 */ HRESULT(STDMETHODCALLTYPE *Free)(IHostMalloc *This, void *pMem);
} IHostMallocVtbl;

struct IHostMalloc {
	const IHostMallocVtbl *lpVtbl;
};

/* IHostMemoryManager: the runtime's source of virtual memory and heaps. */
typedef struct IHostMemoryManagerVtbl {
	/* 0 */ HRESULT(STDMETHODCALLTYPE *QueryInterface)(IHostMemoryManager *This, REFIID riid,
							  void **ppvObject);
	/* 1 */ ULONG(STDMETHODCALLTYPE *AddRef)(IHostMemoryManager *This);
	/* 2 */ ULONG(STDMETHODCALLTYPE *Release)(IHostMemoryManager *This);
	/* 3 */ HRESULT(STDMETHODCALLTYPE *CreateMalloc)(IHostMemoryManager *This, DWORD dwMallocType,
							IHostMalloc **ppMalloc);
	/* 4 */ HRESULT(STDMETHODCALLTYPE *VirtualAlloc)(IHostMemoryManager *This, void *pAddress,
							SIZE_T dwSize, DWORD flAllocationType,
							DWORD flProtect,
							EMemoryCriticalLevel eCriticalLevel,
							void **ppMem);
	/* 5 */ HRESULT(STDMETHODCALLTYPE *VirtualFree)(IHostMemoryManager *This, LPVOID lpAddress,
						       SIZE_T dwSize, DWORD dwFreeType);
	/* 6 */ HRESULT(STDMETHODCALLTYPE *VirtualQuery)(IHostMemoryManager *This, void *lpAddress,
							void *lpBuffer, SIZE_T dwLength,
							SIZE_T *pResult);
	/* 7 */ HRESULT(STDMETHODCALLTYPE *VirtualProtect)(IHostMemoryManager *This, void *lpAddress,
							  SIZE_T dwSize, DWORD flNewProtect,
							  DWORD *pflOldProtect);
	/* 8 */ HRESULT(STDMETHODCALLTYPE *GetMemoryLoad)(IHostMemoryManager *This,
							 DWORD *pMemoryLoad,
							 SIZE_T *pAvailableBytes);
	/* 9 */ HRESULT(STDMETHODCALLTYPE *RegisterMemoryNotificationCallback)(
		IHostMemoryManager *This, ICLRMemoryNotificationCallback *pCallback);
	/* 10 */ HRESULT(STDMETHODCALLTYPE *NeedsVirtualAddressSpace)(IHostMemoryManager *This,
								   LPVOID startAddress,
								   SIZE_T size);
	/* 11 */ HRESULT(STDMETHODCALLTYPE *AcquiredVirtualAddressSpace)(IHostMemoryManager *This,
								      LPVOID startAddress,
								      SIZE_T size);
	/* 12 */ HRESULT(STDMETHODCALLTYPE *ReleasedVirtualAddressSpace)(IHostMemoryManager *This,
								      LPVOID startAddress);
} IHostMemoryManagerVtbl;

struct IHostMemoryManager {
	const IHostMemoryManagerVtbl *lpVtbl;
};

/* Call macros in the style of MIDL's COBJMACROS. */
#define ICLRMemoryNotificationCallback_QueryInterface(This, riid, ppv) \
	((This)->lpVtbl->QueryInterface(This, riid, ppv))
#define ICLRMemoryNotificationCallback_AddRef(This) ((This)->lpVtbl->AddRef(This))
#define ICLRMemoryNotificationCallback_Release(This) ((This)->lpVtbl->Release(This))
#define ICLRMemoryNotificationCallback_OnMemoryNotification(This, e) \
	((This)->lpVtbl->OnMemoryNotification(This, e))

#define IHostMalloc_QueryInterface(This, riid, ppv) ((This)->lpVtbl->QueryInterface(This, riid, ppv))
#define IHostMalloc_AddRef(This) ((This)->lpVtbl->AddRef(This))
#define IHostMalloc_Release(This) ((This)->lpVtbl->Release(This))
#define IHostMalloc_Alloc(This, cb, level, ppMem) ((This)->lpVtbl->Alloc(This, cb, level, ppMem))
#define IHostMalloc_DebugAlloc(This, cb, level, file, line, ppMem) \
	((This)->lpVtbl->DebugAlloc(This, cb, level, file, line, ppMem))
#define IHostMalloc_Free(This, p) ((This)->lpVtbl->Free(This, p))

#define IHostMemoryManager_QueryInterface(This, riid, ppv) \
	((This)->lpVtbl->QueryInterface(This, riid, ppv))
#define IHostMemoryManager_AddRef(This) ((This)->lpVtbl->AddRef(This))
#define IHostMemoryManager_Release(This) ((This)->lpVtbl->Release(This))
#define IHostMemoryManager_CreateMalloc(This, type, pp) ((This)->lpVtbl->CreateMalloc(This, type, pp))
#define IHostMemoryManager_VirtualAlloc(This, addr, size, type, prot, level, pp) \
	((This)->lpVtbl->VirtualAlloc(This, addr, size, type, prot, level, pp))
#define IHostMemoryManager_VirtualFree(This, addr, size, type) \
	((This)->lpVtbl->VirtualFree(This, addr, size, type))
#define IHostMemoryManager_VirtualQuery(This, addr, buf, len, pres) \
	((This)->lpVtbl->VirtualQuery(This, addr, buf, len, pres))
#define IHostMemoryManager_VirtualProtect(This, addr, size, prot, pold) \
	((This)->lpVtbl->VirtualProtect(This, addr, size, prot, pold))
#define IHostMemoryManager_GetMemoryLoad(This, pload, pavail) \
	((This)->lpVtbl->GetMemoryLoad(This, pload, pavail))
#define IHostMemoryManager_RegisterMemoryNotificationCallback(This, cb) \
	((This)->lpVtbl->RegisterMemoryNotificationCallback(This, cb))
#define IHostMemoryManager_NeedsVirtualAddressSpace(This, addr, size) \
	((This)->lpVtbl->NeedsVirtualAddressSpace(This, addr, size))
#define IHostMemoryManager_AcquiredVirtualAddressSpace(This, addr, size) \
	((This)->lpVtbl->AcquiredVirtualAddressSpace(This, addr, size))
#define IHostMemoryManager_ReleasedVirtualAddressSpace(This, addr) \
	((This)->lpVtbl->ReleasedVirtualAddressSpace(This, addr))

#endif /* __IHostMemoryManager_INTERFACE_DEFINED__ */

/* ---------- Factory ---------- */

/* Flags for clrmemtrace_options.flags. */
#define CLRMEMTRACE_FLAG_NO_TRACE 0x1u /* this manager and its heaps emit no events */

/*
 * Options for clrmemtrace_create(). Set `size` to sizeof(clrmemtrace_options);
 * fields past `size` take their defaults, so the struct can grow. A caller
 * built against a newer header may pass a larger struct as long as the bytes
 * this library does not know are zero.
 */
typedef struct clrmemtrace_options {
	size_t size;
	uint32_t flags;
	/* A label for this manager in traces (copied; NULL for none). */
	const char *name;

	/*
	 * Host policy. A field left at 0 takes its value from the environment
	 * variable named beside it, or else its default.
	 */
	/* Bytes committed through VirtualAlloc plus heap memory (CLRMEMTRACE_COMMIT_BUDGET; none). */
	uint64_t commit_budget;
	/* Bytes of reservations, heaps and acquired ranges (CLRMEMTRACE_ADDRESS_SPACE_BUDGET; none). */
	uint64_t address_space_budget;
	/* Bytes beyond a budget that critical requests may use (CLRMEMTRACE_EMERGENCY_RESERVE; 0). */
	uint64_t emergency_reserve;
	/* Load (percent) from which eMemoryAvailableLow is delivered (CLRMEMTRACE_LOW_MEMORY_PERCENT; 90). */
	uint32_t low_memory_percent;
	/* Load up to which eMemoryAvailableHigh is delivered (CLRMEMTRACE_HIGH_MEMORY_PERCENT; 60). */
	uint32_t high_memory_percent;
	/* How far the load must move back before leaving Low or High (CLRMEMTRACE_HYSTERESIS_PERCENT; 5). */
	uint32_t hysteresis_percent;
	/* How often system memory is polled without pressure-stall triggers (CLRMEMTRACE_POLL_MS; 1000). */
	uint32_t poll_interval_ms;
} clrmemtrace_options;

/*
 * Creates a memory manager. options == NULL means defaults. On success *out
 * holds one reference; release it with IHostMemoryManager_Release. Returns
 * S_OK, E_POINTER (out is NULL), E_INVALIDARG (bad options, or a policy
 * environment variable that cannot be understood) or E_OUTOFMEMORY.
 */
CLRMEMTRACE_EXPORT HRESULT clrmemtrace_create(const clrmemtrace_options *options,
					      IHostMemoryManager **out);

/*
 * Creates a manager that decorates another host's manager: every call, heap
 * calls included, goes to `inner` unchanged and its result comes back
 * unchanged, and each is traced like the library's own. The decorator keeps
 * a reference on inner. Budgets do not apply: the inner manager governs.
 * Returns S_OK, E_POINTER, E_INVALIDARG (inner NULL, bad options) or
 * E_OUTOFMEMORY.
 */
CLRMEMTRACE_EXPORT HRESULT clrmemtrace_wrap(IHostMemoryManager *inner,
					    const clrmemtrace_options *options,
					    IHostMemoryManager **out);

/*
 * The symbolic name of an HRESULT, such as "S_OK", "E_OUTOFMEMORY" or
 * "HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS)"; "UNKNOWN" for others.
 * The string is static.
 */
CLRMEMTRACE_EXPORT const char *clrmemtrace_hresult_name(HRESULT hr);

/*
 * Emits a state dump of every manager (reservations, heaps and their live
 * blocks) into the sessions recording clrmemtrace's state-dump events.
 * Returns S_OK, or S_FALSE when no session records them. See EVENTS.md.
 */
CLRMEMTRACE_EXPORT HRESULT clrmemtrace_statedump(void);

/* The library's version as "MAJOR.MINOR.PATCH". */
CLRMEMTRACE_EXPORT const char *clrmemtrace_version(void);

#ifdef __cplusplus
}
#endif

#endif /* CLRMEMTRACE_H */
