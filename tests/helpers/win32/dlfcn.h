/* SPDX-License-Identifier: MIT */
/*
 * The lookup part of <dlfcn.h> for the Windows build of the tests: symbols
 * of the modules every process has loaded, for tests that need an address
 * inside a loaded image. The C runtime names POSIX functions with a leading
 * underscore (_getpid), which the lookup also tries.
 */
#ifndef CLRMEMTRACE_TEST_WIN32_DLFCN_H
#define CLRMEMTRACE_TEST_WIN32_DLFCN_H

#include <windows.h>

#include <stdio.h>

#define RTLD_DEFAULT ((void *)0)

typedef struct {
	const char *dli_fname;
	void *dli_fbase;
	const char *dli_sname;
	void *dli_saddr;
} Dl_info;

static inline void *dlsym(void *handle, const char *name)
{
	static const char *const modules[] = { NULL, "msvcrt.dll", "kernel32.dll", "ntdll.dll" };
	char alt[256];
	size_t i;

	(void)handle;
	snprintf(alt, sizeof(alt), "_%s", name);
	for (i = 0; i < sizeof(modules) / sizeof(modules[0]); i++) {
		HMODULE m = GetModuleHandleA(modules[i]);
		FARPROC p = m ? GetProcAddress(m, name) : NULL;

		if (!p && m) {
			p = GetProcAddress(m, alt);
		}
		if (p) {
			return (void *)(uintptr_t)p;
		}
	}
	return NULL;
}

static inline int dladdr(const void *addr, Dl_info *info)
{
	static char path[MAX_PATH];
	HMODULE m;

	if (!GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS |
				       GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
			       (LPCSTR)addr, &m) ||
	    !GetModuleFileNameA(m, path, sizeof(path))) {
		return 0;
	}
	info->dli_fname = path;
	info->dli_fbase = (void *)m;
	info->dli_sname = NULL;
	info->dli_saddr = NULL;
	return 1;
}

#endif /* CLRMEMTRACE_TEST_WIN32_DLFCN_H */
