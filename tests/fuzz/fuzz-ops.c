/* SPDX-License-Identifier: MIT */
/*
 * fuzz-ops: an operation-sequence fuzzer for IHostMemoryManager and
 * IHostMalloc, checked against a reference model (model.h).
 *
 * Each input decodes into at most MAX_OPS calls with arbitrary arguments:
 * addresses relative to the input's own reservations and hostile absolute
 * values, sizes from 0 to SIZE_MAX, every flag bit, every critical level,
 * heap frees of live, freed, interior and foreign pointers. Before each call
 * the model predicts its HRESULT and out-values; afterwards the fuzzer
 * compares, walks the affected reservation with VirtualQuery (all seven
 * fields of every region), and checks page contents and access rights by
 * touching them. Any difference aborts with the decoded operation sequence,
 * so a failing input can be read and replayed without the fuzzer.
 *
 * Inputs are independent: each creates its own manager and releases every
 * reservation, block, heap and reference before it ends. Reservations the
 * library could place stay below MAX_RESERVE bytes; larger sizes are only
 * used where the call must fail.
 *
 * Input format (tests/fuzz/make-corpus.py writes it): a sequence of
 * operations, each an opcode byte (taken modulo 20, see op_table) followed
 * by its arguments. An argument "spec" starts with a selector byte that may
 * be followed by more bytes; see the decode_* functions. A truncated input
 * reads as zeros; decoding stops at the end of the input or after MAX_OPS
 * operations.
 */
#include "model.h"

#include <clrmemtrace.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Writes the current input's operation log to fd, once (replay.c's signal handlers use it). */
void fuzz_ops_dump_log(int fd);

#if defined(FUZZ_UBSAN_SUPPRESSIONS)
/*
 * Any undefined behaviour stops the run, as in the other suites, with their
 * one suppression (liburcu's header): also when the binary is run by hand.
 */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1:suppressions=" FUZZ_UBSAN_SUPPRESSIONS;
}
#endif

/* Any sanitizer runtime has it; without one the pointer is NULL. */
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

#define MAX_OPS 64
#define MAX_HIST 16
#define MAX_FREED 64
#define GRANULE ((uintptr_t)0x10000)
#define MIB ((size_t)1 << 20)
/* Reservations the library may place are at most this large. */
#define MAX_RESERVE (128 * MIB + 2 * GRANULE)
/* Heap blocks are at most this large (unless the size must fail). */
#define MAX_BLOCK (8 * MIB)
#define ARENA_SIZE (256 * MIB)
#define SENTINEL ((void *)(uintptr_t)0xdeadbeef)
#define SENTINEL_DWORD ((DWORD)0xdeadbeef)
#define SENTINEL_SIZE ((SIZE_T)0xdeadbeef)
#define PATTERN_BYTES 64u

static struct model M;
static IHostMemoryManager *mm;
/* A second manager, made on demand, which never owns anything (M2 stays empty). */
static struct model M2;
static IHostMemoryManager *mm2;
static size_t page;
static uintptr_t user_min, user_limit;
/* A range that was free at start-up: explicit reservations aim there. */
static uintptr_t arena;
static int probe_pipe[2] = { -1, -1 };
static void *libc_block;
static int global_object;
static uint32_t next_tag;
/* The fuzzer's own references on the manager (M.manager_refs counts the heaps' too). */
static uint32_t own_refs;
static uint32_t next_seed;
static bool verbose;

/* Reservations made by this input, live or released, for relative addresses. */
static struct {
	uintptr_t base;
	size_t len;
} hist[MAX_HIST];
static int nhist;

/* Pointers of blocks freed (or of heaps released) in this input. */
static void *freed[MAX_FREED];
static int nfreed;

/* ---------- The operation log and failures ---------- */

static char oplog[96 * 1024];
static size_t oplog_len;
static int op_number;
static volatile int log_dumped;

static void __attribute__((format(printf, 1, 0))) log_vadd(const char *fmt, va_list ap)
{
	int n;

	if (oplog_len >= sizeof(oplog) - 1) {
		return;
	}
	n = vsnprintf(oplog + oplog_len, sizeof(oplog) - oplog_len, fmt, ap);
	if (n > 0) {
		oplog_len += (size_t)n;
		if (oplog_len > sizeof(oplog) - 1) {
			oplog_len = sizeof(oplog) - 1;
		}
	}
}

static void __attribute__((format(printf, 1, 2))) log_add(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vadd(fmt, ap);
	va_end(ap);
}

/* Starts the line of operation number op_number. */
static void __attribute__((format(printf, 1, 2))) log_op(const char *fmt, ...)
{
	va_list ap;

	log_add("  #%02d ", op_number);
	va_start(ap, fmt);
	log_vadd(fmt, ap);
	va_end(ap);
}

static void dump_log(int fd)
{
	static const char head[] = "fuzz-ops: decoded operations of this input:\n";
	size_t off = 0;

	if (write(fd, head, sizeof(head) - 1) < 0) {
		return;
	}
	while (off < oplog_len) {
		ssize_t n = write(fd, oplog + off, oplog_len - off);

		if (n <= 0) {
			break;
		}
		off += (size_t)n;
	}
	if (write(fd, "\n", 1) < 0) {
		return;
	}
}

void fuzz_ops_dump_log(int fd)
{
	if (!log_dumped) {
		log_dumped = 1;
		dump_log(fd);
	}
}

static void death_callback(void)
{
	fuzz_ops_dump_log(2);
}

static void __attribute__((format(printf, 1, 2), noreturn)) fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "\nfuzz-ops: FAILURE in operation #%02d: ", op_number);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	fuzz_ops_dump_log(2);
	abort();
}

static const char *hr_name(HRESULT hr)
{
	return clrmemtrace_hresult_name(hr);
}

static void expect_hr(HRESULT got, HRESULT want, const char *why)
{
	if (got != want) {
		fail("returned %s (%#x), the model expects %s (%#x): %s", hr_name(got),
		     (unsigned)got, hr_name(want), (unsigned)want, why ? why : "");
	}
}

/* ---------- Decoding ---------- */

struct input {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct input *in)
{
	if (!in->n) {
		return 0;
	}
	in->n--;
	return *in->p++;
}

static uint16_t u16(struct input *in)
{
	uint16_t lo = u8(in);

	return (uint16_t)(lo | (uint16_t)u8(in) << 8);
}

static uint32_t u32(struct input *in)
{
	uint32_t lo = u16(in);

	return lo | (uint32_t)u16(in) << 16;
}

static uintptr_t round_up(uintptr_t v, uintptr_t align)
{
	return (v + align - 1) & ~(align - 1);
}

/* The n-th live block (modulo the count), or -1; heap -1 means any heap. */
static int nth_block(unsigned n, int heap)
{
	int i, count = 0;

	for (i = 0; i < MODEL_MAX_BLOCKS; i++) {
		count += M.block[i].live && (heap < 0 || M.block[i].heap == heap);
	}
	if (!count) {
		return -1;
	}
	n %= (unsigned)count;
	for (i = 0; i < MODEL_MAX_BLOCKS; i++) {
		if (M.block[i].live && (heap < 0 || M.block[i].heap == heap) && n-- == 0) {
			return i;
		}
	}
	return -1;
}

static int nth_heap(unsigned n)
{
	int i, count = 0;

	for (i = 0; i < MODEL_MAX_HEAPS; i++) {
		count += M.heap[i].live;
	}
	if (!count) {
		return -1;
	}
	n %= (unsigned)count;
	for (i = 0; i < MODEL_MAX_HEAPS; i++) {
		if (M.heap[i].live && n-- == 0) {
			return i;
		}
	}
	return -1;
}

static int nth_reservation(unsigned n)
{
	int i, count = model_live_reservations(&M);

	if (!count) {
		return -1;
	}
	n %= (unsigned)count;
	for (i = 0; i < MODEL_MAX_RES; i++) {
		if (M.res[i].live && n-- == 0) {
			return i;
		}
	}
	return -1;
}

/* An address relative to a reservation of this input (live or released). */
static uintptr_t decode_relative(struct input *in)
{
	uint8_t s = u8(in), o = u8(in);
	uintptr_t base = arena, k = o >> 4;
	size_t len = 16 * page;

	if (nhist) {
		base = hist[s % nhist].base;
		len = hist[s % nhist].len;
	}
	switch (o & 15) {
	case 0:
		return base + k * page;
	case 1:
		return base + k * page + 1;
	case 2:
		return base + (k + 1) * page - 1;
	case 3:
		return base + len - k * page;
	case 4:
		return base + len - 1 - k;
	case 5:
		return base + len + k * page;
	case 6:
		/* The unused tail of the last granule, and the granules after it. */
		return round_up(base + len, GRANULE) + k * GRANULE - (k ? 0 : page);
	case 7:
		return base - (k + 1) * page;
	case 8:
		return base - (k + 1);
	case 9:
		return base - (k + 1) * GRANULE;
	case 10:
		return base + k * GRANULE;
	case 11:
		return base + k * page + page / 2;
	case 12:
		return base + (uintptr_t)(u16(in) % (len / page + 16)) * page;
	case 13:
		return base + (len / 2 & ~(uintptr_t)(page - 1)) + k * page;
	default:
		return base + k * page;
	}
}

static uintptr_t hostile_address(unsigned i)
{
	const uintptr_t table[] = {
		0,
		1,
		0xfff,
		0x1000,
		0xffff,
		0x10000,
		0x10001,
		0x1ffff,
		user_limit - GRANULE,
		user_limit - page,
		user_limit - 1,
		user_limit,
		user_limit + 1,
		(uintptr_t)1 << 47,
		(uintptr_t)1 << 48,
		(uintptr_t)1 << 63,
		UINTPTR_MAX - page + 1,
		UINTPTR_MAX,
		UINTPTR_MAX - GRANULE + 1,
		user_limit - 2 * GRANULE - 1,
	};

	return table[i % (sizeof(table) / sizeof(table[0]))];
}

/* An address argument: see the cases. */
static uintptr_t decode_addr(struct input *in)
{
	uint8_t b = u8(in), c;
	int i;

	switch (b % 8) {
	case 0:
	case 1:
	case 2:
		return decode_relative(in);
	case 3:
		/* The free arena: a place for explicit reservations. */
		b = u8(in);
		c = u8(in);
		return arena + (uintptr_t)(b % (ARENA_SIZE / GRANULE)) * GRANULE +
		       ((c & 3) ? (uintptr_t)(c >> 2) * page : 0);
	case 4:
		return hostile_address(u8(in));
	case 5:
		/* A heap block (foreign to the manager's virtual memory), or a freed one. */
		c = u8(in);
		i = nth_block(c, -1);
		if (i >= 0 && !(c & 0x80)) {
			return (uintptr_t)M.block[i].ptr;
		}
		return nfreed ? (uintptr_t)freed[c % nfreed] : 0;
	case 6:
		return 0;
	default:
		switch (u8(in) % 8) {
		case 4:
			return (uintptr_t)__builtin_frame_address(0); /* the stack */
		case 5:
			return (uintptr_t)&global_object;
		case 6:
			return (uintptr_t)&decode_addr; /* the executable */
		case 7:
			return (uintptr_t)libc_block; /* the process's malloc */
		default:
			return 0;
		}
	}
}

static size_t hist_len(unsigned k)
{
	return nhist ? hist[k % (unsigned)nhist].len : 16 * page;
}

/* A size argument for virtual memory. */
static size_t decode_size(struct input *in)
{
	uint8_t b = u8(in);
	size_t k = b >> 4;
	const size_t huge[16] = {
		user_limit - 1,
		user_limit,
		user_limit + 1,
		SIZE_MAX,
		SIZE_MAX - 1,
		SIZE_MAX - page + 2,
		(size_t)1 << 63,
		M.no_hole,
		user_limit - page,
		(size_t)2147483647000000ull,
		SIZE_MAX / 2,
		user_limit - GRANULE,
		M.no_hole + page,
		user_limit * 2,
		SIZE_MAX - GRANULE,
		user_limit - page + 1,
	};
	const size_t cap[4] = { 64 * MIB, 64 * MIB + 1, 128 * MIB, 128 * MIB + GRANULE };

	switch (b & 15) {
	case 0:
		return 0;
	case 1:
		return 1 + k;
	case 2:
		return k * page;
	case 3:
		return k * page + 1;
	case 4:
		return (k + 1) * page - 1;
	case 5:
		return (k + 1) * GRANULE;
	case 6:
		return (k + 1) * GRANULE + 1;
	case 7:
		return (size_t)(u16(in) % (128 * MIB / page + 1)) * page;
	case 8:
		return huge[k];
	case 9:
		return hist_len((unsigned)k);
	case 10:
		return hist_len((unsigned)k) - (size_t)(u8(in) % 16) * page;
	case 11:
		return hist_len((unsigned)k) + (size_t)(u8(in) % 16) * page;
	case 12:
		return k * page + page / 2;
	case 13:
		return cap[k % 4];
	default:
		return (k + 1) * page;
	}
}

static uint32_t pick(struct input *in, const uint32_t *table, size_t n)
{
	uint8_t b = u8(in);

	if (b < 0xc0) {
		return table[b % n];
	}
	if (b < 0xf0) {
		uint8_t i = u8(in);

		return table[i % n] ^ ((uint32_t)1 << (u8(in) & 31));
	}
	return u32(in);
}

static uint32_t decode_type(struct input *in)
{
	static const uint32_t table[] = {
		MEM_RESERVE,
		MEM_COMMIT,
		MEM_RESERVE | MEM_COMMIT,
		MEM_RESERVE,
		MEM_COMMIT,
		MEM_RESERVE | MEM_COMMIT,
		MEM_RESET,
		MEM_RESERVE | MEM_TOP_DOWN,
		MEM_COMMIT | MEM_TOP_DOWN,
		MEM_RESERVE | MEM_COMMIT | MEM_TOP_DOWN,
		MEM_RESERVE | MEM_WRITE_WATCH,
		MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH,
		MEM_RESET | MEM_COMMIT,
		MEM_RESET | MEM_RESERVE,
		MEM_RESET | MEM_TOP_DOWN,
		0,
		MEM_TOP_DOWN,
		MEM_DECOMMIT,
		MEM_RELEASE,
		MEM_RESERVE | MEM_LARGE_PAGES,
		MEM_RESERVE | MEM_COMMIT | MEM_LARGE_PAGES,
		MEM_RESERVE | MEM_PHYSICAL,
		MEM_COMMIT | 0x40000000, /* AT_ROUND_TO_PAGE */
		MEM_RESERVE | 0x40000000, /* the PAL's MEM_RESERVE_EXECUTABLE */
		MEM_RESET_UNDO,
		MEM_COMMIT | MEM_4MB_PAGES,
		MEM_RESERVE | MEM_RESERVE_PLACEHOLDER,
		MEM_RESERVE | MEM_REPLACE_PLACEHOLDER,
		MEM_COMMIT | MEM_COALESCE_PLACEHOLDERS,
		MEM_RESERVE | MEM_ROTATE,
	};

	return pick(in, table, sizeof(table) / sizeof(table[0]));
}

static uint32_t decode_protect(struct input *in)
{
	static const uint32_t valid[] = {
		PAGE_NOACCESS,
		PAGE_READONLY,
		PAGE_READWRITE,
		PAGE_EXECUTE,
		PAGE_EXECUTE_READ,
		PAGE_EXECUTE_READWRITE,
		PAGE_READWRITE,
		PAGE_NOACCESS,
		PAGE_READONLY | PAGE_GUARD,
		PAGE_READWRITE | PAGE_GUARD,
		PAGE_EXECUTE_READWRITE | PAGE_GUARD,
		PAGE_READWRITE | PAGE_NOCACHE,
		PAGE_READONLY | PAGE_WRITECOMBINE,
		PAGE_EXECUTE_READ | PAGE_NOCACHE,
		PAGE_READWRITE | PAGE_TARGETS_INVALID,
		PAGE_NOACCESS | PAGE_TARGETS_INVALID,
	};
	static const uint32_t invalid[] = {
		0,
		PAGE_WRITECOPY,
		PAGE_EXECUTE_WRITECOPY,
		PAGE_NOACCESS | PAGE_READONLY,
		PAGE_READONLY | PAGE_READWRITE,
		PAGE_READWRITE | PAGE_EXECUTE_READWRITE,
		0xff,
		PAGE_NOACCESS | PAGE_GUARD,
		PAGE_NOACCESS | PAGE_NOCACHE,
		PAGE_NOACCESS | PAGE_WRITECOMBINE,
		PAGE_READWRITE | PAGE_GUARD | PAGE_NOCACHE,
		PAGE_READWRITE | PAGE_GUARD | PAGE_WRITECOMBINE,
		PAGE_READWRITE | PAGE_NOCACHE | PAGE_WRITECOMBINE,
		PAGE_READWRITE | 0x800,
		PAGE_READWRITE | 0x80000000u,
		PAGE_TARGETS_INVALID,
		PAGE_WRITECOPY | PAGE_GUARD,
		PAGE_GUARD,
	};
	uint8_t b = u8(in);

	if (b < 0xa0) {
		return valid[b % (sizeof(valid) / sizeof(valid[0]))];
	}
	if (b < 0xd0) {
		return invalid[u8(in) % (sizeof(invalid) / sizeof(invalid[0]))];
	}
	if (b < 0xf0) {
		uint8_t i = u8(in);

		return valid[i % (sizeof(valid) / sizeof(valid[0]))] ^ ((uint32_t)1 << (u8(in) & 31));
	}
	return u32(in);
}

static int decode_level(struct input *in)
{
	static const int invalid[] = { 3, 4, -1, INT_MIN, INT_MAX, 255, 0x10000, -2 };
	uint8_t b = u8(in);

	if (b < 0xf0) {
		return b % 3;
	}
	return invalid[b % (sizeof(invalid) / sizeof(invalid[0]))];
}

static uint32_t decode_free_type(struct input *in)
{
	static const uint32_t table[] = {
		MEM_DECOMMIT,
		MEM_RELEASE,
		MEM_DECOMMIT,
		MEM_RELEASE,
		0,
		MEM_DECOMMIT | MEM_RELEASE,
		MEM_FREE,
		MEM_RELEASE | MEM_COALESCE_PLACEHOLDERS,
		MEM_RELEASE | MEM_PRESERVE_PLACEHOLDER,
		MEM_DECOMMIT | MEM_PRESERVE_PLACEHOLDER,
		MEM_COMMIT,
		MEM_RESERVE,
		MEM_RESET,
		MEM_RELEASE | 0x80000000u,
		0xffffffffu,
	};

	return pick(in, table, sizeof(table) / sizeof(table[0]));
}

static size_t decode_heap_size(struct input *in)
{
	static const size_t boundary[] = {
		15, 16, 17, 255, 256, 257, 320, 1023, 1024, 1025, 16383, 16384, 16385,
		65536 - 256, 65536, 65537, 4095, 4096, 4097, 65535,
	};
	uint8_t b = u8(in);
	const size_t huge[] = {
		SIZE_MAX, SIZE_MAX - 15, SIZE_MAX / 2, user_limit, M.no_hole, user_limit * 2,
		(size_t)1 << 63, SIZE_MAX - page,
	};

	switch (b % 16) {
	case 0:
		return 0;
	case 1:
		return 1 + (size_t)u8(in);
	case 2:
		return 16 * (size_t)u8(in);
	case 3:
		return boundary[u8(in) % (sizeof(boundary) / sizeof(boundary[0]))];
	case 4:
		return u16(in);
	case 5:
		return 16 * (size_t)u16(in);
	case 6:
		return huge[u8(in) % (sizeof(huge) / sizeof(huge[0]))];
	case 7:
		return (size_t)(u16(in) % (MAX_BLOCK / page + 1)) * page;
	default:
		return 1 + (size_t)(u8(in) % 128);
	}
}

/* ---------- The kernel's view ---------- */

struct kvma {
	uintptr_t start, end;
	char perms[5];
};

static struct kvma kv[16384];
static int nkv;
/* Two copies of /proc/self/maps: the last one parsed, and one read just before it. */
static char maps_text[2][4 << 20];

/* Reads /proc/self/maps into maps_text[which]. */
static void kernel_maps_snapshot(int which)
{
	char *text = maps_text[which];
	size_t len = 0;
	int fd;

	do {
		fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		fail("cannot open /proc/self/maps: %s", strerror(errno));
	}
	for (;;) {
		ssize_t n = read(fd, text + len, sizeof(maps_text[0]) - 1 - len);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		len += (size_t)n;
		if (len == sizeof(maps_text[0]) - 1) {
			fail("/proc/self/maps is too large");
		}
	}
	close(fd);
	text[len] = '\0';
}

/* Reads /proc/self/maps into maps_text[0] and parses it into kv. */
static void kernel_maps_read(void)
{
	char *line;

	kernel_maps_snapshot(0);
	nkv = 0;
	for (line = maps_text[0]; *line && nkv < (int)(sizeof(kv) / sizeof(kv[0]));) {
		char *end, *nl = strchr(line, '\n');
		struct kvma *v = &kv[nkv];

		v->start = (uintptr_t)strtoull(line, &end, 16);
		if (*end == '-') {
			v->end = (uintptr_t)strtoull(end + 1, &end, 16);
			if (*end == ' ' && strlen(end) > 4) {
				memcpy(v->perms, end + 1, 4);
				v->perms[4] = '\0';
				nkv++;
			}
		}
		if (!nl) {
			break;
		}
		line = nl + 1;
	}
}

/* Whether anything is mapped in [lo, hi), as the kernel sees it now. */
static bool kernel_overlaps(uintptr_t lo, uintptr_t hi)
{
	int i;

	kernel_maps_read();
	for (i = 0; i < nkv; i++) {
		if (kv[i].start < hi && kv[i].end > lo) {
			return true;
		}
	}
	return false;
}

/* [a, b) is mapped without gaps with protection `perms` ("rw-"); kernel_maps_read first. */
static void check_kernel_range(uintptr_t a, uintptr_t b, const char *perms, const char *what)
{
	uintptr_t x = a;
	int i;

	for (i = 0; i < nkv && x < b; i++) {
		if (kv[i].end <= x) {
			continue;
		}
		if (kv[i].start > x) {
			break;
		}
		if (memcmp(kv[i].perms, perms, 3) != 0) {
			fail("%s: the kernel maps %#" PRIxPTR " as %s, expected %s", what, x,
			     kv[i].perms, perms);
		}
		x = kv[i].end;
	}
	if (x < b) {
		fail("%s: %#" PRIxPTR " is not mapped (expected %s)", what, x, perms);
	}
}

static const char *unix_perms(uint16_t prot)
{
	if (prot == MODEL_RESERVED || (prot & PAGE_GUARD)) {
		return "---";
	}
	switch (prot & 0xff) {
	case PAGE_READONLY:
		return "r--";
	case PAGE_READWRITE:
		return "rw-";
	case PAGE_EXECUTE:
	case PAGE_EXECUTE_READ:
		return "r-x"; /* no execute-only mappings on Linux (§2.4) */
	case PAGE_EXECUTE_READWRITE:
		return "rwx";
	default:
		return "---";
	}
}

/* Every page of every reservation and every heap block, against /proc/self/maps. */
static void check_kernel_maps(void)
{
	int i;

	kernel_maps_read();
	for (i = 0; i < MODEL_MAX_RES; i++) {
		const struct mres *r = &M.res[i];
		size_t k = 0;

		while (r->live && k < r->pages) {
			size_t e = k;

			while (e < r->pages && !strcmp(unix_perms(r->page[e].prot),
						       unix_perms(r->page[k].prot))) {
				e++;
			}
			check_kernel_range(r->base + k * page, r->base + e * page,
					   unix_perms(r->page[k].prot), "reservation");
			k = e;
		}
	}
	for (i = 0; i < MODEL_MAX_BLOCKS; i++) {
		const struct mblock *b = &M.block[i];
		uintptr_t s = (uintptr_t)b->ptr & ~(uintptr_t)(page - 1);

		if (b->live) {
			check_kernel_range(s, round_up((uintptr_t)b->ptr + (b->size ? b->size : 1), page),
					   (M.heap[b->heap].type & MALLOC_EXECUTABLE) ? "rwx" : "rw-",
					   "heap block");
		}
	}
}

/* ---------- Access probes (no signals: the kernel reports EFAULT) ---------- */

static bool probe_read(uintptr_t a)
{
	char c;
	long r = syscall(SYS_write, probe_pipe[1], (const void *)a, 1);

	if (r == 1) {
		if (syscall(SYS_read, probe_pipe[0], &c, 1) != 1) {
			fail("probe pipe: %s", strerror(errno));
		}
		return true;
	}
	if (r < 0 && errno == EFAULT) {
		return false;
	}
	fail("probe pipe: %s", strerror(errno));
}

/* Whether the (readable) page at a can be written; its byte keeps its value either way. */
static bool probe_write(uintptr_t a)
{
	char c = *(volatile char *)a;
	long r;

	if (syscall(SYS_write, probe_pipe[1], &c, 1) != 1) {
		fail("probe pipe: %s", strerror(errno));
	}
	r = syscall(SYS_read, probe_pipe[0], (void *)a, 1);
	if (r == 1) {
		return true;
	}
	if (r < 0 && errno == EFAULT) {
		if (syscall(SYS_read, probe_pipe[0], &c, 1) != 1) {
			fail("probe pipe: %s", strerror(errno));
		}
		return false;
	}
	fail("probe pipe: %s", strerror(errno));
}

/* ---------- Queries ---------- */

static void check_mbi(uintptr_t addr, const MEMORY_BASIC_INFORMATION *got,
		      const MEMORY_BASIC_INFORMATION *want)
{
	if (got->BaseAddress != want->BaseAddress || got->AllocationBase != want->AllocationBase ||
	    got->AllocationProtect != want->AllocationProtect ||
	    got->RegionSize != want->RegionSize || got->State != want->State ||
	    got->Protect != want->Protect || got->Type != want->Type) {
		fail("VirtualQuery(%#" PRIxPTR ") = {base %p, allocation %p, aprot %#x, size %#zx, "
		     "state %#x, prot %#x, type %#x}, the model expects {base %p, allocation %p, "
		     "aprot %#x, size %#zx, state %#x, prot %#x, type %#x}",
		     addr, got->BaseAddress, got->AllocationBase, (unsigned)got->AllocationProtect,
		     (size_t)got->RegionSize, (unsigned)got->State, (unsigned)got->Protect,
		     (unsigned)got->Type, want->BaseAddress, want->AllocationBase,
		     (unsigned)want->AllocationProtect, (size_t)want->RegionSize,
		     (unsigned)want->State, (unsigned)want->Protect, (unsigned)want->Type);
	}
}

/* Memory a manager (modelled by m) does not own: its fields must be consistent. */
static void check_foreign_fields(const struct model *m, uintptr_t addr,
				 const MEMORY_BASIC_INFORMATION *q)
{
	uintptr_t b = (uintptr_t)q->BaseAddress, e = b + q->RegionSize;
	uintptr_t ab = (uintptr_t)q->AllocationBase;
	int i;

	if (b != (addr & ~(uintptr_t)(page - 1))) {
		fail("VirtualQuery(%#" PRIxPTR ") of foreign memory: BaseAddress %p", addr,
		     q->BaseAddress);
	}
	if (q->RegionSize == 0 || e < b || e > user_limit || (q->RegionSize & (page - 1))) {
		fail("VirtualQuery(%#" PRIxPTR ") of foreign memory: RegionSize %#zx", addr,
		     (size_t)q->RegionSize);
	}
	if (model_overlaps(m, b, e)) {
		fail("VirtualQuery(%#" PRIxPTR ") of foreign memory: [%#" PRIxPTR ", %#" PRIxPTR
		     ") meets a reservation of the manager",
		     addr, b, e);
	}
	switch (q->State) {
	case MEM_FREE:
		if (ab || q->AllocationProtect || q->Protect != PAGE_NOACCESS || q->Type) {
			fail("VirtualQuery(%#" PRIxPTR ") of free memory: allocation %p, aprot %#x, "
			     "prot %#x, type %#x",
			     addr, q->AllocationBase, (unsigned)q->AllocationProtect,
			     (unsigned)q->Protect, (unsigned)q->Type);
		}
		return;
	case MEM_RESERVE:
		if (q->Protect != 0) {
			fail("VirtualQuery(%#" PRIxPTR "): reserved with Protect %#x", addr,
			     (unsigned)q->Protect);
		}
		break;
	case MEM_COMMIT:
		if (q->Protect == 0) {
			fail("VirtualQuery(%#" PRIxPTR "): committed with Protect 0", addr);
		}
		break;
	default:
		fail("VirtualQuery(%#" PRIxPTR "): State %#x", addr, (unsigned)q->State);
	}
	if (q->Type != MEM_PRIVATE && q->Type != MEM_MAPPED && q->Type != MEM_IMAGE) {
		fail("VirtualQuery(%#" PRIxPTR "): Type %#x", addr, (unsigned)q->Type);
	}
	if (!ab || ab > b || model_overlaps(m, ab, b)) {
		fail("VirtualQuery(%#" PRIxPTR "): AllocationBase %p for a region at %p", addr,
		     q->AllocationBase, q->BaseAddress);
	}
	/* A heap block is the heap's own read-write (or executable) memory. */
	i = model_block_overlapping(&M, addr, 1);
	if (i >= 0) {
		DWORD want = (M.heap[M.block[i].heap].type & MALLOC_EXECUTABLE) ? PAGE_EXECUTE_READWRITE
										: PAGE_READWRITE;

		if (q->State != MEM_COMMIT || q->Protect != want || q->Type != MEM_PRIVATE) {
			fail("VirtualQuery(%#" PRIxPTR ") in a heap block: state %#x, prot %#x, "
			     "type %#x",
			     addr, (unsigned)q->State, (unsigned)q->Protect, (unsigned)q->Type);
		}
	}
}

/* The access the kernel's "rwx" shows for a committed Win32 protection. */
static const char *perms_of_protect(DWORD protect)
{
	switch (protect & 0xff) {
	case PAGE_READONLY:
		return "r--";
	case PAGE_READWRITE:
	case PAGE_WRITECOPY:
		return "rw-";
	case PAGE_EXECUTE:
		return "--x";
	case PAGE_EXECUTE_READ:
		return "r-x";
	case PAGE_EXECUTE_READWRITE:
	case PAGE_EXECUTE_WRITECOPY:
		return "rwx";
	default:
		return "---";
	}
}

/*
 * Whether the kernel's map (kv) agrees with a foreign answer: a free region is
 * unmapped and ends where a mapping starts (or at the limit); any other
 * region is mapped throughout with the access its protection names.
 */
static bool foreign_matches_kernel(const MEMORY_BASIC_INFORMATION *q)
{
	uintptr_t b = (uintptr_t)q->BaseAddress, e = b + q->RegionSize, x = b;
	const char *perms = q->State == MEM_COMMIT ? perms_of_protect(q->Protect) : "---";
	bool next_mapped = e >= user_limit;
	int i;

	for (i = 0; i < nkv; i++) {
		if (q->State == MEM_FREE) {
			if (kv[i].start < e && kv[i].end > b) {
				return false;
			}
			next_mapped |= kv[i].start <= e && kv[i].end > e;
			continue;
		}
		if (kv[i].end <= x || x >= e) {
			continue;
		}
		if (kv[i].start > x || memcmp(kv[i].perms, perms, 3) != 0) {
			return false;
		}
		x = kv[i].end;
	}
	return q->State == MEM_FREE ? next_mapped : x >= e;
}

/* Prints the kernel's mappings that meet [lo, hi) (parsed last), for a failure's report. */
static void dump_kernel_maps(uintptr_t lo, uintptr_t hi)
{
	int i;

	fprintf(stderr, "fuzz-ops: /proc/self/maps around [%#" PRIxPTR ", %#" PRIxPTR "):\n", lo,
		hi);
	for (i = 0; i < nkv; i++) {
		if (kv[i].start < hi && kv[i].end > lo) {
			fprintf(stderr, "  %" PRIxPTR "-%" PRIxPTR " %s\n", kv[i].start, kv[i].end,
				kv[i].perms);
		}
	}
}

/*
 * Memory the manager does not own: consistent fields, and the kernel's
 * agreement. Other threads (liburcu's, unmapping the spans of heaps that are
 * gone) change the map at any time, so a disagreement is looked at again
 * with an answer the map held still around: read, query again, read again,
 * until both reads are the same. A map that never holds still is not held
 * against the library.
 */
static void check_foreign(IHostMemoryManager *mgr, const struct model *m, uintptr_t addr,
			  const MEMORY_BASIC_INFORMATION *q)
{
	MEMORY_BASIC_INFORMATION again;
	SIZE_T res = 0;
	int attempt;

	check_foreign_fields(m, addr, q);
	kernel_maps_read();
	if (foreign_matches_kernel(q)) {
		return;
	}
	for (attempt = 0; attempt < 10; attempt++) {
		kernel_maps_snapshot(1);
		expect_hr(IHostMemoryManager_VirtualQuery(mgr, (void *)addr, &again, sizeof(again),
							  &res),
			  S_OK, "VirtualQuery, asked again");
		kernel_maps_read();
		if (strcmp(maps_text[0], maps_text[1]) != 0) {
			continue;
		}
		check_foreign_fields(m, addr, &again);
		if (!foreign_matches_kernel(&again)) {
			dump_kernel_maps((uintptr_t)again.BaseAddress - GRANULE,
					 (uintptr_t)again.BaseAddress + again.RegionSize + GRANULE);
			fail("VirtualQuery(%#" PRIxPTR ") of foreign memory = {base %p, allocation %p, "
			     "size %#zx, state %#x, prot %#x, type %#x}, which /proc/self/maps "
			     "contradicts",
			     addr, again.BaseAddress, again.AllocationBase, (size_t)again.RegionSize,
			     (unsigned)again.State, (unsigned)again.Protect, (unsigned)again.Type);
		}
		return;
	}
	log_add(" (the map did not hold still: not compared with the kernel)");
}

/* One ordinary query of addr (below the user limit), checked; returns the answer. */
static MEMORY_BASIC_INFORMATION query_checked(uintptr_t addr)
{
	MEMORY_BASIC_INFORMATION got, want;
	enum qkind k;
	SIZE_T res = SENTINEL_SIZE;
	HRESULT hr, want_hr;

	memset(&got, 0xcc, sizeof(got));
	k = model_virtual_query(&M, addr, false, sizeof(got), false, &want_hr, &want);
	hr = IHostMemoryManager_VirtualQuery(mm, (void *)addr, &got, sizeof(got), &res);
	if (k == Q_FAIL) {
		expect_hr(hr, want_hr, "VirtualQuery");
		return got;
	}
	expect_hr(hr, S_OK, "VirtualQuery");
	if (res != sizeof(got)) {
		fail("VirtualQuery(%#" PRIxPTR ") returned %zu bytes", addr, (size_t)res);
	}
	if (k == Q_OWNED) {
		check_mbi(addr, &got, &want);
	} else {
		check_foreign(mm, &M, addr, &got);
	}
	return got;
}

/*
 * Walks a reservation region by region and, when `outside`, looks just
 * outside it (foreign queries read /proc/self/maps, so only sometimes).
 */
static void verify_reservation(int i, bool outside)
{
	const struct mres *r = &M.res[i];
	uintptr_t a = r->base;

	while (a < r->end) {
		MEMORY_BASIC_INFORMATION q = query_checked(a);

		a += q.RegionSize;
	}
	if (!outside) {
		return;
	}
	if (r->end < user_limit) {
		query_checked(r->end);
	}
	if (r->base > 0) {
		query_checked(r->base - 1);
	}
}

static void verify_all(void)
{
	int i;

	for (i = 0; i < MODEL_MAX_RES; i++) {
		if (M.res[i].live) {
			verify_reservation(i, true);
		}
	}
}

/* ---------- Page contents ---------- */

static uint64_t page_word(uintptr_t a, uint32_t tag)
{
	return ((uint64_t)a * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)tag << 32 | tag) ^ 1u;
}

static void check_word(uintptr_t a, const struct mpage *pg)
{
	uint64_t v = *(volatile uint64_t *)a;
	uint64_t want = pg->tag ? page_word(a, pg->tag) : 0;

	if (v != want && !(pg->maybe_reset && v == 0)) {
		fail("memory at %#" PRIxPTR " holds %#" PRIx64 ", expected %#" PRIx64 "%s", a, v,
		     want, pg->maybe_reset ? " or 0 (after MEM_RESET)" : "");
	}
}

/* Reads (and writes) one page as the model says it allows, and checks it forbids the rest. */
static void touch_page(struct mres *r, size_t k, bool write)
{
	uintptr_t a = r->base + k * page, last = a + page - sizeof(uint64_t);
	struct mpage *pg = &r->page[k];
	uint32_t base = pg->prot & 0xff;
	bool readable = pg->prot != MODEL_RESERVED && !(pg->prot & PAGE_GUARD) &&
			base != PAGE_NOACCESS;
	bool writable = readable && (base == PAGE_READWRITE || base == PAGE_EXECUTE_READWRITE);

	if (readable) {
		check_word(a, pg);
		check_word(last, pg);
	} else if (probe_read(a)) {
		fail("page %#" PRIxPTR " can be read; the model says protection %#x", a,
		     (unsigned)pg->prot);
	}
	if (!write) {
		return;
	}
	if (writable) {
		if (++next_tag == 0) {
			next_tag = 1;
		}
		pg->tag = next_tag;
		pg->maybe_reset = 0;
		*(volatile uint64_t *)a = page_word(a, pg->tag);
		*(volatile uint64_t *)last = page_word(last, pg->tag);
	} else if (readable && probe_write(a)) {
		fail("page %#" PRIxPTR " can be written; the model says protection %#x", a,
		     (unsigned)pg->prot);
	}
}

/* ---------- Heap blocks ---------- */

static uint8_t pattern(uint32_t seed, size_t j)
{
	return (uint8_t)(seed * 131u + j * 7u + (j >> 8) + 1u);
}

static void block_fill(const struct mblock *b)
{
	uint8_t *p = b->ptr;
	size_t n = b->size, h = n < PATTERN_BYTES ? n : PATTERN_BYTES, j;

	for (j = 0; j < h; j++) {
		p[j] = pattern(b->seed, j);
	}
	for (j = n - h; j < n; j++) {
		p[j] = pattern(b->seed, j);
	}
}

static void block_check(const struct mblock *b)
{
	const uint8_t *p = b->ptr;
	size_t n = b->size, h = n < PATTERN_BYTES ? n : PATTERN_BYTES, j;

	for (j = 0; j < n; j = (j + 1 == h && n > 2 * h) ? n - h : j + 1) {
		if (p[j] != pattern(b->seed, j)) {
			fail("heap block %p (%zu bytes) was overwritten at offset %zu: %#x, "
			     "expected %#x",
			     b->ptr, n, j, p[j], pattern(b->seed, j));
		}
	}
}

static void check_heaps(void)
{
	int i;

	for (i = 0; i < MODEL_MAX_BLOCKS; i++) {
		if (M.block[i].live) {
			block_check(&M.block[i]);
		}
	}
}

static void remember_freed(void *p)
{
	if (nfreed < MAX_FREED) {
		freed[nfreed++] = p;
	} else {
		freed[(next_seed++) % MAX_FREED] = p;
	}
}

/* ---------- Operations ---------- */

static void add_hist(uintptr_t base, size_t len)
{
	if (nhist < MAX_HIST) {
		hist[nhist].base = base;
		hist[nhist].len = len;
		nhist++;
	}
}

static void adopt_reservation(const struct pred *p, uintptr_t base)
{
	int i = model_add_reservation(&M, p, base);

	if (i < 0) {
		fail("the model has no room for the reservation at %#" PRIxPTR, base);
	}
	add_hist(base, p->len);
	verify_reservation(i, false);
}

static void op_alloc(struct input *in)
{
	uintptr_t addr = decode_addr(in);
	size_t size = decode_size(in);
	uint32_t type = decode_type(in), protect = decode_protect(in);
	int level = decode_level(in);
	bool out_null = u8(in) == 0xff, overlap = false;
	bool full = model_live_reservations(&M) == MODEL_MAX_RES;
	void *result = SENTINEL;
	int attempt;
	uintptr_t r;
	struct pred p;
	HRESULT hr;

	log_op("VirtualAlloc(%#" PRIxPTR ", %#zx, %#x, %#x, %d%s)", addr, size, (unsigned)type,
	       (unsigned)protect, level, out_null ? ", ppMem NULL" : "");
	model_virtual_alloc(&M, addr, size, type, protect, level, out_null, &p);
	if (p.kind == P_RESERVE && (p.len > MAX_RESERVE || full)) {
		log_add(" skipped: %s\n", full ? "reservations full" : "too large to place");
		return;
	}
	if (p.kind == P_RESERVE_AT && (p.len > MAX_RESERVE || full)) {
		/* Made only when it must fail: something else is mapped there. */
		overlap = kernel_overlaps(p.base, p.base + p.len);
		if (!overlap) {
			log_add(" skipped: %s\n", full ? "reservations full" : "too large to place");
			return;
		}
	}
	hr = IHostMemoryManager_VirtualAlloc(mm, (void *)addr, size, type, protect,
					     (EMemoryCriticalLevel)level, out_null ? NULL : &result);
	log_add(" -> %s, %p [model: %s]\n", hr_name(hr), out_null ? NULL : result, p.why);
	r = (uintptr_t)result;
	if (hr != S_OK && !out_null && result != NULL) {
		fail("VirtualAlloc failed but *ppMem is %p", result);
	}
	switch (p.kind) {
	case P_FAIL:
		expect_hr(hr, p.hr, p.why);
		return;
	case P_RESERVE_AT:
		/*
		 * 487 is right when something the manager does not own is mapped in
		 * the range. Another thread (liburcu's, unmapping the spans of heaps
		 * that are gone) may have taken it away since: then the call is made
		 * again, a few times at most.
		 */
		for (attempt = 0; hr == HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS) && attempt < 10;
		     attempt++) {
			if (overlap || kernel_overlaps(p.base, p.base + p.len)) {
				return; /* something the manager does not own is mapped there */
			}
			result = SENTINEL;
			hr = IHostMemoryManager_VirtualAlloc(mm, (void *)addr, size, type, protect,
							     (EMemoryCriticalLevel)level, &result);
			r = (uintptr_t)result;
			log_add("    again, as nothing is mapped there now -> %s, %p\n", hr_name(hr),
				result);
		}
		expect_hr(hr, S_OK, p.why);
		if (r != p.base) {
			fail("VirtualAlloc reserved at %p, expected %#" PRIxPTR, result, p.base);
		}
		if (p.len > MAX_RESERVE || full) {
			/* What was in the way went away just before the call: not kept. */
			log_add("    released at once: the model keeps no such reservation\n");
			expect_hr(IHostMemoryManager_VirtualFree(mm, result, 0, MEM_RELEASE), S_OK,
				  "releasing a reservation the model cannot keep");
			return;
		}
		adopt_reservation(&p, r);
		return;
	case P_RESERVE:
		expect_hr(hr, S_OK, p.why);
		if ((r & (GRANULE - 1)) || r < user_min || r > user_limit - p.len) {
			fail("VirtualAlloc reserved %#zx bytes at %p", p.len, result);
		}
		if (model_overlaps(&M, r, r + p.len) || model_block_overlapping(&M, r, p.len) >= 0) {
			fail("the new reservation [%p, +%#zx) overlaps live memory", result, p.len);
		}
		adopt_reservation(&p, r);
		return;
	default:
		expect_hr(hr, S_OK, p.why);
		if (r != p.base) {
			fail("VirtualAlloc returned %p, expected %#" PRIxPTR, result, p.base);
		}
		model_apply(&M, &p);
		verify_reservation(p.res, false);
		return;
	}
}

static void op_free(struct input *in)
{
	uintptr_t addr = decode_addr(in);
	size_t size = decode_size(in);
	uint32_t type = decode_free_type(in);
	struct pred p;
	uintptr_t base;
	HRESULT hr;

	log_op("VirtualFree(%#" PRIxPTR ", %#zx, %#x)", addr, size, (unsigned)type);
	model_virtual_free(&M, addr, size, type, &p);
	hr = IHostMemoryManager_VirtualFree(mm, (void *)addr, size, type);
	log_add(" -> %s [model: %s]\n", hr_name(hr), p.why);
	expect_hr(hr, p.hr, p.why);
	if (p.kind == P_FAIL) {
		return;
	}
	base = M.res[p.res].base;
	model_apply(&M, &p);
	if (p.kind == P_RELEASE) {
		query_checked(base); /* #39: no longer the manager's */
	} else {
		verify_reservation(p.res, false);
	}
}

static void op_protect(struct input *in)
{
	uintptr_t addr = decode_addr(in);
	size_t size = decode_size(in);
	uint32_t protect = decode_protect(in);
	bool old_null = u8(in) == 0xff;
	DWORD old = SENTINEL_DWORD;
	struct pred p;
	HRESULT hr;

	log_op("VirtualProtect(%#" PRIxPTR ", %#zx, %#x%s)", addr, size, (unsigned)protect,
	       old_null ? ", NULL" : "");
	model_virtual_protect(&M, addr, size, protect, old_null, &p);
	hr = IHostMemoryManager_VirtualProtect(mm, (void *)addr, size, protect,
					       old_null ? NULL : &old);
	log_add(" -> %s, old %#x [model: %s]\n", hr_name(hr), old_null ? 0u : (unsigned)old,
		p.why);
	expect_hr(hr, p.hr, p.why);
	if (p.kind == P_FAIL) {
		if (!old_null && old != 0) {
			fail("VirtualProtect failed but *lpflOldProtect is %#x", (unsigned)old);
		}
		return;
	}
	if (old != p.old) {
		fail("VirtualProtect reported old protection %#x, the model expects %#x",
		     (unsigned)old, (unsigned)p.old);
	}
	model_apply(&M, &p);
	verify_reservation(p.res, false);
}

static void op_query(struct input *in)
{
	static const size_t lengths[] = {
		0, 1, 24, 28, 47, 49, 64, 4096, SIZE_MAX, 0x80000000u, 48,
	};
	uintptr_t addr = decode_addr(in);
	uint8_t l = u8(in), flags = u8(in);
	size_t len = l < 0xc0 ? sizeof(MEMORY_BASIC_INFORMATION)
			      : lengths[l % (sizeof(lengths) / sizeof(lengths[0]))];
	bool buf_null = flags == 0xfe, result_null = flags == 0xff;
	struct {
		MEMORY_BASIC_INFORMATION mbi;
		unsigned char tail[32];
	} buf;
	MEMORY_BASIC_INFORMATION want;
	SIZE_T res = SENTINEL_SIZE;
	unsigned char untouched[sizeof(buf)];
	HRESULT hr, want_hr;
	enum qkind k;
	size_t j;

	memset(&buf, 0xcc, sizeof(buf));
	memset(untouched, 0xcc, sizeof(untouched));
	log_op("VirtualQuery(%#" PRIxPTR ", %s, %#zx, %s)", addr, buf_null ? "NULL" : "buf", len,
	       result_null ? "NULL" : "&res");
	k = model_virtual_query(&M, addr, buf_null, len, result_null, &want_hr, &want);
	hr = IHostMemoryManager_VirtualQuery(mm, (void *)addr, buf_null ? NULL : &buf, len,
					     result_null ? NULL : &res);
	log_add(" -> %s, %zu [model: %s]\n", hr_name(hr), result_null ? 0 : (size_t)res,
		k == Q_FAIL ? "fails" : k == Q_OWNED ? "owned" : "foreign");
	if (k == Q_FAIL) {
		expect_hr(hr, want_hr, "VirtualQuery's arguments (#55, #56)");
		if (!result_null && res != 0) {
			fail("VirtualQuery failed but *pResult is %zu", (size_t)res);
		}
		if (memcmp(&buf, untouched, sizeof(buf)) != 0) {
			fail("VirtualQuery failed but wrote its buffer");
		}
		return;
	}
	expect_hr(hr, S_OK, "VirtualQuery");
	if (res != sizeof(MEMORY_BASIC_INFORMATION)) {
		fail("VirtualQuery returned %zu bytes", (size_t)res);
	}
	for (j = 0; j < sizeof(buf.tail); j++) {
		if (buf.tail[j] != 0xcc) {
			fail("VirtualQuery wrote past sizeof(MEMORY_BASIC_INFORMATION)");
		}
	}
	if (k == Q_OWNED) {
		check_mbi(addr, &buf.mbi, &want);
	} else {
		check_foreign(mm, &M, addr, &buf.mbi);
	}
}

static void op_touch(struct input *in)
{
	uint8_t s = u8(in);
	uint16_t pg = u16(in);
	uint8_t count = u8(in), mode = u8(in);
	int i = nth_reservation(s);
	size_t first, k, n;
	struct mres *r;

	if (i < 0) {
		log_op("touch: no reservation, skipped\n");
		return;
	}
	r = &M.res[i];
	first = pg % r->pages;
	n = 1 + count % 8u;
	log_op("touch(%#" PRIxPTR ", pages %zu..%zu, %s)", r->base, first, first + n - 1,
	       (mode & 1) ? "read and write" : "read");
	for (k = first; k < first + n && k < r->pages; k++) {
		touch_page(r, k, mode & 1);
	}
	log_add(" -> ok\n");
}

static int free_heap_slot(void)
{
	int i;

	for (i = 0; i < MODEL_MAX_HEAPS; i++) {
		if (!M.heap[i].live) {
			return i;
		}
	}
	return -1;
}

static void op_create_malloc(struct input *in)
{
	static const uint32_t bad[] = {
		4, 8, 0x10, 0x100, 0x80000000u, 0xffffffffu, 5, 7, 0x40000000u,
	};
	uint8_t b = u8(in);
	uint32_t type = b < 0x80 ? b & 3u
				 : b < 0xc0 ? bad[b % (sizeof(bad) / sizeof(bad[0]))] : u32(in);
	bool out_null = u8(in) == 0xff;
	IHostMalloc *heap = SENTINEL;
	int slot = free_heap_slot();
	HRESULT hr, want = model_create_malloc(&M, type, out_null);

	log_op("CreateMalloc(%#x%s)", (unsigned)type, out_null ? ", NULL" : "");
	if (want == S_OK && slot < 0) {
		log_add(" skipped: heaps full\n");
		return;
	}
	hr = IHostMemoryManager_CreateMalloc(mm, type, out_null ? NULL : &heap);
	log_add(" -> %s, %p\n", hr_name(hr), out_null ? NULL : (void *)heap);
	expect_hr(hr, want, "CreateMalloc");
	if (hr != S_OK) {
		if (!out_null && heap != NULL) {
			fail("CreateMalloc failed but *ppMalloc is %p", (void *)heap);
		}
		return;
	}
	if (!heap) {
		fail("CreateMalloc returned a NULL heap");
	}
	M.heap[slot].live = true;
	M.heap[slot].refs = 1;
	M.heap[slot].type = type;
	M.heap[slot].handle = heap;
	M.manager_refs++;
}

static int free_block_slot(void)
{
	int i;

	for (i = 0; i < MODEL_MAX_BLOCKS; i++) {
		if (!M.block[i].live) {
			return i;
		}
	}
	return -1;
}

/*
 * One Alloc or DebugAlloc, checked; true when the heap was asked (false:
 * skipped because the model has no room or the block would be too large).
 */
static bool heap_alloc_one(int heap, size_t size, int level, uint8_t kind)
{
	bool debug = kind & 1, file_null = kind & 2, out_null = kind == 0xff;
	IHostMalloc *hm = M.heap[heap].handle;
	int slot = free_block_slot();
	void *p = SENTINEL;
	struct mblock *b;
	HRESULT hr, want;

	want = model_heap_alloc(&M, size, level, out_null);
	log_op("heap%d->%s(%#zx, %d%s)", heap, debug ? "DebugAlloc" : "Alloc", size, level,
	       out_null ? ", NULL" : "");
	if (want == S_OK && (slot < 0 || size > MAX_BLOCK)) {
		log_add(" skipped: %s\n", slot < 0 ? "blocks full" : "too large");
		return false;
	}
	if (debug) {
		hr = IHostMalloc_DebugAlloc(hm, size, (EMemoryCriticalLevel)level,
					    file_null ? NULL : (char *)"fuzz.c", (int)kind - 128,
					    out_null ? NULL : &p);
	} else {
		hr = IHostMalloc_Alloc(hm, size, (EMemoryCriticalLevel)level, out_null ? NULL : &p);
	}
	log_add(" -> %s, %p\n", hr_name(hr), out_null ? NULL : p);
	expect_hr(hr, want, "Alloc");
	if (hr != S_OK) {
		if (!out_null && p != NULL) {
			fail("Alloc failed but *ppMem is %p", p);
		}
		return true;
	}
	if (!p || ((uintptr_t)p & 15)) {
		fail("Alloc returned %p, not a 16-byte aligned block", p);
	}
	if (model_block_overlapping(&M, (uintptr_t)p, size) >= 0) {
		fail("the new block [%p, +%#zx) overlaps a live block", p, size);
	}
	if (model_overlaps(&M, (uintptr_t)p, (uintptr_t)p + (size ? size : 1))) {
		fail("the new block [%p, +%#zx) overlaps a reservation", p, size);
	}
	b = &M.block[slot];
	b->live = true;
	b->heap = heap;
	b->ptr = p;
	b->size = size;
	b->seed = ++next_seed;
	block_fill(b);
	return true;
}

static void op_heap_alloc(struct input *in)
{
	uint8_t h = u8(in);
	size_t size = decode_heap_size(in);
	int level = decode_level(in);
	uint8_t kind = u8(in);
	int heap = nth_heap(h);

	if (heap < 0) {
		log_op("Alloc: no heap, skipped\n");
		return;
	}
	heap_alloc_one(heap, size, level, kind);
}

/*
 * Many blocks of one size at once: enough to fill spans, move blocks
 * between a thread's cache and the spans, and empty spans again.
 */
static void op_heap_burst(struct input *in)
{
	uint8_t h = u8(in);
	size_t size = decode_heap_size(in);
	unsigned count = 1u + u8(in) % 96u, k;
	int heap = nth_heap(h);

	if (heap < 0) {
		log_op("burst: no heap, skipped\n");
		return;
	}
	log_op("burst of %u blocks of %#zx bytes on heap%d\n", count, size, heap);
	for (k = 0; k < count; k++) {
		if (!heap_alloc_one(heap, size, eTaskCritical, 0)) {
			return;
		}
	}
}

/* A pointer for Free: see the cases. */
static void *decode_free_ptr(struct input *in, int heap)
{
	static const intptr_t deltas[] = {
		1, 8, 15, 16, 17, 32, 48, -16, -1, -256, 4096, 65536, 64, 255,
	};
	uint8_t b = u8(in), c = u8(in);
	int i;

	switch (b % 8) {
	case 0:
	case 1:
		i = nth_block(c, heap);
		return i >= 0 ? M.block[i].ptr : NULL;
	case 2:
		return nfreed ? freed[c % nfreed] : NULL;
	case 3:
		i = nth_block(c, -1);
		if (i < 0) {
			return NULL;
		}
		switch (c % 4) {
		case 0:
			return (void *)((uintptr_t)M.block[i].ptr + M.block[i].size);
		case 1:
			return (void *)((uintptr_t)M.block[i].ptr + M.block[i].size - 1);
		case 2:
			/* The start of the block's 64 KiB span or mapping. */
			return (void *)((uintptr_t)M.block[i].ptr & ~(GRANULE - 1));
		default:
			return (void *)((uintptr_t)M.block[i].ptr +
					(uintptr_t)deltas[u8(in) % (sizeof(deltas) / sizeof(deltas[0]))]);
		}
	case 4:
		return NULL;
	case 5:
		i = nth_block(c, -1);
		return i >= 0 ? M.block[i].ptr : NULL;
	case 6:
		return (void *)decode_addr(in);
	default:
		switch (c % 4) {
		case 0:
			return libc_block;
		case 1:
			return &global_object;
		case 2:
			return __builtin_frame_address(0); /* the stack */
		default:
			return (void *)hostile_address(u8(in));
		}
	}
}

static void op_heap_free(struct input *in)
{
	uint8_t h = u8(in);
	int heap = nth_heap(h), block;
	void *p;
	HRESULT hr, want;

	if (heap < 0) {
		log_op("Free: no heap, skipped\n");
		return;
	}
	p = decode_free_ptr(in, heap);
	want = model_heap_free(&M, heap, p, &block);
	log_op("heap%d->Free(%p)", heap, p);
	if (block >= 0) {
		block_check(&M.block[block]);
	}
	hr = IHostMalloc_Free((IHostMalloc *)M.heap[heap].handle, p);
	log_add(" -> %s [model: %s]\n", hr_name(hr),
		block >= 0 ? "a live block" : p ? "not a live block of this heap" : "NULL");
	expect_hr(hr, want, "Free");
	if (block >= 0) {
		M.block[block].live = false;
		remember_freed(p);
	}
}

/* Frees a heap's live blocks in an order of the input's choice, checking each. */
static void op_heap_free_all(struct input *in)
{
	uint8_t h = u8(in), order = u8(in) % 3;
	int heap = nth_heap(h), pass, i;

	if (heap < 0) {
		log_op("free all: no heap, skipped\n");
		return;
	}
	log_op("free all blocks of heap%d, %s\n", heap,
	       order == 0 ? "oldest slot first" : order == 1 ? "newest slot first" : "every other first");
	for (pass = 0; pass < (order == 2 ? 2 : 1); pass++) {
		for (i = 0; i < MODEL_MAX_BLOCKS; i++) {
			int k = order == 1 ? MODEL_MAX_BLOCKS - 1 - i : i;
			struct mblock *b = &M.block[k];

			if (!b->live || b->heap != heap || (order == 2 && (k & 1) != pass)) {
				continue;
			}
			block_check(b);
			expect_hr(IHostMalloc_Free((IHostMalloc *)M.heap[heap].handle, b->ptr), S_OK,
				  "Free of a live block");
			b->live = false;
			remember_freed(b->ptr);
		}
	}
}

/* The heap's reference count reached zero: its blocks are gone with it. */
static void heap_gone(int heap)
{
	int i;

	for (i = 0; i < MODEL_MAX_BLOCKS; i++) {
		if (M.block[i].live && M.block[i].heap == heap) {
			M.block[i].live = false;
			remember_freed(M.block[i].ptr);
		}
	}
	M.heap[heap].live = false;
	M.heap[heap].handle = NULL;
	M.manager_refs--;
}

static void heap_release(int heap)
{
	ULONG r = IHostMalloc_Release((IHostMalloc *)M.heap[heap].handle);

	if (r != M.heap[heap].refs - 1) {
		fail("IHostMalloc::Release returned %u, expected %u", (unsigned)r,
		     (unsigned)(M.heap[heap].refs - 1));
	}
	if (--M.heap[heap].refs == 0) {
		heap_gone(heap);
	}
}

/* An interface nobody implements. */
static const IID iid_unsupported = {
	0x12345678, 0x9abc, 0xdef0, { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef }
};

static void op_heap_ref(struct input *in)
{
	uint8_t h = u8(in), action = u8(in) % 8;
	int heap = nth_heap(h);
	IHostMalloc *hm;
	void *out = SENTINEL;
	HRESULT hr;
	ULONG r;

	if (heap < 0) {
		log_op("heap reference: no heap, skipped\n");
		return;
	}
	hm = M.heap[heap].handle;
	switch (action) {
	case 0:
		log_op("heap%d->AddRef()", heap);
		if (M.heap[heap].refs >= MODEL_MAX_HEAP_REFS) {
			log_add(" skipped\n");
			return;
		}
		r = IHostMalloc_AddRef(hm);
		log_add(" -> %u\n", (unsigned)r);
		if (r != ++M.heap[heap].refs) {
			fail("IHostMalloc::AddRef returned %u, expected %u", (unsigned)r,
			     (unsigned)M.heap[heap].refs);
		}
		return;
	case 1:
	case 2:
		log_op("heap%d->Release() with %u references\n", heap, (unsigned)M.heap[heap].refs);
		heap_release(heap);
		return;
	case 3:
	case 4:
		log_op("heap%d->QueryInterface(%s)", heap,
		       action == 3 ? "IID_IHostMalloc" : "IID_IUnknown");
		if (M.heap[heap].refs >= MODEL_MAX_HEAP_REFS) {
			log_add(" skipped\n");
			return;
		}
		hr = IHostMalloc_QueryInterface(hm, action == 3 ? &IID_IHostMalloc : &IID_IUnknown,
						&out);
		log_add(" -> %s\n", hr_name(hr));
		expect_hr(hr, S_OK, "QueryInterface of a supported interface");
		if (out != hm) {
			fail("QueryInterface returned %p for heap %p", out, (void *)hm);
		}
		M.heap[heap].refs++;
		return;
	case 5:
		log_op("heap%d->QueryInterface(IID_IHostMemoryManager)", heap);
		hr = IHostMalloc_QueryInterface(hm, &IID_IHostMemoryManager, &out);
		break;
	case 6:
		log_op("heap%d->QueryInterface(NULL riid)", heap);
		hr = IHostMalloc_QueryInterface(hm, NULL, &out);
		log_add(" -> %s\n", hr_name(hr));
		expect_hr(hr, E_INVALIDARG, "QueryInterface(NULL)");
		if (out) {
			fail("QueryInterface failed but *ppv is %p", out);
		}
		return;
	default:
		log_op("heap%d->QueryInterface(ppv NULL)", heap);
		hr = IHostMalloc_QueryInterface(hm, &IID_IHostMalloc, NULL);
		log_add(" -> %s\n", hr_name(hr));
		expect_hr(hr, E_POINTER, "QueryInterface(ppv NULL)");
		return;
	}
	log_add(" -> %s\n", hr_name(hr));
	expect_hr(hr, E_NOINTERFACE, "QueryInterface of an unsupported interface");
	if (out) {
		fail("QueryInterface failed but *ppv is %p", out);
	}
}

static void op_manager(struct input *in)
{
	uint8_t action = u8(in) % 14;
	DWORD load = SENTINEL_DWORD;
	SIZE_T avail = SENTINEL_SIZE;
	const IID *iid = NULL;
	void *out = SENTINEL;
	uintptr_t start;
	HRESULT hr, want;
	size_t size;
	ULONG r;
	int slot;

	switch (action) {
	case 0:
		log_op("manager->AddRef()");
		r = IHostMemoryManager_AddRef(mm);
		log_add(" -> %u\n", (unsigned)r);
		if (r != ++M.manager_refs) {
			fail("AddRef returned %u, expected %u", (unsigned)r, (unsigned)M.manager_refs);
		}
		own_refs++;
		return;
	case 1:
		log_op("manager->Release() with %u references", (unsigned)M.manager_refs);
		if (own_refs <= 1) {
			log_add(" skipped: the fuzzer's last one\n");
			return;
		}
		own_refs--;
		r = IHostMemoryManager_Release(mm);
		log_add(" -> %u\n", (unsigned)r);
		if (r != --M.manager_refs) {
			fail("Release returned %u, expected %u", (unsigned)r, (unsigned)M.manager_refs);
		}
		return;
	case 2:
	case 3:
		iid = action == 2 ? &IID_IHostMemoryManager : &IID_IUnknown;
		log_op("manager->QueryInterface(%s)",
		       action == 2 ? "IID_IHostMemoryManager" : "IID_IUnknown");
		hr = IHostMemoryManager_QueryInterface(mm, iid, &out);
		log_add(" -> %s\n", hr_name(hr));
		expect_hr(hr, S_OK, "QueryInterface of a supported interface");
		if (out != mm) {
			fail("QueryInterface returned %p for manager %p", out, (void *)mm);
		}
		r = IHostMemoryManager_Release(mm);
		if (r != M.manager_refs) {
			fail("Release after QueryInterface returned %u, expected %u", (unsigned)r,
			     (unsigned)M.manager_refs);
		}
		return;
	case 4:
	case 5:
		iid = action == 4 ? &IID_IHostMalloc : &iid_unsupported;
		log_op("manager->QueryInterface(%s)", action == 4 ? "IID_IHostMalloc" : "unknown");
		hr = IHostMemoryManager_QueryInterface(mm, iid, &out);
		log_add(" -> %s\n", hr_name(hr));
		expect_hr(hr, E_NOINTERFACE, "QueryInterface of an unsupported interface");
		if (out) {
			fail("QueryInterface failed but *ppv is %p", out);
		}
		return;
	case 6:
		log_op("manager->QueryInterface(NULL riid)");
		hr = IHostMemoryManager_QueryInterface(mm, NULL, &out);
		log_add(" -> %s\n", hr_name(hr));
		expect_hr(hr, E_INVALIDARG, "QueryInterface(NULL)");
		if (out) {
			fail("QueryInterface failed but *ppv is %p", out);
		}
		return;
	case 7:
		log_op("manager->QueryInterface(ppv NULL)");
		hr = IHostMemoryManager_QueryInterface(mm, &IID_IUnknown, NULL);
		log_add(" -> %s\n", hr_name(hr));
		expect_hr(hr, E_POINTER, "QueryInterface(ppv NULL)");
		return;
	case 8:
	case 9: {
		uint8_t which = action == 8 ? 3 : u8(in) % 3;

		log_op("GetMemoryLoad(%s, %s)", (which & 1) ? "&load" : "NULL",
		       (which & 2) ? "&avail" : "NULL");
		hr = IHostMemoryManager_GetMemoryLoad(mm, (which & 1) ? &load : NULL,
						      (which & 2) ? &avail : NULL);
		log_add(" -> %s\n", hr_name(hr));
		if (which != 3) {
			expect_hr(hr, E_POINTER, "GetMemoryLoad with a NULL pointer");
			if (((which & 1) && load != 0) || ((which & 2) && avail != 0)) {
				fail("GetMemoryLoad failed but left %u, %zu", (unsigned)load,
				     (size_t)avail);
			}
			return;
		}
		expect_hr(hr, S_OK, "GetMemoryLoad");
		if (load > 100) {
			fail("GetMemoryLoad reported a load of %u%%", (unsigned)load);
		}
		return;
	}
	case 10:
		start = decode_addr(in);
		size = decode_size(in);
		log_op("NeedsVirtualAddressSpace(%#" PRIxPTR ", %#zx)", start, size);
		hr = IHostMemoryManager_NeedsVirtualAddressSpace(mm, (void *)start, size);
		log_add(" -> %s\n", hr_name(hr));
		expect_hr(hr, model_needs_vas(&M, start, size), "NeedsVirtualAddressSpace");
		return;
	case 11:
		start = decode_addr(in);
		size = decode_size(in);
		log_op("AcquiredVirtualAddressSpace(%#" PRIxPTR ", %#zx)", start, size);
		want = model_acquired_vas(&M, start, size, &slot);
		if (want == S_OK && slot < 0) {
			log_add(" skipped: ranges full\n");
			return;
		}
		hr = IHostMemoryManager_AcquiredVirtualAddressSpace(mm, (void *)start, size);
		log_add(" -> %s\n", hr_name(hr));
		expect_hr(hr, want, "AcquiredVirtualAddressSpace");
		if (hr == S_OK) {
			M.vas[slot].live = true;
			M.vas[slot].start = start;
			M.vas[slot].size = size;
		}
		return;
	default:
		start = (u8(in) & 1) ? decode_addr(in) : 0;
		if (!start) {
			uint8_t c = u8(in);
			int i;

			for (i = 0; i < MODEL_MAX_VAS; i++) {
				if (M.vas[(c + i) % MODEL_MAX_VAS].live) {
					start = M.vas[(c + i) % MODEL_MAX_VAS].start;
					break;
				}
			}
		}
		log_op("ReleasedVirtualAddressSpace(%#" PRIxPTR ")", start);
		want = model_released_vas(&M, start, &slot);
		hr = IHostMemoryManager_ReleasedVirtualAddressSpace(mm, (void *)start);
		log_add(" -> %s\n", hr_name(hr));
		expect_hr(hr, want, "ReleasedVirtualAddressSpace");
		if (hr == S_OK) {
			M.vas[slot].live = false;
		}
		return;
	}
}

/* Inside each reservation: what another manager may not have changed. */
static void verify_all_inside(void)
{
	int i;

	for (i = 0; i < MODEL_MAX_RES; i++) {
		if (M.res[i].live) {
			verify_reservation(i, false);
		}
	}
}

/*
 * The second manager is asked about memory it does not own, the first
 * manager's reservations above all: it must refuse as for any foreign
 * memory, describe it as the kernel does, and change nothing.
 */
static void op_other_manager(struct input *in)
{
	uint8_t action = u8(in) % 4;
	uintptr_t addr = decode_addr(in);
	MEMORY_BASIC_INFORMATION q;
	void *result = SENTINEL;
	DWORD old = SENTINEL_DWORD;
	SIZE_T res = 0;
	uint32_t type, protect;
	struct pred p;
	size_t size;
	HRESULT hr;

	if (!mm2 && clrmemtrace_create(NULL, &mm2) != S_OK) {
		fail("clrmemtrace_create of the second manager failed");
	}
	switch (action) {
	case 0:
		size = decode_size(in);
		type = decode_type(in);
		protect = decode_protect(in);
		log_op("other manager: VirtualAlloc(%#" PRIxPTR ", %#zx, %#x, %#x)", addr, size,
		       (unsigned)type, (unsigned)protect);
		model_virtual_alloc(&M2, addr, size, type, protect, 0, false, &p);
		if (p.kind == P_RESERVE_AT && model_overlaps(&M, p.base, p.base + p.len)) {
			/* The first manager's memory is mapped: a conflict for anyone else. */
			p.kind = P_FAIL;
			p.hr = HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS);
			p.why = "#13/#18 the other manager's reservation is there";
		}
		if (p.kind != P_FAIL) {
			log_add(" skipped: it could reserve\n");
			return;
		}
		hr = IHostMemoryManager_VirtualAlloc(mm2, (void *)addr, size, type, protect,
						     eTaskCritical, &result);
		log_add(" -> %s, %p [model: %s]\n", hr_name(hr), result, p.why);
		expect_hr(hr, p.hr, p.why);
		if (result) {
			fail("VirtualAlloc failed but *ppMem is %p", result);
		}
		break;
	case 1:
		size = decode_size(in);
		type = decode_free_type(in);
		log_op("other manager: VirtualFree(%#" PRIxPTR ", %#zx, %#x)", addr, size,
		       (unsigned)type);
		model_virtual_free(&M2, addr, size, type, &p);
		hr = IHostMemoryManager_VirtualFree(mm2, (void *)addr, size, type);
		log_add(" -> %s [model: %s]\n", hr_name(hr), p.why);
		expect_hr(hr, p.hr, p.why);
		break;
	case 2:
		size = decode_size(in);
		protect = decode_protect(in);
		log_op("other manager: VirtualProtect(%#" PRIxPTR ", %#zx, %#x)", addr, size,
		       (unsigned)protect);
		model_virtual_protect(&M2, addr, size, protect, false, &p);
		hr = IHostMemoryManager_VirtualProtect(mm2, (void *)addr, size, protect, &old);
		log_add(" -> %s, old %#x [model: %s]\n", hr_name(hr), (unsigned)old, p.why);
		expect_hr(hr, p.hr, p.why);
		if (old != 0) {
			fail("VirtualProtect failed but *lpflOldProtect is %#x", (unsigned)old);
		}
		break;
	default:
		log_op("other manager: VirtualQuery(%#" PRIxPTR ")", addr);
		hr = IHostMemoryManager_VirtualQuery(mm2, (void *)addr, &q, sizeof(q), &res);
		log_add(" -> %s\n", hr_name(hr));
		if (addr >= user_limit) {
			expect_hr(hr, HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER), "#56");
			return;
		}
		expect_hr(hr, S_OK, "VirtualQuery");
		check_foreign(mm2, &M2, addr, &q);
		return;
	}
	verify_all_inside();
}

static void op_check(struct input *in)
{
	switch (u8(in) % 3) {
	case 0:
		log_op("check: /proc/self/maps against the model");
		check_kernel_maps();
		break;
	case 1:
		log_op("check: heap blocks");
		check_heaps();
		break;
	default:
		log_op("check: every region of every reservation");
		verify_all();
		break;
	}
	log_add(" -> ok\n");
}

typedef void (*op_fn)(struct input *in);

/* The opcode byte, modulo 20, picks the operation: calls that shape memory come more often. */
static const op_fn op_table[20] = {
	op_alloc,
	op_alloc,
	op_alloc,
	op_free,
	op_free,
	op_protect,
	op_protect,
	op_query,
	op_query,
	op_touch,
	op_create_malloc,
	op_heap_alloc,
	op_heap_free,
	op_heap_ref,
	op_manager,
	op_check,
	op_heap_burst,
	op_heap_free_all,
	op_heap_alloc,
	op_other_manager,
};

/* ---------- One input ---------- */

/* Drops the fuzzer's own references on the manager, checking each count. */
static void release_own_refs(void)
{
	while (own_refs > 0) {
		ULONG r = IHostMemoryManager_Release(mm);

		own_refs--;
		if (r != --M.manager_refs) {
			fail("the manager's Release returned %u, expected %u", (unsigned)r,
			     (unsigned)M.manager_refs);
		}
	}
}

/*
 * Releases everything the input made, checking each step, so the next input
 * starts clean. With heaps_last, the fuzzer drops its references on the
 * manager before the heaps are done: they keep it alive, and the last
 * heap's Release destroys it.
 */
static void finish_input(bool heaps_last)
{
	int i;

	op_number = MAX_OPS;
	log_op("end of input: check everything, then free it%s\n",
	       heaps_last ? " (the manager before its heaps)" : "");
	verify_all();
	check_heaps();
	check_kernel_maps();
	for (i = 0; i < MODEL_MAX_RES; i++) {
		if (M.res[i].live) {
			HRESULT hr = IHostMemoryManager_VirtualFree(mm, (void *)M.res[i].base, 0,
								    MEM_RELEASE);
			struct pred p = { .kind = P_RELEASE, .res = i };

			expect_hr(hr, S_OK, "releasing a reservation at the end");
			model_apply(&M, &p);
		}
	}
	for (i = 0; i < MODEL_MAX_VAS; i++) {
		if (M.vas[i].live) {
			expect_hr(IHostMemoryManager_ReleasedVirtualAddressSpace(
					  mm, (void *)M.vas[i].start),
				  S_OK, "releasing an acquired range at the end");
			M.vas[i].live = false;
		}
	}
	if (heaps_last) {
		release_own_refs();
	}
	for (i = 0; i < MODEL_MAX_BLOCKS; i++) {
		struct mblock *b = &M.block[i];
		HRESULT hr;

		if (!b->live) {
			continue;
		}
		hr = IHostMalloc_Free((IHostMalloc *)M.heap[b->heap].handle, b->ptr);
		expect_hr(hr, S_OK, "freeing a live block at the end");
		b->live = false;
	}
	for (i = 0; i < MODEL_MAX_HEAPS; i++) {
		while (M.heap[i].live) {
			heap_release(i);
		}
	}
	if (M.manager_refs != own_refs) {
		fail("the heaps are released but the model counts %u references on the manager, "
		     "not %u",
		     (unsigned)M.manager_refs, (unsigned)own_refs);
	}
	release_own_refs();
	mm = NULL;
	model_clear(&M);
	if (mm2 && IHostMemoryManager_Release(mm2) != 0) {
		fail("the second manager's Release did not return 0");
	}
	mm2 = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	HRESULT hr;

	oplog_len = 0;
	oplog[0] = '\0';
	log_dumped = 0;
	nhist = 0;
	nfreed = 0;
	op_number = 0;
	model_clear(&M);
	own_refs = 1;
	hr = clrmemtrace_create(NULL, &mm);
	if (hr != S_OK) {
		fail("clrmemtrace_create: %s", hr_name(hr));
	}
	for (op_number = 0; op_number < MAX_OPS && in.n; op_number++) {
		op_table[u8(&in) % 20](&in);
	}
	finish_input(size & 1);
	if (verbose) {
		dump_log(2);
	}
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const policy_env[] = {
		"CLRMEMTRACE_COMMIT_BUDGET",	 "CLRMEMTRACE_ADDRESS_SPACE_BUDGET",
		"CLRMEMTRACE_EMERGENCY_RESERVE", "CLRMEMTRACE_LOW_MEMORY_PERCENT",
		"CLRMEMTRACE_HIGH_MEMORY_PERCENT", "CLRMEMTRACE_HYSTERESIS_PERCENT",
		"CLRMEMTRACE_POLL_MS",
	};
	long ps = sysconf(_SC_PAGESIZE);
	size_t i;
	void *p;

	(void)argc;
	(void)argv;
	if (ps <= 0) {
		fail("sysconf(_SC_PAGESIZE) failed");
	}
	page = (size_t)ps;
	/* The user-space limit of the platform (x86-64: TASK_SIZE_MAX, a page below 2^47). */
#if defined(__aarch64__)
	user_limit = (uintptr_t)1 << 48;
#elif UINTPTR_MAX > 0xffffffffu
	user_limit = ((uintptr_t)1 << 47) - page;
#else
	user_limit = (uintptr_t)0xffff0000u;
#endif
	user_min = GRANULE > page ? GRANULE : page;
	model_init(&M, page, user_min, user_limit);
	model_init(&M2, page, user_min, user_limit);
	/* The model knows no budgets: a budget in the environment would change the answers. */
	for (i = 0; i < sizeof(policy_env) / sizeof(policy_env[0]); i++) {
		unsetenv(policy_env[i]);
	}
	verbose = getenv("CLRMEMTRACE_FUZZ_VERBOSE") != NULL;
	if (pipe2(probe_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
		fail("pipe2: %s", strerror(errno));
	}
	p = mmap(NULL, ARENA_SIZE + GRANULE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED) {
		fail("mmap of the arena: %s", strerror(errno));
	}
	munmap(p, ARENA_SIZE + GRANULE);
	arena = round_up((uintptr_t)p, GRANULE);
	libc_block = malloc(256);
	if (!libc_block) {
		fail("malloc");
	}
	if (__sanitizer_set_death_callback) {
		__sanitizer_set_death_callback(death_callback);
	}
	return 0;
}
