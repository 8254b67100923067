/* SPDX-License-Identifier: MIT */
/*
 * A .NET Framework host that hands clrmemtrace's memory manager to the CLR,
 * as clr-hosting-api.md §1.10 describes: the host's IHostControl answers
 * GetHostManager(IID_IHostMemoryManager) with the manager, and is given to
 * the runtime with ICLRRuntimeHost::SetHostControl before Start. From then
 * on the CLR's VirtualAlloc family and heaps go through the manager, and
 * every call is an ETW event of the provider "clrmemtrace".
 *
 *   win32-host.exe ASSEMBLY TYPE METHOD [ARGUMENT]
 *
 * runs `static int METHOD(string ARGUMENT)` of TYPE in ASSEMBLY in the
 * default application domain of CLR v4.0.30319 and exits with its result.
 * It needs Windows with the .NET Framework 4.x (the memory-hosting
 * interfaces exist only in the desktop CLR, never in .NET Core).
 *
 * mingw-w64 has no metahost.h, so the two metahost interfaces used here are
 * declared below in MIDL's C layout (slot order of metahost.idl).
 */
#define COBJMACROS
#define CONST_VTABLE
#include <clrmemtrace.h>

#include <stdio.h>
#include <stdlib.h>
#include <wchar.h>

/* ---------- metahost.h, the part this host uses ---------- */

static const GUID clsid_clr_meta_host = {
	0x9280188D, 0x0E8E, 0x4867, { 0xB3, 0x0C, 0x7F, 0xA8, 0x38, 0x84, 0xE8, 0xDE }
};
static const IID iid_clr_meta_host = {
	0xD332DB9E, 0xB9B3, 0x4125, { 0x82, 0x07, 0xA1, 0x48, 0x84, 0xF5, 0x32, 0x16 }
};
static const IID iid_clr_runtime_info = {
	0xBD39D1D2, 0xBA2F, 0x486A, { 0x89, 0xB0, 0xB4, 0xB0, 0xCB, 0x46, 0x68, 0x91 }
};
/* clr-hosting-api.md §1.2 */
static const CLSID clsid_clr_runtime_host = {
	0x90F1A06E, 0x7712, 0x4762, { 0x86, 0xB5, 0x7A, 0x5E, 0xBA, 0x6B, 0xDB, 0x02 }
};
static const IID iid_clr_runtime_host = {
	0x90F1A06C, 0x7712, 0x4762, { 0x86, 0xB5, 0x7A, 0x5E, 0xBA, 0x6B, 0xDB, 0x02 }
};
static const IID iid_host_control = {
	0x02CA073C, 0x7079, 0x4860, { 0x88, 0x0A, 0xC2, 0xF7, 0xA4, 0x49, 0xC9, 0x91 }
};

typedef struct meta_host meta_host;
typedef struct runtime_info runtime_info;

struct meta_host_vtbl {
	HRESULT(STDMETHODCALLTYPE *QueryInterface)(meta_host *This, REFIID riid, void **ppv);
	ULONG(STDMETHODCALLTYPE *AddRef)(meta_host *This);
	ULONG(STDMETHODCALLTYPE *Release)(meta_host *This);
	HRESULT(STDMETHODCALLTYPE *GetRuntime)(meta_host *This, LPCWSTR pwzVersion, REFIID riid,
					       void **ppRuntime);
	/* GetVersionFromFile, EnumerateInstalledRuntimes, EnumerateLoadedRuntimes,
	 * RequestRuntimeLoadedNotification, QueryLegacyV2RuntimeBinding, ExitProcess. */
	void *unused[6];
};

struct meta_host {
	const struct meta_host_vtbl *lpVtbl;
};

struct runtime_info_vtbl {
	HRESULT(STDMETHODCALLTYPE *QueryInterface)(runtime_info *This, REFIID riid, void **ppv);
	ULONG(STDMETHODCALLTYPE *AddRef)(runtime_info *This);
	ULONG(STDMETHODCALLTYPE *Release)(runtime_info *This);
	/* GetVersionString, GetRuntimeDirectory, IsLoaded, LoadErrorString,
	 * LoadLibrary, GetProcAddress. */
	void *unused[6];
	HRESULT(STDMETHODCALLTYPE *GetInterface)(runtime_info *This, REFCLSID rclsid, REFIID riid,
						 void **ppUnk);
	/* IsLoadable, SetDefaultStartupFlags, GetDefaultStartupFlags,
	 * BindAsLegacyV2Runtime, IsStarted. */
	void *unused2[5];
};

struct runtime_info {
	const struct runtime_info_vtbl *lpVtbl;
};

/* Exported by mscoree.dll (the import library comes from mscoree.def when mingw has none). */
HRESULT WINAPI CLRCreateInstance(REFCLSID clsid, REFIID riid, LPVOID *ppInterface);

/* ---------- The host's IHostControl ---------- */

struct host_control {
	IHostControl IHostControl_iface;
	LONG refs;
	IHostMemoryManager *manager;
};

static struct host_control *impl_from_IHostControl(IHostControl *iface)
{
	return (struct host_control *)((char *)iface -
				       offsetof(struct host_control, IHostControl_iface));
}

static HRESULT STDMETHODCALLTYPE host_control_QueryInterface(IHostControl *iface, REFIID riid,
							     void **ppv)
{
	if (!ppv) {
		return E_POINTER;
	}
	*ppv = NULL;
	if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &iid_host_control)) {
		IHostControl_AddRef(iface);
		*ppv = iface;
		return S_OK;
	}
	return E_NOINTERFACE;
}

static ULONG STDMETHODCALLTYPE host_control_AddRef(IHostControl *iface)
{
	return (ULONG)InterlockedIncrement(&impl_from_IHostControl(iface)->refs);
}

/* The object is static: the count only tells how many references the CLR holds. */
static ULONG STDMETHODCALLTYPE host_control_Release(IHostControl *iface)
{
	return (ULONG)InterlockedDecrement(&impl_from_IHostControl(iface)->refs);
}

/*
 * The CLR asks for each host manager in turn (§1.10): the memory manager is
 * the only one this host provides. The CLR keeps the reference it gets.
 */
static HRESULT STDMETHODCALLTYPE host_control_GetHostManager(IHostControl *iface, REFIID riid,
							     void **ppObject)
{
	struct host_control *hc = impl_from_IHostControl(iface);

	if (!ppObject) {
		return E_POINTER;
	}
	*ppObject = NULL;
	if (!riid) {
		return E_INVALIDARG;
	}
	if (IsEqualIID(riid, &IID_IHostMemoryManager)) {
		IHostMemoryManager_AddRef(hc->manager);
		*ppObject = hc->manager;
		return S_OK;
	}
	return E_NOINTERFACE;
}

static HRESULT STDMETHODCALLTYPE host_control_SetAppDomainManager(IHostControl *iface,
								  DWORD appDomainID,
								  IUnknown *appDomainManager)
{
	(void)iface;
	(void)appDomainID;
	(void)appDomainManager;
	return S_OK;
}

static const IHostControlVtbl host_control_vtbl = {
	host_control_QueryInterface,
	host_control_AddRef,
	host_control_Release,
	host_control_GetHostManager,
	host_control_SetAppDomainManager,
};

/* ---------- Main ---------- */

static void report(const char *what, HRESULT hr)
{
	fprintf(stderr, "win32-host: %s failed: 0x%08lx (%s)\n", what, (unsigned long)hr,
		clrmemtrace_hresult_name(hr));
}

static WCHAR *widen(const char *s)
{
	int n = MultiByteToWideChar(CP_ACP, 0, s, -1, NULL, 0);
	WCHAR *w = n > 0 ? malloc((size_t)n * sizeof(WCHAR)) : NULL;

	if (w && !MultiByteToWideChar(CP_ACP, 0, s, -1, w, n)) {
		free(w);
		w = NULL;
	}
	return w;
}

int main(int argc, char **argv)
{
	struct host_control control = { .IHostControl_iface = { &host_control_vtbl } };
	WCHAR *assembly = NULL, *type = NULL, *method = NULL, *argument = NULL;
	clrmemtrace_options opts = { .size = sizeof(opts), .name = "win32-host" };
	runtime_info *info = NULL;
	ICLRRuntimeHost *host = NULL;
	meta_host *meta = NULL;
	DWORD result = 0;
	HRESULT hr;
	int rc = 1;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: %s ASSEMBLY TYPE METHOD [ARGUMENT]\n", argv[0]);
		return 2;
	}
	assembly = widen(argv[1]);
	type = widen(argv[2]);
	method = widen(argv[3]);
	argument = widen(argc == 5 ? argv[4] : "");
	if (!assembly || !type || !method || !argument) {
		fprintf(stderr, "win32-host: out of memory\n");
		goto out;
	}
	hr = clrmemtrace_create(&opts, &control.manager);
	if (hr != S_OK) {
		report("clrmemtrace_create", hr);
		goto out;
	}
	hr = CLRCreateInstance(&clsid_clr_meta_host, &iid_clr_meta_host, (void **)&meta);
	if (hr != S_OK) {
		report("CLRCreateInstance (is the .NET Framework installed?)", hr);
		goto out;
	}
	hr = meta->lpVtbl->GetRuntime(meta, L"v4.0.30319", &iid_clr_runtime_info, (void **)&info);
	if (hr != S_OK) {
		report("ICLRMetaHost::GetRuntime(v4.0.30319)", hr);
		goto out;
	}
	hr = info->lpVtbl->GetInterface(info, &clsid_clr_runtime_host, &iid_clr_runtime_host,
					(void **)&host);
	if (hr != S_OK) {
		report("ICLRRuntimeInfo::GetInterface(ICLRRuntimeHost)", hr);
		goto out;
	}
	/* Before Start: afterwards the CLR refuses it with E_ACCESSDENIED. */
	hr = ICLRRuntimeHost_SetHostControl(host, &control.IHostControl_iface);
	if (hr != S_OK) {
		report("ICLRRuntimeHost::SetHostControl", hr);
		goto out;
	}
	hr = ICLRRuntimeHost_Start(host);
	if (hr != S_OK) {
		report("ICLRRuntimeHost::Start", hr);
		goto out;
	}
	hr = ICLRRuntimeHost_ExecuteInDefaultAppDomain(host, assembly, type, method, argument,
						       &result);
	if (hr != S_OK) {
		report("ICLRRuntimeHost::ExecuteInDefaultAppDomain", hr);
	} else {
		printf("win32-host: %s.%s returned %lu\n", argv[2], argv[3], (unsigned long)result);
		rc = (int)result;
	}
	ICLRRuntimeHost_Stop(host);
out:
	if (host) {
		ICLRRuntimeHost_Release(host);
	}
	if (info) {
		info->lpVtbl->Release(info);
	}
	if (meta) {
		meta->lpVtbl->Release(meta);
	}
	/* The CLR never releases its reference (§1.8); this is the host's own. */
	if (control.manager) {
		IHostMemoryManager_Release(control.manager);
	}
	free(assembly);
	free(type);
	free(method);
	free(argument);
	return rc;
}
