/* SPDX-License-Identifier: MIT */
/*
 * The mmap view (analysis/README.md, "The mmap view").
 *
 * The view is a manager whose regions are mappings, kept like a manager's
 * reservations (an AVL tree of versions of runs), so that every document
 * shows it without code of its own. A region is one mapping as the kernel
 * made it: a partial munmap leaves the piece at the mapping's start in the
 * same region and makes the piece after the hole a new one; mprotect and
 * friends change runs inside a region. Unlike a manager's, a region's
 * versions keep no history (the view has no queries to check), so the old
 * version is freed at once.
 *
 * A region version's tag holds its memory type, whether its writable pages
 * are copy-on-write (a private file mapping: PAGE_WRITECOPY), and its path,
 * interned per process.
 */
#include "os.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Linux's values, as the interposer records them. */
#define OS_PROT_READ 0x1u
#define OS_PROT_WRITE 0x2u
#define OS_PROT_EXEC 0x4u
#define OS_PROT_BITS 0x7u
#define OS_MAP_SHARED 0x01u
#define OS_MAP_FIXED 0x10u
#define OS_MAP_ANONYMOUS 0x20u
#define OS_MAP_FIXED_NOREPLACE 0x100000u
#define OS_MREMAP_DONTUNMAP 0x4u
#define OS_MADV_DONTNEED 4
#define OS_MADV_FREE 8
#define OS_MADV_REMOVE 9
#define OS_MADV_DONTNEED_LOCKED 24
#define OS_MAP_FAILED UINT64_MAX

/* struct cmt_resv.tag */
#define TAG_TYPE_MASK 0x3u
#define TAG_MAPPED 0x1u
#define TAG_IMAGE 0x2u
#define TAG_COW 0x4u
#define TAG_PATH_SHIFT 3
#define MAX_PATHS (UINT32_C(1) << 20)
#define MAX_DUMP (UINT64_C(1) << 24)

struct os_range {
	uint64_t lo;
	uint64_t hi;
};

/* One maps_mapping of the dump under way. */
struct os_dentry {
	uint64_t start;
	uint64_t end;
	uint64_t inode;
	uint32_t prot;
	uint32_t major;
	uint32_t minor;
	uint32_t path;
	uint32_t tag;
	bool shared;
};

struct cmt_os {
	/* Interned paths: id -> text; id 0 is "". Open addressing on their hashes. */
	char **paths;
	uint32_t npaths;
	uint32_t cap_paths;
	struct cmt_hindex path_index;
	/* The maps dump under way (m->dump.active says whether there is one). */
	struct os_dentry *dump;
	size_t ndump;
	size_t cap_dump;
	/* Scratch, kept from call to call: ranges, held ranges, pieces, built regions. */
	struct os_range *free_r;
	size_t nfree;
	size_t cap_free;
	struct os_range *held;
	size_t nheld;
	size_t cap_held;
	struct cmt_piece *pieces;
	uint32_t npieces;
	uint32_t cap_pieces;
	struct cmt_resv **built;
	size_t nbuilt;
	size_t cap_built;
	/*
	 * The rwx_commit of the last mmap, if it was one: the library reserves and
	 * commits PAGE_EXECUTE_READWRITE memory with such an mmap, and its manager
	 * reports the reservation itself. Kept until the next mmap.
	 */
	bool rwx_pending;
	uint64_t rwx_lo;
	uint64_t rwx_hi;
	uint64_t rwx_tid;
	int64_t rwx_time;
	size_t rwx_index; /* in e->anomalies, or SIZE_MAX when the list was full */
};

/* ---------- Names ---------- */

static const char *const errno_names[] = {
	[1] = "EPERM",
	[2] = "ENOENT",
	[3] = "ESRCH",
	[4] = "EINTR",
	[5] = "EIO",
	[6] = "ENXIO",
	[7] = "E2BIG",
	[8] = "ENOEXEC",
	[9] = "EBADF",
	[10] = "ECHILD",
	[11] = "EAGAIN",
	[12] = "ENOMEM",
	[13] = "EACCES",
	[14] = "EFAULT",
	[15] = "ENOTBLK",
	[16] = "EBUSY",
	[17] = "EEXIST",
	[18] = "EXDEV",
	[19] = "ENODEV",
	[20] = "ENOTDIR",
	[21] = "EISDIR",
	[22] = "EINVAL",
	[23] = "ENFILE",
	[24] = "EMFILE",
	[25] = "ENOTTY",
	[26] = "ETXTBSY",
	[27] = "EFBIG",
	[28] = "ENOSPC",
	[29] = "ESPIPE",
	[30] = "EROFS",
	[31] = "EMLINK",
	[32] = "EPIPE",
	[33] = "EDOM",
	[34] = "ERANGE",
	[35] = "EDEADLK",
	[36] = "ENAMETOOLONG",
	[37] = "ENOLCK",
	[38] = "ENOSYS",
	[39] = "ENOTEMPTY",
	[40] = "ELOOP",
	[42] = "ENOMSG",
	[43] = "EIDRM",
	[44] = "ECHRNG",
	[45] = "EL2NSYNC",
	[46] = "EL3HLT",
	[47] = "EL3RST",
	[48] = "ELNRNG",
	[49] = "EUNATCH",
	[50] = "ENOCSI",
	[51] = "EL2HLT",
	[52] = "EBADE",
	[53] = "EBADR",
	[54] = "EXFULL",
	[55] = "ENOANO",
	[56] = "EBADRQC",
	[57] = "EBADSLT",
	[59] = "EBFONT",
	[60] = "ENOSTR",
	[61] = "ENODATA",
	[62] = "ETIME",
	[63] = "ENOSR",
	[64] = "ENONET",
	[65] = "ENOPKG",
	[66] = "EREMOTE",
	[67] = "ENOLINK",
	[68] = "EADV",
	[69] = "ESRMNT",
	[70] = "ECOMM",
	[71] = "EPROTO",
	[72] = "EMULTIHOP",
	[73] = "EDOTDOT",
	[74] = "EBADMSG",
	[75] = "EOVERFLOW",
	[76] = "ENOTUNIQ",
	[77] = "EBADFD",
	[78] = "EREMCHG",
	[79] = "ELIBACC",
	[80] = "ELIBBAD",
	[81] = "ELIBSCN",
	[82] = "ELIBMAX",
	[83] = "ELIBEXEC",
	[84] = "EILSEQ",
	[85] = "ERESTART",
	[86] = "ESTRPIPE",
	[87] = "EUSERS",
	[88] = "ENOTSOCK",
	[89] = "EDESTADDRREQ",
	[90] = "EMSGSIZE",
	[91] = "EPROTOTYPE",
	[92] = "ENOPROTOOPT",
	[93] = "EPROTONOSUPPORT",
	[94] = "ESOCKTNOSUPPORT",
	[95] = "EOPNOTSUPP",
	[96] = "EPFNOSUPPORT",
	[97] = "EAFNOSUPPORT",
	[98] = "EADDRINUSE",
	[99] = "EADDRNOTAVAIL",
	[100] = "ENETDOWN",
	[101] = "ENETUNREACH",
	[102] = "ENETRESET",
	[103] = "ECONNABORTED",
	[104] = "ECONNRESET",
	[105] = "ENOBUFS",
	[106] = "EISCONN",
	[107] = "ENOTCONN",
	[108] = "ESHUTDOWN",
	[109] = "ETOOMANYREFS",
	[110] = "ETIMEDOUT",
	[111] = "ECONNREFUSED",
	[112] = "EHOSTDOWN",
	[113] = "EHOSTUNREACH",
	[114] = "EALREADY",
	[115] = "EINPROGRESS",
	[116] = "ESTALE",
	[117] = "EUCLEAN",
	[118] = "ENOTNAM",
	[119] = "ENAVAIL",
	[120] = "EISNAM",
	[121] = "EREMOTEIO",
	[122] = "EDQUOT",
	[123] = "ENOMEDIUM",
	[124] = "EMEDIUMTYPE",
	[125] = "ECANCELED",
	[126] = "ENOKEY",
	[127] = "EKEYEXPIRED",
	[128] = "EKEYREVOKED",
	[129] = "EKEYREJECTED",
	[130] = "EOWNERDEAD",
	[131] = "ENOTRECOVERABLE",
	[132] = "ERFKILL",
	[133] = "EHWPOISON",
};

const char *cmt_errno_name(int32_t err, char buf[CMT_NAME_MAX])
{
	if (err > 0 && (size_t)err < sizeof(errno_names) / sizeof(errno_names[0]) &&
	    errno_names[err]) {
		return errno_names[err];
	}
	snprintf(buf, CMT_NAME_MAX, "%d", (int)err);
	return buf;
}

const char *cmt_failure_result_name(const struct cmt_failure *f, char buf[CMT_NAME_MAX])
{
	return cmt_event_is_os((enum cmt_ev_type)f->type) ? cmt_errno_name(f->hr, buf)
							   : cmt_hr_name(f->hr, buf);
}

const char *cmt_os_reason_text(int k)
{
	switch (1u << k) {
	case CMT_R_FIRST_SEEN_LATE:
		return "mmap view: calls before a /proc/self/maps dump (earlier mappings unknown)";
	case CMT_R_INCONSISTENT:
		return "mmap view: calls the reconstructed mappings could not take";
	case CMT_R_DUMP_UNFINISHED:
		return "mmap view: a /proc/self/maps dump without its maps_end";
	default:
		return NULL;
	}
}

/* PAGE_* for PROT_* bits; copy-on-write pages are PAGE_WRITECOPY when writable. */
static uint32_t win32_protect(uint32_t prot, bool cow)
{
	bool r = prot & OS_PROT_READ, w = prot & OS_PROT_WRITE, x = prot & OS_PROT_EXEC;

	if (x) {
		return w ? (cow ? CMT_PAGE_EXECUTE_WRITECOPY : CMT_PAGE_EXECUTE_READWRITE)
			 : (r ? CMT_PAGE_EXECUTE_READ : CMT_PAGE_EXECUTE);
	}
	if (w) {
		return cow ? CMT_PAGE_WRITECOPY : CMT_PAGE_READWRITE;
	}
	return r ? CMT_PAGE_READONLY : CMT_PAGE_NOACCESS;
}

/* A run's state: reserved for PROT_NONE, else committed with the protection. */
static uint32_t page_state(uint32_t prot, bool cow)
{
	return (prot & OS_PROT_BITS) ? CMT_RUN_COMMITTED | win32_protect(prot, cow) : 0;
}

static bool tag_cow(uint32_t tag)
{
	return (tag & TAG_COW) != 0;
}

uint32_t cmt_os_mem_type(const struct cmt_resv *r)
{
	switch (r->tag & TAG_TYPE_MASK) {
	case TAG_MAPPED:
		return CMT_MEM_MAPPED;
	case TAG_IMAGE:
		return CMT_MEM_IMAGE;
	default:
		return CMT_MEM_PRIVATE;
	}
}

const char *cmt_os_path(const struct cmt_manager *m, const struct cmt_resv *r)
{
	uint32_t id = r->tag >> TAG_PATH_SHIFT;

	if (!m->os || id == 0 || id >= m->os->npaths) {
		return "";
	}
	return m->os->paths[id];
}

/* ---------- Paths ---------- */

struct path_key {
	const struct cmt_os *os;
	const char *s;
	size_t n;
};

static bool same_path(const void *ctx, uint32_t id)
{
	const struct path_key *k = ctx;
	const char *p = k->os->paths[id];

	return strncmp(p, k->s, k->n) == 0 && p[k->n] == '\0';
}

/* The id of path s (at most 4096 bytes of it); 0 for "", when full or without memory. */
static uint32_t path_intern(struct cmt_engine *e, struct cmt_os *os, const char *s)
{
	size_t n = s ? strnlen(s, 4096) : 0;
	struct path_key key = { os, s, n };
	uint64_t h;
	uint32_t i;
	bool found;
	char *c;

	if (n == 0) {
		return 0;
	}
	if (cmt_hindex_room(&os->path_index, os->npaths, 256) != 0) {
		cmt_fail(e);
		return 0;
	}
	h = cmt_fnv1a(s, n);
	h = h ? h : 1;
	i = cmt_hindex_find(&os->path_index, h, same_path, &key, &found);
	if (found) {
		return os->path_index.ids[i];
	}
	if (os->npaths >= MAX_PATHS) {
		return 0;
	}
	if (os->npaths == os->cap_paths) {
		uint32_t cap = os->cap_paths ? os->cap_paths * 2 : 64;
		char **v = realloc(os->paths, cap * sizeof(*v));

		if (!v) {
			cmt_fail(e);
			return 0;
		}
		os->paths = v;
		os->cap_paths = cap;
	}
	if (os->npaths == 0) {
		os->paths[0] = NULL; /* id 0 is "" */
		os->npaths = 1;
	}
	c = malloc(n + 1);
	if (!c) {
		cmt_fail(e);
		return 0;
	}
	memcpy(c, s, n);
	c[n] = '\0';
	os->paths[os->npaths] = c;
	cmt_hindex_set(&os->path_index, i, h, os->npaths);
	return os->npaths++;
}

/* ---------- Scratch arrays ---------- */

static bool grow(struct cmt_engine *e, void **v, size_t *cap, size_t need, size_t elem)
{
	size_t c = *cap ? *cap : 8;
	void *p;

	if (need <= *cap) {
		return true;
	}
	while (c < need) {
		c *= 2;
	}
	p = realloc(*v, c * elem);
	if (!p) {
		cmt_fail(e);
		return false;
	}
	*v = p;
	*cap = c;
	return true;
}

static bool push_range(struct cmt_engine *e, struct os_range **v, size_t *n, size_t *cap,
		       uint64_t lo, uint64_t hi)
{
	if (!grow(e, (void **)v, cap, *n + 1, sizeof(**v))) {
		return false;
	}
	(*v)[*n].lo = lo;
	(*v)[*n].hi = hi;
	(*n)++;
	return true;
}

static bool push_piece(struct cmt_engine *e, struct cmt_os *os, uint64_t first, uint64_t last,
		       uint32_t state)
{
	size_t cap = os->cap_pieces;

	if (first >= last) {
		return true;
	}
	if (os->npieces >= UINT32_MAX / 4 ||
	    !grow(e, (void **)&os->pieces, &cap, (size_t)os->npieces + 1, sizeof(*os->pieces))) {
		return false;
	}
	os->cap_pieces = (uint32_t)cap;
	os->pieces[os->npieces].first = first;
	os->pieces[os->npieces].last = last;
	os->pieces[os->npieces].state = state;
	os->npieces++;
	return true;
}

/* ---------- The view ---------- */

static uint32_t shift_of(uint64_t page_size)
{
	if (page_size < 512 || page_size > (UINT64_C(1) << 30) ||
	    (page_size & (page_size - 1)) != 0) {
		return 12;
	}
	return (uint32_t)__builtin_ctzll(page_size);
}

struct cmt_manager *cmt_os_manager(struct cmt_engine *e, struct cmt_process *p,
				   const struct cmt_event *ev)
{
	struct cmt_manager *m = p->os;

	if (m) {
		return m;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		cmt_fail(e);
		return NULL;
	}
	m->os = calloc(1, sizeof(*m->os));
	m->name = malloc(sizeof(CMT_OS_NAME));
	if (!m->os || !m->name || cmt_map_put(&p->managers, CMT_OS_MANAGER_ID, m) != 0) {
		free(m->os);
		free(m->name);
		free(m);
		cmt_fail(e);
		return NULL;
	}
	memcpy(m->name, CMT_OS_NAME, sizeof(CMT_OS_NAME));
	m->id = CMT_OS_MANAGER_ID;
	m->proc = p;
	m->shift = 12;
	m->order = e->nmanagers++;
	p->nmanagers++;
	p->os = m;
	if (ev->type != CMT_EV_OS_MAPS_BEGIN) {
		/* Mappings made before this event are unknown: it waits for a maps dump. */
		cmt_set_unknown(e, m, e->now, CMT_R_FIRST_SEEN_LATE);
	}
	return m;
}

void cmt_os_fini(struct cmt_manager *m)
{
	struct cmt_os *os = m->os;
	uint32_t i;
	size_t k;

	if (!os) {
		return;
	}
	for (i = 1; i < os->npaths; i++) {
		free(os->paths[i]);
	}
	for (k = 0; k < os->nbuilt; k++) {
		free(os->built[k]);
	}
	free(os->paths);
	cmt_hindex_fini(&os->path_index);
	free(os->dump);
	free(os->free_r);
	free(os->held);
	free(os->pieces);
	free(os->built);
	free(os);
	m->os = NULL;
}

static uint64_t page(const struct cmt_manager *m)
{
	return UINT64_C(1) << m->shift;
}

static uint64_t page_down(const struct cmt_manager *m, uint64_t a)
{
	return a & ~(page(m) - 1);
}

/* a + len rounded up to a page; false on overflow. */
static bool page_end(const struct cmt_manager *m, uint64_t a, uint64_t len, uint64_t *end)
{
	uint64_t x;

	if (__builtin_add_overflow(a, len, &x) || __builtin_add_overflow(x, page(m) - 1, &x)) {
		return false;
	}
	*end = x & ~(page(m) - 1);
	return true;
}

/* Pages of r from its base up to address a (rounded up), clipped to the region. */
static uint64_t pages_to(const struct cmt_resv *r, uint64_t a)
{
	uint64_t len, mask = (UINT64_C(1) << r->shift) - 1;

	if (a <= r->base) {
		return 0;
	}
	if (a >= r->end) {
		return cmt_resv_npages(r);
	}
	len = a - r->base;
	return (len >> r->shift) + ((len & mask) != 0);
}

/* The state of the page holding a in r. */
static uint32_t state_at(const struct cmt_resv *r, uint64_t a)
{
	return r->runs[cmt_resv_find(r, (a - r->base) >> r->shift)].state;
}

/* A successful call the reconstructed view cannot take: it was wrong. */
static void os_wrong(struct cmt_engine *e, struct cmt_manager *m)
{
	if (m->known) {
		cmt_set_unknown(e, m, e->now, CMT_R_INCONSISTENT);
	}
}

/* Region r (owned) joins the view, made now by thread tid. */
static struct cmt_region *os_insert(struct cmt_engine *e, struct cmt_manager *m,
				    struct cmt_resv *r, uint64_t tid)
{
	struct cmt_region *reg = cmt_vm_link(e, m, r, tid);

	if (!reg) {
		/* Unless memory ran out, the view was cut there first: only a bug gets here. */
		if (!e->failed) {
			os_wrong(e, m);
		}
		return NULL;
	}
	if (e->cfg.mode == CMT_MODE_PERFETTO) {
		cmt_perfetto_begin(e, m, reg, e->now);
	}
	return reg;
}

/*
 * A version holding pages [first, last) of old, based at its page `first`.
 * With `keep`, runs wholly inside keep their begin times; others begin now.
 */
static struct cmt_resv *piece_of(const struct cmt_resv *old, uint64_t first, uint64_t last,
				 bool keep, int64_t now)
{
	uint32_t i0 = cmt_resv_find(old, first), i1 = cmt_resv_find(old, last - 1), i, k = 0;
	struct cmt_resv *r = malloc(sizeof(*r) + (size_t)(i1 - i0 + 1) * sizeof(struct cmt_run));
	uint64_t end;

	if (!r) {
		return NULL;
	}
	*r = *old;
	r->base = old->base + (first << old->shift);
	end = old->base + (last << old->shift);
	r->end = end < old->end && end > r->base ? end : old->end;
	r->committed = 0;
	for (i = i0; i <= i1; i++) {
		uint64_t s = old->runs[i].start, e = cmt_resv_run_end(old, i);
		struct cmt_run *run = &r->runs[k++];

		run->start = (s > first ? s : first) - first;
		run->state = old->runs[i].state;
		run->begin_ns = keep && s >= first && e <= last ? old->runs[i].begin_ns : now;
		run->unused = 0;
	}
	r->nruns = k;
	for (i = 0; i < r->nruns; i++) {
		if (r->runs[i].state & CMT_RUN_COMMITTED) {
			r->committed += cmt_resv_bytes(r, r->runs[i].start, cmt_resv_run_end(r, i));
		}
	}
	return r;
}

/*
 * Takes [lo, hi) out of region reg. The piece before the hole stays the
 * same region; the piece after it is a new one (made when reg was).
 */
static void cut_region(struct cmt_engine *e, struct cmt_manager *m, struct cmt_region *reg,
		       uint64_t lo, uint64_t hi)
{
	struct cmt_resv *old = reg->cur, *left = NULL, *right = NULL;
	uint64_t np = cmt_resv_npages(old), cf = lo > old->base ? (lo - old->base) >> old->shift : 0;
	uint64_t cl = pages_to(old, hi);
	uint32_t i;

	if (cf >= cl) {
		return;
	}
	if (cf > 0) {
		left = piece_of(old, 0, cf, true, e->now);
	}
	if (cl < np) {
		right = piece_of(old, cl, np, false, e->now);
	}
	if ((cf > 0 && !left) || (cl < np && !right)) {
		free(left);
		free(right);
		cmt_fail(e);
		return;
	}
	/* The runs the hole touches end, and so do those of the new region after it. */
	e->span_m = m;
	for (i = cmt_resv_find(old, cf); i < old->nruns; i++) {
		uint64_t s = old->runs[i].start, end = cmt_resv_run_end(old, i);

		if (s < cl && (old->runs[i].state & CMT_RUN_COMMITTED)) {
			cmt_sub_committed(e, m, cmt_protect_key(old, old->runs[i].state),
					  cmt_resv_bytes(old, s > cf ? s : cf, end < cl ? end : cl));
		}
		if (e->sinkp) {
			e->sinkp->ended(e->sinkp->ctx, old, &old->runs[i], end, e->now);
		}
	}
	cmt_sub_reserved(e, m, cmt_resv_bytes(old, cf, cl));
	if (left) {
		reg->cur = left;
	} else {
		cmt_tree_remove(&m->tree, &reg->node);
		if (e->cfg.mode == CMT_MODE_PERFETTO) {
			cmt_perfetto_end(e, m, reg, e->now);
		}
		if (right) {
			/* The region now starts after the hole: a new region in its place. */
			reg->node.key = right->base;
			reg->cur = right;
			right = NULL;
			if (cmt_tree_insert(&m->tree, &reg->node) != 0) {
				/* Regions never overlap: only a bug gets here. */
				cmt_sub_reserved(e, m, reg->cur->end - reg->cur->base);
				cmt_vm_account(e, m, reg->cur, false);
				m->v.regions--;
				e->regions--;
				free(reg->cur);
				free(reg);
				os_wrong(e, m);
			} else if (e->cfg.mode == CMT_MODE_PERFETTO) {
				cmt_perfetto_begin(e, m, reg, e->now);
			}
		} else {
			m->v.regions--;
			e->regions--;
			free(reg);
		}
	}
	if (right) {
		struct cmt_region *r2 = calloc(1, sizeof(*r2));

		if (!r2) {
			cmt_sub_reserved(e, m, right->end - right->base);
			cmt_vm_account(e, m, right, false);
			cmt_fail(e);
			free(right);
		} else {
			r2->node.key = right->base;
			r2->cur = right;
			r2->time_ns = reg->time_ns;
			r2->tid = reg->tid;
			if (cmt_tree_insert(&m->tree, &r2->node) != 0) {
				cmt_sub_reserved(e, m, right->end - right->base);
				cmt_vm_account(e, m, right, false);
				os_wrong(e, m);
				free(r2);
				free(right);
			} else {
				m->v.regions++;
				e->regions++;
				if (e->cfg.mode == CMT_MODE_PERFETTO) {
					cmt_perfetto_begin(e, m, r2, e->now);
				}
			}
		}
	}
	free(old);
}

/* The first region of m ending after lo, or NULL. */
static struct cmt_tnode *first_after(const struct cmt_manager *m, uint64_t lo)
{
	struct cmt_tnode *n = cmt_tree_find_le(&m->tree, lo);

	if (!n) {
		return cmt_tree_first(&m->tree);
	}
	if (container_of(n, struct cmt_region, node)->cur->end <= lo) {
		return cmt_tree_next(n);
	}
	return n;
}

/* Takes [lo, hi) out of the view. */
static void os_cut(struct cmt_engine *e, struct cmt_manager *m, uint64_t lo, uint64_t hi)
{
	struct cmt_tnode *n, *next;

	if (lo >= hi) {
		return;
	}
	for (n = first_after(m, lo); n; n = next) {
		struct cmt_region *reg = container_of(n, struct cmt_region, node);

		next = cmt_tree_next(n);
		if (reg->cur->base >= hi) {
			break;
		}
		cut_region(e, m, reg, lo, hi);
	}
}

/* Pages [lo, hi) of the view take PROT_* prot; returns the bytes the view had there. */
static uint64_t os_protect(struct cmt_engine *e, struct cmt_manager *m, uint64_t lo,
			   uint64_t hi, uint32_t prot)
{
	struct cmt_tnode *n;
	uint64_t covered = 0;

	e->span_m = m;
	for (n = first_after(m, lo); n; n = cmt_tree_next(n)) {
		struct cmt_region *reg = container_of(n, struct cmt_region, node);
		struct cmt_resv *old = reg->cur, *new;
		uint64_t first, last;
		uint32_t state;

		if (old->base >= hi) {
			break;
		}
		first = lo > old->base ? (lo - old->base) >> old->shift : 0;
		last = pages_to(old, hi);
		if (first >= last) {
			continue;
		}
		covered += cmt_resv_bytes(old, first, last);
		state = page_state(prot, tag_cow(old->tag));
		new = cmt_resv_set(old, first, last, state, e->now, e->sinkp);
		if (!new) {
			cmt_fail(e);
			return covered;
		}
		if (cmt_resv_same(old, new)) {
			free(new);
			continue;
		}
		cmt_vm_recount(e, m, old, first, last, state);
		reg->cur = new;
		free(old);
	}
	return covered;
}

static int range_cmp(const void *a, const void *b)
{
	const struct os_range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/*
 * The pieces of [lo, hi) no manager of the process holds, in os->free_r.
 * Returns their number.
 */
static size_t unheld(struct cmt_engine *e, struct cmt_manager *v, uint64_t lo, uint64_t hi)
{
	struct cmt_os *os = v->os;
	struct cmt_process *p = v->proc;
	uint64_t cursor = lo;
	uint32_t i;
	size_t k;

	os->nfree = 0;
	os->nheld = 0;
	if (lo >= hi) {
		return 0;
	}
	if (p->nmanagers > 1) {
		for (i = 0; i < p->managers.cap; i++) {
			struct cmt_manager *m = p->managers.slots[i].val;
			struct cmt_tnode *n;

			if (!m || m == v) {
				continue;
			}
			for (n = first_after(m, lo); n; n = cmt_tree_next(n)) {
				const struct cmt_resv *r = container_of(n, struct cmt_region, node)->cur;

				if (r->base >= hi) {
					break;
				}
				if (!push_range(e, &os->held, &os->nheld, &os->cap_held,
						r->base > lo ? r->base : lo, r->end < hi ? r->end : hi)) {
					return 0;
				}
			}
		}
	}
	if (os->nheld > 1) {
		/* Each manager's are in order already; several managers' interleave. */
		qsort(os->held, os->nheld, sizeof(*os->held), range_cmp);
	}
	for (k = 0; k < os->nheld; k++) {
		if (os->held[k].lo > cursor &&
		    !push_range(e, &os->free_r, &os->nfree, &os->cap_free, cursor, os->held[k].lo)) {
			return 0;
		}
		if (os->held[k].hi > cursor) {
			cursor = os->held[k].hi;
		}
	}
	if (cursor < hi && !push_range(e, &os->free_r, &os->nfree, &os->cap_free, cursor, hi)) {
		return 0;
	}
	return os->nfree;
}

/* The view's rwx_commit of the library's own mmap is its manager's to report. */
static void drop_rwx(struct cmt_engine *e, struct cmt_os *os)
{
	struct cmt_anomaly *a = e->anomalies.v;
	size_t i = os->rwx_index;

	os->rwx_pending = false;
	e->anomaly_counts[CMT_A_RWX_COMMIT]--;
	if (i < e->anomalies.n && a[i].kind == CMT_A_RWX_COMMIT && a[i].manager_id == 0 &&
	    a[i].addr == os->rwx_lo && a[i].time_ns == os->rwx_time) {
		memmove(&a[i], &a[i + 1], (e->anomalies.n - i - 1) * sizeof(*a));
		e->anomalies.n--;
	}
}

void cmt_os_claim(struct cmt_engine *e, struct cmt_manager *m, uint64_t base, uint64_t end,
		  uint64_t tid)
{
	struct cmt_manager *v = m->proc->os, *span_m = e->span_m;

	if (!v || v == m) {
		return;
	}
	if (v->os->rwx_pending && v->os->rwx_tid == tid && base < v->os->rwx_hi &&
	    v->os->rwx_lo < end) {
		drop_rwx(e, v->os);
	}
	if (v->tree.count == 0) {
		return;
	}
	os_cut(e, v, base, end);
	e->span_m = span_m;
}

/* ---------- Calls ---------- */

/* Counts a call; a failed one is listed with its errno. */
static void os_call(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev,
		    bool failed, int32_t err, uint64_t addr, uint64_t size)
{
	e->calls[ev->type]++;
	m->v.calls[ev->type]++;
	if (failed) {
		cmt_failed_call(e, m, ev, err, addr, size);
	}
}

/* A timeline row of the view (analysis/README.md, "timeline"); protect < 0 for none. */
static void os_row(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev,
		   const char *op, bool has_base, uint64_t base, uint64_t address, uint64_t size,
		   int64_t protect)
{
	struct cmt_out *o = e->out;
	char buf[CMT_NAME_MAX];

	cmt_timeline_row_start(e, ev, m, op, has_base, base, address, size);
	if (protect >= 0) {
		cmt_out_csv_field(o, cmt_protect_name((uint32_t)protect, buf));
	}
	cmt_out_puts(o, ",,,,");
	cmt_out_u64(o, m->seq);
	cmt_out_putc(o, '\n');
}

static bool timeline(const struct cmt_engine *e)
{
	return e->cfg.mode == CMT_MODE_TIMELINE;
}

/* The region of the view holding a, and its base, for a row. */
static bool holder_base(struct cmt_manager *m, uint64_t a, uint64_t *base)
{
	struct cmt_region *reg = cmt_vm_holder(m, a);

	*base = reg ? reg->cur->base : 0;
	return reg != NULL;
}

static void on_mmap(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	uint64_t result = ev->f[CMT_F_RESULT], length = ev->f[CMT_F_LENGTH], lo, hi;
	uint32_t prot = (uint32_t)ev->f[CMT_F_PROT] & OS_PROT_BITS;
	uint32_t flags = (uint32_t)ev->f[CMT_F_FLAGS];
	bool file = !(flags & OS_MAP_ANONYMOUS), shared = (flags & OS_MAP_SHARED) != 0;
	bool cow = file && !shared;
	bool fixed = (flags & OS_MAP_FIXED) && !(flags & OS_MAP_FIXED_NOREPLACE);
	uint32_t tag, aprot = win32_protect(prot, cow);
	char name[CMT_NAME_MAX];
	size_t n, k;

	m->os->rwx_pending = false;
	os_call(e, m, ev, result == OS_MAP_FAILED, (int32_t)ev->f[CMT_F_ERRNUM],
		ev->f[CMT_F_ADDRESS], length);
	if (result == OS_MAP_FAILED) {
		return;
	}
	lo = page_down(m, result);
	if (length == 0 || !page_end(m, result, length, &hi)) {
		os_wrong(e, m);
		return;
	}
	tag = file ? ((prot & OS_PROT_EXEC) ? TAG_IMAGE : TAG_MAPPED) : (shared ? TAG_MAPPED : 0);
	if (cow) {
		tag |= TAG_COW;
	}
	if (file && (ev->spresent & (1u << CMT_S_PATH))) {
		tag |= path_intern(e, m->os, ev->s[CMT_S_PATH]) << TAG_PATH_SHIFT;
	}
	if (fixed) {
		/* MAP_FIXED over pages a manager holds is that manager's business. */
		n = unheld(e, m, lo, hi);
		if (n == 0) {
			return;
		}
	} else {
		/* The kernel chose free pages: whatever the view had there went unseen. */
		m->os->nfree = 0;
		if (!push_range(e, &m->os->free_r, &m->os->nfree, &m->os->cap_free, lo, hi)) {
			return;
		}
		n = 1;
	}
	for (k = 0; k < n; k++) {
		struct os_range r = m->os->free_r[k];
		struct cmt_resv *nr;

		os_cut(e, m, r.lo, r.hi);
		nr = cmt_resv_create(r.lo, r.hi, aprot, page_state(prot, cow), m->shift, e->now);
		if (!nr) {
			cmt_fail(e);
			return;
		}
		nr->tag = tag;
		os_insert(e, m, nr, ev->tid);
	}
	if ((prot & OS_PROT_WRITE) && (prot & OS_PROT_EXEC)) {
		size_t before = e->anomalies.n;

		cmt_anomaly(e, CMT_A_RWX_COMMIT, m, ev, lo, hi - lo, "mmap of %llu bytes with %s",
			    (unsigned long long)(hi - lo), cmt_protect_name(aprot, name));
		m->os->rwx_pending = true;
		m->os->rwx_lo = lo;
		m->os->rwx_hi = hi;
		m->os->rwx_tid = ev->tid;
		m->os->rwx_time = e->now;
		m->os->rwx_index = e->anomalies.n > before ? before : SIZE_MAX;
	}
	m->seq++;
	if (timeline(e)) {
		os_row(e, m, ev, prot ? "reserve_commit" : "reserve", true, lo, lo, hi - lo, aprot);
	}
}

/* Counts a call on [address, address + length) returning 0, or -1 with errno; whether it failed. */
static bool os_range_call(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	bool failed = (int32_t)ev->f[CMT_F_RESULT] != 0;

	os_call(e, m, ev, failed, (int32_t)ev->f[CMT_F_ERRNUM], ev->f[CMT_F_ADDRESS],
		ev->f[CMT_F_LENGTH]);
	return failed;
}

/*
 * The pages [*lo, *hi) of the event's address and length, and the number of
 * their pieces no manager holds (in os->free_r): 0 when there are none, or
 * when the range overflows (the view is then wrong).
 */
static size_t unheld_pages(struct cmt_engine *e, struct cmt_manager *m,
			   const struct cmt_event *ev, uint64_t *lo, uint64_t *hi)
{
	*lo = page_down(m, ev->f[CMT_F_ADDRESS]);
	if (!page_end(m, ev->f[CMT_F_ADDRESS], ev->f[CMT_F_LENGTH], hi)) {
		os_wrong(e, m);
		return 0;
	}
	return unheld(e, m, *lo, *hi);
}

static void on_munmap(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	uint64_t lo, hi, base;
	bool has_base;
	size_t n, k;

	if (os_range_call(e, m, ev)) {
		return;
	}
	n = unheld_pages(e, m, ev, &lo, &hi);
	if (n == 0) {
		return;
	}
	has_base = holder_base(m, lo, &base);
	for (k = 0; k < n; k++) {
		os_cut(e, m, m->os->free_r[k].lo, m->os->free_r[k].hi);
	}
	m->seq++;
	if (timeline(e)) {
		os_row(e, m, ev, "release", has_base, base, lo, hi - lo, -1);
	}
}

/*
 * Pages of [lo, hi) the view lacks, that a successful mprotect proves
 * mapped: glibc maps thread stacks and malloc's arenas out of the
 * interposer's sight. Each gap becomes a private mapping of its own.
 */
static void os_unseen(struct cmt_engine *e, struct cmt_manager *m, uint64_t lo, uint64_t hi,
		      uint32_t prot, uint64_t tid)
{
	struct cmt_tnode *n = first_after(m, lo);
	uint64_t cursor = lo;

	while (cursor < hi) {
		const struct cmt_resv *r = n ? container_of(n, struct cmt_region, node)->cur : NULL;
		uint64_t gap_end = r && r->base < hi ? r->base : hi;

		if (gap_end > cursor) {
			struct cmt_resv *nr = cmt_resv_create(cursor, gap_end, win32_protect(prot, false),
							      page_state(prot, false), m->shift, e->now);

			if (!nr) {
				cmt_fail(e);
				return;
			}
			os_insert(e, m, nr, tid);
		}
		if (!r || r->base >= hi) {
			break;
		}
		cursor = r->end;
		n = first_after(m, cursor);
	}
}

static bool writable_not_executable(uint32_t p)
{
	p &= 0xff;
	return p == CMT_PAGE_READWRITE || p == CMT_PAGE_WRITECOPY;
}

static void on_mprotect(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	uint32_t prot = (uint32_t)ev->f[CMT_F_PROT] & OS_PROT_BITS, newp, oldp = 0;
	bool cow = false, first_reserved = false;
	struct cmt_region *holder;
	char a[CMT_NAME_MAX], b[CMT_NAME_MAX];
	uint64_t lo, hi, base = 0;
	const char *op;
	size_t n, k;

	if (os_range_call(e, m, ev)) {
		return;
	}
	n = unheld_pages(e, m, ev, &lo, &hi);
	if (n == 0) {
		return;
	}
	holder = cmt_vm_holder(m, lo);
	if (holder) {
		uint32_t st = state_at(holder->cur, lo);

		base = holder->cur->base;
		cow = tag_cow(holder->cur->tag);
		first_reserved = !(st & CMT_RUN_COMMITTED);
		oldp = cmt_resv_protect(holder->cur, st);
	}
	newp = win32_protect(prot, cow);
	if ((prot & OS_PROT_WRITE) && (prot & OS_PROT_EXEC)) {
		cmt_anomaly(e, CMT_A_RWX_COMMIT, m, ev, lo, hi - lo, "mprotect of %llu bytes with %s",
			    (unsigned long long)(hi - lo), cmt_protect_name(newp, a));
	}
	if (writable_not_executable(oldp) && (prot & OS_PROT_EXEC)) {
		cmt_anomaly(e, CMT_A_W_TO_X_FLIP, m, ev, lo, hi - lo, "%s to %s",
			    cmt_protect_name(oldp, a), cmt_protect_name(newp, b));
	}
	op = prot == 0 ? "decommit" : first_reserved ? "commit" : "protect";
	for (k = 0; k < n; k++) {
		uint64_t want = m->os->free_r[k].hi - m->os->free_r[k].lo;
		uint64_t got = os_protect(e, m, m->os->free_r[k].lo, m->os->free_r[k].hi, prot);

		if (got != want) {
			os_unseen(e, m, m->os->free_r[k].lo, m->os->free_r[k].hi, prot, ev->tid);
		}
	}
	m->seq++;
	if (timeline(e)) {
		os_row(e, m, ev, op, holder != NULL, base, lo, hi - lo, newp);
	}
}

static bool discards(int64_t advice)
{
	return advice == OS_MADV_DONTNEED || advice == OS_MADV_FREE || advice == OS_MADV_REMOVE ||
	       advice == OS_MADV_DONTNEED_LOCKED;
}

static void on_madvise(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	uint64_t lo, hi, base;
	bool has_base;

	if (os_range_call(e, m, ev) || !discards((int32_t)ev->f[CMT_F_ADVICE])) {
		return;
	}
	if (unheld_pages(e, m, ev, &lo, &hi) == 0) {
		return;
	}
	/* The pages keep their mapping and protection; their contents go (MEM_RESET). */
	has_base = holder_base(m, lo, &base);
	m->seq++;
	if (timeline(e)) {
		os_row(e, m, ev, "reset", has_base, base, lo, hi - lo, -1);
	}
}

static void on_posix_madvise(struct cmt_engine *e, struct cmt_manager *m,
			     const struct cmt_event *ev)
{
	int32_t result = (int32_t)ev->f[CMT_F_RESULT];

	/* No advice changes a mapping (glibc ignores POSIX_MADV_DONTNEED). */
	os_call(e, m, ev, result != 0, result, ev->f[CMT_F_ADDRESS], ev->f[CMT_F_LENGTH]);
}

/* The states of [lo, hi) of the view as pieces from page 0 at lo; returns the bytes held. */
static uint64_t os_pieces(struct cmt_engine *e, struct cmt_manager *m, uint64_t lo, uint64_t hi)
{
	struct cmt_os *os = m->os;
	struct cmt_tnode *n;
	uint64_t covered = 0;

	for (n = first_after(m, lo); n; n = cmt_tree_next(n)) {
		const struct cmt_resv *r = container_of(n, struct cmt_region, node)->cur;
		uint64_t first, last;
		uint32_t i;

		if (r->base >= hi) {
			break;
		}
		first = lo > r->base ? (lo - r->base) >> r->shift : 0;
		last = pages_to(r, hi);
		covered += cmt_resv_bytes(r, first, last);
		for (i = cmt_resv_find(r, first); i < r->nruns && r->runs[i].start < last; i++) {
			uint64_t s = r->runs[i].start, end = cmt_resv_run_end(r, i);
			uint64_t a = r->base + ((s > first ? s : first) << r->shift);
			uint64_t z = r->base + ((end < last ? end : last) << r->shift);

			if (z > r->end) {
				z = r->end;
			}
			if (z > hi) {
				z = hi;
			}
			if (!push_piece(e, os, (a - lo) >> m->shift, (z - lo + page(m) - 1) >> m->shift,
					r->runs[i].state)) {
				return covered;
			}
		}
	}
	return covered;
}

/* The view's region ending at old_end grows to new_end in place; its last run grows. */
static void os_grow(struct cmt_engine *e, struct cmt_manager *m, struct cmt_region *reg,
		    uint64_t new_end)
{
	struct cmt_resv *old = reg->cur, *nr;
	size_t size = sizeof(*old) + (size_t)old->nruns * sizeof(struct cmt_run);
	struct cmt_run *last;
	uint64_t delta = new_end - old->end;

	nr = malloc(size);
	if (!nr) {
		cmt_fail(e);
		return;
	}
	memcpy(nr, old, size);
	nr->end = new_end;
	last = &nr->runs[nr->nruns - 1];
	last->begin_ns = e->now;
	e->span_m = m;
	if (e->sinkp) {
		e->sinkp->ended(e->sinkp->ctx, old, &old->runs[old->nruns - 1],
				cmt_resv_run_end(old, old->nruns - 1), e->now);
	}
	cmt_add_reserved(e, m, delta);
	if (last->state & CMT_RUN_COMMITTED) {
		nr->committed += delta;
		cmt_add_committed(e, m, cmt_protect_key(nr, last->state), delta);
	}
	reg->cur = nr;
	free(old);
}

static void on_mremap(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	uint64_t old_addr = ev->f[CMT_F_ADDRESS], old_length = ev->f[CMT_F_LENGTH];
	uint64_t new_length = ev->f[CMT_F_NEW_LENGTH], result = ev->f[CMT_F_RESULT];
	uint32_t flags = (uint32_t)ev->f[CMT_F_FLAGS], tag = 0, aprot = CMT_PAGE_NOACCESS;
	uint32_t last_state = 0;
	uint64_t old_lo = page_down(m, old_addr), old_hi, probe_hi, new_size, r, new_hi;
	struct cmt_region *src, *last;
	struct cmt_os *os = m->os;
	struct cmt_resv *nr;

	os_call(e, m, ev, result == OS_MAP_FAILED, (int32_t)ev->f[CMT_F_ERRNUM], old_addr,
		old_length);
	if (result == OS_MAP_FAILED) {
		return;
	}
	r = page_down(m, result);
	if (!page_end(m, old_addr, old_length, &old_hi) || !page_end(m, 0, new_length, &new_size) ||
	    new_size == 0 || __builtin_add_overflow(r, new_size, &new_hi) ||
	    (old_hi == old_lo && __builtin_add_overflow(old_lo, page(m), &old_hi))) {
		os_wrong(e, m);
		return;
	}
	probe_hi = old_hi;
	if (old_length == 0) {
		old_hi = old_lo;
	}
	/* A mapping a manager holds is that manager's business. */
	if (unheld(e, m, old_lo, probe_hi) != 1 || os->free_r[0].lo != old_lo ||
	    os->free_r[0].hi != probe_hi) {
		return;
	}
	src = cmt_vm_holder(m, old_lo);
	last = cmt_vm_holder(m, probe_hi - page(m));
	if (src) {
		tag = src->cur->tag;
		aprot = src->cur->alloc_protect;
	}
	if (last) {
		last_state = state_at(last->cur, probe_hi - page(m));
	}
	if (r == old_lo && old_hi > old_lo && !(flags & OS_MREMAP_DONTUNMAP)) {
		/* In place: the tail goes, or the mapping grows into free pages. */
		if (new_hi < old_hi) {
			os_cut(e, m, new_hi, old_hi);
		} else if (new_hi > old_hi) {
			os_cut(e, m, old_hi, new_hi);
			if (last && last->cur->end == old_hi) {
				os_grow(e, m, last, new_hi);
			} else {
				os_wrong(e, m);
				nr = cmt_resv_create(old_hi, new_hi, aprot, last_state, m->shift, e->now);
				if (!nr) {
					cmt_fail(e);
					return;
				}
				nr->tag = tag;
				os_insert(e, m, nr, ev->tid);
			}
		}
	} else {
		/* Moved (or a second mapping of the same pages): a new region at r. */
		uint64_t keep = old_hi - old_lo < new_size ? old_hi - old_lo : new_size;

		os->npieces = 0;
		if (old_hi == old_lo) {
			if (!src) {
				os_wrong(e, m);
			}
			push_piece(e, os, 0, new_size >> m->shift, last_state);
		} else {
			if (os_pieces(e, m, old_lo, old_lo + keep) != keep) {
				os_wrong(e, m);
			}
			if (new_size > keep) {
				push_piece(e, os, keep >> m->shift, new_size >> m->shift, last_state);
			}
			if (!(flags & OS_MREMAP_DONTUNMAP)) {
				os_cut(e, m, old_lo, old_hi);
			}
		}
		os_cut(e, m, r, new_hi);
		nr = cmt_resv_build(r, new_hi, aprot, m->shift, os->pieces, os->npieces, e->now);
		if (!nr) {
			cmt_fail(e);
			return;
		}
		nr->tag = tag;
		os_insert(e, m, nr, ev->tid);
	}
	m->seq++;
	if (timeline(e)) {
		os_row(e, m, ev, "remap", true, r, r, new_size, -1);
	}
}

/* ---------- The maps dump ---------- */

static void on_maps_begin(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	if (m->dump.active) {
		m->reasons |= CMT_R_DUMP_UNFINISHED;
	}
	m->dump.active = true;
	m->dump.time_ns = e->now;
	m->dump.tid = ev->tid;
	m->os->ndump = 0;
	if (ev->present & (UINT64_C(1) << CMT_F_PAGE_SIZE)) {
		m->shift = shift_of(ev->f[CMT_F_PAGE_SIZE]);
	}
	cmt_expose(e, m);
}

/* The tag of a line of /proc/self/maps (its type decided once the dump is whole). */
static uint32_t dump_tag(struct cmt_engine *e, struct cmt_os *os, const struct cmt_event *ev,
			 bool *file)
{
	const char *path = (ev->spresent & (1u << CMT_S_PATH)) ? ev->s[CMT_S_PATH] : "";
	bool shared = ev->f[CMT_F_SHARED] != 0;
	uint32_t tag;

	/* [heap], [stack], [vdso]...: anonymous memory the kernel names. */
	*file = path[0] != '\0' && path[0] != '[';
	tag = path_intern(e, os, path) << TAG_PATH_SHIFT;
	if (*file && !shared) {
		tag |= TAG_COW;
	}
	if (*file || shared) {
		tag |= TAG_MAPPED;
	}
	return tag;
}

static void on_maps_mapping(struct cmt_engine *e, struct cmt_manager *m,
			    const struct cmt_event *ev)
{
	struct cmt_os *os = m->os;
	uint64_t start = ev->f[CMT_F_BASE], end = ev->f[CMT_F_END];
	uint32_t prot = (uint32_t)ev->f[CMT_F_PROT] & OS_PROT_BITS;
	struct os_dentry *d;
	bool file;
	uint32_t tag = dump_tag(e, os, ev, &file);

	if (timeline(e)) {
		os_row(e, m, ev, "statedump", true, start, start, end > start ? end - start : 0,
		       win32_protect(prot, tag_cow(tag)));
	}
	if (!m->dump.active) {
		m->reasons |= CMT_R_INCONSISTENT;
		return;
	}
	if (os->ndump >= MAX_DUMP) {
		m->reasons |= CMT_R_INCONSISTENT;
		m->dump.active = false;
		return;
	}
	if (!grow(e, (void **)&os->dump, &os->cap_dump, os->ndump + 1, sizeof(*os->dump))) {
		m->dump.active = false;
		return;
	}
	d = &os->dump[os->ndump++];
	d->start = start;
	d->end = end;
	d->prot = prot;
	d->shared = ev->f[CMT_F_SHARED] != 0;
	d->major = (uint32_t)ev->f[CMT_F_MAJOR];
	d->minor = (uint32_t)ev->f[CMT_F_MINOR];
	d->inode = file ? ev->f[CMT_F_INODE] : 0;
	d->tag = tag;
	d->path = tag >> TAG_PATH_SHIFT;
}

static bool same_file(const struct os_dentry *x, const struct os_dentry *y)
{
	return x->major == y->major && x->minor == y->minor && x->inode == y->inode;
}

static int dentry_by_file(const void *a, const void *b)
{
	const struct os_dentry *x = *(const struct os_dentry *const *)a;
	const struct os_dentry *y = *(const struct os_dentry *const *)b;

	if (x->major != y->major) {
		return x->major < y->major ? -1 : 1;
	}
	if (x->minor != y->minor) {
		return x->minor < y->minor ? -1 : 1;
	}
	if (x->inode != y->inode) {
		return x->inode < y->inode ? -1 : 1;
	}
	return x < y ? -1 : x > y;
}

static int dentry_by_start(const void *a, const void *b)
{
	const struct os_dentry *x = a, *y = b;

	if (x->start != y->start) {
		return x->start < y->start ? -1 : 1;
	}
	return x->end < y->end ? -1 : x->end > y->end;
}

/* Files with an executable mapping are loaded objects: all their mappings are MEM_IMAGE. */
static void mark_images(struct cmt_engine *e, struct cmt_os *os)
{
	struct os_dentry **v;
	size_t i, j, k, n = 0;

	v = malloc((os->ndump ? os->ndump : 1) * sizeof(*v));
	if (!v) {
		cmt_fail(e);
		return;
	}
	for (i = 0; i < os->ndump; i++) {
		if (os->dump[i].inode) {
			v[n++] = &os->dump[i];
		}
	}
	qsort(v, n, sizeof(*v), dentry_by_file);
	for (i = 0; i < n; i = j) {
		bool exec = false;

		for (j = i; j < n && same_file(v[i], v[j]); j++) {
			exec = exec || (v[j]->prot & OS_PROT_EXEC);
		}
		for (k = i; exec && k < j; k++) {
			v[k]->tag = (v[k]->tag & ~TAG_TYPE_MASK) | TAG_IMAGE;
		}
	}
	free(v);
}

static bool same_region(const struct cmt_resv *a, const struct cmt_resv *b)
{
	return a->base == b->base && a->end == b->end && a->alloc_protect == b->alloc_protect &&
	       a->tag == b->tag;
}

/*
 * reg, kept by the dump, takes version nr: runs with the same extent and
 * state keep their begin times, the others end.
 */
static void adopt(struct cmt_engine *e, struct cmt_manager *m, struct cmt_region *reg,
		  struct cmt_resv *nr)
{
	struct cmt_resv *old = reg->cur;
	uint32_t i, j = 0;

	if (cmt_resv_same(old, nr)) {
		free(nr);
		return;
	}
	e->span_m = m;
	for (i = 0; i < old->nruns; i++) {
		uint64_t end = cmt_resv_run_end(old, i);

		while (j < nr->nruns && nr->runs[j].start < old->runs[i].start) {
			j++;
		}
		if (j < nr->nruns && nr->runs[j].start == old->runs[i].start &&
		    nr->runs[j].state == old->runs[i].state && cmt_resv_run_end(nr, j) == end) {
			nr->runs[j].begin_ns = old->runs[i].begin_ns;
		} else if (e->sinkp) {
			e->sinkp->ended(e->sinkp->ctx, old, &old->runs[i], end, e->now);
		}
	}
	cmt_vm_account(e, m, old, false);
	cmt_vm_account(e, m, nr, true);
	reg->cur = nr;
	free(old);
}

static void on_maps_end(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	struct cmt_os *os = m->os;
	uint64_t prev_end = 0;
	struct cmt_tnode *node;
	size_t i, k;

	if (!m->dump.active) {
		m->reasons |= CMT_R_INCONSISTENT;
		return;
	}
	m->dump.active = false;
	if ((ev->present & (UINT64_C(1) << CMT_F_MAPPINGS)) && ev->f[CMT_F_MAPPINGS] != os->ndump) {
		/* Lines went missing: the dump cannot be trusted. */
		m->reasons |= CMT_R_INCONSISTENT;
		return;
	}
	mark_images(e, os);
	if (os->ndump > 1) {
		qsort(os->dump, os->ndump, sizeof(*os->dump), dentry_by_start);
	}
	os->nbuilt = 0;
	for (i = 0; i < os->ndump && !e->failed; i++) {
		const struct os_dentry *d = &os->dump[i];
		size_t n;

		if (d->end <= d->start || d->start < prev_end) {
			m->reasons |= CMT_R_INCONSISTENT;
			continue;
		}
		prev_end = d->end;
		n = unheld(e, m, d->start, d->end);
		for (k = 0; k < n; k++) {
			struct cmt_resv *nr;

			if (!grow(e, (void **)&os->built, &os->cap_built, os->nbuilt + 1,
				  sizeof(*os->built))) {
				break;
			}
			nr = cmt_resv_create(os->free_r[k].lo, os->free_r[k].hi,
					     win32_protect(d->prot, tag_cow(d->tag)),
					     page_state(d->prot, tag_cow(d->tag)), m->shift, e->now);
			if (!nr) {
				cmt_fail(e);
				break;
			}
			nr->tag = d->tag;
			os->built[os->nbuilt++] = nr;
		}
	}
	if (e->failed) {
		for (k = 0; k < os->nbuilt; k++) {
			free(os->built[k]);
		}
		os->nbuilt = 0;
		return;
	}
	/* Regions the dump lists as they are stay; the others give way to the dump's. */
	k = 0;
	node = cmt_tree_first(&m->tree);
	while (node) {
		struct cmt_region *reg = container_of(node, struct cmt_region, node);
		struct cmt_tnode *next = cmt_tree_next(node);

		while (k < os->nbuilt && os->built[k]->base < reg->cur->base) {
			k++;
		}
		if (k < os->nbuilt && same_region(os->built[k], reg->cur)) {
			adopt(e, m, reg, os->built[k]);
			os->built[k++] = NULL;
		} else {
			os_cut(e, m, reg->cur->base, reg->cur->end);
		}
		node = next;
	}
	for (k = 0; k < os->nbuilt; k++) {
		if (os->built[k]) {
			os_insert(e, m, os->built[k], m->dump.tid);
		}
	}
	os->nbuilt = 0;
	if (os->cap_dump > 4096) {
		free(os->dump);
		os->dump = NULL;
		os->cap_dump = 0;
	}
	os->ndump = 0;
	cmt_set_known(e, m, e->now);
}

void cmt_os_event(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	switch (ev->type) {
	case CMT_EV_OS_MMAP:
		on_mmap(e, m, ev);
		break;
	case CMT_EV_OS_MUNMAP:
		on_munmap(e, m, ev);
		break;
	case CMT_EV_OS_MPROTECT:
		on_mprotect(e, m, ev);
		break;
	case CMT_EV_OS_MADVISE:
		on_madvise(e, m, ev);
		break;
	case CMT_EV_OS_POSIX_MADVISE:
		on_posix_madvise(e, m, ev);
		break;
	case CMT_EV_OS_MREMAP:
		on_mremap(e, m, ev);
		break;
	case CMT_EV_OS_MAPS_BEGIN:
		on_maps_begin(e, m, ev);
		break;
	case CMT_EV_OS_MAPS_MAPPING:
		on_maps_mapping(e, m, ev);
		break;
	case CMT_EV_OS_MAPS_END:
		on_maps_end(e, m, ev);
		break;
	default:
		break;
	}
}
