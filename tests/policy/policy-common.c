/* SPDX-License-Identifier: MIT */
#include "policy-common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

size_t page;

const char *const policy_env_vars[] = {
	"CLRMEMTRACE_COMMIT_BUDGET",
	"CLRMEMTRACE_ADDRESS_SPACE_BUDGET",
	"CLRMEMTRACE_EMERGENCY_RESERVE",
	"CLRMEMTRACE_LOW_MEMORY_PERCENT",
	"CLRMEMTRACE_HIGH_MEMORY_PERCENT",
	"CLRMEMTRACE_HYSTERESIS_PERCENT",
	"CLRMEMTRACE_POLL_MS",
	NULL,
};

void policy_init(void)
{
	long ps = sysconf(_SC_PAGESIZE);

	if (ps <= 0) {
		fprintf(stderr, "sysconf(_SC_PAGESIZE) failed\n");
		exit(1);
	}
	page = (size_t)ps;
	policy_env_clear(NULL);
}

int policy_env_clear(void **state)
{
	const char *const *v;

	(void)state;
	for (v = policy_env_vars; *v; v++) {
		unsetenv(*v);
	}
	return 0;
}

/* ---------- Exact results ---------- */

void check_hr_(HRESULT expected, HRESULT actual, const char *expr, const char *file, int line)
{
	if (actual != expected) {
		print_error("%s returned %s (0x%08" PRIx32 "), expected %s (0x%08" PRIx32 ")\n",
			    expr, clrmemtrace_hresult_name(actual), (uint32_t)actual,
			    clrmemtrace_hresult_name(expected), (uint32_t)expected);
	}
	_assert_int_equal((uint32_t)actual, (uint32_t)expected, file, line);
}

clrmemtrace_options policy_options(void)
{
	clrmemtrace_options o;

	memset(&o, 0, sizeof(o));
	o.size = sizeof(o);
	return o;
}

IHostMemoryManager *create_ok_(const clrmemtrace_options *opts, const char *file, int line)
{
	IHostMemoryManager *mm = NULL;

	check_hr_(S_OK, clrmemtrace_create(opts, &mm), "clrmemtrace_create(opts, &mm)", file,
		  line);
	_assert_true(mm != NULL, "mm != NULL", file, line);
	return mm;
}

void release_last_(IHostMemoryManager *mm, const char *file, int line)
{
	ULONG left = IHostMemoryManager_Release(mm);

	if (left != 0) {
		print_error("the manager still has %u references after the test's release\n",
			    (unsigned)left);
	}
	_assert_int_equal(left, 0, file, line);
}

void *alloc_ok_(IHostMemoryManager *mm, void *addr, SIZE_T size, DWORD type, int level,
		const char *file, int line)
{
	void *p = (void *)(uintptr_t)0xdeadbeef;
	HRESULT hr = IHostMemoryManager_VirtualAlloc(mm, addr, size, type, PAGE_READWRITE,
						     (EMemoryCriticalLevel)level, &p);

	if (hr != S_OK) {
		print_error("VirtualAlloc(%p, %#zx, %#x, level %d) returned %s\n", addr,
			    (size_t)size, (unsigned)type, level, clrmemtrace_hresult_name(hr));
	}
	_assert_int_equal((uint32_t)hr, (uint32_t)S_OK, file, line);
	_assert_true(p != NULL, "p != NULL", file, line);
	return p;
}

void alloc_fails_(IHostMemoryManager *mm, void *addr, SIZE_T size, DWORD type, int level,
		  HRESULT want, const char *file, int line)
{
	void *p = (void *)(uintptr_t)0xdeadbeef;
	HRESULT hr = IHostMemoryManager_VirtualAlloc(mm, addr, size, type, PAGE_READWRITE,
						     (EMemoryCriticalLevel)level, &p);

	if (hr != want) {
		print_error("VirtualAlloc(%p, %#zx, %#x, level %d) returned %s, expected %s\n",
			    addr, (size_t)size, (unsigned)type, level,
			    clrmemtrace_hresult_name(hr), clrmemtrace_hresult_name(want));
	}
	_assert_int_equal((uint32_t)hr, (uint32_t)want, file, line);
	_assert_true(p == NULL, "*ppMem == NULL after a failure", file, line);
}

void memory_load_(IHostMemoryManager *mm, DWORD *load, SIZE_T *avail, const char *file, int line)
{
	check_hr_(S_OK, IHostMemoryManager_GetMemoryLoad(mm, load, avail),
		  "GetMemoryLoad(mm, load, avail)", file, line);
}

DWORD system_memory_load(void)
{
	clrmemtrace_options o = policy_options();
	IHostMemoryManager *mm = NULL;
	DWORD load = 100;
	SIZE_T avail = 0;

	o.flags = CLRMEMTRACE_FLAG_NO_TRACE;
	if (clrmemtrace_create(&o, &mm) != S_OK) {
		return 100;
	}
	if (IHostMemoryManager_GetMemoryLoad(mm, &load, &avail) != S_OK) {
		load = 100;
	}
	IHostMemoryManager_Release(mm);
	return load;
}

uint64_t memory_stall_us(void)
{
	FILE *fp = fopen("/proc/pressure/memory", "r");
	unsigned long long total = 0;
	char line[256];

	if (!fp) {
		return 0;
	}
	while (fgets(line, sizeof(line), fp)) {
		char *t = strstr(line, "total=");

		if (strncmp(line, "some", 4) == 0 && t) {
			total = strtoull(t + 6, NULL, 10);
		}
	}
	fclose(fp);
	return total;
}

/* ---------- Time and threads ---------- */

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

pid_t current_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

int count_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d) {
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.') {
			n++;
		}
	}
	closedir(d);
	return n;
}

int wait_tasks(int want, unsigned timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
	int n;

	while ((n = count_tasks()) != want && now_ns() < end) {
		sleep_ms(2);
	}
	return n;
}

void thread_name(pid_t tid, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return;
	}
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0) {
		buf[0] = '\0';
		return;
	}
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n') {
		buf[n - 1] = '\0';
	}
}

int count_threads_named(const char *name)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d) {
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		char comm[64];

		if (e->d_name[0] == '.') {
			continue;
		}
		thread_name((pid_t)atoi(e->d_name), comm, sizeof(comm));
		n += strcmp(comm, name) == 0;
	}
	closedir(d);
	return n;
}

int wait_threads_named(const char *name, int want, unsigned timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
	int n;

	while ((n = count_threads_named(name)) != want && now_ns() < end) {
		sleep_ms(5);
	}
	return n;
}

/* ---------- The recording callback ---------- */

static struct test_cb *impl_from_cb(ICLRMemoryNotificationCallback *iface)
{
	return (struct test_cb *)((char *)iface - offsetof(struct test_cb, iface));
}

static HRESULT STDMETHODCALLTYPE cb_QueryInterface(ICLRMemoryNotificationCallback *iface,
						   REFIID riid, void **ppv)
{
	if (!ppv) {
		return E_POINTER;
	}
	*ppv = NULL;
	if (memcmp(riid, &IID_IUnknown, sizeof(IID)) == 0 ||
	    memcmp(riid, &IID_ICLRMemoryNotificationCallback, sizeof(IID)) == 0) {
		iface->lpVtbl->AddRef(iface);
		*ppv = iface;
		return S_OK;
	}
	return E_NOINTERFACE;
}

static ULONG STDMETHODCALLTYPE cb_AddRef(ICLRMemoryNotificationCallback *iface)
{
	return __atomic_add_fetch(&impl_from_cb(iface)->refs, 1, __ATOMIC_ACQ_REL);
}

static ULONG STDMETHODCALLTYPE cb_Release(ICLRMemoryNotificationCallback *iface)
{
	struct test_cb *cb = impl_from_cb(iface);
	uint32_t left = __atomic_sub_fetch(&cb->refs, 1, __ATOMIC_ACQ_REL);

	if (left == UINT32_MAX) {
		fprintf(stderr, "FATAL: the callback %p was released more often than referenced\n",
			(void *)cb);
		abort();
	}
	return left;
}

static HRESULT STDMETHODCALLTYPE cb_OnMemoryNotification(ICLRMemoryNotificationCallback *iface,
							 EMemoryAvailable level)
{
	struct test_cb *cb = impl_from_cb(iface);
	struct delivery d = { .level = (int)level, .ns = now_ns(), .tid = current_tid() };
	HRESULT answer;

	__atomic_add_fetch(&cb->entered, 1, __ATOMIC_ACQ_REL);
	if (__atomic_load_n(&cb->refs, __ATOMIC_ACQUIRE) < 2) {
		/* Only the test's reference: whoever calls holds none of its own. */
		fprintf(stderr, "FATAL: OnMemoryNotification called without a reference held\n");
		abort();
	}
	pthread_mutex_lock(&cb->lock);
	if (cb->count < MAX_DELIVERIES) {
		cb->log[cb->count] = d;
	}
	__atomic_store_n(&cb->count, cb->count + 1, __ATOMIC_RELEASE);
	answer = cb->answer;
	pthread_mutex_unlock(&cb->lock);
	if (cb->hook) {
		cb->hook(cb, (int)level);
	}
	__atomic_add_fetch(&cb->returned, 1, __ATOMIC_ACQ_REL);
	return answer;
}

static const ICLRMemoryNotificationCallbackVtbl test_cb_vtbl = {
	cb_QueryInterface,
	cb_AddRef,
	cb_Release,
	cb_OnMemoryNotification,
};

void test_cb_init(struct test_cb *cb)
{
	memset(cb, 0, sizeof(*cb));
	cb->iface.lpVtbl = &test_cb_vtbl;
	cb->refs = 1;
	cb->answer = S_OK;
	pthread_mutex_init(&cb->lock, NULL);
}

void test_cb_fini_(struct test_cb *cb, const char *file, int line)
{
	uint32_t refs = test_cb_refs(cb);

	if (refs != 1) {
		print_error("the callback holds %u references at the end, expected only the "
			    "test's own\n",
			    (unsigned)refs);
	}
	_assert_int_equal(refs, 1, file, line);
	pthread_mutex_destroy(&cb->lock);
}

unsigned test_cb_count(struct test_cb *cb)
{
	return __atomic_load_n(&cb->count, __ATOMIC_ACQUIRE);
}

uint32_t test_cb_refs(struct test_cb *cb)
{
	return __atomic_load_n(&cb->refs, __ATOMIC_ACQUIRE);
}

struct delivery test_cb_get(struct test_cb *cb, unsigned i)
{
	struct delivery d = { 0 };

	pthread_mutex_lock(&cb->lock);
	if (i < cb->count && i < MAX_DELIVERIES) {
		d = cb->log[i];
	}
	pthread_mutex_unlock(&cb->lock);
	return d;
}

unsigned test_cb_wait(struct test_cb *cb, unsigned want, unsigned timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
	unsigned n;

	while ((n = test_cb_count(cb)) < want && now_ns() < end) {
		sleep_ms(2);
	}
	if (n < want && !test_cb_wait_idle(cb, 3000)) {
		/* Stuck in the manager: releasing it would wait for ever. */
		fprintf(stderr, "FATAL: OnMemoryNotification has not returned for over 3 s: it "
				"waits for something the manager holds\n");
		abort();
	}
	return n;
}

bool test_cb_next(struct test_cb *cb, unsigned timeout_ms, struct delivery *d)
{
	if (test_cb_wait(cb, cb->checked + 1, timeout_ms) <= cb->checked) {
		return false;
	}
	*d = test_cb_get(cb, cb->checked++);
	return true;
}

bool test_cb_wait_idle(struct test_cb *cb, unsigned timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;

	while (__atomic_load_n(&cb->entered, __ATOMIC_ACQUIRE) !=
	       __atomic_load_n(&cb->returned, __ATOMIC_ACQUIRE)) {
		if (now_ns() >= end) {
			return false;
		}
		sleep_ms(2);
	}
	return true;
}

const char *level_name(int level)
{
	switch (level) {
	case eMemoryAvailableLow:
		return "Low";
	case eMemoryAvailableNeutral:
		return "Neutral";
	case eMemoryAvailableHigh:
		return "High";
	default:
		return "?";
	}
}

bool test_cb_levels_are(struct test_cb *cb, const int *levels, unsigned n)
{
	unsigned i;

	if (test_cb_count(cb) != n) {
		return false;
	}
	for (i = 0; i < n; i++) {
		if (test_cb_get(cb, i).level != levels[i]) {
			return false;
		}
	}
	return true;
}

void test_cb_expect_(struct test_cb *cb, const int *levels, unsigned n, const char *file,
		     int line)
{
	unsigned got = test_cb_count(cb), i;

	if (test_cb_levels_are(cb, levels, n)) {
		return;
	}
	print_error("deliveries:");
	for (i = 0; i < got && i < MAX_DELIVERIES; i++) {
		print_error(" %s", level_name(test_cb_get(cb, i).level));
	}
	print_error("\nexpected:  ");
	for (i = 0; i < n; i++) {
		print_error(" %s", level_name(levels[i]));
	}
	print_error("\n");
	_fail(file, line);
}
