/* SPDX-License-Identifier: MIT */
/*
 * Counters over time and spans (analysis/README.md, `series` and
 * `perfetto`), in memory bounded by `points` whatever the trace's length.
 *
 * Time is cut in slices of 2^w ns from the first event; a counter keeps one
 * sample per slice where it changed: the time and value of its last change
 * there, and the largest value it had in the slice. When an event falls in
 * slice `points`, every slice doubles (pairs of samples merge), so at the end
 * 2^w is the smallest power of two with (end - begin) / 2^w < points: up
 * to 2^64, one slice for a trace spanning 2^63 ns or more with `points` 1.
 *
 * Spans are kept in a min-heap of the `points` largest by size x duration.
 */
#include "state.h"

#include <stdlib.h>
#include <string.h>

struct cmt_series *cmt_series_create(uint64_t points)
{
	struct cmt_series *s = calloc(1, sizeof(*s));

	if (!s) {
		return NULL;
	}
	s->points = points ? points : 1;
	s->spans = NULL;
	return s;
}

static void sampler_free(struct cmt_sampler *sp)
{
	free(sp->s);
	sp->s = NULL;
	sp->n = sp->cap = 0;
}

void cmt_series_destroy(struct cmt_series *s)
{
	uint32_t i;

	if (!s) {
		return;
	}
	for (i = 0; i < s->nall; i++) {
		struct cmt_sampler *sp = s->all[i];

		sampler_free(sp);
		if (sp != &s->reserved && sp != &s->committed && sp != &s->heap) {
			free(sp);
		}
	}
	sampler_free(&s->reserved);
	sampler_free(&s->committed);
	sampler_free(&s->heap);
	free(s->all);
	free(s->spans);
	free(s);
}

static int register_sampler(struct cmt_engine *e, struct cmt_sampler *sp)
{
	struct cmt_series *s = e->series;

	if (s->nall == s->capall) {
		uint32_t cap = s->capall ? s->capall * 2 : 16;
		struct cmt_sampler **all = realloc(s->all, cap * sizeof(*all));

		if (!all) {
			cmt_fail(e);
			return -1;
		}
		s->all = all;
		s->capall = cap;
	}
	sp->index = s->nall;
	s->all[s->nall++] = sp;
	return 0;
}

struct cmt_sampler *cmt_sampler_new(struct cmt_engine *e)
{
	struct cmt_sampler *sp;

	if (!e->series) {
		return NULL;
	}
	if (e->series->nall == 0) {
		/* The three totals come first. */
		if (register_sampler(e, &e->series->reserved) ||
		    register_sampler(e, &e->series->committed) ||
		    register_sampler(e, &e->series->heap)) {
			return NULL;
		}
	}
	sp = calloc(1, sizeof(*sp));
	if (!sp) {
		cmt_fail(e);
		return NULL;
	}
	if (register_sampler(e, sp) != 0) {
		free(sp);
		return NULL;
	}
	return sp;
}

/* Merges pairs of slices of one sampler after the slice width doubled. */
static void sampler_halve(struct cmt_sampler *sp)
{
	uint32_t i, out = 0;

	for (i = 0; i < sp->n; i++) {
		struct cmt_sample x = sp->s[i];

		x.slice >>= 1;
		if (out > 0 && sp->s[out - 1].slice == x.slice) {
			struct cmt_sample *prev = &sp->s[out - 1];

			prev->t = x.t;
			prev->last = x.last;
			if (x.max > prev->max) {
				prev->max = x.max;
			}
		} else {
			sp->s[out++] = x;
		}
	}
	sp->n = out;
}

static void series_begin(struct cmt_engine *e)
{
	struct cmt_series *s = e->series;

	if (!s->begun) {
		s->begun = true;
		s->begin_ns = e->have_time ? e->begin_ns : 0;
		if (s->nall == 0) {
			register_sampler(e, &s->reserved);
			register_sampler(e, &s->committed);
			register_sampler(e, &s->heap);
		}
	}
}

void cmt_series_advance(struct cmt_engine *e, int64_t t)
{
	struct cmt_series *s = e->series;
	uint64_t off;
	uint32_t i;

	if (!s) {
		return;
	}
	series_begin(e);
	off = t > s->begin_ns ? (uint64_t)t - (uint64_t)s->begin_ns : 0;
	while (s->wshift < 64 && (off >> s->wshift) >= s->points) {
		s->wshift++;
		for (i = 0; i < s->nall; i++) {
			sampler_halve(s->all[i]);
		}
	}
}

void cmt_sampler_set(struct cmt_engine *e, struct cmt_sampler *sp, uint64_t value)
{
	struct cmt_series *s = e->series;
	uint64_t carry = sp->value, slice, off;
	int64_t t = e->now;
	struct cmt_sample *last;

	if (!s || value == carry) {
		return;
	}
	series_begin(e);
	sp->value = value;
	if (sp->n && t < sp->s[sp->n - 1].t) {
		t = sp->s[sp->n - 1].t;
	}
	off = t > s->begin_ns ? (uint64_t)t - (uint64_t)s->begin_ns : 0;
	slice = s->wshift < 64 ? off >> s->wshift : 0;
	last = sp->n ? &sp->s[sp->n - 1] : NULL;
	if (last && last->slice >= slice) {
		last->t = t;
		last->last = value;
		if (value > last->max) {
			last->max = value;
		}
		return;
	}
	if (sp->n == sp->cap) {
		uint32_t cap = sp->cap ? sp->cap * 2 : 8;
		struct cmt_sample *v;

		if (cap > s->points + 1) {
			cap = (uint32_t)(s->points + 1);
		}
		if (cap <= sp->n) {
			/* Cannot happen: slices stay below `points`. Keep the last sample. */
			sp->s[sp->n - 1].t = t;
			sp->s[sp->n - 1].last = value;
			return;
		}
		v = realloc(sp->s, cap * sizeof(*v));
		if (!v) {
			cmt_fail(e);
			return;
		}
		sp->s = v;
		sp->cap = cap;
	}
	last = &sp->s[sp->n++];
	last->slice = slice;
	last->t = t;
	last->last = value;
	last->max = value > carry ? value : carry;
}

/* ---------- Spans ---------- */

/* Whether span a ranks below span b (kept last, dropped first). */
static bool span_below(const struct cmt_span *a, const struct cmt_span *b)
{
	if (a->weight != b->weight) {
		return a->weight < b->weight;
	}
	if (a->begin_ns != b->begin_ns) {
		return a->begin_ns > b->begin_ns;
	}
	if (a->vpid != b->vpid) {
		return a->vpid > b->vpid;
	}
	if (a->manager_id != b->manager_id) {
		return a->manager_id > b->manager_id;
	}
	return a->base > b->base;
}

static void span_down(struct cmt_span *h, uint32_t n, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, s = i;
		struct cmt_span tmp;

		if (l < n && span_below(&h[l], &h[s])) {
			s = l;
		}
		if (r < n && span_below(&h[r], &h[s])) {
			s = r;
		}
		if (s == i) {
			return;
		}
		tmp = h[s];
		h[s] = h[i];
		h[i] = tmp;
		i = s;
	}
}

static void span_up(struct cmt_span *h, uint32_t i)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		struct cmt_span tmp;

		if (!span_below(&h[i], &h[p])) {
			return;
		}
		tmp = h[p];
		h[p] = h[i];
		h[i] = tmp;
		i = p;
	}
}

void cmt_span_ended(void *ctx, const struct cmt_resv *r, const struct cmt_run *run,
		    uint64_t end_page, int64_t end_ns)
{
	struct cmt_engine *e = ctx;
	struct cmt_series *s = e->series;
	struct cmt_manager *m = e->span_m;
	struct cmt_span sp;

	if (!s || !m) {
		return;
	}
	sp.vpid = m->proc->vpid;
	sp.manager_id = m->id;
	sp.base = r->base + cmt_resv_bytes(r, 0, run->start);
	sp.size = cmt_resv_bytes(r, run->start, end_page);
	sp.begin_ns = run->begin_ns;
	sp.end_ns = end_ns > run->begin_ns ? end_ns : run->begin_ns;
	sp.state = run->state;
	sp.protect = cmt_resv_protect(r, run->state);
	sp.weight = (double)sp.size * (double)((uint64_t)sp.end_ns - (uint64_t)sp.begin_ns);
	if (!s->spans) {
		s->spans = malloc(s->points * sizeof(*s->spans));
		if (!s->spans) {
			cmt_fail(e);
			return;
		}
	}
	if (s->nspans < s->points) {
		s->spans[s->nspans] = sp;
		span_up(s->spans, s->nspans);
		s->nspans++;
	} else if (span_below(&s->spans[0], &sp)) {
		s->spans[0] = sp;
		span_down(s->spans, s->nspans, 0);
	}
}

/* ---------- Perfetto slices, written as they happen ---------- */

static void perfetto_ts(struct cmt_engine *e, int64_t t)
{
	uint64_t off = t > e->begin_ns ? (uint64_t)t - (uint64_t)e->begin_ns : 0;
	char frac[4];

	cmt_out_u64(e->out, off / 1000);
	frac[0] = '.';
	frac[1] = (char)('0' + (off % 1000) / 100);
	frac[2] = (char)('0' + (off % 100) / 10);
	frac[3] = (char)('0' + off % 10);
	cmt_out_write(e->out, frac, sizeof(frac));
}

static void perfetto_slice(struct cmt_engine *e, struct cmt_manager *m,
			   const struct cmt_region *r, int64_t t, bool begin)
{
	struct cmt_out *o = e->out;
	char name[CMT_NAME_MAX];

	cmt_out_puts(o, e->perfetto_any ? ",\n{\"ph\":\"" : "\n{\"ph\":\"");
	e->perfetto_any = true;
	cmt_out_puts(o, begin ? "b" : "e");
	/* The mmap view's mappings are slices of their own: a manager may reserve the same base. */
	cmt_out_puts(o, m->os ? "\",\"cat\":\"mapping\",\"name\":\"mapping\",\"id\":\""
			      : "\",\"cat\":\"reservation\",\"name\":\"reservation\",\"id\":\"");
	cmt_out_hex(o, r->cur->base);
	cmt_out_puts(o, "\",\"pid\":");
	cmt_out_u64(o, m->proc->vpid);
	/* Async slices belong to the process: their thread is the process's. */
	cmt_out_puts(o, ",\"tid\":");
	cmt_out_u64(o, m->proc->vpid);
	cmt_out_puts(o, ",\"ts\":");
	perfetto_ts(e, t);
	if (begin) {
		cmt_out_puts(o, ",\"args\":{\"manager_id\":");
		cmt_out_u64(o, m->id);
		cmt_out_puts(o, ",\"size\":");
		cmt_out_u64(o, r->cur->end - r->cur->base);
		cmt_out_puts(o, ",\"allocation_protect\":");
		cmt_out_json_escaped(o, cmt_protect_name(r->cur->alloc_protect, name));
		cmt_out_puts(o, "}");
	}
	cmt_out_puts(o, "}");
}

void cmt_perfetto_begin(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_region *r,
			int64_t t)
{
	perfetto_slice(e, m, r, t, true);
}

void cmt_perfetto_end(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_region *r,
		      int64_t t)
{
	perfetto_slice(e, m, r, t, false);
}
