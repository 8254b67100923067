/* SPDX-License-Identifier: MIT */
/*
 * A plain mutex for the portable files: pthreads on POSIX, an SRW lock on
 * Windows.
 */
#ifndef CLRMEMTRACE_MUTEX_H
#define CLRMEMTRACE_MUTEX_H

#if defined(_WIN32)
#include <windows.h>

typedef SRWLOCK clrmemtrace_mutex;
#define CLRMEMTRACE_MUTEX_INIT SRWLOCK_INIT
static inline void clrmemtrace_mutex_init(clrmemtrace_mutex *m)
{
	InitializeSRWLock(m);
}
static inline void clrmemtrace_mutex_destroy(clrmemtrace_mutex *m)
{
	(void)m;
}
static inline void clrmemtrace_mutex_lock(clrmemtrace_mutex *m)
{
	AcquireSRWLockExclusive(m);
}
static inline void clrmemtrace_mutex_unlock(clrmemtrace_mutex *m)
{
	ReleaseSRWLockExclusive(m);
}
#else
#include <pthread.h>

typedef pthread_mutex_t clrmemtrace_mutex;
#define CLRMEMTRACE_MUTEX_INIT PTHREAD_MUTEX_INITIALIZER
static inline void clrmemtrace_mutex_init(clrmemtrace_mutex *m)
{
	pthread_mutex_init(m, NULL);
}
static inline void clrmemtrace_mutex_destroy(clrmemtrace_mutex *m)
{
	pthread_mutex_destroy(m);
}
static inline void clrmemtrace_mutex_lock(clrmemtrace_mutex *m)
{
	pthread_mutex_lock(m);
}
static inline void clrmemtrace_mutex_unlock(clrmemtrace_mutex *m)
{
	pthread_mutex_unlock(m);
}
#endif

#endif /* CLRMEMTRACE_MUTEX_H */
