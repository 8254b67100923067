# SPDX-License-Identifier: MIT
"""The reference reconstruction, in plain Python.

This module implements the rules of analysis/README.md ("How the state is rebuilt") on its
own, for the tests to compare the Babeltrace2 plugin with. It favours being easy to read
over speed: states are immutable tuples copied on every change, and the whole trace is read
through ``bt2.TraceCollectionMessageIterator``.

Entry points, each producing the document of the plugin mode of the same name:
``summary(path, max_details)``, ``map_at(path, at_ns)``, ``timeline_rows(path)``,
``series(path, points)`` and ``perfetto(path, points)``.
"""

import collections
import math

from clrmemtrace.cli import UserError

PROVIDER_PREFIX = "clrmemtrace:"

MEM_COMMIT = 0x1000
MEM_RESERVE = 0x2000
MEM_DECOMMIT = 0x4000
MEM_RELEASE = 0x8000
MEM_FREE = 0x10000
MEM_PRIVATE = 0x20000
MEM_RESET = 0x80000

PAGE_EXECUTE_READWRITE = 0x40
PAGE_GUARD = 0x100
PAGE_NOCACHE = 0x200
PAGE_WRITECOMBINE = 0x400
PAGE_TARGETS_INVALID = 0x40000000
CACHE_BITS = PAGE_NOCACHE | PAGE_WRITECOMBINE
WRITABLE_NOT_EXECUTABLE = (0x04, 0x08)
EXECUTABLE = (0x10, 0x20, 0x40, 0x80)

S_OK = 0
ERROR_INVALID_ADDRESS_HR = -2147024409  # HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS)

DEFAULT_PAGE_SIZE = 4096
HISTORY = 256

ANOMALY_KINDS = (
    "rwx_commit",
    "w_to_x_flip",
    "free_unknown",
    "double_free",
    "commit_outside_reservation",
    "protect_uncommitted",
    "seq_regression",
)

# Events that are calls of an entry point (they carry `hr` and `duration_ns`).
CALL_EVENTS = (
    "virtual_alloc",
    "virtual_free",
    "virtual_protect",
    "virtual_query",
    "memory_load",
    "notification_register",
    "vas_needs",
    "vas_acquired",
    "vas_released",
    "malloc_create",
    "malloc_alloc",
    "malloc_free",
)
CHANGE_EVENTS = ("virtual_alloc", "virtual_free", "virtual_protect")

PROTECT_BASE_NAMES = {
    0x01: "PAGE_NOACCESS",
    0x02: "PAGE_READONLY",
    0x04: "PAGE_READWRITE",
    0x08: "PAGE_WRITECOPY",
    0x10: "PAGE_EXECUTE",
    0x20: "PAGE_EXECUTE_READ",
    0x40: "PAGE_EXECUTE_READWRITE",
    0x80: "PAGE_EXECUTE_WRITECOPY",
}
PROTECT_MODIFIER_NAMES = (
    (PAGE_GUARD, "PAGE_GUARD"),
    (PAGE_NOCACHE, "PAGE_NOCACHE"),
    (PAGE_WRITECOMBINE, "PAGE_WRITECOMBINE"),
)
STATE_NAMES = {MEM_COMMIT: "MEM_COMMIT", MEM_RESERVE: "MEM_RESERVE", MEM_FREE: "MEM_FREE"}
MEM_TYPE_NAMES = {0x20000: "MEM_PRIVATE", 0x40000: "MEM_MAPPED", 0x1000000: "MEM_IMAGE"}
LEVEL_NAMES = {0: "eTaskCritical", 1: "eAppDomainCritical", 2: "eProcessCritical"}
AVAILABLE_NAMES = {
    1: "eMemoryAvailableLow",
    2: "eMemoryAvailableNeutral",
    3: "eMemoryAvailableHigh",
}
HRESULT_NAMES = {
    0x00000000: "S_OK",
    0x00000001: "S_FALSE",
    0x80004001: "E_NOTIMPL",
    0x80004002: "E_NOINTERFACE",
    0x80004003: "E_POINTER",
    0x80004004: "E_ABORT",
    0x80004005: "E_FAIL",
    0x8000FFFF: "E_UNEXPECTED",
    0x80070005: "E_ACCESSDENIED",
    0x80070006: "E_HANDLE",
    0x8007000E: "E_OUTOFMEMORY",
    0x80070057: "E_INVALIDARG",
    0x80070008: "HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_MEMORY)",
    0x8007000C: "HRESULT_FROM_WIN32(ERROR_INVALID_ACCESS)",
    0x80070018: "HRESULT_FROM_WIN32(ERROR_BAD_LENGTH)",
    0x80070032: "HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED)",
    0x8007012B: "HRESULT_FROM_WIN32(ERROR_PARTIAL_COPY)",
    0x800701E7: "HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS)",
    0x800703E6: "HRESULT_FROM_WIN32(ERROR_NOACCESS)",
    0x8007054F: "HRESULT_FROM_WIN32(ERROR_INTERNAL_ERROR)",
    0x800705AF: "HRESULT_FROM_WIN32(ERROR_COMMITMENT_LIMIT)",
    0x80131020: "HOST_E_DEADLOCK",
    0x80131021: "HOST_E_INTERRUPTED",
    0x80131022: "HOST_E_INVALIDOPERATION",
    0x80131023: "HOST_E_CLRNOTAVAILABLE",
    0x80131024: "HOST_E_TIMEOUT",
    0x80131025: "HOST_E_NOT_OWNER",
    0x80131026: "HOST_E_ABANDONED",
}


# ---------------------------------------------------------------- names


def protect_name(value):
    """A protection's name: ``PAGE_READWRITE``, ``PAGE_EXECUTE_READ|PAGE_GUARD``, ``0``."""
    if value == 0:
        return "0"
    base = PROTECT_BASE_NAMES.get(value & 0xFF)
    rest = value & ~0xFF
    if base is None:
        return f"0x{value:x}"
    parts = [base]
    for bit, name in PROTECT_MODIFIER_NAMES:
        if rest & bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        return f"0x{value:x}"
    return "|".join(parts)


def state_name(value):
    """A page state's name (``MEM_COMMIT``, ``MEM_RESERVE``, ``MEM_FREE``), else its number."""
    return STATE_NAMES.get(value, str(value))


def mem_type_name(value):
    """A memory type's name (``MEM_PRIVATE``, ...), else its number."""
    return MEM_TYPE_NAMES.get(value, str(value))


def level_name(value):
    """An EMemoryCriticalLevel's name, else its number."""
    return LEVEL_NAMES.get(value, str(value))


def available_name(value):
    """An EMemoryAvailable's name, else its number."""
    return AVAILABLE_NAMES.get(value, str(value))


def hr_name(value):
    """An HRESULT's name (``S_OK``, ``E_OUTOFMEMORY``, ...), else ``0x8007xxxx``."""
    unsigned = value & 0xFFFFFFFF
    return HRESULT_NAMES.get(unsigned, f"0x{unsigned:08X}")


# ---------------------------------------------------------------- page runs


def set_pages(runs, start, end, state, protect):
    """``runs`` (sorted ``(start, end, state, protect)`` tuples) with [start, end) set."""
    pieces = []
    for r_start, r_end, r_state, r_protect in runs:
        if r_end <= start or r_start >= end:
            pieces.append((r_start, r_end, r_state, r_protect))
            continue
        if r_start < start:
            pieces.append((r_start, start, r_state, r_protect))
        if r_end > end:
            pieces.append((end, r_end, r_state, r_protect))
    pieces.append((start, end, state, protect))
    pieces.sort()
    merged = []
    for piece in pieces:
        if merged and merged[-1][1] == piece[0] and merged[-1][2:] == piece[2:]:
            merged[-1] = (merged[-1][0], piece[1]) + piece[2:]
        else:
            merged.append(piece)
    return tuple(merged)


class Reservation(collections.namedtuple("Reservation", "base end aprot runs time_ns tid level")):
    """One reservation: [base, end), its allocation protection and its runs of pages.

    A run's protection is the page's own (``protect & 0xff`` plus ``PAGE_GUARD``); what a
    query reports for a committed page adds the reservation's cache bits (``reported``).
    ``time_ns``, ``tid`` and ``level`` say where it came from (the reserving call, or the
    state dump that showed it: tid 0, level "").
    """

    __slots__ = ()

    def reported(self, run):
        """The protection a query reports for ``run``."""
        if run[2] != MEM_COMMIT:
            return 0
        return run[3] | (self.aprot & CACHE_BITS)

    def run_at(self, address):
        """The run holding ``address``."""
        for run in self.runs:
            if run[0] <= address < run[1]:
                return run
        return None

    def committed(self):
        """Committed bytes."""
        return sum(r[1] - r[0] for r in self.runs if r[2] == MEM_COMMIT)

    def with_pages(self, start, end, state, protect):
        """This reservation with [start, end) (clipped to it) set."""
        start, end = max(start, self.base), min(end, self.end)
        if start >= end:
            return self
        return self._replace(runs=set_pages(self.runs, start, end, state, protect))


def holding(state, address):
    """The reservation of ``state`` (a dict base -> Reservation) holding ``address``."""
    for reservation in state.values():
        if reservation.base <= address < reservation.end:
            return reservation
    return None


def page_protect(protect):
    """A page's own protection from a call's ``protect``."""
    return (protect & 0xFF) | (protect & PAGE_GUARD)


# ---------------------------------------------------------------- model


class Figures:
    """Byte figures and counts of one manager, or of the whole trace."""

    def __init__(self):
        self.reserved = 0
        self.committed = 0
        self.peak_reserved = 0
        self.peak_committed = 0
        self.live_regions = 0
        self.by_protect = collections.Counter()
        self.calls = collections.Counter()
        self.failed_calls = 0
        self.heaps = 0
        self.allocs = 0
        self.frees = 0
        self.live_bytes = 0
        self.live_blocks = 0
        self.peak_live_bytes = 0

    def note_peaks(self):
        self.peak_reserved = max(self.peak_reserved, self.reserved)
        self.peak_committed = max(self.peak_committed, self.committed)
        self.peak_live_bytes = max(self.peak_live_bytes, self.live_bytes)

    def virtual_document(self):
        return {
            "peak_reserved_bytes": self.peak_reserved,
            "peak_committed_bytes": self.peak_committed,
            "final_reserved_bytes": self.reserved,
            "final_committed_bytes": self.committed,
            "live_regions": self.live_regions,
            "committed_by_protect": {k: v for k, v in sorted(self.by_protect.items()) if v},
            "calls": dict(sorted(self.calls.items())),
            "failed_calls": self.failed_calls,
        }

    def malloc_document(self):
        return {
            "heaps": self.heaps,
            "allocs": self.allocs,
            "frees": self.frees,
            "peak_live_bytes": self.peak_live_bytes,
            "final_live_bytes": self.live_bytes,
            "live_blocks": self.live_blocks,
        }


Block = collections.namedtuple("Block", "size file line level tid time_ns")


class Heap:
    """One heap's live blocks (ptr -> Block) and freed pointers."""

    def __init__(self, heap_id, known):
        self.heap_id = heap_id
        self.known = known  # contents known (created or dumped while traced)
        self.ever_unknown = not known
        self.live = {}
        self.freed = set()
        self.destroyed = False
        self.seen_in_dump = False

    def live_bytes(self):
        return sum(b.size for b in self.live.values())


class Dump:
    """A state dump of one manager being read."""

    def __init__(self, seq, time_ns):
        self.seq = seq
        self.time_ns = time_ns
        self.regions = []
        self.heaps = {}
        self.touched = {}  # (heap_id, ptr) -> Block, or None for a free
        self.created = set()


class Manager:
    """What is known of one manager of one process."""

    def __init__(self, vpid, manager_id, time_ns, known):
        self.vpid = vpid
        self.manager_id = manager_id
        self.name = ""
        self.page_size = DEFAULT_PAGE_SIZE
        self.known = known
        self.seq = 0 if known else None
        self.last_seq = self.seq
        self.state = {}
        self.history = collections.OrderedDict()
        if known:
            self.history[0] = self.state
        self.pending = []
        self.windows = [] if known else [[time_ns, None]]
        self.released = set()
        self.heaps = {}
        self.dump = None
        self.figures = Figures()
        self.destroyed = False

    def page_down(self, address):
        return address - address % self.page_size

    def page_up(self, address):
        return -(-address // self.page_size) * self.page_size

    def complete(self):
        return not self.windows and not any(h.ever_unknown for h in self.heaps.values())


class Reconstruction:
    """Replays a trace's clrmemtrace events; ``stop_ns`` ends the replay early (map)."""

    def __init__(self, max_details=1000, stop_ns=None, series_points=None):
        self.max_details = max_details
        self.stop_ns = stop_ns
        self.managers = {}
        self.procnames = {}
        self.totals = Figures()
        self.events = 0
        self.discarded = 0
        self.discard_notices = 0
        self.begin_ns = None
        self.end_ns = None
        self.now = 0
        self.checked = 0
        self.mismatches = 0
        self.unverifiable = 0
        self.mismatch_details = []
        self.anomalies = []
        self.anomaly_counts = collections.Counter({k: 0 for k in ANOMALY_KINDS})
        self.failures = []
        self.latency = collections.defaultdict(list)
        self.memory_load = []
        self.notifications = []
        self.leaked_regions = []
        self.leaked_blocks = []
        self.timeline = []
        self.reasons = []
        self.series = Series(series_points) if series_points else None

    # ------------------------------------------------------------ reading

    def read(self, path):
        """Replay the trace at ``path``."""
        import bt2
        from clrmemtrace.engine import bt2_error_message, ctf_source_spec

        try:
            iterator = bt2.TraceCollectionMessageIterator([ctf_source_spec(bt2, path)])
            for message in iterator:
                kind = type(message)
                if kind is bt2._EventMessageConst:
                    time_ns = message.default_clock_snapshot.ns_from_origin
                    if self.stop_ns is not None and time_ns > self.stop_ns:
                        break
                    self.on_event(message.event, time_ns)
                elif kind is bt2._DiscardedEventsMessageConst:
                    time_ns = self.now
                    if message.stream.cls.discarded_events_have_default_clock_snapshots:
                        time_ns = message.beginning_default_clock_snapshot.ns_from_origin
                    if self.stop_ns is not None and time_ns > self.stop_ns:
                        break
                    self.on_discarded(message.count, time_ns)
        except bt2._Error as e:
            raise UserError(f"{path}: {bt2_error_message(e)}", 3) from None
        if self.events == 0 and self.stop_ns is None:
            raise UserError(f"{path}: the trace holds no clrmemtrace events", 4)
        self.finish()
        return self

    def on_event(self, event, time_ns):
        name = str(event.name)
        if not name.startswith(PROVIDER_PREFIX):
            return
        name = name[len(PROVIDER_PREFIX) :]
        fields = {}
        for key, field in event.payload_field.items():
            fields[key] = _plain(field)
        context = event.common_context_field
        vpid = _context(context, "vpid", 0)
        tid = _context(context, "vtid", 0)
        procname = _context(context, "procname", "")
        if procname and vpid not in self.procnames:
            self.procnames[vpid] = procname
        self.events += 1
        if self.begin_ns is None:
            self.begin_ns = time_ns
        self.end_ns = time_ns
        self.now = time_ns
        if name == "malloc_alloc" and fields.get("line", 0) == 0:
            # Babeltrace2 2.0 keeps an empty string field's previous value: Alloc's "" file
            # can read back as an earlier DebugAlloc's. Alloc is the call with line 0.
            fields["file"] = ""
        self.dispatch(name, fields, time_ns, vpid, tid)
        self.after_event(time_ns)

    def on_discarded(self, count, time_ns):
        self.discarded += count or 0
        self.discard_notices += 1
        self.now = max(self.now, time_ns)
        for manager in self.managers.values():
            if not manager.destroyed:
                self.make_unknown(manager, time_ns)
                for heap in manager.heaps.values():
                    heap.known = False
                    heap.ever_unknown = True

    # ------------------------------------------------------------ helpers

    def manager(self, vpid, manager_id, time_ns, event):
        key = (vpid, manager_id)
        manager = self.managers.get(key)
        if manager is None:
            known = event == "manager_create"
            manager = Manager(vpid, manager_id, time_ns, known)
            if event == "statedump_begin":
                manager.windows = []
            self.managers[key] = manager
        return manager

    def heap(self, manager, heap_id, event):
        heap = manager.heaps.get(heap_id)
        if heap is None:
            known = event in ("malloc_create", "statedump_heap")
            heap = Heap(heap_id, known)
            heap.seen_in_dump = manager.dump is not None
            manager.heaps[heap_id] = heap
            manager.figures.heaps += 1
            self.totals.heaps += 1
        return heap

    def make_unknown(self, manager, time_ns):
        if manager.known:
            manager.known = False
            manager.windows.append([time_ns, None])
        for query in manager.pending:
            self.unverifiable += 1
        manager.pending = []
        manager.history = collections.OrderedDict()

    def make_known(self, manager, time_ns):
        if not manager.known:
            manager.known = True
            if manager.windows and manager.windows[-1][1] is None:
                manager.windows[-1][1] = time_ns

    def add_detail(self, records, record):
        if len(records) < self.max_details:
            records.append(record)

    def anomaly(self, kind, time_ns, vpid, tid, manager_id, addr, size, detail):
        self.anomaly_counts[kind] += 1
        self.add_detail(
            self.anomalies,
            {
                "kind": kind,
                "time_ns": time_ns,
                "vpid": vpid,
                "tid": tid,
                "manager_id": manager_id,
                "addr": addr,
                "size": size,
                "detail": detail,
            },
        )

    def timeline_row(self, time_ns, vpid, tid, manager_id, op, base, address, size, **rest):
        row = {
            "time_ns": time_ns,
            "vpid": vpid,
            "tid": tid,
            "manager_id": manager_id,
            "op": op,
            "allocation_base": base,
            "address": address,
            "size": size,
            "protect": rest.get("protect", ""),
            "old_protect": rest.get("old_protect", ""),
            "level": rest.get("level", ""),
            "hr": rest.get("hr", ""),
            "seq": rest.get("seq", 0),
        }
        self.timeline.append(row)

    # ------------------------------------------------------------ events

    def dispatch(self, name, f, time_ns, vpid, tid):
        manager = self.manager(vpid, f["manager_id"], time_ns, name)
        if name in CALL_EVENTS:
            self.count_call(manager, name, f, time_ns, vpid, tid)
        if "duration_ns" in f and f["duration_ns"]:
            self.latency[name].append(f["duration_ns"])
        handler = getattr(self, "on_" + name, None)
        if handler is not None:
            handler(manager, f, time_ns, tid)

    def count_call(self, manager, name, f, time_ns, vpid, tid):
        manager.figures.calls[name] += 1
        self.totals.calls[name] += 1
        if f["hr"] == S_OK:
            return
        manager.figures.failed_calls += 1
        self.totals.failed_calls += 1
        self.add_detail(
            self.failures,
            {
                "time_ns": time_ns,
                "vpid": vpid,
                "tid": tid,
                "manager_id": manager.manager_id,
                "event": name,
                "hr": hr_name(f["hr"]),
                "hr_value": f["hr"],
                "addr": f.get("address", f.get("ptr", 0)),
                "size": f.get("size", f.get("length", 0)),
            },
        )

    def on_manager_create(self, manager, f, time_ns, tid):
        manager.name = f["name"]
        if f["page_size"]:
            manager.page_size = f["page_size"]

    def on_manager_destroy(self, manager, f, time_ns, tid):
        if manager.known:
            for reservation in manager.state.values():
                self.leak_region(manager, reservation)
        for heap in manager.heaps.values():
            if not heap.destroyed:
                self.leak_heap(manager, heap)
                heap.destroyed = True
                heap.live = {}
        if manager.known:
            self.set_state(manager, {})
        manager.destroyed = True
        manager.destroyed_ns = time_ns

    def on_memory_load(self, manager, f, time_ns, tid):
        if f["hr"] == S_OK:
            self.memory_load.append(
                {
                    "time_ns": time_ns,
                    "vpid": manager.vpid,
                    "load": f["load"],
                    "available": f["available"],
                }
            )

    def on_memory_notification(self, manager, f, time_ns, tid):
        level = available_name(f["level"])
        if self.series:
            self.series.notifications.append([time_ns, level])
        self.add_detail(
            self.notifications,
            {
                "time_ns": time_ns,
                "vpid": manager.vpid,
                "manager_id": manager.manager_id,
                "level": level,
                "hr": hr_name(f["hr"]),
                "load": f["load"],
                "reason": f["reason"],
            },
        )

    # ---- virtual memory

    def on_virtual_alloc(self, manager, f, time_ns, tid):
        address, size, kind, protect = f["address"], f["size"], f["type"], f["protect"]
        commit_only = not kind & (MEM_RESERVE | MEM_RESET) and address != 0
        if f["hr"] != S_OK:
            if commit_only and kind & MEM_COMMIT and f["hr"] == ERROR_INVALID_ADDRESS_HR:
                self.anomaly(
                    "commit_outside_reservation",
                    time_ns,
                    manager.vpid,
                    tid,
                    manager.manager_id,
                    address,
                    size,
                    f"commit of {size} bytes that no reservation holds",
                )
            return
        level = level_name(f["level"])
        if kind & MEM_COMMIT and protect & 0xFF == PAGE_EXECUTE_READWRITE:
            self.anomaly(
                "rwx_commit",
                time_ns,
                manager.vpid,
                tid,
                manager.manager_id,
                f["result"],
                size,
                f"{'commit' if commit_only else 'reserve and commit'} with "
                f"{protect_name(protect)}",
            )
        common = dict(protect=protect_name(protect), level=level, hr="S_OK", seq=f["seq"])
        if kind & MEM_RESET:
            start = manager.page_down(address)
            end = manager.page_up(address + size)
            owner = holding(manager.state, start) if manager.known else None
            self.timeline_row(
                time_ns,
                manager.vpid,
                tid,
                manager.manager_id,
                "reset",
                owner.base if owner else 0,
                start,
                end - start,
                **common,
            )
            self.change(manager, f["seq"], time_ns, None)
            return
        if kind & MEM_RESERVE or address == 0:
            base = f["result"]
            end = manager.page_up(address + size) if address else base + manager.page_up(size)
            committed = bool(kind & MEM_COMMIT)
            op = "reserve_commit" if committed else "reserve"
            self.timeline_row(
                time_ns,
                manager.vpid,
                tid,
                manager.manager_id,
                op,
                base,
                base,
                end - base,
                **common,
            )

            def apply(state):
                runs = ((base, end, MEM_RESERVE, 0),)
                if committed:
                    runs = ((base, end, MEM_COMMIT, page_protect(protect)),)
                aprot = protect & ~PAGE_TARGETS_INVALID
                state = dict(state)
                state[base] = Reservation(base, end, aprot, runs, time_ns, tid, level)
                manager.released.discard(base)
                return state

            self.change(manager, f["seq"], time_ns, apply)
            return
        start = manager.page_down(address)
        end = manager.page_up(address + size)
        owner = holding(manager.state, start) if manager.known else None
        self.timeline_row(
            time_ns,
            manager.vpid,
            tid,
            manager.manager_id,
            "commit",
            owner.base if owner else 0,
            start,
            end - start,
            **common,
        )
        self.change(
            manager,
            f["seq"],
            time_ns,
            lambda state: _set_range(state, start, end, MEM_COMMIT, page_protect(protect)),
        )

    def on_virtual_free(self, manager, f, time_ns, tid):
        address, size, kind = f["address"], f["size"], f["type"]
        start = manager.page_down(address)
        owner = holding(manager.state, start) if manager.known else None
        if f["hr"] != S_OK:
            if kind == MEM_RELEASE and manager.known and owner is None and address:
                if start in manager.released:
                    self.anomaly(
                        "double_free",
                        time_ns,
                        manager.vpid,
                        tid,
                        manager.manager_id,
                        address,
                        size,
                        "MEM_RELEASE of a reservation already released",
                    )
                else:
                    self.anomaly(
                        "free_unknown",
                        time_ns,
                        manager.vpid,
                        tid,
                        manager.manager_id,
                        address,
                        size,
                        "MEM_RELEASE of an address never reserved",
                    )
            return
        common = dict(hr="S_OK", seq=f["seq"])
        if kind == MEM_RELEASE:
            length = owner.end - owner.base if owner else size
            self.timeline_row(
                time_ns,
                manager.vpid,
                tid,
                manager.manager_id,
                "release",
                owner.base if owner else start,
                start,
                length,
                **common,
            )

            def release(state):
                state = dict(state)
                state.pop(start, None)
                manager.released.add(start)
                return state

            self.change(manager, f["seq"], time_ns, release)
            return
        if size == 0:
            if owner is not None:
                start, end = owner.base, owner.end
            else:
                end = start
        else:
            end = manager.page_up(address + size)
        self.timeline_row(
            time_ns,
            manager.vpid,
            tid,
            manager.manager_id,
            "decommit",
            owner.base if owner else 0,
            start,
            end - start,
            **common,
        )
        self.change(
            manager, f["seq"], time_ns, lambda state: _set_range(state, start, end, MEM_RESERVE, 0)
        )

    def on_virtual_protect(self, manager, f, time_ns, tid):
        address, size, protect = f["address"], f["size"], f["protect"]
        start = manager.page_down(address)
        end = manager.page_up(address + size)
        owner = holding(manager.state, start) if manager.known else None
        if f["hr"] != S_OK:
            if f["hr"] == ERROR_INVALID_ADDRESS_HR and owner is not None:
                self.anomaly(
                    "protect_uncommitted",
                    time_ns,
                    manager.vpid,
                    tid,
                    manager.manager_id,
                    address,
                    size,
                    f"{protect_name(protect)} on pages that are not committed",
                )
            return
        old = f["old_protect"]
        if old & 0xFF in WRITABLE_NOT_EXECUTABLE and protect & 0xFF in EXECUTABLE:
            self.anomaly(
                "w_to_x_flip",
                time_ns,
                manager.vpid,
                tid,
                manager.manager_id,
                address,
                size,
                f"{protect_name(old)} -> {protect_name(protect)}",
            )
        self.timeline_row(
            time_ns,
            manager.vpid,
            tid,
            manager.manager_id,
            "protect",
            owner.base if owner else 0,
            start,
            end - start,
            protect=protect_name(protect),
            old_protect=protect_name(old),
            hr="S_OK",
            seq=f["seq"],
        )
        self.change(
            manager,
            f["seq"],
            time_ns,
            lambda state: _set_range(state, start, end, MEM_COMMIT, page_protect(protect)),
        )

    def change(self, manager, seq, time_ns, apply):
        """A successful change event numbered ``seq``; ``apply`` maps the old state to the new."""
        last = manager.last_seq
        manager.last_seq = seq
        if last is not None and seq < last:
            self.anomaly(
                "seq_regression",
                time_ns,
                manager.vpid,
                0,
                manager.manager_id,
                0,
                0,
                f"seq {seq} after {last}",
            )
            self.make_unknown(manager, time_ns)
            return
        if not manager.known:
            return
        if seq not in (manager.seq, manager.seq + 1):
            self.make_unknown(manager, time_ns)
            return
        state = apply(manager.state) if apply else manager.state
        manager.seq = seq
        self.set_state(manager, state)
        manager.history[seq] = state
        manager.history.move_to_end(seq)
        while len(manager.history) > HISTORY + 1:
            manager.history.popitem(last=False)
        self.run_pending(manager)

    def set_state(self, manager, state):
        """Make ``state`` the manager's and update the byte figures."""
        old = manager.figures
        reserved = sum(r.end - r.base for r in state.values())
        committed = sum(r.committed() for r in state.values())
        by_protect = collections.Counter()
        for reservation in state.values():
            for run in reservation.runs:
                if run[2] == MEM_COMMIT:
                    by_protect[protect_name(reservation.reported(run))] += run[1] - run[0]
        self.totals.reserved += reserved - old.reserved
        self.totals.committed += committed - old.committed
        self.totals.live_regions += len(state) - old.live_regions
        self.totals.by_protect.subtract(old.by_protect)
        self.totals.by_protect.update(by_protect)
        old.reserved, old.committed, old.live_regions = reserved, committed, len(state)
        old.by_protect = by_protect
        if self.series:
            self.series.spans_update(manager, manager.state, state, self.now)
        manager.state = state

    # ---- queries

    def on_virtual_query(self, manager, f, time_ns, tid):
        if f["hr"] != S_OK:
            return
        query = dict(f, time_ns=time_ns)
        if not manager.known or f["seq_before"] > f["seq_after"]:
            self.unverifiable += 1
        elif f["seq_after"] > manager.seq:
            manager.pending.append(query)
        else:
            self.evaluate(manager, query)

    def run_pending(self, manager):
        waiting = []
        for query in manager.pending:
            if query["seq_after"] <= manager.seq:
                self.evaluate(manager, query)
            else:
                waiting.append(query)
        manager.pending = waiting

    def evaluate(self, manager, query):
        states = [
            manager.history.get(s) for s in range(query["seq_before"], query["seq_after"] + 1)
        ]
        if any(state is None for state in states):
            self.unverifiable += 1
            return
        self.checked += 1
        if any(query_matches(manager, state, query) for state in states):
            return
        self.mismatches += 1
        self.add_detail(
            self.mismatch_details,
            {
                "time_ns": query["time_ns"],
                "vpid": manager.vpid,
                "manager_id": manager.manager_id,
                "address": query["address"],
                "got": query_answer(query),
                "expected": expected_answer(manager, states[-1], query),
            },
        )

    # ---- heaps

    def on_malloc_create(self, manager, f, time_ns, tid):
        if f["hr"] == S_OK:
            heap = self.heap(manager, f["heap_id"], "malloc_create")
            heap.known = True
            if manager.dump is not None:
                manager.dump.created.add(f["heap_id"])

    def on_malloc_alloc(self, manager, f, time_ns, tid):
        if f["hr"] != S_OK:
            return
        heap = self.heap(manager, f["heap_id"], "malloc_alloc")
        block = Block(f["size"], f["file"], f["line"], level_name(f["level"]), tid, time_ns)
        self.totals.allocs += 1
        manager.figures.allocs += 1
        self.put_block(manager, heap, f["ptr"], block)
        if manager.dump is not None:
            manager.dump.touched[(heap.heap_id, f["ptr"])] = block

    def on_malloc_free(self, manager, f, time_ns, tid):
        heap = self.heap(manager, f["heap_id"], "malloc_free")
        ptr = f["ptr"]
        if f["hr"] != S_OK:
            if ptr in heap.freed:
                self.anomaly(
                    "double_free",
                    time_ns,
                    manager.vpid,
                    tid,
                    manager.manager_id,
                    ptr,
                    0,
                    f"heap {heap.heap_id}: block already freed",
                )
            elif heap.known and ptr not in heap.live:
                self.anomaly(
                    "free_unknown",
                    time_ns,
                    manager.vpid,
                    tid,
                    manager.manager_id,
                    ptr,
                    0,
                    f"heap {heap.heap_id}: pointer this heap never handed out",
                )
            return
        self.totals.frees += 1
        manager.figures.frees += 1
        if ptr:
            self.put_block(manager, heap, ptr, None)
            heap.freed.add(ptr)
            if manager.dump is not None:
                manager.dump.touched[(heap.heap_id, ptr)] = None

    def on_malloc_destroy(self, manager, f, time_ns, tid):
        heap = self.heap(manager, f["heap_id"], "malloc_destroy")
        self.leak_heap(manager, heap)
        for ptr in list(heap.live):
            self.put_block(manager, heap, ptr, None)
        heap.destroyed = True

    def put_block(self, manager, heap, ptr, block):
        """Set (or, with None, remove) a live block and update the heap figures."""
        old = heap.live.pop(ptr, None)
        delta_bytes = -(old.size if old else 0)
        delta_blocks = -1 if old else 0
        if block is not None:
            heap.live[ptr] = block
            heap.freed.discard(ptr)
            delta_bytes += block.size
            delta_blocks += 1
        for figures in (manager.figures, self.totals):
            figures.live_bytes += delta_bytes
            figures.live_blocks += delta_blocks

    # ---- state dumps

    def on_statedump_begin(self, manager, f, time_ns, tid):
        if f["name"] and not manager.name:
            manager.name = f["name"]
        manager.dump = Dump(f["seq"], time_ns)

    def on_statedump_region(self, manager, f, time_ns, tid):
        if manager.dump is not None:
            manager.dump.regions.append(dict(f, time_ns=time_ns, tid=tid))

    def on_statedump_heap(self, manager, f, time_ns, tid):
        if manager.dump is not None:
            manager.dump.heaps[f["heap_id"]] = {}

    def on_statedump_block(self, manager, f, time_ns, tid):
        if manager.dump is not None:
            manager.dump.heaps.setdefault(f["heap_id"], {})[f["ptr"]] = f["size"]

    def on_statedump_end(self, manager, f, time_ns, tid):
        dump = manager.dump
        manager.dump = None
        if dump is None:
            return
        seq = f["seq"]
        previous = manager.state
        state = {}
        for region in dump.regions:
            base = region["allocation_base"]
            start, end = region["base"], region["base"] + region["size"]
            if region["state"] == MEM_COMMIT:
                run = (start, end, MEM_COMMIT, region["protect"] & ~CACHE_BITS)
            else:
                run = (start, end, MEM_RESERVE, 0)
            reservation = state.get(base)
            if reservation is None:
                before = previous.get(base)
                if before is not None:
                    origin = (before.time_ns, before.tid, before.level)
                else:
                    origin = (dump.time_ns, 0, "")
                aprot = region["allocation_protect"] & ~PAGE_TARGETS_INVALID
                reservation = Reservation(base, end, aprot, (), *origin)
            reservation = reservation._replace(
                end=max(reservation.end, end), runs=set_pages(reservation.runs, *run)
            )
            state[base] = reservation
            self.timeline_row(
                region["time_ns"],
                manager.vpid,
                region["tid"],
                manager.manager_id,
                "statedump",
                base,
                start,
                end - start,
                protect=protect_name(reservation.reported(run)),
                seq=seq,
            )
        was_known = manager.known and manager.seq == seq
        self.make_known(manager, time_ns)
        manager.seq = manager.last_seq = seq
        if not was_known:
            manager.history = collections.OrderedDict()
        self.set_state(manager, state)
        manager.history[seq] = state
        manager.history.move_to_end(seq)
        self.dump_heaps(manager, dump)
        self.run_pending(manager)

    def dump_heaps(self, manager, dump):
        for heap_id, heap in manager.heaps.items():
            if heap_id not in dump.heaps and heap_id not in dump.created and not heap.destroyed:
                for ptr in list(heap.live):
                    self.put_block(manager, heap, ptr, None)
                heap.destroyed = True
        for heap_id, blocks in dump.heaps.items():
            heap = self.heap(manager, heap_id, "statedump_heap")
            live = {}
            for ptr, size in blocks.items():
                old = heap.live.get(ptr)
                if old is not None and old.size == size:
                    live[ptr] = old
                else:
                    live[ptr] = Block(size, "", 0, "", 0, dump.time_ns)
            for (touched_heap, ptr), block in dump.touched.items():
                if touched_heap != heap_id:
                    continue
                if block is None:
                    live.pop(ptr, None)
                else:
                    live[ptr] = block
            for ptr in list(heap.live):
                if ptr not in live:
                    self.put_block(manager, heap, ptr, None)
            for ptr, block in live.items():
                self.put_block(manager, heap, ptr, block)
            heap.known = True
            heap.destroyed = False
            if heap.seen_in_dump:
                heap.ever_unknown = False
                heap.seen_in_dump = False

    # ---- leaks

    def leak_region(self, manager, reservation):
        self.leaked_regions.append(
            {
                "vpid": manager.vpid,
                "manager_id": manager.manager_id,
                "base": reservation.base,
                "size": reservation.end - reservation.base,
                "committed_bytes": reservation.committed(),
                "allocation_protect": protect_name(reservation.aprot),
                "time_ns": reservation.time_ns,
                "tid": reservation.tid,
                "level": reservation.level,
            }
        )

    def leak_heap(self, manager, heap):
        for block in heap.live.values():
            self.leaked_blocks.append((manager.vpid, manager.manager_id, heap.heap_id, block))

    # ------------------------------------------------------------ end

    def after_event(self, time_ns):
        for figures in [self.totals] + [m.figures for m in self.managers.values()]:
            figures.note_peaks()
        if self.series:
            self.series.sample(self, time_ns)

    def finish(self):
        end = self.stop_ns if self.stop_ns is not None else self.end_ns
        for manager in self.managers.values():
            self.unverifiable += len(manager.pending)
            manager.pending = []
            for window in manager.windows:
                if window[1] is None:
                    window[1] = end
        if self.stop_ns is None:
            for manager in self.managers.values():
                if manager.known and not manager.destroyed:
                    for reservation in manager.state.values():
                        self.leak_region(manager, reservation)
                for heap in manager.heaps.values():
                    if not heap.destroyed:
                        self.leak_heap(manager, heap)
        if self.series:
            self.series.finish(self, end)

    # ------------------------------------------------------------ documents

    def incomplete_reasons(self):
        reasons = []
        if self.discard_notices:
            reasons.append(f"{self.discarded} events discarded by the tracer")
        for (vpid, manager_id), manager in sorted(self.managers.items()):
            label = f"process {vpid} manager {manager_id}"
            if manager.windows:
                reasons.append(f"{label}: state unknown during {len(manager.windows)} window(s)")
            unknown = sorted(h.heap_id for h in manager.heaps.values() if h.ever_unknown)
            if unknown:
                reasons.append(f"{label}: contents of heap(s) {unknown} unknown")
        return reasons

    def summary_document(self):
        processes = []
        for vpid in sorted({vpid for vpid, _ in self.managers}):
            managers = []
            for (p, manager_id), manager in sorted(self.managers.items()):
                if p != vpid:
                    continue
                managers.append(
                    {
                        "manager_id": manager_id,
                        "name": manager.name,
                        "complete": manager.complete(),
                        "unknown_windows": [list(w) for w in manager.windows],
                        "virtual": manager.figures.virtual_document(),
                        "malloc": manager.figures.malloc_document(),
                    }
                )
            processes.append(
                {
                    "vpid": vpid,
                    "procname": self.procnames.get(vpid, ""),
                    "complete": all(m["complete"] for m in managers),
                    "managers": managers,
                }
            )
        reasons = self.incomplete_reasons()
        return {
            "format": "clrmemtrace-summary",
            "version": 1,
            "events": self.events,
            "discarded_events": self.discarded,
            "complete": not reasons,
            "incomplete_reasons": reasons,
            "begin_ns": self.begin_ns,
            "end_ns": self.end_ns,
            "processes": processes,
            "virtual": self.totals.virtual_document(),
            "malloc": self.totals.malloc_document(),
            "check": {
                "queries_checked": self.checked,
                "mismatches": self.mismatches,
                "unverifiable": self.unverifiable,
                "mismatch_details": self.mismatch_details,
            },
            "anomalies": self.anomalies,
            "anomaly_counts": dict(self.anomaly_counts),
            "failures": self.failures,
            "latency": {name: latency_document(v) for name, v in sorted(self.latency.items())},
            "memory_load": self.memory_load[: self.max_details],
            "notifications": self.notifications,
            "leaks": {"regions": self.regions_document(), "blocks": self.blocks_document()},
        }

    def regions_document(self):
        regions = sorted(
            self.leaked_regions,
            key=lambda r: (-r["size"], r["vpid"], r["manager_id"], r["base"]),
        )
        return regions[: self.max_details]

    def blocks_document(self):
        groups = {}
        for vpid, manager_id, heap_id, block in self.leaked_blocks:
            key = (vpid, manager_id, heap_id, block.file, block.line)
            group = groups.setdefault(key, [0, 0, 0])
            group[0] += 1
            group[1] += block.size
            group[2] = max(group[2], block.size)
        rows = [
            {
                "vpid": k[0],
                "manager_id": k[1],
                "heap_id": k[2],
                "file": k[3],
                "line": k[4],
                "blocks": g[0],
                "bytes": g[1],
                "largest": g[2],
            }
            for k, g in groups.items()
        ]
        rows.sort(
            key=lambda r: (
                -r["bytes"],
                r["vpid"],
                r["manager_id"],
                r["heap_id"],
                r["file"],
                r["line"],
            )
        )
        return rows[: self.max_details]

    def map_document(self, at_ns):
        processes = []
        for vpid in sorted({vpid for vpid, _ in self.managers}):
            managers = []
            for (p, manager_id), manager in sorted(self.managers.items()):
                if p != vpid or manager.destroyed:
                    continue
                regions = []
                if manager.known:
                    for base in sorted(manager.state):
                        reservation = manager.state[base]
                        for run in reservation.runs:
                            regions.append(
                                {
                                    "base": run[0],
                                    "allocation_base": base,
                                    "size": run[1] - run[0],
                                    "state": state_name(run[2]),
                                    "protect": protect_name(reservation.reported(run)),
                                    "allocation_protect": protect_name(reservation.aprot),
                                }
                            )
                heaps = [
                    {
                        "heap_id": heap_id,
                        "live_blocks": len(heap.live),
                        "live_bytes": heap.live_bytes(),
                    }
                    for heap_id, heap in sorted(manager.heaps.items())
                    if not heap.destroyed
                ]
                managers.append(
                    {
                        "manager_id": manager_id,
                        "name": manager.name,
                        "known": manager.known,
                        "regions": regions,
                        "heaps": heaps,
                    }
                )
            if managers:
                processes.append(
                    {"vpid": vpid, "procname": self.procnames.get(vpid, ""), "managers": managers}
                )
        return {"format": "clrmemtrace-map", "version": 1, "at_ns": at_ns, "processes": processes}


def _set_range(state, start, end, page_state, protect):
    """``state`` with [start, end) of the reservation holding ``start`` set."""
    owner = holding(state, start)
    if owner is None:
        return state
    state = dict(state)
    state[owner.base] = owner.with_pages(start, end, page_state, protect)
    return state


def _plain(field):
    """A bt2 field as a Python int, str or float."""
    import bt2

    if isinstance(field, bt2._StringFieldConst):
        return str(field)
    if isinstance(field, bt2._RealFieldConst):
        return float(field)
    return int(field)


def _context(context, name, default):
    if context is None or name not in context:
        return default
    value = context[name]
    return str(value) if isinstance(default, str) else int(value)


# ---------------------------------------------------------------- queries


QUERY_FIELDS = (
    "base",
    "allocation_base",
    "allocation_protect",
    "region_size",
    "state",
    "protect",
    "mem_type",
)


def query_answer(query):
    """The seven MEMORY_BASIC_INFORMATION fields of a traced query, named."""
    return {
        "base": query["base"],
        "allocation_base": query["allocation_base"],
        "allocation_protect": protect_name(query["allocation_protect"]),
        "region_size": query["region_size"],
        "state": state_name(query["state"]),
        "protect": protect_name(query["protect"]),
        "mem_type": mem_type_name(query["mem_type"]),
    }


def owned_answer(reservation, run, page):
    """What a query of ``page`` (in ``run`` of ``reservation``) must report, as integers."""
    return {
        "base": page,
        "allocation_base": reservation.base,
        "allocation_protect": reservation.aprot,
        "region_size": run[1] - page,
        "state": run[2],
        "protect": reservation.reported(run),
        "mem_type": MEM_PRIVATE,
    }


def query_matches(manager, state, query):
    """Whether a query's answer is right for the manager's ``state``."""
    page = manager.page_down(query["address"])
    owner = holding(state, page)
    if owner is not None:
        expected = owned_answer(owner, owner.run_at(page), page)
        return all(query[k] == v for k, v in expected.items())
    begin, end = query["base"], query["base"] + query["region_size"]
    return not any(r.base < end and begin < r.end for r in state.values())


def expected_answer(manager, state, query):
    """The answer the last state of a query's range called for, named like ``query_answer``."""
    page = manager.page_down(query["address"])
    owner = holding(state, page)
    if owner is None:
        begin, end = query["base"], query["base"] + query["region_size"]
        overlapping = sorted(r for r in state.values() if r.base < end and begin < r.end)
        if not overlapping:
            return {}
        owner = overlapping[0]
        page = owner.base
    answer = owned_answer(owner, owner.run_at(page), page)
    return query_answer(answer)


# ---------------------------------------------------------------- latency


def bucket(value):
    """The histogram bucket of a duration (16 buckets per power of two)."""
    if value < 16:
        return value
    e = value.bit_length() - 1
    return 16 + 16 * (e - 4) + ((value >> (e - 4)) & 15)


def bucket_upper(index):
    """The largest value of bucket ``index``."""
    if index < 16:
        return index
    e = (index - 16) // 16 + 4
    s = (index - 16) % 16
    return ((16 + s + 1) << (e - 4)) - 1


def latency_document(values):
    """Count, extremes, percentiles, mean and histogram of the durations ``values``."""
    counts = collections.Counter(bucket(v) for v in values)
    n = len(values)
    top = max(values)

    def percentile(p):
        need = math.ceil(p * n)
        seen = 0
        for index in sorted(counts):
            seen += counts[index]
            if seen >= need:
                return min(bucket_upper(index), top)
        return top

    return {
        "count": n,
        "min_ns": min(values),
        "p50_ns": percentile(0.50),
        "p90_ns": percentile(0.90),
        "p99_ns": percentile(0.99),
        "max_ns": top,
        "mean_ns": sum(values) / n,
        "histogram": [[bucket_upper(i), counts[i]] for i in sorted(counts)],
    }


# ---------------------------------------------------------------- series


class Series:
    """Counters over time and state spans, for the ``series`` and ``perfetto`` documents."""

    def __init__(self, points):
        self.points = points
        self.changes = collections.defaultdict(list)  # counter -> [(t, value)]
        self.per_process = collections.defaultdict(list)  # (vpid, counter) -> [(t, value)]
        self.notifications = []
        self.open_spans = {}  # (vpid, manager_id, start, end, state, protect) -> begin
        self.spans = []
        self.reservations = {}  # (vpid, manager_id, base) -> [begin, end, size]
        self.closed_reservations = []

    def _record(self, changes, time_ns, value):
        if changes and changes[-1][1] == value:
            return
        if changes and changes[-1][0] == time_ns:
            changes[-1] = (time_ns, value)
        else:
            changes.append((time_ns, value))

    def sample(self, reconstruction, time_ns):
        totals = reconstruction.totals
        self._record(self.changes["reserved_bytes"], time_ns, totals.reserved)
        self._record(self.changes["committed_bytes"], time_ns, totals.committed)
        self._record(self.changes["heap_live_bytes"], time_ns, totals.live_bytes)
        for name in set(totals.by_protect) | {
            k[len("protect:") :] for k in self.changes if k.startswith("protect:")
        }:
            self._record(self.changes["protect:" + name], time_ns, totals.by_protect[name])
        per_vpid = collections.defaultdict(lambda: [0, 0, 0])
        for (vpid, _), manager in reconstruction.managers.items():
            figures = per_vpid[vpid]
            figures[0] += manager.figures.reserved
            figures[1] += manager.figures.committed
            figures[2] += manager.figures.live_bytes
        for vpid, figures in per_vpid.items():
            for name, value in zip(("reserved", "committed", "heap live"), figures):
                self._record(self.per_process[(vpid, name)], time_ns, value)

    def spans_update(self, manager, old, new, time_ns):
        def runs(state):
            return {
                (manager.vpid, manager.manager_id, run[0], run[1], run[2], r.reported(run))
                for r in state.values()
                for run in r.runs
            }

        before, after = runs(old), runs(new)
        for key in before - after:
            begin = self.open_spans.pop(key, time_ns)
            self.spans.append((key, begin, time_ns))
        for key in after - before:
            self.open_spans[key] = time_ns
        for base in set(old) - set(new):
            key = (manager.vpid, manager.manager_id, base)
            if key in self.reservations:
                self.closed_reservations.append((key, *self.reservations.pop(key), time_ns))
        for base in set(new) - set(old):
            reservation = new[base]
            size = reservation.end - reservation.base
            self.reservations[(manager.vpid, manager.manager_id, base)] = [time_ns, size]

    def finish(self, reconstruction, end_ns):
        for key, begin in self.open_spans.items():
            self.spans.append((key, begin, end_ns))
        self.open_spans = {}
        for key, value in self.reservations.items():
            self.closed_reservations.append((key, *value, end_ns))
        self.reservations = {}

    def downsample(self, changes, begin_ns, end_ns):
        """At most ``points`` samples: ``[t, v]``, or ``[t, last, max]`` for a busy slice."""
        if len(changes) <= self.points:
            return [[t, v] for t, v in changes]
        width = max(1, -(-(end_ns - begin_ns + 1) // self.points))
        slices = collections.OrderedDict()
        for t, v in changes:
            index = (t - begin_ns) // width
            last_t, _, top = slices.get(index, (t, v, v))
            slices[index] = (t, v, max(top, v))
        samples = []
        for t, last, top in slices.values():
            samples.append([t, last] if last == top else [t, last, top])
        return samples

    def document(self, reconstruction):
        begin, end = reconstruction.begin_ns, reconstruction.end_ns
        by_protect = {
            name[len("protect:") :]: self.downsample(changes, begin, end)
            for name, changes in sorted(self.changes.items())
            if name.startswith("protect:")
        }
        spans = [
            {
                "vpid": key[0],
                "manager_id": key[1],
                "base": key[2],
                "size": key[3] - key[2],
                "begin_ns": b,
                "end_ns": e,
                "state": state_name(key[4]),
                "protect": protect_name(key[5]),
            }
            for key, b, e in self.spans
        ]
        spans.sort(
            key=lambda s: (
                -s["size"] * (s["end_ns"] - s["begin_ns"]),
                s["begin_ns"],
                s["vpid"],
                s["manager_id"],
                s["base"],
            )
        )
        failures = [[f["time_ns"], f["event"], f["hr"]] for f in reconstruction.failures]
        return {
            "format": "clrmemtrace-series",
            "version": 1,
            "begin_ns": begin,
            "end_ns": end,
            "counters": {
                "reserved_bytes": self.downsample(self.changes["reserved_bytes"], begin, end),
                "committed_bytes": self.downsample(self.changes["committed_bytes"], begin, end),
                "committed_by_protect": by_protect,
                "heap_live_bytes": self.downsample(self.changes["heap_live_bytes"], begin, end),
            },
            "failures": failures[: self.points],
            "notifications": self.notifications[: self.points],
            "spans": spans[: self.points],
        }

    def perfetto_document(self, reconstruction):
        begin, end = reconstruction.begin_ns, reconstruction.end_ns
        events = []
        for vpid in sorted({vpid for vpid, _ in reconstruction.managers}):
            name = reconstruction.procnames.get(vpid, "") or str(vpid)
            events.append(
                {
                    "ph": "M",
                    "name": "process_name",
                    "pid": vpid,
                    "tid": vpid,
                    "args": {"name": name},
                }
            )
        for (vpid, counter), changes in sorted(self.per_process.items()):
            for sample in self.downsample(changes, begin, end):
                events.append(
                    {
                        "name": f"{counter} bytes",
                        "ph": "C",
                        "ts": sample[0] / 1000.0,
                        "pid": vpid,
                        "args": {"value": sample[-1] if len(sample) == 3 else sample[1]},
                    }
                )
        for (vpid, manager_id, base), b, size, e in sorted(
            self.closed_reservations, key=lambda r: (r[1], r[0])
        ):
            common = {
                "name": f"reservation 0x{base:x}",
                "cat": "reservation",
                "id": f"0x{base:x}",
                "pid": vpid,
                "tid": vpid,
            }
            events.append(
                dict(common, ph="b", ts=b / 1000.0, args={"manager_id": manager_id, "size": size})
            )
            events.append(dict(common, ph="e", ts=e / 1000.0))
        return events


# ---------------------------------------------------------------- entry points


def summary(path, max_details=1000):
    """The summary document of the trace at ``path``."""
    return Reconstruction(max_details=max_details).read(path).summary_document()


def map_at(path, at_ns):
    """The map document at absolute time ``at_ns``."""
    return Reconstruction(stop_ns=at_ns).read(path).map_document(at_ns)


def timeline_rows(path):
    """The timeline rows (dicts keyed by the CSV's columns; addresses as integers)."""
    return Reconstruction().read(path).timeline


def series(path, points=2000):
    """The series document of the trace at ``path``."""
    reconstruction = Reconstruction(series_points=points).read(path)
    return reconstruction.series.document(reconstruction)


def perfetto(path, points=2000):
    """The Chrome trace-event list (Perfetto) of the trace at ``path``."""
    reconstruction = Reconstruction(series_points=points).read(path)
    return reconstruction.series.perfetto_document(reconstruction)
