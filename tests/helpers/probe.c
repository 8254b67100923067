/* SPDX-License-Identifier: MIT */
#include "probe.h"

#if defined(_WIN32)
/*
 * Windows: each probe is one instruction at a known address, and a
 * vectored exception handler that sees an access violation (or a guard-page
 * violation) at that address while the thread's probe is armed moves the
 * thread on to the probe's `ret`, as the POSIX version's siglongjmp does.
 * A call probe's fault is at the called address itself: the handler returns
 * to the caller. No longjmp through the exception dispatcher is needed.
 */
#include <windows.h>

#include <string.h>

/* x86-64, Microsoft calling convention: the address is in %rcx. */
__asm__(".text\n"
	".globl probe_asm_read\n"
	".globl probe_asm_read_end\n"
	".globl probe_asm_write\n"
	".globl probe_asm_write_end\n"
	"probe_asm_read:\n"
	"\tmovb (%rcx), %al\n"
	"probe_asm_read_end:\n"
	"\tret\n"
	"probe_asm_write:\n"
	"\tlock orb $0, (%rcx)\n"
	"probe_asm_write_end:\n"
	"\tret\n");

void probe_asm_read(const volatile void *p);
void probe_asm_write(volatile void *p);
extern const char probe_asm_read_end[], probe_asm_write_end[];

static __thread volatile int probe_armed, probe_faulted;
static __thread volatile DWORD64 probe_call_target;
static INIT_ONCE handler_once = INIT_ONCE_STATIC_INIT;

static LONG CALLBACK on_fault(EXCEPTION_POINTERS *ep)
{
	DWORD code = ep->ExceptionRecord->ExceptionCode;
	CONTEXT *c = ep->ContextRecord;

	if (!probe_armed ||
	    (code != EXCEPTION_ACCESS_VIOLATION && code != STATUS_GUARD_PAGE_VIOLATION)) {
		return EXCEPTION_CONTINUE_SEARCH;
	}
	if (c->Rip == (DWORD64)(uintptr_t)probe_asm_read) {
		c->Rip = (DWORD64)(uintptr_t)probe_asm_read_end;
	} else if (c->Rip == (DWORD64)(uintptr_t)probe_asm_write) {
		c->Rip = (DWORD64)(uintptr_t)probe_asm_write_end;
	} else if (probe_call_target && c->Rip == probe_call_target) {
		/* The call itself faulted: return to the caller as `ret` would. */
		c->Rip = *(DWORD64 *)(uintptr_t)c->Rsp;
		c->Rsp += 8;
	} else {
		return EXCEPTION_CONTINUE_SEARCH;
	}
	probe_armed = 0;
	probe_faulted = 1;
	return EXCEPTION_CONTINUE_EXECUTION;
}

static BOOL CALLBACK add_handler(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
	(void)once;
	(void)param;
	(void)ctx;
	return AddVectoredExceptionHandler(1, on_fault) != NULL;
}

static void arm(void)
{
	InitOnceExecuteOnce(&handler_once, add_handler, NULL, NULL);
	probe_faulted = 0;
	probe_armed = 1;
}

static bool disarm(void)
{
	probe_armed = 0;
	probe_call_target = 0;
	return !probe_faulted;
}

bool probe_readable(const void *p)
{
	arm();
	probe_asm_read(p);
	return disarm();
}

bool probe_writable(void *p)
{
	arm();
	probe_asm_write(p);
	return disarm();
}

bool probe_call(const void *p)
{
	void (*fn)(void);

	memcpy(&fn, &p, sizeof(fn));
	arm();
	probe_call_target = (DWORD64)(uintptr_t)p;
	fn();
	return disarm();
}

bool probe_executable_after_write(void *p)
{
	static const unsigned char ret[] = { 0xc3 };

	memcpy(p, ret, sizeof(ret));
	FlushInstructionCache(GetCurrentProcess(), p, sizeof(ret));
	return probe_call(p);
}

#else /* !_WIN32 */
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
	memcpy(p, ret, sizeof(ret));
	__builtin___clear_cache((char *)p, (char *)p + sizeof(ret));
	return probe_call(p);
}

bool probe_call(const void *p)
{
	struct saved s;
	volatile bool ok = false;

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

#endif /* !_WIN32 */
