/* SPDX-License-Identifier: MIT */
/*
 * The documents (analysis/README.md, "The plugin's output"): summary JSON,
 * timeline CSV, map JSON, series JSON and Perfetto's Chrome trace-event
 * JSON. Processes are written by vpid, managers by id, heaps by id.
 */
#include "os.h"
#include "state.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- Sorted views ---------- */

static int proc_cmp(const void *a, const void *b)
{
	const struct cmt_process *x = *(struct cmt_process *const *)a;
	const struct cmt_process *y = *(struct cmt_process *const *)b;

	return x->vpid < y->vpid ? -1 : x->vpid > y->vpid;
}

static int manager_cmp(const void *a, const void *b)
{
	const struct cmt_manager *x = *(struct cmt_manager *const *)a;
	const struct cmt_manager *y = *(struct cmt_manager *const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static int heap_cmp(const void *a, const void *b)
{
	const struct cmt_heap *x = *(struct cmt_heap *const *)a;
	const struct cmt_heap *y = *(struct cmt_heap *const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* The values of map m in an array sorted with cmp; NULL (and *n 0) when empty. */
static void **sorted_values(struct cmt_engine *e, const struct cmt_map *m, size_t *n,
			    int (*cmp)(const void *, const void *))
{
	void **v;
	uint32_t i;

	*n = 0;
	if (m->count == 0) {
		return NULL;
	}
	v = malloc(m->count * sizeof(*v));
	if (!v) {
		cmt_fail(e);
		return NULL;
	}
	for (i = 0; i < m->cap; i++) {
		if (m->slots[i].val) {
			v[(*n)++] = m->slots[i].val;
		}
	}
	if (*n > 1) {
		qsort(v, *n, sizeof(*v), cmp);
	}
	return v;
}

struct cmt_process **cmt_sorted_processes(struct cmt_engine *e, size_t *n)
{
	return (struct cmt_process **)sorted_values(e, &e->procs, n, proc_cmp);
}

struct cmt_manager **cmt_sorted_managers(struct cmt_engine *e, struct cmt_process *p, size_t *n)
{
	return (struct cmt_manager **)sorted_values(e, &p->managers, n, manager_cmp);
}

static struct cmt_heap **sorted_heaps(struct cmt_engine *e, struct cmt_manager *m, size_t *n)
{
	return (struct cmt_heap **)sorted_values(e, &m->heaps, n, heap_cmp);
}

/* ---------- Small writers ---------- */

static void key_u64(struct cmt_out *o, const char *k, uint64_t v)
{
	cmt_json_key(o, k);
	cmt_json_u64(o, v);
}

static void key_i64(struct cmt_out *o, const char *k, int64_t v)
{
	cmt_json_key(o, k);
	cmt_json_i64(o, v);
}

static void key_str(struct cmt_out *o, const char *k, const char *v)
{
	cmt_json_key(o, k);
	cmt_json_string(o, v);
}

static void key_protect(struct cmt_out *o, const char *k, uint32_t p)
{
	char buf[CMT_NAME_MAX];

	key_str(o, k, cmt_protect_name(p, buf));
}

static bool manager_complete(const struct cmt_manager *m)
{
	return m->reasons == 0 && !m->window_open;
}

static bool process_complete(struct cmt_process *p)
{
	uint32_t i;

	if (p->no_vpid || p->totals_out) {
		return false;
	}
	for (i = 0; i < p->managers.cap; i++) {
		const struct cmt_manager *m = p->managers.slots[i].val;

		if (m && !manager_complete(m)) {
			return false;
		}
	}
	return true;
}

static uint64_t malformed_total(const struct cmt_engine *e)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < CMT_EV_COUNT; i++) {
		n += e->malformed[i];
	}
	return n;
}

/* ---------- Timeline ---------- */

void cmt_timeline_header(struct cmt_engine *e)
{
	cmt_out_puts(e->out, "time_ns,vpid,tid,manager_id,op,allocation_base,address,size,protect,"
			     "old_protect,level,hr,seq\n");
}

void cmt_timeline_row_start(struct cmt_engine *e, const struct cmt_event *ev,
			    struct cmt_manager *m, const char *op, bool has_base,
			    uint64_t allocation_base, uint64_t address, uint64_t size)
{
	struct cmt_out *o = e->out;

	cmt_out_i64(o, e->now);
	cmt_out_putc(o, ',');
	cmt_out_u64(o, m->proc->vpid);
	cmt_out_putc(o, ',');
	cmt_out_u64(o, ev->tid);
	cmt_out_putc(o, ',');
	cmt_out_u64(o, m->id);
	cmt_out_putc(o, ',');
	cmt_out_puts(o, op);
	cmt_out_putc(o, ',');
	if (has_base) {
		cmt_out_hex(o, allocation_base);
	}
	cmt_out_putc(o, ',');
	cmt_out_hex(o, address);
	cmt_out_putc(o, ',');
	cmt_out_u64(o, size);
	cmt_out_putc(o, ',');
}

void cmt_timeline_row(struct cmt_engine *e, const struct cmt_event *ev, struct cmt_manager *m,
		      const char *op, bool has_base, uint64_t allocation_base, uint64_t address,
		      uint64_t size, uint64_t seq)
{
	struct cmt_out *o = e->out;
	char buf[CMT_NAME_MAX];

	cmt_timeline_row_start(e, ev, m, op, has_base, allocation_base, address, size);
	if (ev->type == CMT_EV_VIRTUAL_ALLOC || ev->type == CMT_EV_VIRTUAL_PROTECT ||
	    ev->type == CMT_EV_STATEDUMP_REGION) {
		cmt_out_csv_field(o, cmt_protect_name((uint32_t)ev->f[CMT_F_PROTECT], buf));
	}
	cmt_out_putc(o, ',');
	if (ev->type == CMT_EV_VIRTUAL_PROTECT) {
		cmt_out_csv_field(o, cmt_protect_name((uint32_t)ev->f[CMT_F_OLD_PROTECT], buf));
	}
	cmt_out_putc(o, ',');
	if (ev->type == CMT_EV_VIRTUAL_ALLOC && (ev->present & (UINT64_C(1) << CMT_F_LEVEL))) {
		cmt_out_csv_field(o, cmt_level_name((int64_t)ev->f[CMT_F_LEVEL], buf));
	}
	cmt_out_putc(o, ',');
	if (ev->type != CMT_EV_STATEDUMP_REGION) {
		cmt_out_csv_field(o, cmt_hr_name((int32_t)ev->f[CMT_F_HR], buf));
	}
	cmt_out_putc(o, ',');
	cmt_out_u64(o, seq);
	cmt_out_putc(o, '\n');
}

/* ---------- Summary ---------- */

struct protect_entry {
	uint32_t key;
	uint64_t bytes;
};

static int protect_entry_cmp(const void *a, const void *b)
{
	const struct protect_entry *x = a, *y = b;

	return x->key < y->key ? -1 : x->key > y->key;
}

static void write_by_protect(struct cmt_out *o, struct protect_entry *v, size_t n)
{
	char buf[CMT_NAME_MAX];
	size_t i;

	if (n > 1) {
		qsort(v, n, sizeof(*v), protect_entry_cmp);
	}
	cmt_json_key(o, "committed_by_protect");
	cmt_json_begin_object(o);
	for (i = 0; i < n; i++) {
		if (v[i].bytes) {
			key_u64(o, cmt_protect_name(v[i].key, buf), v[i].bytes);
		}
	}
	cmt_json_end_object(o);
}

static void write_calls(struct cmt_out *o, const uint64_t *calls)
{
	int i;

	cmt_json_key(o, "calls");
	cmt_json_begin_object(o);
	for (i = 0; i < CMT_EV_COUNT; i++) {
		if (cmt_events[i].call || cmt_event_is_os_call((enum cmt_ev_type)i)) {
			key_u64(o, cmt_events[i].name, calls[i]);
		}
	}
	cmt_json_end_object(o);
}

static void write_virtual(struct cmt_out *o, uint64_t peak_reserved, uint64_t peak_committed,
			  uint64_t reserved, uint64_t committed, uint64_t regions,
			  struct protect_entry *by, size_t nby, const uint64_t *calls,
			  uint64_t failed)
{
	cmt_json_key(o, "virtual");
	cmt_json_begin_object(o);
	key_u64(o, "peak_reserved_bytes", peak_reserved);
	key_u64(o, "peak_committed_bytes", peak_committed);
	key_u64(o, "final_reserved_bytes", reserved);
	key_u64(o, "final_committed_bytes", committed);
	key_u64(o, "live_regions", regions);
	write_by_protect(o, by, nby);
	write_calls(o, calls);
	key_u64(o, "failed_calls", failed);
	cmt_json_end_object(o);
}

static void write_malloc(struct cmt_out *o, uint64_t heaps, uint64_t allocs, uint64_t frees,
			 uint64_t peak, uint64_t live, uint64_t blocks)
{
	cmt_json_key(o, "malloc");
	cmt_json_begin_object(o);
	key_u64(o, "heaps", heaps);
	key_u64(o, "allocs", allocs);
	key_u64(o, "frees", frees);
	key_u64(o, "peak_live_bytes", peak);
	key_u64(o, "final_live_bytes", live);
	key_u64(o, "live_blocks", blocks);
	cmt_json_end_object(o);
}

#define TOTALS_OUT "byte totals exceed 2^64 - 1: totals are not exact"

static const char *const reason_texts[CMT_R_COUNT] = {
	"first seen without manager_create or a state dump",
	"events lost (its sequence numbers skip)",
	"sequence numbers went backwards",
	"events discarded by the tracer",
	"events the reconstruction could not apply",
	"a state dump without its statedump_end",
	"heap contents unknown",
	"heap events the reconstruction could not apply",
	TOTALS_OUT,
};

static void reason(struct cmt_engine *e, size_t *count, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reason(struct cmt_engine *e, size_t *count, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (*count >= e->cfg.max_details) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cmt_json_string(e->out, buf);
	(*count)++;
}

static void write_reasons(struct cmt_engine *e, struct cmt_process **procs, size_t nprocs)
{
	size_t count = 0, i, j;
	uint64_t malformed = malformed_total(e);
	int k;

	cmt_json_key(e->out, "incomplete_reasons");
	cmt_json_begin_array(e->out);
	if (e->discarded_notices) {
		if (e->discarded_uncounted) {
			reason(e, &count, "events discarded by the tracer: %llu in %llu notices, "
					  "%llu of which without a count",
			       (unsigned long long)e->discarded_events,
			       (unsigned long long)e->discarded_notices,
			       (unsigned long long)e->discarded_uncounted);
		} else {
			reason(e, &count, "events discarded by the tracer: %llu in %llu notices",
			       (unsigned long long)e->discarded_events,
			       (unsigned long long)e->discarded_notices);
		}
	}
	if (e->discarded_packets) {
		reason(e, &count, "packets discarded by the tracer: %llu notices",
		       (unsigned long long)e->discarded_packets);
	}
	if (e->no_vpid) {
		reason(e, &count, "%llu events without the vpid context (counted as process 0)",
		       (unsigned long long)e->no_vpid);
	}
	if (e->no_time) {
		reason(e, &count, "%llu events without a timestamp",
		       (unsigned long long)e->no_time);
	}
	if (malformed) {
		for (k = 0; k < CMT_EV_COUNT; k++) {
			if (e->malformed[k]) {
				reason(e, &count,
				       "%llu %s events ignored: members missing or of the wrong "
				       "type",
				       (unsigned long long)e->malformed[k], cmt_events[k].name);
			}
		}
	}
	if (e->failed) {
		reason(e, &count, "the analysis ran out of memory");
	}
	if (e->totals_out) {
		reason(e, &count, TOTALS_OUT);
	}
	for (i = 0; i < nprocs; i++) {
		size_t nm;
		struct cmt_manager **ms = cmt_sorted_managers(e, procs[i], &nm);

		if (procs[i]->totals_out) {
			reason(e, &count, "process %llu: " TOTALS_OUT,
			       (unsigned long long)procs[i]->vpid);
		}
		for (j = 0; j < nm; j++) {
			struct cmt_manager *m = ms[j];

			for (k = 0; k < CMT_R_COUNT; k++) {
				const char *text = m->os ? cmt_os_reason_text(k) : NULL;

				if (m->reasons & (1u << k)) {
					reason(e, &count, "process %llu, manager %llu: %s",
					       (unsigned long long)procs[i]->vpid,
					       (unsigned long long)m->id, text ? text : reason_texts[k]);
				}
			}
			if (m->window_open && !m->reasons) {
				reason(e, &count, "process %llu, manager %llu: state unknown",
				       (unsigned long long)procs[i]->vpid,
				       (unsigned long long)m->id);
			}
		}
		free(ms);
	}
	cmt_json_end_array(e->out);
}

static bool trace_complete(struct cmt_engine *e, struct cmt_process **procs, size_t n)
{
	size_t i;

	if (e->discarded_notices || e->discarded_packets || e->no_vpid || e->no_time ||
	    malformed_total(e) || e->failed || e->totals_out) {
		return false;
	}
	for (i = 0; i < n; i++) {
		if (!process_complete(procs[i])) {
			return false;
		}
	}
	return true;
}

static void write_manager(struct cmt_engine *e, struct cmt_manager *m)
{
	struct cmt_out *o = e->out;
	struct protect_entry *by = NULL;
	uint32_t i;

	cmt_json_begin_object(o);
	key_u64(o, "manager_id", m->id);
	key_str(o, "name", m->name ? m->name : "");
	cmt_json_key(o, "complete");
	cmt_json_bool(o, manager_complete(m));
	cmt_json_key(o, "unknown_windows");
	cmt_json_begin_array(o);
	for (i = 0; i < m->nwindows; i++) {
		int64_t end = m->windows[i].end_ns == INT64_MIN ? e->end_ns : m->windows[i].end_ns;

		cmt_json_begin_array(o);
		cmt_json_i64(o, m->windows[i].begin_ns);
		cmt_json_i64(o, end);
		cmt_json_end_array(o);
	}
	cmt_json_end_array(o);
	if (m->nby_protect) {
		by = malloc(m->nby_protect * sizeof(*by));
		if (!by) {
			cmt_fail(e);
		}
	}
	for (i = 0; by && i < m->nby_protect; i++) {
		by[i].key = m->by_protect[i].key;
		by[i].bytes = m->by_protect[i].bytes;
	}
	write_virtual(o, m->v.peak_reserved, m->v.peak_committed, m->v.reserved, m->v.committed,
		      m->v.regions, by, by ? m->nby_protect : 0, m->v.calls, m->v.failed);
	free(by);
	write_malloc(o, m->h.heaps, m->h.allocs, m->h.frees, m->h.peak_live_bytes,
		     cmt_total_shown(m->h.live_bytes, m->h.live_hi), m->h.live_blocks);
	cmt_json_end_object(o);
}

static void write_mbi(struct cmt_out *o, const char *key, const struct cmt_mbi *x)
{
	char buf[CMT_NAME_MAX];

	cmt_json_key(o, key);
	cmt_json_begin_object(o);
	key_u64(o, "base", x->base);
	key_u64(o, "allocation_base", x->allocation_base);
	key_protect(o, "allocation_protect", x->allocation_protect);
	key_u64(o, "region_size", x->region_size);
	key_str(o, "state", cmt_state_name(x->state, buf));
	key_protect(o, "protect", x->protect);
	key_str(o, "mem_type", cmt_mem_type_name(x->mem_type, buf));
	cmt_json_end_object(o);
}

static void write_check(struct cmt_engine *e)
{
	struct cmt_out *o = e->out;
	const struct cmt_mismatch *v = e->mismatches.v;
	size_t i;

	cmt_json_key(o, "check");
	cmt_json_begin_object(o);
	key_u64(o, "queries_checked", e->q_checked);
	key_u64(o, "mismatches", e->q_mismatches);
	key_u64(o, "unverifiable", e->q_unverifiable);
	key_u64(o, "unverifiable_before_dump", e->q_before_dump);
	cmt_json_key(o, "mismatch_details");
	cmt_json_begin_array(o);
	for (i = 0; i < e->mismatches.n; i++) {
		cmt_json_begin_object(o);
		key_i64(o, "time_ns", v[i].time_ns);
		key_u64(o, "vpid", v[i].vpid);
		key_u64(o, "manager_id", v[i].manager_id);
		key_u64(o, "address", v[i].address);
		key_u64(o, "seq_before", v[i].seq_before);
		key_u64(o, "seq_after", v[i].seq_after);
		write_mbi(o, "got", &v[i].got);
		if (v[i].has_expected) {
			write_mbi(o, "expected", &v[i].expected);
		} else {
			cmt_json_key(o, "expected");
			cmt_json_null(o);
			key_u64(o, "overlaps", v[i].overlaps);
		}
		cmt_json_end_object(o);
	}
	cmt_json_end_array(o);
	cmt_json_end_object(o);
}

static void write_anomalies(struct cmt_engine *e)
{
	struct cmt_out *o = e->out;
	const struct cmt_anomaly *a = e->anomalies.v;
	size_t i;
	int k;

	cmt_json_key(o, "anomalies");
	cmt_json_begin_array(o);
	for (i = 0; i < e->anomalies.n; i++) {
		cmt_json_newline(o);
		cmt_json_begin_object(o);
		key_str(o, "kind", cmt_anomaly_names[a[i].kind]);
		key_i64(o, "time_ns", a[i].time_ns);
		key_u64(o, "vpid", a[i].vpid);
		key_u64(o, "tid", a[i].tid);
		key_u64(o, "manager_id", a[i].manager_id);
		key_u64(o, "addr", a[i].addr);
		key_u64(o, "size", a[i].size);
		key_str(o, "detail", a[i].detail);
		cmt_json_end_object(o);
	}
	cmt_json_end_array(o);
	cmt_json_newline(o);
	cmt_json_key(o, "anomaly_counts");
	cmt_json_begin_object(o);
	for (k = 0; k < CMT_A_COUNT; k++) {
		key_u64(o, cmt_anomaly_names[k], e->anomaly_counts[k]);
	}
	cmt_json_end_object(o);
}

static void write_failures(struct cmt_engine *e)
{
	struct cmt_out *o = e->out;
	const struct cmt_failure *f = e->failures.v;
	char buf[CMT_NAME_MAX];
	size_t i;

	cmt_json_key(o, "failures");
	cmt_json_begin_array(o);
	for (i = 0; i < e->failures.n; i++) {
		cmt_json_newline(o);
		cmt_json_begin_object(o);
		key_i64(o, "time_ns", f[i].time_ns);
		key_u64(o, "vpid", f[i].vpid);
		key_u64(o, "tid", f[i].tid);
		key_u64(o, "manager_id", f[i].manager_id);
		key_str(o, "event", cmt_event_name(f[i].type));
		key_str(o, "hr", cmt_failure_result_name(&f[i], buf));
		key_i64(o, "hr_value", f[i].hr);
		key_u64(o, "addr", f[i].addr);
		key_u64(o, "size", f[i].size);
		cmt_json_end_object(o);
	}
	cmt_json_end_array(o);
}

static void write_latency(struct cmt_engine *e)
{
	struct cmt_out *o = e->out;
	int k;

	cmt_json_key(o, "latency");
	cmt_json_begin_object(o);
	for (k = 0; k < CMT_EV_COUNT; k++) {
		const struct cmt_hist *h = e->latency[k];
		unsigned int b;

		if (!h || h->count == 0) {
			continue;
		}
		cmt_json_newline(o);
		cmt_json_key(o, cmt_events[k].name);
		cmt_json_begin_object(o);
		key_u64(o, "count", h->count);
		key_u64(o, "min_ns", h->min);
		key_u64(o, "p50_ns", cmt_hist_percentile(h, 500));
		key_u64(o, "p90_ns", cmt_hist_percentile(h, 900));
		key_u64(o, "p99_ns", cmt_hist_percentile(h, 990));
		key_u64(o, "max_ns", h->max);
		cmt_json_key(o, "mean_ns");
		cmt_json_double(o, cmt_hist_mean(h), 3);
		cmt_json_key(o, "histogram");
		cmt_json_begin_array(o);
		for (b = 0; b < CMT_HIST_BUCKETS; b++) {
			if (h->buckets[b]) {
				cmt_json_begin_array(o);
				cmt_json_u64(o, cmt_hist_upper(b));
				cmt_json_u64(o, h->buckets[b]);
				cmt_json_end_array(o);
			}
		}
		cmt_json_end_array(o);
		cmt_json_end_object(o);
	}
	cmt_json_end_object(o);
}

static void write_memloads(struct cmt_engine *e)
{
	struct cmt_out *o = e->out;
	const struct cmt_memload *l = e->memloads.v;
	size_t i;

	cmt_json_key(o, "memory_load");
	cmt_json_begin_array(o);
	for (i = 0; i < e->memloads.n; i++) {
		cmt_json_begin_object(o);
		key_i64(o, "time_ns", l[i].time_ns);
		key_u64(o, "vpid", l[i].vpid);
		key_u64(o, "load", l[i].load);
		key_u64(o, "available", l[i].available);
		cmt_json_end_object(o);
	}
	cmt_json_end_array(o);
}

static void write_notifications(struct cmt_engine *e)
{
	struct cmt_out *o = e->out;
	const struct cmt_notification *n = e->notifications.v;
	char buf[CMT_NAME_MAX];
	size_t i;

	cmt_json_key(o, "notifications");
	cmt_json_begin_array(o);
	for (i = 0; i < e->notifications.n; i++) {
		cmt_json_begin_object(o);
		key_i64(o, "time_ns", n[i].time_ns);
		key_u64(o, "vpid", n[i].vpid);
		key_u64(o, "manager_id", n[i].manager_id);
		key_str(o, "level", cmt_available_name(n[i].level, buf));
		key_str(o, "hr", cmt_hr_name(n[i].hr, buf));
		key_u64(o, "load", n[i].load);
		key_str(o, "reason", n[i].reason);
		cmt_json_end_object(o);
	}
	cmt_json_end_array(o);
}

/* ---------- Leaks ---------- */

struct leak_region {
	uint64_t vpid;
	uint64_t manager_id;
	const struct cmt_region *r;
};

static int leak_region_cmp(const void *a, const void *b)
{
	const struct leak_region *x = a, *y = b;
	uint64_t sx = x->r->cur->end - x->r->cur->base, sy = y->r->cur->end - y->r->cur->base;

	if (sx != sy) {
		return sx > sy ? -1 : 1;
	}
	if (x->r->time_ns != y->r->time_ns) {
		return x->r->time_ns < y->r->time_ns ? -1 : 1;
	}
	if (x->vpid != y->vpid) {
		return x->vpid < y->vpid ? -1 : 1;
	}
	if (x->manager_id != y->manager_id) {
		return x->manager_id < y->manager_id ? -1 : 1;
	}
	return x->r->cur->base < y->r->cur->base ? -1 : x->r->cur->base > y->r->cur->base;
}

struct leak_group {
	uint64_t vpid;
	uint64_t manager_id;
	uint64_t heap_id;
	uint32_t site;
	uint64_t blocks;
	uint64_t bytes;
	uint64_t largest;
};

struct group_ctx {
	struct cmt_engine *e;
	struct cmt_map bysite; /* site + 1 -> index + 1 in groups */
	struct leak_group *groups;
	size_t n;
	size_t cap;
	uint64_t vpid;
	uint64_t manager_id;
	uint64_t heap_id;
};

static void group_block(void *ctx, const struct cmt_block *b)
{
	struct group_ctx *g = ctx;
	uintptr_t idx = (uintptr_t)cmt_map_get(&g->bysite, (uint64_t)b->site + 1);
	struct leak_group *grp;

	if (!idx) {
		if (g->n == g->cap) {
			size_t cap = g->cap ? g->cap * 2 : 64;
			struct leak_group *v = realloc(g->groups, cap * sizeof(*v));

			if (!v) {
				cmt_fail(g->e);
				return;
			}
			g->groups = v;
			g->cap = cap;
		}
		grp = &g->groups[g->n];
		memset(grp, 0, sizeof(*grp));
		grp->vpid = g->vpid;
		grp->manager_id = g->manager_id;
		grp->heap_id = g->heap_id;
		grp->site = b->site;
		if (cmt_map_put(&g->bysite, (uint64_t)b->site + 1, (void *)(uintptr_t)(g->n + 1))) {
			cmt_fail(g->e);
			return;
		}
		g->n++;
	} else {
		grp = &g->groups[idx - 1];
	}
	grp->blocks++;
	if (__builtin_add_overflow(grp->bytes, b->size, &grp->bytes)) {
		grp->bytes = UINT64_MAX;
	}
	if (b->size > grp->largest) {
		grp->largest = b->size;
	}
}

static const struct cmt_sites *sort_sites;

static int leak_group_cmp(const void *a, const void *b)
{
	const struct leak_group *x = a, *y = b;
	int c;

	if (x->bytes != y->bytes) {
		return x->bytes > y->bytes ? -1 : 1;
	}
	if (x->vpid != y->vpid) {
		return x->vpid < y->vpid ? -1 : 1;
	}
	if (x->manager_id != y->manager_id) {
		return x->manager_id < y->manager_id ? -1 : 1;
	}
	if (x->heap_id != y->heap_id) {
		return x->heap_id < y->heap_id ? -1 : 1;
	}
	if (x->site == y->site || !sort_sites) {
		return 0;
	}
	c = strcmp(sort_sites->v[x->site].file, sort_sites->v[y->site].file);
	if (c) {
		return c;
	}
	return sort_sites->v[x->site].line < sort_sites->v[y->site].line ? -1 : 1;
}

static void site_of(const struct cmt_engine *e, uint32_t site, const char **file, int64_t *line)
{
	if (site == 0 || site >= e->sites.n) {
		*file = "";
		*line = 0;
		return;
	}
	*file = e->sites.v[site].file;
	*line = e->sites.v[site].line;
}

static void write_leaks(struct cmt_engine *e, struct cmt_process **procs, size_t nprocs)
{
	struct cmt_out *o = e->out;
	struct leak_region *regions = NULL;
	struct group_ctx g;
	size_t nregions = 0, i, j, k;
	char buf[CMT_NAME_MAX];

	memset(&g, 0, sizeof(g));
	g.e = e;
	if (e->regions) {
		regions = malloc(e->regions * sizeof(*regions));
		if (!regions) {
			cmt_fail(e);
		}
	}
	for (i = 0; i < nprocs; i++) {
		size_t nm;
		struct cmt_manager **ms = cmt_sorted_managers(e, procs[i], &nm);

		for (j = 0; j < nm; j++) {
			struct cmt_manager *m = ms[j];
			struct cmt_tnode *n;
			size_t nh;
			struct cmt_heap **hs;

			for (n = cmt_tree_first(&m->tree); regions && n && nregions < e->regions;
			     n = cmt_tree_next(n)) {
				regions[nregions].vpid = procs[i]->vpid;
				regions[nregions].manager_id = m->id;
				regions[nregions].r = container_of(n, struct cmt_region, node);
				nregions++;
			}
			hs = sorted_heaps(e, m, &nh);
			for (k = 0; k < nh; k++) {
				if (!hs[k]->live) {
					continue;
				}
				g.vpid = procs[i]->vpid;
				g.manager_id = m->id;
				g.heap_id = hs[k]->id;
				cmt_map_fini(&g.bysite);
				cmt_heap_foreach_live(hs[k], group_block, &g);
			}
			free(hs);
		}
		free(ms);
	}
	cmt_map_fini(&g.bysite);
	if (nregions > 1) {
		qsort(regions, nregions, sizeof(*regions), leak_region_cmp);
	}
	sort_sites = &e->sites;
	if (g.n > 1) {
		qsort(g.groups, g.n, sizeof(*g.groups), leak_group_cmp);
	}
	sort_sites = NULL;

	cmt_json_key(o, "leaks");
	cmt_json_begin_object(o);
	cmt_json_key(o, "regions");
	cmt_json_begin_array(o);
	for (i = 0; i < nregions && i < e->cfg.max_details; i++) {
		const struct cmt_region *r = regions[i].r;

		cmt_json_newline(o);
		cmt_json_begin_object(o);
		key_u64(o, "vpid", regions[i].vpid);
		key_u64(o, "manager_id", regions[i].manager_id);
		key_u64(o, "base", r->cur->base);
		key_u64(o, "size", r->cur->end - r->cur->base);
		key_u64(o, "committed_bytes", r->cur->committed);
		key_protect(o, "allocation_protect", r->cur->alloc_protect);
		key_i64(o, "time_ns", r->time_ns);
		key_u64(o, "tid", r->tid);
		key_str(o, "level", r->level_known ? cmt_level_name(r->level, buf) : "");
		cmt_json_end_object(o);
	}
	cmt_json_end_array(o);
	cmt_json_key(o, "blocks");
	cmt_json_begin_array(o);
	for (i = 0; i < g.n && i < e->cfg.max_details; i++) {
		const char *file;
		int64_t line;

		site_of(e, g.groups[i].site, &file, &line);
		cmt_json_newline(o);
		cmt_json_begin_object(o);
		key_u64(o, "vpid", g.groups[i].vpid);
		key_u64(o, "manager_id", g.groups[i].manager_id);
		key_u64(o, "heap_id", g.groups[i].heap_id);
		key_str(o, "file", file);
		key_i64(o, "line", line);
		key_u64(o, "blocks", g.groups[i].blocks);
		key_u64(o, "bytes", g.groups[i].bytes);
		key_u64(o, "largest", g.groups[i].largest);
		cmt_json_end_object(o);
	}
	cmt_json_end_array(o);
	cmt_json_end_object(o);
	free(regions);
	free(g.groups);
}

void cmt_write_summary(struct cmt_engine *e)
{
	struct cmt_out *o = e->out;
	struct protect_entry *by;
	size_t nprocs, i, j, nby = 0;
	struct cmt_process **procs = cmt_sorted_processes(e, &nprocs);

	by = malloc(CMT_PROTECT_KEYS * sizeof(*by));
	if (!by) {
		cmt_fail(e);
	}
	for (i = 0; by && i < CMT_PROTECT_KEYS; i++) {
		uint64_t bytes = cmt_total_shown(e->by_protect[i], e->by_protect_hi[i]);

		if (bytes) {
			by[nby].key = (uint32_t)i;
			by[nby].bytes = bytes;
			nby++;
		}
	}
	cmt_json_begin_object(o);
	key_str(o, "format", "clrmemtrace-summary");
	key_u64(o, "version", 1);
	cmt_json_newline(o);
	key_u64(o, "events", e->events);
	key_u64(o, "discarded_events", e->discarded_events);
	cmt_json_key(o, "complete");
	cmt_json_bool(o, trace_complete(e, procs, nprocs));
	write_reasons(e, procs, nprocs);
	cmt_json_newline(o);
	cmt_json_key(o, "begin_ns");
	if (e->have_time) {
		cmt_json_i64(o, e->begin_ns);
	} else {
		cmt_json_null(o);
	}
	cmt_json_key(o, "end_ns");
	if (e->have_time) {
		cmt_json_i64(o, e->end_ns);
	} else {
		cmt_json_null(o);
	}
	cmt_json_newline(o);
	cmt_json_key(o, "processes");
	cmt_json_begin_array(o);
	for (i = 0; i < nprocs; i++) {
		struct cmt_process *p = procs[i];
		size_t nm;
		struct cmt_manager **ms = cmt_sorted_managers(e, p, &nm);

		cmt_json_newline(o);
		cmt_json_begin_object(o);
		key_u64(o, "vpid", p->vpid);
		key_str(o, "procname", p->procname ? p->procname : "");
		cmt_json_key(o, "complete");
		cmt_json_bool(o, process_complete(p));
		cmt_json_key(o, "managers");
		cmt_json_begin_array(o);
		for (j = 0; j < nm; j++) {
			cmt_json_newline(o);
			write_manager(e, ms[j]);
		}
		cmt_json_end_array(o);
		cmt_json_end_object(o);
		free(ms);
	}
	cmt_json_end_array(o);
	cmt_json_newline(o);
	write_virtual(o, e->peak_reserved, e->peak_committed,
		      cmt_total_shown(e->reserved, e->reserved_hi),
		      cmt_total_shown(e->committed, e->committed_hi), e->regions,
		      by, nby, e->calls, e->failed_calls);
	cmt_json_newline(o);
	write_malloc(o, e->heaps, e->allocs, e->frees, e->peak_heap_live,
		     cmt_total_shown(e->heap_live, e->heap_live_hi), e->live_blocks);
	cmt_json_newline(o);
	write_check(e);
	cmt_json_newline(o);
	write_anomalies(e);
	cmt_json_newline(o);
	write_failures(e);
	cmt_json_newline(o);
	write_latency(e);
	cmt_json_newline(o);
	write_memloads(e);
	cmt_json_newline(o);
	write_notifications(e);
	cmt_json_newline(o);
	write_leaks(e, procs, nprocs);
	cmt_json_end_object(o);
	cmt_json_newline(o);
	free(by);
	free(procs);
}

/* ---------- Map ---------- */

void cmt_write_map(struct cmt_engine *e)
{
	struct cmt_out *o = e->out;
	size_t nprocs, i, j, k;
	struct cmt_process **procs = cmt_sorted_processes(e, &nprocs);
	char buf[CMT_NAME_MAX];

	cmt_json_begin_object(o);
	key_str(o, "format", "clrmemtrace-map");
	key_u64(o, "version", 1);
	key_i64(o, "at_ns", e->cfg.at_ns);
	cmt_json_key(o, "processes");
	cmt_json_begin_array(o);
	for (i = 0; i < nprocs; i++) {
		struct cmt_process *p = procs[i];
		size_t nm;
		struct cmt_manager **ms = cmt_sorted_managers(e, p, &nm);

		cmt_json_newline(o);
		cmt_json_begin_object(o);
		key_u64(o, "vpid", p->vpid);
		key_str(o, "procname", p->procname ? p->procname : "");
		cmt_json_key(o, "managers");
		cmt_json_begin_array(o);
		for (j = 0; j < nm; j++) {
			struct cmt_manager *m = ms[j];
			struct cmt_tnode *n;
			struct cmt_heap **hs;
			size_t nh;

			cmt_json_newline(o);
			cmt_json_begin_object(o);
			key_u64(o, "manager_id", m->id);
			key_str(o, "name", m->name ? m->name : "");
			cmt_json_key(o, "known");
			cmt_json_bool(o, m->known);
			cmt_json_key(o, "regions");
			cmt_json_begin_array(o);
			for (n = cmt_tree_first(&m->tree); n; n = cmt_tree_next(n)) {
				const struct cmt_resv *r =
					container_of(n, struct cmt_region, node)->cur;
				uint32_t ri;

				for (ri = 0; ri < r->nruns; ri++) {
					uint32_t st = r->runs[ri].state;
					uint64_t end = cmt_resv_run_end(r, ri);

					cmt_json_newline(o);
					cmt_json_begin_object(o);
					key_u64(o, "base",
						r->base + cmt_resv_bytes(r, 0, r->runs[ri].start));
					key_u64(o, "allocation_base", r->base);
					key_u64(o, "size",
						cmt_resv_bytes(r, r->runs[ri].start, end));
					key_str(o, "state",
						cmt_state_name((st & CMT_RUN_COMMITTED)
								       ? CMT_MEM_COMMIT
								       : CMT_MEM_RESERVE,
							       buf));
					key_protect(o, "protect", cmt_resv_protect(r, st));
					key_protect(o, "allocation_protect", r->alloc_protect);
					key_str(o, "mem_type",
						cmt_mem_type_name(cmt_os_mem_type(r), buf));
					key_str(o, "path", cmt_os_path(m, r));
					cmt_json_end_object(o);
				}
			}
			cmt_json_end_array(o);
			cmt_json_key(o, "heaps");
			cmt_json_begin_array(o);
			hs = sorted_heaps(e, m, &nh);
			for (k = 0; k < nh; k++) {
				if (!cmt_heap_shown(hs[k])) {
					continue;
				}
				cmt_json_begin_object(o);
				key_u64(o, "heap_id", hs[k]->id);
				key_u64(o, "live_blocks", hs[k]->live);
				key_u64(o, "live_bytes",
					cmt_total_shown(hs[k]->live_bytes, hs[k]->live_hi));
				cmt_json_end_object(o);
			}
			free(hs);
			cmt_json_end_array(o);
			cmt_json_end_object(o);
		}
		free(ms);
		cmt_json_end_array(o);
		cmt_json_end_object(o);
	}
	cmt_json_end_array(o);
	cmt_json_end_object(o);
	cmt_json_newline(o);
	free(procs);
}

/* ---------- Series ---------- */

static void write_samples(struct cmt_out *o, const struct cmt_sampler *sp)
{
	uint32_t i;

	cmt_json_begin_array(o);
	for (i = 0; sp && i < sp->n; i++) {
		cmt_json_begin_array(o);
		cmt_json_i64(o, sp->s[i].t);
		cmt_json_u64(o, sp->s[i].last);
		if (sp->s[i].max != sp->s[i].last) {
			cmt_json_u64(o, sp->s[i].max);
		}
		cmt_json_end_array(o);
	}
	cmt_json_end_array(o);
}

/* Ends every run still live at the end of the trace (their spans close then). */
static void close_spans(struct cmt_engine *e, struct cmt_process **procs, size_t nprocs)
{
	size_t i, j;

	for (i = 0; i < nprocs; i++) {
		size_t nm;
		struct cmt_manager **ms = cmt_sorted_managers(e, procs[i], &nm);

		for (j = 0; j < nm; j++) {
			struct cmt_tnode *n;

			e->span_m = ms[j];
			for (n = cmt_tree_first(&ms[j]->tree); n; n = cmt_tree_next(n)) {
				cmt_resv_end_all(container_of(n, struct cmt_region, node)->cur,
						 e->end_ns, e->sinkp);
			}
		}
		free(ms);
	}
}

static int span_rank_cmp(const void *a, const void *b)
{
	const struct cmt_span *x = a, *y = b;

	if (x->weight != y->weight) {
		return x->weight > y->weight ? -1 : 1;
	}
	if (x->begin_ns != y->begin_ns) {
		return x->begin_ns < y->begin_ns ? -1 : 1;
	}
	if (x->vpid != y->vpid) {
		return x->vpid < y->vpid ? -1 : 1;
	}
	if (x->manager_id != y->manager_id) {
		return x->manager_id < y->manager_id ? -1 : 1;
	}
	return x->base < y->base ? -1 : x->base > y->base;
}

void cmt_write_series(struct cmt_engine *e)
{
	struct cmt_out *o = e->out;
	struct cmt_series *s = e->series;
	size_t nprocs, i;
	struct cmt_process **procs = cmt_sorted_processes(e, &nprocs);
	char buf[CMT_NAME_MAX];
	uint32_t k;

	close_spans(e, procs, nprocs);
	cmt_json_begin_object(o);
	key_str(o, "format", "clrmemtrace-series");
	key_u64(o, "version", 1);
	cmt_json_key(o, "begin_ns");
	if (e->have_time) {
		cmt_json_i64(o, e->begin_ns);
	} else {
		cmt_json_null(o);
	}
	cmt_json_key(o, "end_ns");
	if (e->have_time) {
		cmt_json_i64(o, e->end_ns);
	} else {
		cmt_json_null(o);
	}
	cmt_json_key(o, "slice_ns");
	if (s->wshift < 64) {
		cmt_json_u64(o, UINT64_C(1) << s->wshift);
	} else {
		cmt_json_digits(o, "18446744073709551616");
	}
	cmt_json_newline(o);
	cmt_json_key(o, "counters");
	cmt_json_begin_object(o);
	cmt_json_key(o, "reserved_bytes");
	write_samples(o, &s->reserved);
	cmt_json_newline(o);
	cmt_json_key(o, "committed_bytes");
	write_samples(o, &s->committed);
	cmt_json_newline(o);
	cmt_json_key(o, "committed_by_protect");
	cmt_json_begin_object(o);
	for (k = 0; k < CMT_PROTECT_KEYS; k++) {
		if (s->by_protect[k]) {
			cmt_json_key(o, cmt_protect_name(k, buf));
			write_samples(o, s->by_protect[k]);
		}
	}
	cmt_json_end_object(o);
	cmt_json_newline(o);
	cmt_json_key(o, "heap_live_bytes");
	write_samples(o, &s->heap);
	cmt_json_end_object(o);
	cmt_json_newline(o);

	cmt_json_key(o, "failures");
	cmt_json_begin_array(o);
	for (i = 0; i < e->failures.n; i++) {
		const struct cmt_failure *f = &((const struct cmt_failure *)e->failures.v)[i];

		cmt_json_begin_array(o);
		cmt_json_i64(o, f->time_ns);
		cmt_json_string(o, cmt_event_name(f->type));
		cmt_json_string(o, cmt_failure_result_name(f, buf));
		cmt_json_end_array(o);
	}
	cmt_json_end_array(o);
	cmt_json_newline(o);
	cmt_json_key(o, "notifications");
	cmt_json_begin_array(o);
	for (i = 0; i < e->notifications.n; i++) {
		const struct cmt_notification *n =
			&((const struct cmt_notification *)e->notifications.v)[i];

		cmt_json_begin_array(o);
		cmt_json_i64(o, n->time_ns);
		cmt_json_string(o, cmt_available_name(n->level, buf));
		cmt_json_end_array(o);
	}
	cmt_json_end_array(o);
	cmt_json_newline(o);

	if (s->nspans > 1) {
		qsort(s->spans, s->nspans, sizeof(*s->spans), span_rank_cmp);
	}
	cmt_json_key(o, "spans");
	cmt_json_begin_array(o);
	for (k = 0; k < s->nspans; k++) {
		const struct cmt_span *sp = &s->spans[k];

		cmt_json_newline(o);
		cmt_json_begin_object(o);
		key_u64(o, "vpid", sp->vpid);
		key_u64(o, "manager_id", sp->manager_id);
		key_u64(o, "base", sp->base);
		key_u64(o, "size", sp->size);
		key_i64(o, "begin_ns", sp->begin_ns);
		key_i64(o, "end_ns", sp->end_ns);
		key_str(o, "state",
			cmt_state_name((sp->state & CMT_RUN_COMMITTED) ? CMT_MEM_COMMIT
								       : CMT_MEM_RESERVE,
				       buf));
		key_protect(o, "protect", sp->protect);
		cmt_json_end_object(o);
	}
	cmt_json_end_array(o);
	cmt_json_end_object(o);
	cmt_json_newline(o);
	free(procs);
}

/* ---------- Perfetto ---------- */

void cmt_perfetto_head(struct cmt_engine *e)
{
	cmt_out_putc(e->out, '[');
}

static void perfetto_sep(struct cmt_engine *e)
{
	cmt_out_puts(e->out, e->perfetto_any ? ",\n" : "\n");
	e->perfetto_any = true;
}

static void perfetto_counter(struct cmt_engine *e, uint64_t vpid, const char *name,
			     const struct cmt_sampler *sp)
{
	struct cmt_out *o = e->out;
	uint32_t i;

	for (i = 0; sp && i < sp->n; i++) {
		uint64_t off = sp->s[i].t > e->begin_ns
				       ? (uint64_t)sp->s[i].t - (uint64_t)e->begin_ns
				       : 0;
		char ts[48];

		snprintf(ts, sizeof(ts), "%llu.%03llu", (unsigned long long)(off / 1000),
			 (unsigned long long)(off % 1000));
		perfetto_sep(e);
		cmt_out_puts(o, "{\"ph\":\"C\",\"name\":\"");
		cmt_out_puts(o, name);
		cmt_out_puts(o, "\",\"pid\":");
		cmt_out_u64(o, vpid);
		cmt_out_puts(o, ",\"ts\":");
		cmt_out_puts(o, ts);
		cmt_out_puts(o, ",\"args\":{\"value\":");
		cmt_out_u64(o, sp->s[i].last);
		cmt_out_puts(o, "}}");
	}
}

void cmt_write_perfetto_tail(struct cmt_engine *e)
{
	struct cmt_out *o = e->out;
	size_t nprocs, i, j;
	struct cmt_process **procs = cmt_sorted_processes(e, &nprocs);

	for (i = 0; i < nprocs; i++) {
		struct cmt_process *p = procs[i];
		size_t nm;
		struct cmt_manager **ms = cmt_sorted_managers(e, p, &nm);

		/* Reservations never released end with the trace. */
		for (j = 0; j < nm; j++) {
			struct cmt_tnode *n;

			for (n = cmt_tree_first(&ms[j]->tree); n; n = cmt_tree_next(n)) {
				cmt_perfetto_end(e, ms[j], container_of(n, struct cmt_region, node),
						 e->end_ns);
			}
		}
		free(ms);
		perfetto_sep(e);
		cmt_out_puts(o, "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":");
		cmt_out_u64(o, p->vpid);
		cmt_out_puts(o, ",\"args\":{\"name\":");
		if (p->procname && *p->procname) {
			cmt_out_json_escaped(o, p->procname);
		} else {
			/* A process without a name is shown by its number. */
			cmt_out_putc(o, '"');
			cmt_out_u64(o, p->vpid);
			cmt_out_putc(o, '"');
		}
		cmt_out_puts(o, "}}");
		perfetto_counter(e, p->vpid, "reserved_bytes", p->s_reserved);
		perfetto_counter(e, p->vpid, "committed_bytes", p->s_committed);
		perfetto_counter(e, p->vpid, "heap_live_bytes", p->s_heap);
	}
	cmt_out_puts(o, "\n]\n");
	free(procs);
}
