/* SPDX-License-Identifier: MIT */
/*
 * Host policy: budgets and accounting (policy.h).
 */
#include "policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LOW_PERCENT 90u
#define DEFAULT_HIGH_PERCENT 60u
#define DEFAULT_HYSTERESIS_PERCENT 5u
#define DEFAULT_POLL_MS 1000u

bool clrmemtrace__parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;
	unsigned shift = 0;

	if (!s || !*s || *s == '-') {
		return false;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s) {
		return false;
	}
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case 't':
	case 'T':
		shift = 40;
		break;
	default:
		return false;
	}
	if (*end && end[1] != '\0' && !((end[1] == 'B' || end[1] == 'b') && end[2] == '\0')) {
		return false;
	}
	if (shift && v > (UINT64_MAX >> shift)) {
		return false;
	}
	*out = (uint64_t)v << shift;
	return true;
}

static int env_size(const char *name, uint64_t *v, const char **what)
{
	const char *s = getenv(name);

	if (*v || !s || !*s) {
		return 0;
	}
	if (!clrmemtrace__parse_size(s, v)) {
		*what = name;
		return ERROR_INVALID_PARAMETER;
	}
	return 0;
}

static int env_u32(const char *name, uint32_t *v, uint32_t max, const char **what)
{
	const char *s = getenv(name);
	uint64_t n;

	if (*v || !s || !*s) {
		return 0;
	}
	if (!clrmemtrace__parse_size(s, &n) || strpbrk(s, "kKmMgGtT") || n > max) {
		*what = name;
		return ERROR_INVALID_PARAMETER;
	}
	*v = (uint32_t)n;
	return 0;
}

int clrmemtrace__policy_init(struct policy *p, const clrmemtrace_options *o, const char **what)
{
	int err;

	memset(p, 0, sizeof(*p));
	*what = NULL;
	p->commit_budget = o->commit_budget;
	p->address_space_budget = o->address_space_budget;
	p->emergency_reserve = o->emergency_reserve;
	p->low_percent = o->low_memory_percent;
	p->high_percent = o->high_memory_percent;
	p->hysteresis_percent = o->hysteresis_percent;
	p->poll_interval_ms = o->poll_interval_ms;
	if ((err = env_size("CLRMEMTRACE_COMMIT_BUDGET", &p->commit_budget, what)) ||
	    (err = env_size("CLRMEMTRACE_ADDRESS_SPACE_BUDGET", &p->address_space_budget, what)) ||
	    (err = env_size("CLRMEMTRACE_EMERGENCY_RESERVE", &p->emergency_reserve, what)) ||
	    (err = env_u32("CLRMEMTRACE_LOW_MEMORY_PERCENT", &p->low_percent, 100, what)) ||
	    (err = env_u32("CLRMEMTRACE_HIGH_MEMORY_PERCENT", &p->high_percent, 100, what)) ||
	    (err = env_u32("CLRMEMTRACE_HYSTERESIS_PERCENT", &p->hysteresis_percent, 50, what)) ||
	    (err = env_u32("CLRMEMTRACE_POLL_MS", &p->poll_interval_ms, 3600000, what))) {
		return err;
	}
	if (!p->low_percent) {
		p->low_percent = DEFAULT_LOW_PERCENT;
	}
	if (!p->high_percent) {
		p->high_percent = DEFAULT_HIGH_PERCENT;
	}
	if (!p->hysteresis_percent) {
		p->hysteresis_percent = DEFAULT_HYSTERESIS_PERCENT;
	}
	if (!p->poll_interval_ms) {
		p->poll_interval_ms = DEFAULT_POLL_MS;
	}
	if (p->low_percent > 100 || p->high_percent >= p->low_percent ||
	    p->hysteresis_percent > 50) {
		*what = "the notification thresholds (high < low <= 100, hysteresis <= 50)";
		return ERROR_INVALID_PARAMETER;
	}
	return 0;
}

/*
 * Where a budget load sits among the points the notification levels change
 * at (high, high + hysteresis, low - hysteresis, low): the monitor needs
 * waking only when this changes.
 */
static uint32_t zone(const struct policy *p, uint64_t committed)
{
	uint64_t load, h = p->hysteresis_percent;
	uint32_t z = 0;

	if (!p->commit_budget) {
		return 0;
	}
	load = committed >= p->commit_budget ? 100 : committed * 100 / p->commit_budget;
	z += load > p->high_percent;
	z += load > p->high_percent + h;
	z += load + h >= p->low_percent;
	z += load >= p->low_percent;
	return z;
}

static void maybe_kick(struct policy *p, uint64_t committed)
{
	uint32_t z = zone(p, committed);

	/* Read first: the zone seldom changes, and an exchange is a locked instruction. */
	if (z != __atomic_load_n(&p->last_zone, __ATOMIC_RELAXED) &&
	    z != __atomic_exchange_n(&p->last_zone, z, __ATOMIC_RELAXED) && p->kick) {
		p->kick(p->kick_ctx);
	}
}

/* Adds n to *counter if the result stays within limit (0: no limit). */
static bool add_within(uint64_t *counter, uint64_t n, uint64_t limit)
{
	uint64_t cur = __atomic_load_n(counter, __ATOMIC_RELAXED);

	/*
	 * Nothing to add always fits: over the budget (in the emergency reserve),
	 * a reservation that commits nothing, or a commit of pages committed
	 * already, must not be refused for what others hold.
	 */
	if (n == 0) {
		return true;
	}
	do {
		if (limit && (cur + n < cur || cur + n > limit)) {
			return false;
		}
	} while (!__atomic_compare_exchange_n(counter, &cur, cur + n, true, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return true;
}

static uint64_t limit_for(uint64_t budget, uint64_t reserve, int level)
{
	if (!budget) {
		return 0;
	}
	/* eAppDomainCritical and eProcessCritical may use the emergency reserve. */
	return level > eTaskCritical ? budget + reserve : budget;
}

int clrmemtrace__policy_charge(struct policy *p, uint64_t commit, uint64_t reserve, int level)
{
	if (!p->commit_budget && !p->address_space_budget) {
		/* Nothing to check against, and without a commit budget the zone stays 0. */
		if (commit) {
			__atomic_add_fetch(&p->committed, commit, __ATOMIC_RELAXED);
		}
		if (reserve) {
			__atomic_add_fetch(&p->reserved, reserve, __ATOMIC_RELAXED);
		}
		return 0;
	}
	if (!add_within(&p->committed, commit,
			limit_for(p->commit_budget, p->emergency_reserve, level))) {
		return ERROR_COMMITMENT_LIMIT;
	}
	if (!add_within(&p->reserved, reserve,
			limit_for(p->address_space_budget, p->emergency_reserve, level))) {
		__atomic_sub_fetch(&p->committed, commit, __ATOMIC_RELAXED);
		return ERROR_OUTOFMEMORY;
	}
	if (commit) {
		maybe_kick(p, __atomic_load_n(&p->committed, __ATOMIC_RELAXED));
	}
	return 0;
}

void clrmemtrace__policy_uncharge(struct policy *p, uint64_t commit, uint64_t reserve)
{
	uint64_t c = 0;

	/* Nothing to give back touches nothing: a release of decommitted pages, a decommit. */
	if (commit) {
		c = __atomic_sub_fetch(&p->committed, commit, __ATOMIC_RELAXED);
	}
	if (reserve) {
		__atomic_sub_fetch(&p->reserved, reserve, __ATOMIC_RELAXED);
	}
	if (commit && p->commit_budget) {
		maybe_kick(p, c); /* without a commit budget the zone stays 0 */
	}
}

bool clrmemtrace__policy_address_space_fits(struct policy *p, uint64_t reserve)
{
	uint64_t cur = __atomic_load_n(&p->reserved, __ATOMIC_RELAXED);

	return !p->address_space_budget ||
	       (cur + reserve >= cur && cur + reserve <= p->address_space_budget);
}

uint32_t clrmemtrace__policy_budget_load(struct policy *p, uint64_t *available)
{
	uint64_t c = __atomic_load_n(&p->committed, __ATOMIC_RELAXED);

	if (c >= p->commit_budget) {
		*available = 0;
		return 100;
	}
	*available = p->commit_budget - c;
	return (uint32_t)(c * 100 / p->commit_budget);
}

const char *clrmemtrace__policy_reason(int err)
{
	switch (err) {
	case ERROR_COMMITMENT_LIMIT:
		return "commit budget exceeded";
	case ERROR_OUTOFMEMORY:
		return "address-space budget exceeded";
	case ERROR_NOT_ENOUGH_MEMORY:
		return "out of memory";
	default:
		return "";
	}
}

int clrmemtrace__policy_level(const struct policy *p, int current, uint32_t load)
{
	uint32_t h = p->hysteresis_percent;

	if (load >= p->low_percent) {
		return eMemoryAvailableLow;
	}
	if (current == eMemoryAvailableLow && load + h >= p->low_percent) {
		return eMemoryAvailableLow; /* not yet far enough below the threshold */
	}
	if (load <= p->high_percent) {
		return eMemoryAvailableHigh;
	}
	if (current == eMemoryAvailableHigh && load <= p->high_percent + h) {
		return eMemoryAvailableHigh;
	}
	return eMemoryAvailableNeutral;
}
