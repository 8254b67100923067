/* SPDX-License-Identifier: MIT */
#include "probe.h"

#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

static __thread sigjmp_buf probe_env;
static __thread volatile int probe_armed;

static void on_fault(int sig)
{
	(void)sig;
	if (probe_armed) {
		probe_armed = 0;
		siglongjmp(probe_env, 1);
	}
}

struct saved {
	struct sigaction segv, bus;
};

static void arm(struct saved *s)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, &s->segv);
	sigaction(SIGBUS, &sa, &s->bus);
}

static void disarm(struct saved *s)
{
	sigaction(SIGSEGV, &s->segv, NULL);
	sigaction(SIGBUS, &s->bus, NULL);
}

bool probe_readable(const void *p)
{
	struct saved s;
	volatile bool ok = false;

	arm(&s);
	if (sigsetjmp(probe_env, 1) == 0) {
		probe_armed = 1;
		(void)*(const volatile unsigned char *)p;
		probe_armed = 0;
		ok = true;
	}
	disarm(&s);
	return ok;
}

bool probe_writable(void *p)
{
	struct saved s;
	volatile bool ok = false;

	arm(&s);
	if (sigsetjmp(probe_env, 1) == 0) {
		volatile unsigned char *b = p;

		probe_armed = 1;
		*b = *b;
		probe_armed = 0;
		ok = true;
	}
	disarm(&s);
	return ok;
}

bool probe_executable_after_write(void *p)
{
#if defined(__x86_64__) || defined(__i386__)
	static const unsigned char ret[] = { 0xc3 };
#elif defined(__aarch64__)
	static const unsigned char ret[] = { 0xc0, 0x03, 0x5f, 0xd6 };
#else
	static const unsigned char ret[1];
	return false;
#endif
	struct saved s;
	volatile bool ok = false;

	memcpy(p, ret, sizeof(ret));
	__builtin___clear_cache((char *)p, (char *)p + sizeof(ret));
	arm(&s);
	if (sigsetjmp(probe_env, 1) == 0) {
		void (*fn)(void);

		probe_armed = 1;
		memcpy(&fn, &p, sizeof(fn));
		fn();
		probe_armed = 0;
		ok = true;
	}
	disarm(&s);
	return ok;
}
