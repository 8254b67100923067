# SPDX-License-Identifier: MIT
"""Seeded random cases: a plausible run of managers, then hostile changes to it.

``clean(seed)`` simulates processes whose managers reserve, commit, decommit, protect,
release, query, and allocate and free heap blocks, with state dumps and manager
destruction, and records the events the library would emit, in time order. The
simulation knows the exact answer: ``Model.expected()`` is what the summary must say (the
totals, the peaks, the calls, the heaps, the queries checked, a complete trace).

``hostile(seed)`` starts from such a run and changes it in ways drawn from the seed:
discarded events or packets, managers and heaps first seen late, dropped or reordered
events, sequence numbers that skip or go backwards, changes the state cannot take (commits
outside any reservation, overflowing or zero sizes, releases of unknown bases, double
releases), refused double frees, wrong member types, missing contexts, streams without a
clock, empty and very long strings, unknown and foreign events, a trace cut inside a state
dump, a source that fails, the interposer's mmap calls, many processes and managers, other
modes than summary. ``expectations(case)`` then derives what must hold whatever the
details: which reasons ``incomplete_reasons`` must give and which managers must be
incomplete. Changes that keep the answer exact (signedness of members, the place of the
context, refused calls, unknown and foreign events, another clock frequency) keep the
model's expected values.
"""

import bisect
import collections
import copy
import random

from . import schema

S_OK = 0
E_OUTOFMEMORY = 0x8007000E
E_INVALIDARG = 0x80070057
ERROR_INVALID_ADDRESS = 0x800701E7
MEM_COMMIT, MEM_RESERVE, MEM_DECOMMIT, MEM_RELEASE = 0x1000, 0x2000, 0x4000, 0x8000
MEM_FREE, MEM_PRIVATE, MEM_RESET = 0x10000, 0x20000, 0x80000
GRANULARITY = 0x10000
U64 = 2**64 - 1

# Protections a clean run uses: none executable-and-writable, none with a cache modifier.
PROTECTS = (0x01, 0x02, 0x04, 0x20, 0x102, 0x104)
WRITABLE = (0x04, 0x08, 0x40, 0x80)
EXECUTABLE = (0x10, 0x20, 0x40, 0x80)
BASE_NAMES = {
    0x01: "PAGE_NOACCESS", 0x02: "PAGE_READONLY", 0x04: "PAGE_READWRITE",
    0x08: "PAGE_WRITECOPY", 0x10: "PAGE_EXECUTE", 0x20: "PAGE_EXECUTE_READ",
    0x40: "PAGE_EXECUTE_READWRITE", 0x80: "PAGE_EXECUTE_WRITECOPY",
}


def protect_name(p):
    name = BASE_NAMES[p & 0xFF]
    return name + "|PAGE_GUARD" if p & 0x100 else name


class Resv:
    """A reservation: [base, end), its allocation protection, its runs of pages.

    ``runs`` are [first page, end page, protect] covering the reservation in order, protect
    0 for reserved pages; neighbours differ.
    """

    def __init__(self, base, end, aprot, page, protect=0):
        self.base, self.end, self.aprot, self.page = base, end, aprot, page
        self.runs = [[0, self.npages(), protect]]

    def npages(self):
        return (self.end - self.base) // self.page

    def set(self, first, last, protect):
        out = []
        for a, b, p in self.runs:
            if a < first:
                out.append([a, min(b, first), p])
            if a < last and b > first and (not out or out[-1][1] <= first):
                out.append([first, last, protect])
            if b > last:
                out.append([max(a, last), b, p])
        merged = []
        for run in out:
            if merged and merged[-1][2] == run[2] and merged[-1][1] == run[0]:
                merged[-1][1] = run[1]
            else:
                merged.append(run)
        self.runs = merged

    def run(self, index):
        """(first page, end page, protect or 0) of the run holding page ``index``."""
        i = bisect.bisect_right([a for a, _, _ in self.runs], index) - 1
        return tuple(self.runs[i])

    def committed_pages(self):
        return sum(b - a for a, b, p in self.runs if p)


class Manager:
    def __init__(self, vpid, mid, page):
        self.vpid, self.mid, self.page = vpid, mid, page
        self.seq = 0
        self.resvs = {}
        self.released = []
        self.heaps = {}  # heap id -> {ptr: size}
        self.freed = {}  # heap id -> [ptr]
        self.destroyed = False
        self.calls = collections.Counter()
        self.failed = 0
        self.allocs = self.frees = self.heaps_seen = 0
        self.peak_reserved = self.peak_committed = self.peak_live = 0

    def reserved(self):
        return sum(r.end - r.base for r in self.resvs.values())

    def committed(self):
        return sum(r.committed_pages() * self.page for r in self.resvs.values())

    def live_bytes(self):
        return sum(sum(h.values()) for h in self.heaps.values())

    def live_blocks(self):
        return sum(len(h) for h in self.heaps.values())


class Model:
    """A run of processes and managers, and the events the library records of it."""

    def __init__(self, rng, processes=2, managers=2, ops=300, big=False):
        self.rng = rng
        self.t = 1_000_000_000 + rng.randrange(1000)
        self.records = []  # [name, time, payload, vpid, tid, manager key or None]
        self.managers = {}
        self.procnames = {}
        self.tids = {}
        self.next_base = {}
        self.next_ptr = 0x7F0000000000
        self.next_heap = {}
        self.peak_reserved = self.peak_committed = self.peak_live = 0
        self.figures = {}
        self.totals = [0, 0, 0]
        self.queries = 0
        self.anomalies = collections.Counter()
        self.big = big
        vpids = rng.sample(range(100, 100000), processes)
        for vpid in vpids:
            self.procnames[vpid] = rng.choice(["host", "clrhost-sim", "a", "w" * 15])
            self.tids[vpid] = [vpid] + [vpid + 1 + i for i in range(rng.randrange(3))]
            self.next_base[vpid] = 0x10000000 + rng.randrange(16) * GRANULARITY
            for _ in range(managers):
                self.create_manager(vpid)
        for _ in range(ops):
            self.step()

    # ------------------------------------------------------------ recording

    def emit(self, name, payload, vpid, key=None):
        self.t += self.rng.randrange(1, 2000)
        tid = self.rng.choice(self.tids[vpid])
        self.records.append(["clrmemtrace:" + name, self.t, payload, vpid, tid, key])
        if key is not None and name in schema.CALLS:
            m = self.managers[key]
            m.calls[name] += 1
            if payload.get("hr", 0) != S_OK:
                m.failed += 1
        self.settle(key)

    def settle(self, key):
        """Peaks after an event of manager ``key`` (the only one whose figures moved)."""
        m = self.managers[key]
        now = (m.reserved(), m.committed(), m.live_bytes())
        before = self.figures.get(key, (0, 0, 0))
        self.figures[key] = now
        self.totals = [t + n - b for t, n, b in zip(self.totals, now, before)]
        m.peak_reserved = max(m.peak_reserved, now[0])
        m.peak_committed = max(m.peak_committed, now[1])
        m.peak_live = max(m.peak_live, now[2])
        self.peak_reserved = max(self.peak_reserved, self.totals[0])
        self.peak_committed = max(self.peak_committed, self.totals[1])
        self.peak_live = max(self.peak_live, self.totals[2])

    def duration(self):
        return self.rng.choice((0, self.rng.randrange(1, 100000)))

    # ------------------------------------------------------------ operations

    def create_manager(self, vpid):
        mid = 1 + sum(1 for k in self.managers if k[0] == vpid)
        page = self.rng.choice((4096, 4096, 4096, 16384))
        key = (vpid, mid)
        self.managers[key] = Manager(vpid, mid, page)
        self.emit("manager_create", {
            "manager_id": mid, "manager": 0x5500000000 + mid * 64, "flags": 0,
            "page_size": page, "name": self.rng.choice(["", "gc", "loader", "é" * 3]),
            "version": "1.0"}, vpid, key)
        return key

    def live(self):
        return [k for k, m in self.managers.items() if not m.destroyed]

    def step(self):
        rng = self.rng
        keys = self.live()
        if not keys or rng.random() < 0.01:
            self.create_manager(rng.choice(list(self.procnames)))
            return
        m = self.managers[rng.choice(keys)]
        ops = [
            (self.reserve, 12), (self.commit, 12), (self.decommit, 5), (self.protect, 6),
            (self.release, 5), (self.query, 10), (self.failed_call, 3), (self.misc_call, 3),
            (self.heap_create, 2), (self.heap_alloc, 14), (self.heap_free, 10),
            (self.heap_destroy, 1), (self.dump, 1), (self.reset, 1), (self.destroy, 0.3),
        ]
        op = rng.choices([o for o, _ in ops], [w for _, w in ops])[0]
        op(m)

    def change(self, m, name, payload):
        m.seq += 1
        payload["seq"] = m.seq
        payload["duration_ns"] = self.duration()
        self.emit(name, payload, m.vpid, (m.vpid, m.mid))

    def reserve(self, m):
        rng = self.rng
        if self.big and rng.random() < 0.05:
            size = rng.choice((1 << 32, 1 << 36)) - rng.randrange(2) * m.page
        else:
            size = rng.randrange(1, 64) * m.page - rng.choice((0, 0, rng.randrange(m.page)))
        size = max(size, 1)
        span = -(-size // m.page) * m.page
        base = self.next_base[m.vpid]
        self.next_base[m.vpid] = base + -(-span // GRANULARITY) * GRANULARITY \
            + rng.randrange(3) * GRANULARITY
        commit = rng.random() < 0.3
        protect = rng.choice(PROTECTS) if commit else rng.choice((0x01, 0x04))
        use_address = rng.random() < 0.3
        r = Resv(base, base + span, protect, m.page, protect & 0x1FF if commit else 0)
        m.resvs[base] = r
        self.change(m, "virtual_alloc", {
            "manager_id": m.mid, "address": base if use_address else 0, "size": size,
            "type": MEM_RESERVE | (MEM_COMMIT if commit else 0), "protect": protect,
            "level": rng.randrange(3), "result": base, "hr": S_OK, "reason": ""})

    def pick(self, m):
        if not m.resvs:
            return None
        return m.resvs[self.rng.choice(sorted(m.resvs))]

    def page_range(self, r):
        rng = self.rng
        n = r.npages()
        first = rng.randrange(n)
        last = min(n, first + 1 + rng.randrange(min(n - first, 64)))
        return first, last

    def commit(self, m):
        r = self.pick(m)
        if r is None:
            return self.reserve(m)
        first, last = self.page_range(r)
        protect = self.rng.choice(PROTECTS)
        r.set(first, last, protect & 0x1FF)
        address = r.base + first * m.page + self.rng.choice((0, self.rng.randrange(m.page)))
        size = r.base + last * m.page - address - self.rng.choice((0, self.rng.randrange(m.page)))
        self.change(m, "virtual_alloc", {
            "manager_id": m.mid, "address": address, "size": max(size, 1), "type": MEM_COMMIT,
            "protect": protect, "level": 0, "result": r.base + first * m.page, "hr": S_OK,
            "reason": ""})

    def decommit(self, m):
        r = self.pick(m)
        if r is None:
            return
        if self.rng.random() < 0.2:
            address, size = r.base, 0
            r.set(0, r.npages(), 0)
        else:
            first, last = self.page_range(r)
            r.set(first, last, 0)
            address, size = r.base + first * m.page, (last - first) * m.page
        self.change(m, "virtual_free", {
            "manager_id": m.mid, "address": address, "size": size, "type": MEM_DECOMMIT,
            "hr": S_OK})

    def protect(self, m):
        r = self.pick(m)
        committed = [run for run in r.runs if run[2]] if r is not None else []
        if not committed:
            return self.commit(m)
        a, b, old = self.rng.choice(committed)
        start = self.rng.randrange(a, min(b, a + 64))
        last, writable = start, False
        for a, b, p in r.runs:
            if b <= start:
                continue
            if not p or a > last or last - start >= 32:
                break
            writable = writable or p & 0xFF in WRITABLE
            last = min(b, start + 32)
        new = self.rng.choice(PROTECTS)
        if writable and new & 0xFF in EXECUTABLE:
            new = 0x02
        r.set(start, last, new & 0x1FF)
        self.change(m, "virtual_protect", {
            "manager_id": m.mid, "address": r.base + start * m.page,
            "size": (last - start) * m.page, "protect": new, "old_protect": old, "hr": S_OK})

    def reset(self, m):
        r = self.pick(m)
        committed = [run for run in r.runs if run[2]] if r is not None else []
        if not committed:
            return
        i = self.rng.choice(committed)[0]
        self.emit("virtual_alloc", {
            "manager_id": m.mid, "address": r.base + i * m.page, "size": m.page,
            "type": MEM_RESET, "protect": 0x04, "level": 0, "result": r.base + i * m.page,
            "hr": S_OK, "seq": m.seq, "duration_ns": self.duration(), "reason": ""},
            m.vpid, (m.vpid, m.mid))

    def release(self, m):
        r = self.pick(m)
        if r is None:
            return
        del m.resvs[r.base]
        m.released.append(r.base)
        self.change(m, "virtual_free", {
            "manager_id": m.mid, "address": r.base, "size": 0, "type": MEM_RELEASE,
            "hr": S_OK})

    def answer(self, m, address):
        """The MEMORY_BASIC_INFORMATION a VirtualQuery of ``address`` gets."""
        page = address - address % m.page
        for r in m.resvs.values():
            if r.base <= page < r.end:
                lo, hi, p = r.run((page - r.base) // m.page)
                return {
                    "base": page, "allocation_base": r.base, "allocation_protect": r.aprot,
                    "region_size": r.base + hi * m.page - page,
                    "state": MEM_COMMIT if p else MEM_RESERVE, "protect": p,
                    "mem_type": MEM_PRIVATE}
        higher = [r.base for r in m.resvs.values() if r.base > page]
        size = (min(higher) if higher else page + GRANULARITY * 16) - page
        return {"base": page, "allocation_base": 0, "allocation_protect": 0,
                "region_size": size, "state": MEM_FREE, "protect": 1, "mem_type": 0}

    def query(self, m):
        r = self.pick(m)
        if r is not None and self.rng.random() < 0.85:
            address = self.rng.randrange(r.base, r.end)
        else:
            address = self.next_base[m.vpid] + self.rng.randrange(GRANULARITY)
        payload = {"manager_id": m.mid, "address": address, "length": 48, "result": 48,
                   "hr": S_OK, "seq_before": m.seq, "seq_after": m.seq,
                   "duration_ns": self.duration()}
        payload.update(self.answer(m, address))
        self.queries += 1
        self.emit("virtual_query", payload, m.vpid, (m.vpid, m.mid))

    def failed_call(self, m):
        rng = self.rng
        key = (m.vpid, m.mid)
        kind = rng.randrange(4)
        if kind == 0:
            self.emit("virtual_alloc", {
                "manager_id": m.mid, "address": 0, "size": 1 << 40, "type": MEM_RESERVE,
                "protect": 0x04, "level": 1, "result": 0, "hr": E_OUTOFMEMORY, "seq": m.seq,
                "duration_ns": self.duration(),
                "reason": rng.choice(["", "address-space budget exceeded"])}, m.vpid, key)
        elif kind == 1:
            self.anomalies["free_unknown"] += 1
            self.emit("virtual_free", {
                "manager_id": m.mid, "address": 0, "size": 0, "type": MEM_RELEASE,
                "hr": E_INVALIDARG, "seq": m.seq, "duration_ns": self.duration()}, m.vpid, key)
        elif kind == 2:
            self.emit("virtual_query", {
                "manager_id": m.mid, "address": U64 - 4095, "length": 48, "result": 0,
                "hr": E_INVALIDARG, "seq_before": m.seq, "seq_after": m.seq}, m.vpid, key)
        else:
            heaps = sorted(m.heaps)
            if heaps:
                self.emit("malloc_alloc", {
                    "manager_id": m.mid, "heap_id": rng.choice(heaps), "size": 1 << 50,
                    "level": 0, "ptr": 0, "hr": E_OUTOFMEMORY, "file": "", "line": 0,
                    "reason": "commit budget exceeded"}, m.vpid, key)

    def misc_call(self, m):
        rng = self.rng
        key = (m.vpid, m.mid)
        kind = rng.randrange(5)
        if kind == 0:
            self.emit("memory_load", {"manager_id": m.mid, "load": rng.randrange(101),
                                      "available": rng.randrange(1 << 40), "hr": S_OK,
                                      "duration_ns": self.duration()}, m.vpid, key)
        elif kind == 1:
            self.emit("notification_register", {"manager_id": m.mid, "callback": 0x1234,
                                                "previous": 0, "hr": S_OK}, m.vpid, key)
        elif kind == 2:
            self.emit("memory_notification", {
                "manager_id": m.mid, "callback": 0x1234, "level": rng.randrange(1, 4),
                "hr": S_OK, "load": rng.randrange(101), "duration_ns": self.duration(),
                "reason": rng.choice(["commit budget 91% used", ""])}, m.vpid, key)
        else:
            name = rng.choice(("vas_needs", "vas_acquired", "vas_released"))
            self.emit(name, {"manager_id": m.mid, "address": 0x20000000,
                             "size": rng.randrange(1 << 30), "hr": S_OK,
                             "total": rng.randrange(1 << 40), "reason": ""}, m.vpid, key)

    def heap_create(self, m):
        hid = self.next_heap.get((m.vpid, m.mid), 0) + 1
        self.next_heap[(m.vpid, m.mid)] = hid
        m.heaps[hid] = {}
        m.freed[hid] = []
        m.heaps_seen += 1
        self.emit("malloc_create", {"manager_id": m.mid, "heap_id": hid,
                                    "heap": 0x6600000000 + hid * 16, "malloc_type": 1,
                                    "hr": S_OK, "duration_ns": self.duration()},
                  m.vpid, (m.vpid, m.mid))

    def heap_alloc(self, m):
        if not m.heaps:
            return self.heap_create(m)
        rng = self.rng
        hid = rng.choice(sorted(m.heaps))
        size = rng.choice((0, 1, 16, 24, 100, 4096, rng.randrange(1 << 20)))
        self.next_ptr += 16 + size + rng.randrange(4) * 16
        ptr = self.next_ptr
        m.heaps[hid][ptr] = size
        m.allocs += 1
        debug = rng.random() < 0.5
        self.emit("malloc_alloc", {
            "manager_id": m.mid, "heap_id": hid, "size": size, "level": 0, "ptr": ptr,
            "hr": S_OK, "file": rng.choice(["gc.cpp", "jit.c", "a/b/c.h"]) if debug else "",
            "line": rng.randrange(1, 3000) if debug else 0, "duration_ns": self.duration(),
            "reason": ""}, m.vpid, (m.vpid, m.mid))

    def heap_free(self, m):
        live = [(h, p) for h, blocks in m.heaps.items() for p in blocks]
        rng = self.rng
        if not live or rng.random() < 0.05:
            if m.heaps:
                self.emit("malloc_free", {"manager_id": m.mid, "heap_id": min(m.heaps),
                                          "ptr": 0, "size": 0, "hr": S_OK},
                          m.vpid, (m.vpid, m.mid))
            return
        hid, ptr = rng.choice(sorted(live))
        size = m.heaps[hid].pop(ptr)
        m.freed[hid].append(ptr)
        m.frees += 1
        self.emit("malloc_free", {"manager_id": m.mid, "heap_id": hid, "ptr": ptr,
                                  "size": size, "hr": S_OK, "duration_ns": self.duration()},
                  m.vpid, (m.vpid, m.mid))

    def heap_destroy(self, m):
        if not m.heaps:
            return
        hid = self.rng.choice(sorted(m.heaps))
        blocks = m.heaps.pop(hid)
        m.freed.pop(hid, None)
        self.emit("malloc_destroy", {"manager_id": m.mid, "heap_id": hid,
                                     "live_blocks": len(blocks),
                                     "live_bytes": sum(blocks.values())},
                  m.vpid, (m.vpid, m.mid))

    def dump(self, m):
        key = (m.vpid, m.mid)
        regions = [(r, lo, hi, p) for base in sorted(m.resvs) for r in [m.resvs[base]]
                   for lo, hi, p in r.runs]
        self.emit("statedump_begin", {"manager_id": m.mid, "manager": 0x5500000000,
                                      "seq": m.seq, "regions": len(regions),
                                      "heaps": len(m.heaps), "name": "dumped"}, m.vpid, key)
        for r, lo, hi, p in regions:
            self.emit("statedump_region", {
                "manager_id": m.mid, "base": r.base + lo * m.page, "allocation_base": r.base,
                "size": (hi - lo) * m.page, "state": MEM_COMMIT if p else MEM_RESERVE,
                "protect": p, "allocation_protect": r.aprot}, m.vpid, key)
        for hid in sorted(m.heaps):
            blocks = m.heaps[hid]
            self.emit("statedump_heap", {"manager_id": m.mid, "heap_id": hid, "heap": 0x66,
                                         "malloc_type": 1, "live_blocks": len(blocks),
                                         "live_bytes": sum(blocks.values())}, m.vpid, key)
            for ptr in sorted(blocks):
                self.emit("statedump_block", {"manager_id": m.mid, "heap_id": hid, "ptr": ptr,
                                              "size": blocks[ptr]}, m.vpid, key)
        self.emit("statedump_end", {"manager_id": m.mid, "seq": m.seq}, m.vpid, key)

    def destroy(self, m):
        m.destroyed = True
        self.emit("manager_destroy", {"manager_id": m.mid, "regions": len(m.resvs),
                                      "reserved_bytes": m.reserved(),
                                      "committed_bytes": m.committed()},
                  m.vpid, (m.vpid, m.mid))

    # ------------------------------------------------------------ expectations

    def expected(self):
        """The summary's figures this run must give (see test_analysis_hostile)."""
        ms = list(self.managers.values())
        calls = collections.Counter()
        for m in ms:
            calls.update(m.calls)
        by_protect = collections.Counter()
        for m in ms:
            for r in m.resvs.values():
                for a, b, p in r.runs:
                    if p:
                        by_protect[protect_name(p)] += (b - a) * m.page
        managers = {}
        for m in ms:
            managers[(m.vpid, m.mid)] = {
                "virtual": {
                    "peak_reserved_bytes": m.peak_reserved,
                    "peak_committed_bytes": m.peak_committed,
                    "final_reserved_bytes": m.reserved(),
                    "final_committed_bytes": m.committed(),
                    "live_regions": len(m.resvs),
                    "failed_calls": m.failed,
                },
                "calls": dict(m.calls),
                "malloc": {
                    "heaps": m.heaps_seen, "allocs": m.allocs, "frees": m.frees,
                    "peak_live_bytes": m.peak_live, "final_live_bytes": m.live_bytes(),
                    "live_blocks": m.live_blocks(),
                },
            }
        return {
            "processes": dict(self.procnames),
            "virtual": {
                "peak_reserved_bytes": self.peak_reserved,
                "peak_committed_bytes": self.peak_committed,
                "final_reserved_bytes": sum(m.reserved() for m in ms),
                "final_committed_bytes": sum(m.committed() for m in ms),
                "live_regions": sum(len(m.resvs) for m in ms),
                "committed_by_protect": dict(by_protect),
                "failed_calls": sum(m.failed for m in ms),
            },
            "calls": dict(calls),
            "malloc": {
                "heaps": sum(m.heaps_seen for m in ms),
                "allocs": sum(m.allocs for m in ms),
                "frees": sum(m.frees for m in ms),
                "peak_live_bytes": self.peak_live,
                "final_live_bytes": sum(m.live_bytes() for m in ms),
                "live_blocks": sum(m.live_blocks() for m in ms),
            },
            "queries_checked": self.queries,
            "anomalies": collections.Counter(self.anomalies),
            "managers": managers,
        }


# ---------------------------------------------------------------- cases

def event_message(record, procnames, stream=0):
    name, t, payload, vpid, tid, _ = record
    return ["ev", stream, name, t, dict(payload),
            {"vpid": vpid, "vtid": tid, "procname": procnames[vpid]}]


def new_expectation(model):
    exact = model.expected()
    return {
        "error": False,
        "exact": exact,
        "check_exact": True,
        "procnames": True,
        "causes": [],
        "dump_causes": [],
        "reasons": [],
        "clean": True,
        "monotonic": True,
    }


def clean(seed, ops=None):
    """A run without anything hostile, and its exact expected summary."""
    rng = random.Random(seed)
    model = Model(rng, processes=rng.randrange(1, 4), managers=rng.randrange(1, 4),
                  ops=ops if ops is not None else rng.choice((20, 150, 500)))
    case = {"name": f"clean-{seed}", "seed": seed, "streams": [{}],
            "messages": [event_message(r, model.procnames) for r in model.records]}
    return case, new_expectation(model)


# ---------------------------------------------------------------- hostile changes

def _events(case):
    return [i for i, m in enumerate(case["messages"]) if m[0] == "ev"]


def _key(m):
    return (m[5].get("vpid", 0), m[4].get("manager_id", 0))


def _time_at(case, i):
    """A time for a message inserted at index i (that of the event before it)."""
    for m in reversed(case["messages"][:i]):
        if m[0] == "ev" and m[3] is not None:
            return m[3]
    return 1_000_000_000


CHANGES = ("clrmemtrace:virtual_alloc", "clrmemtrace:virtual_free",
           "clrmemtrace:virtual_protect")


def _seq_at(case, i, key):
    """The manager's sequence number just before message i."""
    seq = 0
    for m in case["messages"][:i]:
        if m[0] == "ev" and _key(m) == key and "seq" in m[4] and (
                m[2] in CHANGES + ("clrmemtrace:statedump_end",)):
            if m[2] not in CHANGES or m[4].get("hr", 0) == S_OK:
                seq = m[4]["seq"]
    return seq


def _insert_event(case, i, name, payload, like):
    """Inserts an event at i with the stream and context of message ``like``."""
    t = _time_at(case, i)
    message = ["ev", like[1], name, t, payload, dict(like[5])]
    case["messages"].insert(i, message)
    return message


def _not_exact(exp):
    exp["exact"] = None
    exp["clean"] = False


def m_discard(rng, case, exp):
    i = rng.randrange(len(case["messages"]) + 1)
    t = _time_at(case, i)
    stream = rng.randrange(len(case["streams"]))
    count = rng.choice((None, 1, rng.randrange(1, 1 << 20), 2**64 - 1))
    case["messages"].insert(i, ["disc", stream, count, t, t + rng.randrange(2)])
    _not_exact(exp)


def m_discard_packets(rng, case, exp):
    stream = rng.randrange(len(case["streams"]))
    case["streams"][stream]["discarded_packets"] = True
    case["streams"][stream]["packets"] = True
    i = rng.randrange(len(case["messages"]) + 1)
    t = _time_at(case, i)
    case["messages"].insert(i, ["dpkt", stream, rng.choice((None, 1, 7)), t, t])
    _not_exact(exp)


def m_drop_create(rng, case, exp):
    creates = [i for i in _events(case) if case["messages"][i][2].endswith(":manager_create")]
    if creates:
        del case["messages"][rng.choice(creates)]
        _not_exact(exp)


def m_drop_events(rng, case, exp):
    events = _events(case)
    for i in sorted(rng.sample(events, min(len(events), rng.randrange(1, 6))), reverse=True):
        del case["messages"][i]
    _not_exact(exp)


def m_seq_regression(rng, case, exp):
    msgs = case["messages"]
    changes = [i for i in _events(case)
               if msgs[i][2] in CHANGES and msgs[i][4].get("hr", 0) == S_OK]
    if len(changes) < 2:
        return
    i = rng.choice(changes[:-1])
    later = [j for j in changes if j > i and _key(msgs[j]) == _key(msgs[i])]
    if not later:
        return
    j = rng.choice(later) + 1
    copy = [list(msgs[i][:4]), dict(msgs[i][4]), dict(msgs[i][5])]
    if msgs[i][4]["seq"] >= _seq_at(case, j, _key(msgs[i])):
        return
    exp["causes"].append(_insert_event(case, j, copy[0][2], copy[1], msgs[i]))
    _not_exact(exp)


def m_seq_gap(rng, case, exp):
    msgs = case["messages"]
    changes = [i for i in _events(case)
               if msgs[i][2] in CHANGES and msgs[i][4].get("hr", 0) == S_OK]
    if not changes:
        return
    i = rng.choice(changes)
    key = _key(msgs[i])
    exp["causes"].append(msgs[i])
    skip = rng.choice((1, 2, 1000, 2**63))
    for j in range(i, len(msgs)):
        m = msgs[j]
        if m[0] != "ev" or _key(m) != key:
            continue
        if m[2] == "clrmemtrace:manager_create":
            break
        for f in ("seq", "seq_before", "seq_after"):
            if f in m[4]:
                m[4][f] = (m[4][f] + skip) & U64
    _not_exact(exp)


def m_impossible(rng, case, exp):
    """A successful change no state can take, at a moment the manager is known."""
    msgs = case["messages"]
    events = [i for i in _events(case) if not msgs[i][2].startswith("clrmemtrace_os:")
              and msgs[i][4].get("manager_id")]
    if not events:
        return
    like = msgs[rng.choice(events)]
    key = _key(like)
    creates = [i for i in _events(case) if _key(msgs[i]) == key
               and msgs[i][2] == "clrmemtrace:manager_create"]
    if not creates:
        return
    i = rng.randrange(creates[0] + 1, len(msgs) + 1)
    if any(m[0] == "ev" and _key(m) == key and m[2].startswith("clrmemtrace:statedump")
           for m in msgs[creates[0]:i]):
        return
    seq = _seq_at(case, i, key) + 1
    mid = key[1]
    kind = rng.randrange(6)
    if kind == 0:
        name, payload = "clrmemtrace:virtual_alloc", {
            "manager_id": mid, "address": 0x7A0000000000, "size": 4096, "type": MEM_COMMIT,
            "protect": 4, "result": 0x7A0000000000}
    elif kind == 1:
        name, payload = "clrmemtrace:virtual_free", {
            "manager_id": mid, "address": 0x7B0000000000, "size": 0, "type": MEM_RELEASE}
    elif kind == 2:
        name, payload = "clrmemtrace:virtual_alloc", {
            "manager_id": mid, "address": 0, "size": rng.choice((2**64 - 4096, 2**64 - 1)),
            "type": MEM_RESERVE, "protect": 4, "result": 0x7C0000000000}
    elif kind == 3:
        name, payload = "clrmemtrace:virtual_alloc", {
            "manager_id": mid, "address": 0, "size": 65536, "type": MEM_RESERVE,
            "protect": 4, "result": 0}
    elif kind == 4:
        name, payload = "clrmemtrace:virtual_alloc", {
            "manager_id": mid, "address": 0, "size": 0, "type": MEM_RESERVE, "protect": 4,
            "result": 0x7D0000000000}
    else:
        name, payload = "clrmemtrace:virtual_protect", {
            "manager_id": mid, "address": 2**64 - 4096, "size": 8192, "protect": 2,
            "old_protect": 4}
    payload.update({"hr": S_OK, "seq": seq})
    exp["causes"].append(_insert_event(case, i, name, payload, like))
    _not_exact(exp)


def m_huge(rng, case, exp):
    """Reservations the address space could never hold, whose ends still fit in 64 bits."""
    msgs = case["messages"]
    creates = [i for i in _events(case) if msgs[i][2] == "clrmemtrace:manager_create"]
    if not creates:
        return
    like = msgs[rng.choice(creates)]
    for _ in range(rng.randrange(1, 4)):
        i = rng.randrange(msgs.index(like) + 1, len(msgs) + 1)
        _insert_event(case, i, "clrmemtrace:virtual_alloc", {
            "manager_id": like[4]["manager_id"], "address": 0,
            "size": rng.choice((2**62, 2**63 + 1, 2**63 - 2**16)), "type": MEM_RESERVE | MEM_COMMIT,
            "protect": 4, "result": rng.choice((0x10000, 2**48, 2**63 - 2**20)), "hr": S_OK,
            "seq": _seq_at(case, i, _key(like)) + 1}, like)
    _not_exact(exp)


def m_refused(rng, case, exp):
    """Refused calls that are anomalies: double free, unknown free, double release, ..."""
    msgs = case["messages"]
    kind = rng.randrange(5)
    ex = exp["exact"]
    if kind in (0, 1):
        frees = [i for i in _events(case) if msgs[i][2] == "clrmemtrace:malloc_free"
                 and msgs[i][4].get("ptr") and msgs[i][4].get("hr", 0) == S_OK]
        if not frees:
            return
        i = rng.choice(frees)
        like = msgs[i]
        payload = {"manager_id": like[4]["manager_id"], "heap_id": like[4]["heap_id"],
                   "ptr": like[4]["ptr"] if kind == 0 else 0xDEAD0000 + 16 * rng.randrange(99),
                   "size": 0, "hr": E_INVALIDARG}
        _insert_event(case, i + 1, "clrmemtrace:malloc_free", payload, like)
        anomaly, call = ("double_free" if kind == 0 else "free_unknown"), "malloc_free"
    elif kind == 2:
        releases = [i for i in _events(case) if msgs[i][2] == "clrmemtrace:virtual_free"
                    and msgs[i][4].get("type") == MEM_RELEASE
                    and msgs[i][4].get("hr", 0) == S_OK]
        if not releases:
            return
        i = rng.choice(releases)
        like = msgs[i]
        payload = dict(like[4], hr=ERROR_INVALID_ADDRESS)
        _insert_event(case, i + 1, "clrmemtrace:virtual_free", payload, like)
        anomaly, call = "double_free", "virtual_free"
    elif kind == 3:
        events = [i for i in _events(case) if msgs[i][2] == "clrmemtrace:manager_create"]
        if not events:
            return
        i = rng.choice(events)
        like = msgs[i]
        j = rng.randrange(i + 1, len(msgs) + 1)
        payload = {"manager_id": like[4]["manager_id"], "address": 0x7E0000000000,
                   "size": 4096, "type": MEM_COMMIT, "protect": 4, "result": 0,
                   "hr": ERROR_INVALID_ADDRESS, "seq": _seq_at(case, j, _key(like))}
        _insert_event(case, j, "clrmemtrace:virtual_alloc", payload, like)
        anomaly, call = "commit_outside_reservation", "virtual_alloc"
    else:
        reserves = [i for i in _events(case) if msgs[i][2] == "clrmemtrace:virtual_alloc"
                    and msgs[i][4].get("type") == MEM_RESERVE
                    and msgs[i][4].get("hr", 0) == S_OK]
        if not reserves:
            return
        i = rng.choice(reserves)
        like = msgs[i]
        payload = {"manager_id": like[4]["manager_id"], "address": like[4]["result"],
                   "size": 4096, "protect": 2, "old_protect": 0, "hr": ERROR_INVALID_ADDRESS,
                   "seq": like[4]["seq"]}
        _insert_event(case, i + 1, "clrmemtrace:virtual_protect", payload, like)
        anomaly, call = "protect_uncommitted", "virtual_protect"
    if ex is not None:
        key = _key(like)
        ex["anomalies"][anomaly] += 1
        ex["calls"][call] = ex["calls"].get(call, 0) + 1
        ex["virtual"]["failed_calls"] += 1
        mex = ex["managers"][key]
        mex["calls"][call] = mex["calls"].get(call, 0) + 1
        mex["virtual"]["failed_calls"] += 1


# Integer types that hold every value of the type they replace.
FLIPS = {"u64": "s64", "s64": "u64", "u32": "s64", "s32": "s64", "eu32": "u32", "es32": "s32"}


def m_signedness(rng, case, exp):
    """Members of another integer type that holds the same values: the answer stays."""
    names = sorted({case["messages"][i][2] for i in _events(case)})
    for s in case["streams"]:
        classes = s.setdefault("classes", {})
        for name in names:
            if name not in schema.EVENTS or rng.random() < 0.3:
                continue
            members = classes.get(name, [list(m) for m in schema.EVENTS[name]])
            classes[name] = [[m, FLIPS.get(k, k) if rng.random() < 0.7 else k] for m, k in members]


def m_context_place(rng, case, exp):
    for s in case["streams"]:
        s["context_place"] = "specific"


def m_no_vtid(rng, case, exp):
    for s in case["streams"]:
        s["context"] = [["vpid", "s32"], ["procname", "str"]]


# Optional members whose value no figure of the summary depends on.
HARMLESS = {"duration_ns", "level", "reason", "version", "callback", "previous", "load",
            "available", "total", "malloc_type", "heap", "manager", "flags", "file", "line",
            "regions", "heaps", "name", "length", "result"}


def m_wrong_type(rng, case, exp):
    msgs = case["messages"]
    names = sorted({msgs[i][2] for i in _events(case) if msgs[i][2] in schema.EVENTS})
    if not names:
        return
    name = rng.choice(names)
    stream = rng.randrange(len(case["streams"]))
    classes = case["streams"][stream].setdefault("classes", {})
    members = classes.get(name, [list(m) for m in schema.EVENTS[name]])
    index = rng.randrange(len(members))
    member, kind = members[index]
    if rng.random() < 0.15:
        del members[index]
    else:
        other = [k for k in schema.OTHER_KINDS + ("u64",) if k != kind
                 and not (k == "u64" and kind != "str")]
        members[index] = [member, rng.choice(other)]
    classes[name] = members
    required = member in schema.required_members(name)
    if member in ("page_size",) or required or member not in HARMLESS:
        _not_exact(exp)


def m_no_vpid(rng, case, exp):
    stream = rng.randrange(len(case["streams"]))
    case["streams"][stream]["context"] = rng.choice((
        [], [["vtid", "s32"], ["procname", "str"]],
        [["vpid", "str"], ["vtid", "s32"], ["procname", "str"]],
        [["vpid", "real"], ["vtid", "str"], ["procname", "u64"]]))
    _not_exact(exp)


def m_split_streams(rng, case, exp):
    """Events spread over several streams (one port, messages in the same order)."""
    n = rng.randrange(2, 5)
    while len(case["streams"]) < n:
        case["streams"].append(dict(case["streams"][0]))
    for m in case["messages"]:
        if m[0] == "ev":
            m[1] = rng.randrange(n)


def m_clockless(rng, case, exp):
    stream = len(case["streams"])
    case["streams"].append({"clock": False, "packets": rng.random() < 0.5})
    for m in case["messages"]:
        if m[0] == "ev" and rng.random() < 0.3:
            m[1] = stream
            m[3] = None
    exp["monotonic"] = False
    _not_exact(exp)


def m_clock(rng, case, exp):
    """Another clock frequency and origin: the same events, other timestamps."""
    for s in case["streams"]:
        if s.get("clock", True) is not False:
            s["clock"] = {"frequency": rng.choice((1000, 1_000_000, 3_000_000_000)),
                          "offset_s": rng.choice((0, -5, 1_700_000_000, -1_700_000_000)),
                          "offset_cycles": rng.randrange(1000)}


def m_clock_overflow(rng, case, exp):
    stream = len(case["streams"])
    case["streams"].append({"clock": {"frequency": 1, "offset_s": 2**62}})
    events = _events(case)
    for i in rng.sample(events, min(len(events), 3)):
        case["messages"][i][1] = stream
    _not_exact(exp)


def m_extreme_times(rng, case, exp):
    """Timestamps near both ends of Babeltrace2's signed 64-bit nanoseconds.

    The events before a cut go to a clock whose origin is 9e9 s before the epoch, those
    after it to one 9e9 s after: the trace spans more than 2^63 ns (a cut at 0 or past
    the end keeps them all at one end). The answer does not depend on the times.
    """
    if any(s.get("clock", True) is not True for s in case["streams"]):
        return
    ev = _events(case)
    if not ev:
        return
    cut = rng.choice((0, len(ev), rng.randrange(len(ev) + 1)))
    low = len(case["streams"])
    case["streams"].append({"clock": {"frequency": 1_000_000_000, "offset_s": -9 * 10**9}})
    case["streams"].append({"clock": {"frequency": 1_000_000_000, "offset_s": 9 * 10**9}})
    for n, i in enumerate(ev):
        case["messages"][i][1] = low if n < cut else low + 1


LONG = ("x" * 70000, "é" * 3000, "日本語" * 1500, "\u00e9\u0301" * 900, "tab\tquote\"back\\slash"
        "\x01\x1f", "")


def m_strings(rng, case, exp):
    for m in case["messages"]:
        if m[0] != "ev":
            continue
        for member in ("name", "file", "reason", "version", "path"):
            if member in m[4] and rng.random() < 0.3:
                m[4][member] = rng.choice(LONG)
        if rng.random() < 0.05:
            m[5]["procname"] = rng.choice(LONG)
            exp["procnames"] = False


def m_unknown_events(rng, case, exp):
    msgs = case["messages"]
    ev = _events(case)
    if not ev:
        return
    for _ in range(rng.randrange(1, 6)):
        like = msgs[rng.choice(_events(case))]
        i = rng.randrange(len(msgs) + 1)
        name = rng.choice(("clrmemtrace:future_event", "clrmemtrace:statedump_request",
                           "lttng_ust_statedump:soinfo", "other:virtual_alloc",
                           "clrmemtrace", "clrmemtrace_os:future"))
        _insert_event(case, i, name, {}, like)
        stream = case["streams"][like[1]]
        stream.setdefault("classes", {})[name] = [["manager_id", "u64"], ["x", "str"]]
        msgs[i][4] = {"manager_id": like[4].get("manager_id", 1), "x": "?"}


def m_manager_zero(rng, case, exp):
    ev = [i for i in _events(case) if not case["messages"][i][2].startswith("clrmemtrace_os")]
    if not ev:
        return
    like = case["messages"][rng.choice(ev)]
    i = rng.randrange(len(case["messages"]) + 1)
    payload = dict(like[4], manager_id=0)
    _insert_event(case, i, like[2], payload, like)


def _dumps(case):
    msgs = case["messages"]
    out = []
    for i in _events(case):
        if msgs[i][2] == "clrmemtrace:statedump_begin":
            key = _key(msgs[i])
            for j in range(i + 1, len(msgs)):
                if msgs[j][0] == "ev" and _key(msgs[j]) == key and \
                        msgs[j][2] == "clrmemtrace:statedump_end":
                    out.append((i, j, key))
                    break
    return out


def m_truncate_in_dump(rng, case, exp):
    dumps = _dumps(case)
    if not dumps:
        return
    begin, end, key = rng.choice(dumps)
    cut = rng.randrange(begin + 1, end + 1)
    exp["causes"].append(case["messages"][begin])
    exp["dump_causes"].append(case["messages"][begin])
    exp["unfinished_dump"] = case["messages"][begin]
    del case["messages"][cut:]
    case["end_streams"] = rng.random() < 0.7
    _not_exact(exp)


def m_dump_mangled(rng, case, exp):
    dumps = _dumps(case)
    if not dumps:
        return
    begin, end, key = rng.choice(dumps)
    msgs = case["messages"]
    how = rng.randrange(3)
    if how == 0:
        # The dump's other events come outside a dump.
        exp["causes"].append(next(m for m in msgs[begin + 1:end + 1]
                                  if m[0] == "ev" and _key(m) == key))
        exp["dump_causes"].append(exp["causes"][-1])
        del msgs[begin]
    elif how == 1:
        copy = msgs[begin]
        nested = ["ev", copy[1], copy[2], copy[3], dict(copy[4]), dict(copy[5])]
        msgs.insert(rng.randrange(begin + 1, end + 1), nested)
        exp["causes"].append(nested)
        exp["dump_causes"].append(nested)
    else:
        # A dump without its end: the next one (or the end of the trace) finds it open.
        exp["causes"].append(msgs[begin])
        exp["dump_causes"].append(msgs[begin])
        del msgs[end]
    _not_exact(exp)


def m_source_error(rng, case, exp):
    case["messages"].insert(rng.randrange(len(case["messages"]) + 1), ["raise", "injected"])
    exp["error"] = True


def m_time_backwards(rng, case, exp):
    ev = [i for i in _events(case) if case["messages"][i][3] is not None]
    for i in rng.sample(ev, min(len(ev), rng.randrange(1, 4))):
        m = case["messages"][i]
        m[3] = max(0, m[3] - rng.choice((1, 1000, 10**9, m[3])))
    exp["monotonic"] = False


def m_stream_end_early(rng, case, exp):
    stream = rng.randrange(len(case["streams"]))
    case["messages"].insert(rng.randrange(len(case["messages"]) + 1), ["se", stream])
    _not_exact(exp)


def m_packets(rng, case, exp):
    msgs = case["messages"]
    for _ in range(rng.randrange(1, 20)):
        i = rng.randrange(len(msgs) + 1)
        stream = rng.randrange(len(case["streams"]))
        msgs.insert(i, [rng.choice(("pb", "pe")), stream, _time_at(case, i)])


def m_bad_query(rng, case, exp):
    msgs = case["messages"]
    queries = [i for i in _events(case) if msgs[i][2] == "clrmemtrace:virtual_query"]
    if not queries:
        return
    i = rng.choice(queries)
    for f in rng.sample(["base", "allocation_base", "region_size", "state", "protect",
                         "seq_before", "seq_after", "allocation_protect"], 2):
        msgs[i][4][f] = rng.choice((0, 1, U64, 2**63, rng.randrange(1 << 48)))
    exp["check_exact"] = False


def m_destroy_mismatch(rng, case, exp):
    msgs = case["messages"]
    destroys = [i for i in _events(case) if msgs[i][2] == "clrmemtrace:manager_destroy"]
    if not destroys:
        return
    i = rng.choice(destroys)
    if any(m[0] == "ev" and _key(m) == _key(msgs[i]) and m[2].startswith("clrmemtrace:statedump")
           for m in msgs):
        return
    msgs[i][4]["regions"] += 1
    exp["causes"].append(msgs[i])
    _not_exact(exp)


def m_os_events(rng, case, exp):
    """The interposer's calls, for some processes, with or without a maps dump first."""
    msgs = case["messages"]
    ev = _events(case)
    if not ev:
        return
    like = msgs[rng.choice(ev)]
    start = rng.randrange(len(msgs) + 1)
    base = 0x7F1000000000 + rng.randrange(1 << 20) * 4096
    seq = []
    if rng.random() < 0.6:
        seq.append(("maps_begin", {"page_size": 4096}))
        for k in range(rng.randrange(4)):
            seq.append(("maps_mapping", {
                "start": base + k * 0x100000, "end": base + k * 0x100000 + 0x3000,
                "prot": rng.choice((0, 1, 3, 5, 7)), "shared": 0, "offset": 0, "major": 8,
                "minor": 1, "inode": rng.choice((0, 1234)),
                "path": rng.choice(("", "/usr/lib/libc.so.6", "[stack]", "[heap]"))}))
        if rng.random() < 0.9:
            seq.append(("maps_end", {"mappings": len(seq) - 1}))
    addr = base + 0x10000000
    for _ in range(rng.randrange(1, 30)):
        kind = rng.randrange(7)
        length = rng.choice((4096, 8192, 65536, 0, 2**64 - 4096, 1 << 30))
        a = addr + rng.randrange(16) * 4096
        fail = rng.random() < 0.1
        if kind == 0:
            seq.append(("mmap", {"addr": 0, "length": length, "prot": rng.choice((0, 3, 7, 5)),
                                 "flags": 0x22, "fd": -1, "offset": 0,
                                 "result": U64 if fail else a, "errnum": 12 if fail else 0,
                                 "path": ""}))
        elif kind == 1:
            seq.append(("munmap", {"addr": a, "length": length, "result": -1 if fail else 0,
                                   "errnum": 22 if fail else 0}))
        elif kind == 2:
            seq.append(("mprotect", {"addr": a, "length": length, "prot": rng.choice((0, 1, 3, 5, 7)),
                                     "result": -1 if fail else 0, "errnum": 22 if fail else 0}))
        elif kind == 3:
            seq.append(("madvise", {"addr": a, "length": length, "advice": rng.choice((4, 8, 14)),
                                    "result": 0, "errnum": 0}))
        elif kind == 4:
            seq.append(("posix_madvise", {"addr": a, "length": length, "advice": 4, "result": 0}))
        elif kind == 5:
            seq.append(("mremap", {"old_addr": a, "old_length": 4096, "new_length": length,
                                   "flags": rng.choice((0, 1, 3)), "new_addr": 0,
                                   "result": U64 if fail else a + 0x1000000,
                                   "errnum": 12 if fail else 0}))
        else:
            seq.append(("mmap", {"addr": a, "length": 4096, "prot": 3, "flags": 0x32,
                                 "fd": rng.choice((-1, 3)), "offset": rng.choice((0, -4096)),
                                 "result": a, "errnum": 0, "path": rng.choice(("", "/tmp/f"))}))
    for k, (name, payload) in enumerate(seq):
        msgs.insert(start + k, ["ev", like[1], "clrmemtrace_os:" + name,
                                _time_at(case, start + k), payload, dict(like[5])])
    _not_exact(exp)


MUTATIONS = (
    (m_discard, 3), (m_discard_packets, 1), (m_drop_create, 2), (m_drop_events, 2),
    (m_seq_regression, 2), (m_seq_gap, 2), (m_impossible, 3), (m_huge, 1), (m_refused, 4),
    (m_signedness, 2), (m_context_place, 1), (m_no_vtid, 1), (m_wrong_type, 3),
    (m_no_vpid, 1), (m_split_streams, 2), (m_clockless, 1), (m_clock, 1),
    (m_clock_overflow, 1), (m_strings, 2), (m_unknown_events, 2), (m_manager_zero, 1),
    (m_truncate_in_dump, 2), (m_dump_mangled, 2), (m_source_error, 1), (m_time_backwards, 2),
    (m_stream_end_early, 1), (m_packets, 1), (m_bad_query, 1), (m_destroy_mismatch, 1),
    (m_os_events, 2), (m_extreme_times, 1),
)


def hostile(seed):
    """A random run changed by a few hostile mutations; the case and what must hold."""
    rng = random.Random(seed)
    shape = rng.random()
    if shape < 0.1:
        model = Model(rng, processes=rng.randrange(20, 60), managers=rng.randrange(1, 6),
                      ops=rng.randrange(200, 800))
    elif shape < 0.2:
        model = Model(rng, processes=1, managers=1, ops=rng.randrange(1000, 3000), big=True)
    else:
        model = Model(rng, processes=rng.randrange(1, 4), managers=rng.randrange(1, 4),
                      ops=rng.choice((0, 5, 50, 200, 500)), big=rng.random() < 0.2)
    case = {"name": f"hostile-{seed}", "seed": seed, "streams": [{}],
            "messages": [event_message(r, model.procnames) for r in model.records]}
    exp = new_expectation(model)
    applied = []
    for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4, 6))):
        mutation = rng.choices([m for m, _ in MUTATIONS], [w for _, w in MUTATIONS])[0]
        mutation(rng, case, exp)
        applied.append(mutation.__name__[2:])
    case["mutations"] = applied
    mode = rng.choices(("summary", "timeline", "map", "series", "perfetto"), (6, 1, 1, 1, 1))[0]
    case["mode"] = mode
    params = {}
    if mode == "map":
        times = [m[3] for m in case["messages"] if m[0] == "ev" and m[3] is not None] or [0]
        params["at"] = rng.choice((min(times) - 1, max(times), rng.randrange(
            min(times), max(times) + 1), -2**63, 2**63 - 1))
    if mode in ("series", "perfetto") and rng.random() < 0.7:
        params["points"] = rng.choice((1, 2, 7, 1000, 1000000))
    if rng.random() < 0.2:
        params["max-details"] = rng.choice((0, 1, 3, 10000000))
    case["params"] = params
    return case, exp


# ---------------------------------------------------------------- what must hold

def _unsigned(kind, value):
    if kind not in schema.INTEGER_KINDS or not isinstance(value, int):
        return 0
    return schema.fit(kind, value) & U64


def _ns(spec, cycles):
    """An event's time in ns from the origin as Babeltrace2 computes it; None if it has none."""
    clock = spec.get("clock", True)
    if clock is False or cycles is None:
        return None
    clock = clock if isinstance(clock, dict) else {}
    freq = clock.get("frequency", 1_000_000_000)
    total = clock.get("offset_s", 0) * freq + clock.get("offset_cycles", 0) + cycles
    ns = total * 1_000_000_000 // freq if total >= 0 else -((-total) * 1_000_000_000 // freq)
    return ns if -(2**63) <= ns < 2**63 else None


def _context_kinds(spec):
    return dict((m, k) for m, k in spec.get("context", schema.CONTEXT))


def expectations(case, exp):
    """What the summary of ``case`` must say, from its messages and ``exp`` (the mutations').

    Returns a dict: ``error`` (the graph must fail), ``events`` (the exact count),
    ``reasons`` (texts ``incomplete_reasons`` must contain), ``incomplete`` ((vpid,
    manager id) pairs that must be incomplete), ``complete`` (True, False, or None when it
    cannot be told), ``exact`` (the model's figures, or None), and the flags of ``exp``.

    A manager first seen through another event than ``manager_create`` must be incomplete
    unless a whole state dump of it follows (whether it is complete from that dump on is
    not looked at); the changes of ``exp["causes"]`` make their manager incomplete when it
    was known (created, or dumped since it was first seen) at the time.
    """
    out = dict(exp)
    out["incomplete"] = set(exp.get("incomplete", ()))
    reasons = list(exp["reasons"])
    streams = case["streams"]
    mode = case.get("mode", "summary")
    at = case.get("params", {}).get("at")
    ended = set()
    events = 0
    malformed = collections.Counter()
    no_time = no_vpid = discarded = lost_packets = error = False
    have_time, end_ns = False, 0
    status = {}  # (vpid, manager id) -> "known", "awaiting" or "dumping" (awaiting, in a dump)
    late = {}  # managers first seen late: whether through another event than a dump
    heaps, views, dumped = set(), set(), set()
    known_causes, dump_causes = {}, {}
    causes = {id(c) for c in exp["causes"]}
    unfinished = id(exp.get("unfinished_dump"))
    for m in case["messages"]:
        if m[0] == "raise":
            error = True
            break
        spec = streams[m[1]]
        if m[0] == "se":
            ended.add(m[1])
            continue
        if m[1] in ended:
            continue
        if m[0] == "disc":
            discarded = True
            continue
        if m[0] == "dpkt" and spec.get("packets", True) and spec.get("discarded_packets"):
            lost_packets = True
            continue
        if m[0] != "ev" or not m[2].startswith(("clrmemtrace:", "clrmemtrace_os:")):
            continue
        name = m[2]
        ns = _ns(spec, m[3])
        t = ns if ns is not None else (end_ns if have_time else 0)
        if mode == "map" and t > at:
            break
        have_time, end_ns = True, max(end_ns, t) if have_time else t
        events += 1
        if ns is None:
            no_time = True
        table = schema.plugin_members().get(name)
        if table is None:
            continue
        kinds = dict(spec.get("classes", {}).get(name, schema.EVENTS.get(name, ())))
        ok = True
        for member, (required, string) in table.items():
            kind = kinds.get(member)
            if required and (kind is None or (kind == "str") != string or
                             (not string and kind not in schema.INTEGER_KINDS)):
                ok = False
        os_event = name.startswith("clrmemtrace_os:")
        mid = _unsigned(kinds.get("manager_id"), m[4].get("manager_id", 0))
        if not os_event and mid == 0:
            ok = False
        short = name.partition(":")[2]
        if not ok:
            malformed[short] += 1
            continue
        ctx = _context_kinds(spec)
        vpid = 0
        if ctx.get("vpid") in schema.INTEGER_KINDS:
            vpid = _unsigned(ctx["vpid"], m[5].get("vpid", spec.get("vpid", 1000)))
        else:
            no_vpid = True
        if os_event:
            if vpid not in views:
                views.add(vpid)
                if short != "maps_begin":
                    out["incomplete"].add((vpid, 0))
                    reasons.append(f"process {vpid}, manager 0: mmap view: calls before")
            continue
        key = (vpid, mid)
        before = status.get(key)
        if id(m) in causes:
            dump_causes[id(m)] = key
            if before == "known":
                known_causes[id(m)] = key
        if short == "manager_create":
            if before in ("awaiting", "dumping"):
                out["incomplete"].add(key)
            status[key] = "known"
            heaps = {h for h in heaps if h[0] != key}
            dumped.discard(key)
        elif before is None:
            status[key] = "dumping" if short == "statedump_begin" else "awaiting"
            late[key] = short != "statedump_begin"
        elif before == "awaiting" and short == "statedump_begin":
            status[key] = "dumping"
        elif before == "dumping" and short == "statedump_end":
            status[key] = "known"
        heap = (key, _unsigned(kinds.get("heap_id"), m[4].get("heap_id", 0)))
        hr_ok = _unsigned(kinds.get("hr"), m[4].get("hr", 0)) & 0xFFFFFFFF == 0
        if short == "statedump_heap":
            heaps.add(heap)
        if short.startswith("statedump_"):
            dumped.add(key)
        if status[key] != "known" or before != "known" or key in dumped:
            # Heaps of a manager seen through a dump: not looked at.
            continue
        if short == "malloc_create":
            if hr_ok:
                heaps.add(heap)
        elif (short == "malloc_alloc" and hr_ok) or short in ("malloc_free", "malloc_destroy"):
            if heap not in heaps:
                out["incomplete"].add(key)
            heaps.add(heap)
            if short == "malloc_destroy":
                heaps.discard(heap)
    for key, state in status.items():
        if state != "known":
            out["incomplete"].add(key)
            if late[key]:
                reasons.append(f"process {key[0]}, manager {key[1]}: first seen without "
                               "manager_create or a state dump")
    dump_related = {id(c) for c in exp.get("dump_causes", [])}
    for cause, key in dump_causes.items():
        if cause in dump_related or cause in known_causes:
            out["incomplete"].add(key)
    if discarded:
        reasons.append("events discarded by the tracer")
    if lost_packets:
        reasons.append("packets discarded by the tracer")
    if no_vpid:
        reasons.append("events without the vpid context")
    if no_time:
        reasons.append("events without a timestamp")
    for short, n in sorted(malformed.items()):
        reasons.append(f"{n} {short} events ignored")
    if unfinished in dump_causes and not discarded:
        vpid, mid = dump_causes[unfinished]
        reasons.append(f"process {vpid}, manager {mid}: a state dump without its statedump_end")
    out["error"] = error
    out["events"] = events
    out["reasons"] = reasons
    if reasons or out["incomplete"]:
        out["complete"] = False
    elif exp["clean"]:
        out["complete"] = True
    else:
        out["complete"] = None
    if out["exact"] is not None and (no_time or no_vpid or discarded or lost_packets):
        out["exact"] = None
    return out


# ---------------------------------------------------------------- directed cases

U64_END = 2**64


def _ev(name, t, payload, vpid=100):
    return ["ev", 0, name, t, payload, {"vpid": vpid, "vtid": vpid, "procname": "p"}]


def _va(t, addr, size, typ, prot, result, seq):
    return _ev("clrmemtrace:virtual_alloc", t, {
        "manager_id": 1, "address": addr, "size": size, "type": typ, "protect": prot,
        "result": result, "hr": S_OK, "seq": seq})


def _vf(t, addr, size, typ, seq):
    return _ev("clrmemtrace:virtual_free", t, {
        "manager_id": 1, "address": addr, "size": size, "type": typ, "hr": S_OK, "seq": seq})


def _query(t, addr, seq, answer):
    payload = {"manager_id": 1, "address": addr, "length": 48, "result": 48, "hr": S_OK,
               "seq_before": seq, "seq_after": seq}
    payload.update(answer)
    return _ev("clrmemtrace:virtual_query", t, payload)


def _directed_traces():
    """{name: messages}: states at the ends of the address space and of 64-bit sizes."""
    top = U64_END - GRANULARITY
    create = _ev("clrmemtrace:manager_create", 10, {"manager_id": 1, "page_size": 4096,
                                                    "name": "m"})
    at_top = [
        create, _va(20, 0, GRANULARITY, MEM_RESERVE, 4, top, 1),
        _va(30, top, GRANULARITY, MEM_COMMIT, 4, top, 2),
        _ev("clrmemtrace:virtual_protect", 40, {
            "manager_id": 1, "address": top + 4096, "size": 4096, "protect": 2,
            "old_protect": 4, "hr": S_OK, "seq": 3}),
        _query(50, U64_END - 1, 3, {
            "base": U64_END - 4096, "allocation_base": top, "allocation_protect": 4,
            "region_size": 4096, "state": MEM_COMMIT, "protect": 4, "mem_type": MEM_PRIVATE}),
        _vf(60, top, 4096, MEM_DECOMMIT, 4),
        _va(65, top + 0x8000, 0x8000, MEM_COMMIT, 0x40, top + 0x8000, 5),
    ]
    wrapping = [
        create, _va(20, 0, U64_END - 4096, MEM_RESERVE | MEM_COMMIT, 4, GRANULARITY, 1),
        _va(30, 0, U64 - 1, MEM_RESERVE, 4, 2 * GRANULARITY, 2),
        _va(40, GRANULARITY, U64, MEM_COMMIT, 4, GRANULARITY, 3),
        _ev("clrmemtrace:virtual_protect", 50, {
            "manager_id": 1, "address": GRANULARITY, "size": U64_END - 4096, "protect": 2,
            "old_protect": 4, "hr": S_OK, "seq": 4}),
        _vf(60, GRANULARITY, U64_END - GRANULARITY, MEM_DECOMMIT, 5),
        _va(70, top, 2 * GRANULARITY, MEM_RESERVE, 4, top, 6),
        _query(80, GRANULARITY, 6, {
            "base": GRANULARITY, "allocation_base": GRANULARITY,
            "region_size": U64_END - GRANULARITY, "state": MEM_COMMIT, "protect": 4,
            "allocation_protect": 4, "mem_type": MEM_PRIVATE}),
    ]
    dump = [
        _ev("clrmemtrace:statedump_begin", 10, {"manager_id": 1, "seq": U64, "regions": U64,
                                                "heaps": U64}),
        _ev("clrmemtrace:statedump_region", 11, {
            "manager_id": 1, "base": top, "allocation_base": top, "size": GRANULARITY,
            "state": MEM_COMMIT, "protect": 4, "allocation_protect": 4}),
        _ev("clrmemtrace:statedump_region", 12, {
            "manager_id": 1, "base": 0, "allocation_base": 0, "size": top, "state": MEM_RESERVE,
            "protect": 0, "allocation_protect": 4}),
        _ev("clrmemtrace:statedump_region", 12, {
            "manager_id": 1, "base": 4096, "allocation_base": 0, "size": 4096,
            "state": MEM_COMMIT, "protect": 4, "allocation_protect": 4}),
        _ev("clrmemtrace:statedump_region", 13, {
            "manager_id": 1, "base": top + 4096, "allocation_base": top, "size": U64,
            "state": MEM_COMMIT, "protect": 4, "allocation_protect": 4}),
        _ev("clrmemtrace:statedump_vas", 13, {"manager_id": 1, "address": top, "size": U64}),
        _ev("clrmemtrace:statedump_heap", 14, {"manager_id": 1, "heap_id": 1, "live_blocks": U64,
                                               "live_bytes": U64}),
        _ev("clrmemtrace:statedump_block", 15, {"manager_id": 1, "heap_id": 1, "ptr": U64,
                                                "size": U64}),
        _ev("clrmemtrace:statedump_block", 15, {"manager_id": 1, "heap_id": 1, "ptr": U64,
                                                "size": U64}),
        _ev("clrmemtrace:statedump_block", 16, {"manager_id": 1, "heap_id": 2, "ptr": 5,
                                                "size": 1}),
        _ev("clrmemtrace:statedump_end", 17, {"manager_id": 1, "seq": U64}),
        _va(20, top, 4096, MEM_COMMIT, 4, top, 0), _vf(30, top, 0, MEM_RELEASE, 1),
        _ev("clrmemtrace:manager_destroy", 40, {"manager_id": 1, "regions": U64,
                                                "reserved_bytes": U64, "committed_bytes": U64}),
    ]

    def os_call(name, t, payload):
        return _ev("clrmemtrace_os:" + name, t, payload)

    mmap_view = [
        os_call("maps_begin", 1, {"page_size": 4096}),
        os_call("maps_mapping", 2, {"start": U64_END - 8192, "end": 0, "prot": 3}),
        os_call("maps_mapping", 3, {"start": U64_END - 4096, "end": U64_END - 8192, "prot": 3}),
        os_call("maps_mapping", 3, {"start": 0, "end": U64_END - 4096, "prot": 7, "path": "x"}),
        os_call("maps_end", 4, {"mappings": 3}),
        os_call("mmap", 5, {"addr": U64_END - 4096, "length": 4096, "prot": 3, "flags": 0x32,
                            "fd": -1, "result": U64_END - 4096}),
        os_call("mmap", 6, {"addr": 0, "length": U64, "prot": 3, "flags": 0x22, "fd": -1,
                            "result": 4096}),
        os_call("mremap", 7, {"old_addr": U64_END - 4096, "old_length": 4096,
                              "new_length": U64_END - 4096, "flags": 3, "new_addr": 4096,
                              "result": 4096}),
        os_call("mremap", 8, {"old_addr": 4096, "old_length": U64_END - 4096, "new_length": 8192,
                              "flags": 1, "new_addr": 0, "result": U64_END - 8192}),
        os_call("mprotect", 9, {"addr": U64_END - 8192, "length": U64, "prot": 1}),
        os_call("madvise", 10, {"addr": U64_END - 8192, "length": U64, "advice": 4}),
        os_call("munmap", 11, {"addr": 0, "length": U64_END - 4096}),
        os_call("munmap", 12, {"addr": U64_END - 4096, "length": 8192}),
    ]
    heap = [create, _ev("clrmemtrace:malloc_create", 20, {"manager_id": 1, "heap_id": 1})]
    for t, ptr, size in ((30, U64_END - 16, 16), (31, 2**63, 2**62), (32, 16, 0),
                         (33, 32, U64_END - 64)):
        heap.append(_ev("clrmemtrace:malloc_alloc", t, {
            "manager_id": 1, "heap_id": 1, "size": size, "ptr": ptr, "file": "f.c",
            "line": -5 if t % 2 else 2**31 - 1}))
    heap.append(_ev("clrmemtrace:malloc_free", 40, {"manager_id": 1, "heap_id": 1,
                                                    "ptr": U64_END - 16}))
    return {"at-top": at_top, "released-at-top": at_top + [_vf(70, top, 0, MEM_RELEASE, 6)],
            "wrapping": wrapping, "dump-extremes": dump, "mmap-extremes": mmap_view,
            "mmap-and-manager": mmap_view + at_top, "heap-extremes": heap,
            **_totals_traces()}


TOTALS_OUT = "byte totals exceed 2^64 - 1: totals are not exact"


def _totals_traces():
    """Byte totals past 2^64 - 1: reservations of many managers, overlapping heap blocks,
    committed bytes of one protection over many processes."""
    huge = 2**63 - GRANULARITY

    def call(name, t, mid, payload, vpid=100):
        return _ev("clrmemtrace:" + name, t, dict(payload, manager_id=mid), vpid)

    def manager(t, mid, vpid=100):
        return call("manager_create", t, mid, {"page_size": 4096, "name": f"m{mid}"}, vpid)

    def alloc(t, mid, size, typ, prot, seq, vpid=100):
        return call("virtual_alloc", t, mid, {
            "address": GRANULARITY if typ == MEM_COMMIT else 0, "size": size, "type": typ,
            "protect": prot, "result": GRANULARITY, "hr": S_OK, "seq": seq}, vpid)

    many = []
    for mid in range(1, 7):
        many += [manager(10 * mid, mid), alloc(10 * mid + 1, mid, huge, MEM_RESERVE | MEM_COMMIT,
                                                4, 1)]
    many += [call("virtual_free", 100, 1, {"address": GRANULARITY, "size": 0,
                                           "type": MEM_RELEASE, "hr": S_OK, "seq": 2}),
             call("virtual_free", 110, 2, {"address": GRANULARITY + 4096, "size": 4096,
                                           "type": MEM_DECOMMIT, "hr": S_OK, "seq": 2})]
    heap = [manager(10, 1), manager(11, 2),
            call("malloc_create", 20, 1, {"heap_id": 1}), call("malloc_create", 21, 2, {"heap_id": 7})]
    for t, mid, hid, ptr, size in ((30, 1, 1, 0x1000, 2**63), (31, 1, 1, 0x1008, 2**63),
                                   (32, 2, 7, 0x1000, 2**62), (33, 1, 1, 0x2000, U64),
                                   (34, 2, 7, 0x2000, 2**63)):
        heap.append(call("malloc_alloc", t, mid, {"heap_id": hid, "size": size, "ptr": ptr,
                                                  "file": "f.c", "line": t}))
    heap += [call("malloc_free", 40, 1, {"heap_id": 1, "ptr": 0x1000}),
             call("malloc_free", 41, 2, {"heap_id": 7, "ptr": 0x1000})]
    protect = []
    for n, vpid in enumerate((100, 200, 300, 400)):
        t = 10 * (n + 1)
        protect += [manager(t, 1, vpid), alloc(t + 1, 1, huge, MEM_RESERVE, 4, 1, vpid),
                    alloc(t + 2, 1, huge, MEM_COMMIT, 4, 2, vpid),
                    call("virtual_protect", t + 3, 1, {
                        "address": GRANULARITY, "size": huge, "protect": 0x20,
                        "old_protect": 4, "hr": S_OK, "seq": 3}, vpid)]
    protect.append(call("virtual_protect", 60, 1, {
        "address": GRANULARITY, "size": 4096, "protect": 2, "old_protect": 0x20, "hr": S_OK,
        "seq": 4}, 400))
    return {"totals-many-managers": many, "totals-heap-overlap": heap,
            "totals-by-protect": protect}


# The reasons (and the managers incomplete) the directed traces must show.
DIRECTED_FLAWS = {
    "dump-extremes": ([TOTALS_OUT, f"process 100: {TOTALS_OUT}",
                       f"process 100, manager 1: {TOTALS_OUT}"], {(100, 1)}),
    "heap-extremes": ([TOTALS_OUT, f"process 100: {TOTALS_OUT}",
                       f"process 100, manager 1: {TOTALS_OUT}"], {(100, 1)}),
    "totals-many-managers": ([TOTALS_OUT, f"process 100: {TOTALS_OUT}"], set()),
    "totals-heap-overlap": ([TOTALS_OUT, f"process 100: {TOTALS_OUT}",
                             f"process 100, manager 1: {TOTALS_OUT}"], {(100, 1)}),
    "totals-by-protect": ([TOTALS_OUT], set()),
}


def _extreme_clocks(case, how):
    """case's events on clocks at the ends of the signed 64-bit nanoseconds."""
    low = {"frequency": 1_000_000_000, "offset_s": -9 * 10**9}
    high = {"frequency": 1_000_000_000, "offset_s": 9 * 10**9}
    ev = _events(case)
    case["streams"] = {"low": [low], "high": [high], "both": [low, high]}[how]
    for n, i in enumerate(ev):
        case["messages"][i][1] = 1 if how == "both" and n >= len(ev) // 2 else 0


MODES = (("summary", {}), ("summary", {"max-details": 0}), ("timeline", {}),
         ("map", {"at": 2**63 - 1}), ("map", {"at": -(2**63)}), ("map", {"at": 45}),
         ("series", {"points": 1}), ("series", {"points": 7}), ("series", {}),
         ("perfetto", {"points": 1}), ("perfetto", {}))


def directed():
    """Hand-made cases, each in every mode: [(case, expectation)].

    Reservations, heap blocks and mappings at the top of the address space and with sizes
    that reach or pass 2^64; state dumps with such regions and blocks and counts of 2^64 - 1;
    byte totals past 2^64 - 1 (DIRECTED_FLAWS: the reasons they must give); and a clean run whose timestamps sit near either end of Babeltrace2's signed 64-bit
    nanoseconds, or at both ends, more than 2^63 ns apart.
    """
    bases = []
    for name, messages in _directed_traces().items():
        bases.append(({"name": name, "streams": [{}], "messages": messages}, None))
    for how in ("low", "high", "both"):
        case, exp = clean(3, ops=200)
        case["name"] = f"times-{how}"
        _extreme_clocks(case, how)
        bases.append((case, exp))
    out = []
    for base, exp in bases:
        for mode, params in MODES:
            case = copy.deepcopy(base)
            case["name"] = f"{base['name']}/{mode}{params or ''}"
            case["mode"], case["params"] = mode, dict(params)
            reasons, incomplete = DIRECTED_FLAWS.get(base["name"], ([], set()))
            e = copy.deepcopy(exp) if exp is not None else {
                "error": False, "exact": None, "check_exact": False, "procnames": True,
                "causes": [], "dump_causes": [], "reasons": list(reasons),
                "incomplete": set(incomplete), "clean": False, "monotonic": True}
            out.append((case, e))
    return out
