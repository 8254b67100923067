/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the Windows backend's files.
 */
#ifndef CLRMEMTRACE_OS_WIN32_H
#define CLRMEMTRACE_OS_WIN32_H

#include "internal.h"

#include <windows.h>

/*
 * GetLastError() after a failed call, never 0: a failure that set no error
 * must not read as success.
 */
static inline int clrmemtrace__last_error(void)
{
	DWORD err = GetLastError();

	return err ? (int)err : ERROR_INTERNAL_ERROR;
}

#endif /* CLRMEMTRACE_OS_WIN32_H */
