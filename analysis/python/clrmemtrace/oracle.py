# SPDX-License-Identifier: MIT
"""The reference reconstruction, in plain Python.

This module implements the rules of analysis/README.md ("How the state is rebuilt", and
the details it lists for what they leave open) on its own, for the tests to compare the
Babeltrace2 plugin with. It favours being easy to read over speed: a manager's state is an
immutable dict of immutable reservations, replaced on every change, and the whole trace is
read through ``bt2.TraceCollectionMessageIterator``.

Entry points, each producing the document of the plugin mode of the same name:
``summary(path, max_details)``, ``map_at(path, at_ns)``, ``timeline_rows(path)``,
``series(path, points, max_details)`` and ``perfetto(path, points)``.
"""

import collections
import math

from clrmemtrace.cli import UserError
from clrmemtrace.oracle_os import OS_CALLS, OS_EVENT_MEMBERS, OS_PROVIDER_PREFIX, MmapView

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
PAGE_BITS = 0x1FF  # base protection and PAGE_GUARD
WRITABLE_NOT_EXECUTABLE = (0x04, 0x08)
EXECUTABLE = (0x10, 0x20, 0x40, 0x80)

S_OK = 0
HR_INVALID_ADDRESS = -2147024409  # HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS)

DEFAULT_PAGE_SIZE = 4096
ADDRESS_LIMIT = 1 << 64
HISTORY = 256  # changes kept to check queries against
MAX_WAITING = 4096  # queries of one manager waiting for changes
FORGET_AT = 65536  # freed pointers and released bases remembered
TOTAL_MAX = 2**64 - 1  # byte totals beyond it are shown saturated and flagged
TOTALS_OUT = "byte totals exceed 2^64 - 1: totals are not exact"

ANOMALY_KINDS = (
    "rwx_commit",
    "w_to_x_flip",
    "free_unknown",
    "double_free",
    "commit_outside_reservation",
    "protect_uncommitted",
    "seq_regression",
)

# The events with an `hr`: the calls `calls` counts.
CALL_EVENTS = (
    "virtual_alloc",
    "virtual_free",
    "virtual_protect",
    "virtual_query",
    "memory_load",
    "notification_register",
    "memory_notification",
    "vas_needs",
    "vas_acquired",
    "vas_released",
    "malloc_create",
    "malloc_alloc",
    "malloc_free",
) + OS_CALLS

# The members the analysis reads, per event (tracepoints/clrmemtrace_tp.h). An event lacking
# one is ignored (and makes the trace incomplete); events of other names are only counted.
EVENT_MEMBERS = {
    "manager_create": ("manager_id", "page_size", "name"),
    "manager_destroy": ("manager_id",),
    "virtual_alloc": (
        "manager_id", "address", "size", "type", "protect", "level", "result", "hr", "seq",
    ),
    "virtual_free": ("manager_id", "address", "size", "type", "hr", "seq"),
    "virtual_protect": ("manager_id", "address", "size", "protect", "old_protect", "hr", "seq"),
    "virtual_query": (
        "manager_id", "address", "length", "base", "allocation_base", "allocation_protect",
        "region_size", "state", "protect", "mem_type", "hr", "seq_before", "seq_after",
    ),
    "memory_load": ("manager_id", "load", "available", "hr"),
    "notification_register": ("manager_id", "hr"),
    "memory_notification": ("manager_id", "level", "hr", "load", "reason"),
    "vas_needs": ("manager_id", "address", "size", "hr"),
    "vas_acquired": ("manager_id", "address", "size", "hr"),
    "vas_released": ("manager_id", "address", "size", "hr"),
    "malloc_create": ("manager_id", "heap_id", "hr"),
    "malloc_alloc": ("manager_id", "heap_id", "size", "level", "ptr", "hr", "file", "line"),
    "malloc_free": ("manager_id", "heap_id", "ptr", "hr"),
    "malloc_destroy": ("manager_id", "heap_id"),
    "statedump_begin": ("manager_id", "seq", "name"),
    "statedump_region": (
        "manager_id", "base", "allocation_base", "size", "state", "protect", "allocation_protect",
    ),
    "statedump_vas": ("manager_id",),
    "statedump_heap": ("manager_id", "heap_id"),
    "statedump_block": ("manager_id", "heap_id", "ptr", "size"),
    "statedump_end": ("manager_id", "seq"),
}  # fmt: skip

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
STATE_NAMES = {0: "0", MEM_COMMIT: "MEM_COMMIT", MEM_RESERVE: "MEM_RESERVE", MEM_FREE: "MEM_FREE"}
MEM_TYPE_NAMES = {0: "0", 0x20000: "MEM_PRIVATE", 0x40000: "MEM_MAPPED", 0x1000000: "MEM_IMAGE"}
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
    """A protection's name: ``PAGE_READWRITE``, ``PAGE_EXECUTE_READ|PAGE_GUARD``, ``0``.

    A value whose base is not exactly one PAGE_* value, or with bits above 0x400, is
    written as its decimal number.
    """
    if value == 0:
        return "0"
    base = PROTECT_BASE_NAMES.get(value & 0xFF)
    if base is None or value & ~(0xFF | PAGE_GUARD | CACHE_BITS):
        return str(value)
    return base + "".join("|" + name for bit, name in PROTECT_MODIFIER_NAMES if value & bit)


def _named(names, value):
    return names.get(value, str(value))


def state_name(value):
    """A page state's name (``MEM_COMMIT``, ``MEM_RESERVE``, ``MEM_FREE``, ``0``)."""
    return _named(STATE_NAMES, value)


def mem_type_name(value):
    """A memory type's name (``MEM_PRIVATE``, ...)."""
    return _named(MEM_TYPE_NAMES, value)


def level_name(value):
    """An EMemoryCriticalLevel's name."""
    return _named(LEVEL_NAMES, value)


def available_name(value):
    """An EMemoryAvailable's name."""
    return _named(AVAILABLE_NAMES, value)


def hr_name(value):
    """An HRESULT's name (``S_OK``, ``E_OUTOFMEMORY``, ...), else its (signed) number."""
    return HRESULT_NAMES.get(value & 0xFFFFFFFF, str(value))


# ---------------------------------------------------------------- reservations


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
    if start < end:
        pieces.append((start, end, state, protect))
    pieces.sort()
    merged = []
    for piece in pieces:
        if merged and merged[-1][1] == piece[0] and merged[-1][2:] == piece[2:]:
            merged[-1] = (merged[-1][0], piece[1]) + piece[2:]
        else:
            merged.append(piece)
    return tuple(merged)


class Reservation(
    collections.namedtuple(
        "Reservation",
        "base end aprot runs time_ns tid level mem_type path cow ident",
        defaults=(MEM_PRIVATE, "", False, 0),
    )
):
    """One reservation: [base, end), its allocation protection and its runs of pages.

    A run's protection is the page's own (``protect & 0x1ff``); what a query reports for
    a committed page adds the reservation's cache modifiers (``reported``). ``time_ns``,
    ``tid`` and ``level`` tell where it came from: the reserving call, or the state dump
    that first showed it (level ""). A mapping of the mmap view (oracle_os.py) also has
    its memory type, file, whether it is copy-on-write, and the ``ident`` of its life;
    a manager's reservations keep the defaults.
    """

    __slots__ = ()

    def reported(self, run):
        """The protection a query reports for ``run``."""
        if run[2] != MEM_COMMIT:
            return 0
        return run[3] | (self.aprot & CACHE_BITS)

    def run_at(self, address):
        """The run holding ``address``."""
        return next(run for run in self.runs if run[0] <= address < run[1])

    def committed(self):
        """Committed bytes."""
        return sum(r[1] - r[0] for r in self.runs if r[2] == MEM_COMMIT)


def holding(state, address):
    """The reservation of ``state`` (a dict base -> Reservation) holding ``address``."""
    for reservation in state.values():
        if reservation.base <= address < reservation.end:
            return reservation
    return None


class Inconsistent(Exception):
    """A successful change the reconstructed state cannot take."""


def set_range(state, start, end, page_state, protect):
    """``state`` with the pages [start, end) of one reservation set; they must be in it."""
    owner = holding(state, start)
    if owner is None or end > owner.end or end < start:
        raise Inconsistent()
    state = dict(state)
    state[owner.base] = owner._replace(runs=set_pages(owner.runs, start, end, page_state, protect))
    return state


# ---------------------------------------------------------------- model


def shown(total):
    """A byte total as the documents show it: saturated to [0, 2^64 - 1] (README,
    "Completeness"); the plugin keeps 64-bit totals with their carries to the same effect."""
    return min(max(total, 0), TOTAL_MAX)


def out_of_range(total):
    return not 0 <= total <= TOTAL_MAX


class Figures:
    """Byte figures and counts of one manager, or of the whole trace."""

    def __init__(self):
        self.reserved = 0
        self.committed = 0
        self.peak_reserved = 0
        self.peak_committed = 0
        self.live_regions = 0
        self.by_protect = collections.Counter()
        self.calls = collections.Counter({name: 0 for name in CALL_EVENTS})
        self.failed_calls = 0
        self.heaps = 0
        self.allocs = 0
        self.frees = 0
        self.live_bytes = 0
        self.live_blocks = 0
        self.peak_live_bytes = 0

    def note_peaks(self):
        self.peak_reserved = max(self.peak_reserved, shown(self.reserved))
        self.peak_committed = max(self.peak_committed, shown(self.committed))
        self.peak_live_bytes = max(self.peak_live_bytes, shown(self.live_bytes))

    def virtual_document(self):
        return {
            "peak_reserved_bytes": self.peak_reserved,
            "peak_committed_bytes": self.peak_committed,
            "final_reserved_bytes": shown(self.reserved),
            "final_committed_bytes": shown(self.committed),
            "live_regions": self.live_regions,
            "committed_by_protect": {
                k: shown(v) for k, v in sorted(self.by_protect.items()) if shown(v)
            },
            "calls": {name: self.calls[name] for name in CALL_EVENTS},
            "failed_calls": self.failed_calls,
        }

    def malloc_document(self):
        return {
            "heaps": self.heaps,
            "allocs": self.allocs,
            "frees": self.frees,
            "peak_live_bytes": self.peak_live_bytes,
            "final_live_bytes": shown(self.live_bytes),
            "live_blocks": self.live_blocks,
        }


Block = collections.namedtuple("Block", "size file line")


class Forgetful(set):
    """A set of pointers that empties itself once it outgrows its bound."""

    def remember(self, value, live):
        self.add(value)
        if len(self) > max(FORGET_AT, 2 * live):
            self.clear()


class Heap:
    """One heap: its live blocks (ptr -> Block) and the pointers it freed."""

    def __init__(self, heap_id, known):
        self.heap_id = heap_id
        self.known = known  # contents known (created or dumped while traced)
        self.ever_unknown = not known
        self.live = {}
        self.freed = Forgetful()
        # Live blocks a dump listed that the state did not hold, with no event since: their
        # malloc_alloc may still come (EVENTS.md, "State dumps").
        self.unseen = set()
        self.dumped = False  # a dump of its manager listed it
        self.destroyed = False

    def live_bytes(self):
        return sum(b.size for b in self.live.values())


class Dump:
    """A state dump of one manager being read (``dropped`` when events were lost in it)."""

    def __init__(self, tid, seq):
        self.tid = tid
        self.seq = seq
        self.dropped = False
        self.regions = []
        self.heaps = {}  # heap_id -> {ptr: size}
        self.touched = {}  # (heap_id, ptr) -> Block, or None for a free
        self.created = set()
        self.destroyed = set()  # heaps released during the dump


class Manager:
    """What is known of one manager of one process."""

    def __init__(self, vpid, manager_id):
        self.vpid = vpid
        self.manager_id = manager_id
        self.name = ""
        self.page_size = DEFAULT_PAGE_SIZE
        self.known = False
        self.seq = None
        self.state = {}
        self.history = collections.OrderedDict()  # seq -> state
        self.pending = []
        self.windows = []
        self.released = Forgetful()
        self.heaps = {}
        self.dump = None
        self.figures = Figures()
        self.flaws = set()  # why the manager is incomplete, beyond unknown windows
        # Seen neither from its manager_create nor from a whole dump yet: its events count as
        # calls and change nothing until its first dump (README: "Managers first seen before
        # their dump"). ``late``: first seen through another event than a dump's.
        self.awaiting = False
        self.late = False
        self.first_ns = None
        self.dumped = False  # a dump of it ended: heaps it did not list were gone
        # While awaiting: pointer -> heap id freed and not handed out since, for the dump.
        self.awaiting_freed = {}

    def page_down(self, address):
        return address - address % self.page_size

    def page_up(self, address):
        return -(-address // self.page_size) * self.page_size

    def complete(self):
        return not self.windows and not self.flaws

    def start_known(self):
        """A fresh lifetime (``manager_create``): known and empty, seq 0."""
        self.known = True
        self.seq = 0
        self.history = collections.OrderedDict([(0, {})])


class Reconstruction(MmapView):
    """Replays a trace's clrmemtrace events; ``stop_ns`` ends the replay early (map)."""

    def __init__(self, max_details=1000, stop_ns=None, series_points=None):
        self.max_details = max_details
        self.stop_ns = stop_ns
        self.managers = {}
        self.procnames = {}
        self.totals = Figures()
        self.events = 0
        self.discarded = 0
        self.lost_notices = 0
        self.lost_packets = 0
        self.no_vpid = 0
        self.malformed = 0
        self.begin_ns = None
        self.end_ns = None
        self.now = 0
        self.checked = 0
        self.mismatches = 0
        self.unverifiable = 0
        self.before_dump = 0
        self.mismatch_details = []
        self.anomalies = []
        self.anomaly_counts = collections.Counter({k: 0 for k in ANOMALY_KINDS})
        self.failures = []
        self.all_failures = []
        self.latency = collections.defaultdict(list)
        self.memory_load = []
        self.notifications = []
        self.timeline = []
        self.series = Series(series_points, max_details) if series_points else None
        # Byte totals that left [0, 2^64 - 1] after an event: the trace's, processes'.
        self.totals_out = False
        self.vpids_out = set()

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
                    if not message.event.cls.stream_class.default_clock_class:
                        self.on_event(message.event, None)
                        continue
                    time_ns = message.default_clock_snapshot.ns_from_origin
                    if self.stop_ns is not None and time_ns > self.stop_ns:
                        break
                    self.on_event(message.event, time_ns)
                elif kind in (bt2._DiscardedEventsMessageConst, bt2._DiscardedPacketsMessageConst):
                    time_ns = self.now
                    stream_class = message.stream.cls
                    if (
                        kind is bt2._DiscardedEventsMessageConst
                        and stream_class.discarded_events_have_default_clock_snapshots
                    ) or (
                        kind is bt2._DiscardedPacketsMessageConst
                        and stream_class.discarded_packets_have_default_clock_snapshots
                    ):
                        time_ns = message.beginning_default_clock_snapshot.ns_from_origin
                    if self.stop_ns is not None and time_ns > self.stop_ns:
                        break
                    if kind is bt2._DiscardedEventsMessageConst:
                        self.discarded += message.count or 0
                    else:
                        self.lost_packets += message.count or 1
                    self.on_lost(time_ns)
        except bt2._Error as e:
            raise UserError(f"{path}: {bt2_error_message(e)}", 3) from None
        if self.events == 0 and self.stop_ns is None:
            raise UserError(f"{path}: the trace holds no clrmemtrace events", 4)
        self.finish()
        return self

    def on_event(self, event, time_ns):
        name = str(event.name)
        if name.startswith(PROVIDER_PREFIX):
            name = name[len(PROVIDER_PREFIX) :]
            members = EVENT_MEMBERS.get(name)
            os_event = False
        elif name.startswith(OS_PROVIDER_PREFIX):
            name = name[len(OS_PROVIDER_PREFIX) :]
            members = OS_EVENT_MEMBERS.get(name)
            os_event = True
        else:
            return
        self.events += 1
        if time_ns is None:
            self.malformed += 1
            return
        fields = {key: _plain(field) for key, field in event.payload_field.items()}
        if members is None:
            return
        if any(member not in fields for member in members):
            self.malformed += 1
            return
        if not os_event and fields["manager_id"] == 0:
            # Manager 0 is the mmap view's (oracle_os.py); the library never numbers one 0.
            self.malformed += 1
            return
        context = event.common_context_field
        vpid = _context(context, "vpid", None)
        if vpid is None:
            self.no_vpid += 1
            vpid = 0
        tid = _context(context, "vtid", 0)
        procname = _context(context, "procname", "")
        if vpid not in self.procnames:
            self.procnames[vpid] = procname
        if self.begin_ns is None:
            self.begin_ns = time_ns
        self.end_ns = time_ns
        self.now = time_ns
        if os_event:
            self.on_os_event(name, fields, time_ns, vpid, tid)
        else:
            self.dispatch(name, fields, time_ns, vpid, tid)
        self.after_event(time_ns)

    def on_lost(self, time_ns):
        """Events or packets were lost: every manager's state is unknown until its dump."""
        self.lost_notices += 1
        self.now = max(self.now, time_ns)
        for manager in self.managers.values():
            if manager.dump is not None:
                manager.dump.dropped = True
            if manager.awaiting:
                # Its calls may be missing; all it held were its dropped dump's heaps.
                manager.flaws.add("events lost before its first state dump")
                for heap in manager.heaps.values():
                    self.drop_blocks(manager, heap)
                manager.heaps = {}
                # The frees it remembered may have been followed by lost allocs.
                manager.awaiting_freed = {}
                continue
            self.make_unknown(manager, time_ns, heaps=True)

    # ------------------------------------------------------------ helpers

    def manager(self, vpid, manager_id, time_ns, event):
        key = (vpid, manager_id)
        manager = self.managers.get(key)
        if manager is None:
            manager = Manager(vpid, manager_id)
            self.managers[key] = manager
            if event != "manager_create":
                manager.awaiting = True
                manager.late = event != "statedump_begin"
                manager.first_ns = time_ns
        return manager

    def never_dumped(self, manager, end_ns):
        """A manager whose first dump never came: unknown from its first event to ``end_ns``."""
        manager.awaiting = False
        manager.awaiting_freed = {}
        manager.windows.append([manager.first_ns, end_ns])

    @staticmethod
    def dumping(manager):
        """The manager's dump under way (not dropped), or None."""
        dump = manager.dump
        return dump if dump is not None and not dump.dropped else None

    def heap(self, manager, heap_id, event):
        heap = manager.heaps.get(heap_id)
        if heap is None:
            heap = Heap(heap_id, event in ("malloc_create", "statedump_heap"))
            if self.dumping(manager) is not None:
                # The dump's end says: listed, known; not listed, gone.
                heap.ever_unknown = False
            if heap.ever_unknown:
                manager.flaws.add(f"contents of heap {heap_id} unknown")
            manager.heaps[heap_id] = heap
            manager.figures.heaps += 1
            self.totals.heaps += 1
        return heap

    def make_unknown(self, manager, time_ns, heaps=False):
        if manager.known:
            manager.known = False
            manager.windows.append([time_ns, None])
        self.unverifiable += len(manager.pending)
        manager.pending = []
        manager.history = collections.OrderedDict()
        if heaps:
            for heap in manager.heaps.values():
                if not heap.destroyed:
                    heap.known = False
                    heap.ever_unknown = True
                    manager.flaws.add(f"contents of heap {heap.heap_id} unknown")

    def make_known(self, manager, time_ns):
        if not manager.known:
            manager.known = True
            if manager.windows and manager.windows[-1][1] is None:
                manager.windows[-1][1] = max(time_ns, manager.windows[-1][0])

    def add_detail(self, records, record):
        if len(records) < self.max_details:
            records.append(record)

    def anomaly(self, kind, manager, time_ns, tid, addr, size, detail):
        self.anomaly_counts[kind] += 1
        self.add_detail(
            self.anomalies,
            {
                "kind": kind,
                "time_ns": time_ns,
                "vpid": manager.vpid,
                "tid": tid,
                "manager_id": manager.manager_id,
                "addr": addr,
                "size": size,
                "detail": detail,
            },
        )

    def row(self, manager, time_ns, tid, op, base, address, size, **rest):
        """A timeline row; ``base`` is None when the reservation is not known."""
        self.timeline.append(
            {
                "time_ns": time_ns,
                "vpid": manager.vpid,
                "tid": tid,
                "manager_id": manager.manager_id,
                "op": op,
                "allocation_base": base,
                "address": address,
                "size": size,
                "protect": rest.get("protect", ""),
                "old_protect": rest.get("old_protect", ""),
                "level": rest.get("level", ""),
                "hr": rest.get("hr", "S_OK"),
                "seq": rest["seq"],
            }
        )

    # ------------------------------------------------------------ events

    def dispatch(self, name, f, time_ns, vpid, tid):
        f["_event"] = name
        existed = (vpid, f["manager_id"]) in self.managers
        manager = self.manager(vpid, f["manager_id"], time_ns, name)
        if name == "manager_create" and existed:
            self.new_lifetime(manager)
        if name in CALL_EVENTS:
            self.count_call(manager, name, f, time_ns, tid)
        if f.get("duration_ns"):
            self.latency[name].append(f["duration_ns"])
        handler = getattr(self, "on_" + name, None)
        if handler is not None:
            handler(manager, f, time_ns, tid)

    def count_call(self, manager, name, f, time_ns, tid):
        manager.figures.calls[name] += 1
        self.totals.calls[name] += 1
        if f["hr"] == S_OK:
            return
        manager.figures.failed_calls += 1
        self.totals.failed_calls += 1
        if name == "virtual_query":
            size = f["length"]
        else:
            size = f.get("size", 0)
        failure = {
            "time_ns": time_ns,
            "vpid": manager.vpid,
            "tid": tid,
            "manager_id": manager.manager_id,
            "event": name,
            "hr": hr_name(f["hr"]),
            "hr_value": f["hr"],
            "addr": f.get("address", f.get("ptr", 0)),
            "size": size,
        }
        self.add_detail(self.failures, failure)

    def new_lifetime(self, manager):
        """``manager_create`` of a manager id already seen (the process ran exec)."""
        if manager.awaiting:
            self.never_dumped(manager, self.now)
        for heap in manager.heaps.values():
            self.drop_blocks(manager, heap)
        manager.heaps = {}
        manager.dump = None
        manager.released = Forgetful()
        self.unverifiable += len(manager.pending)
        manager.pending = []
        self.set_state(manager, {})

    def on_manager_create(self, manager, f, time_ns, tid):
        manager.name = f["name"]
        manager.page_size = f["page_size"] or DEFAULT_PAGE_SIZE
        self.make_known(manager, time_ns)
        manager.start_known()

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
        self.add_detail(
            self.notifications,
            {
                "time_ns": time_ns,
                "vpid": manager.vpid,
                "manager_id": manager.manager_id,
                "level": available_name(f["level"]),
                "hr": hr_name(f["hr"]),
                "load": f["load"],
                "reason": f["reason"],
            },
        )

    # ---- virtual memory

    def on_virtual_alloc(self, manager, f, time_ns, tid):
        address, size, kind, protect = f["address"], f["size"], f["type"], f["protect"]
        reserve = bool(kind & MEM_RESERVE) or address == 0
        reset = bool(kind & MEM_RESET)
        commit = bool(kind & MEM_COMMIT)
        if f["hr"] != S_OK:
            if commit and not reserve and not reset and f["hr"] == HR_INVALID_ADDRESS:
                detail = f"commit of {size} bytes outside any reservation"
                self.anomaly("commit_outside_reservation", manager, time_ns, tid, address, size,
                             detail)  # fmt: skip
            return
        common = dict(protect=protect_name(protect), level=level_name(f["level"]), seq=f["seq"])
        if reset:
            start, end = manager.page_down(address), manager.page_up(address + size)
            owner = holding(manager.state, start) if manager.known else None
            self.row(manager, time_ns, tid, "reset", owner and owner.base, start, end - start,
                     **common)  # fmt: skip
            self.change(manager, f, time_ns, tid, lambda state: state, numbered=False)
            return
        if reserve:
            base = f["result"]
            end = manager.page_up(address + size) if address else base + manager.page_up(size)
        else:
            base = manager.page_down(address)
            end = manager.page_up(address + size)
        if commit and protect & 0xFF == PAGE_EXECUTE_READWRITE:
            what = "reserve and commit" if reserve else "commit"
            self.anomaly("rwx_commit", manager, time_ns, tid, base, end - base,
                         f"{what} of {end - base} bytes with {protect_name(protect)}")  # fmt: skip
        if reserve:
            op = "reserve_commit" if commit else "reserve"
            self.row(manager, time_ns, tid, op, base, base, end - base, **common)

            def apply(state):
                if base == 0 or end <= base or end > ADDRESS_LIMIT:
                    raise Inconsistent()
                if any(r.base < end and base < r.end for r in state.values()):
                    raise Inconsistent()
                page = (MEM_COMMIT, protect & PAGE_BITS) if commit else (MEM_RESERVE, 0)
                aprot = protect & ~PAGE_TARGETS_INVALID
                state = dict(state)
                state[base] = Reservation(
                    base, end, aprot, ((base, end) + page,), time_ns, tid, common["level"]
                )
                manager.released.discard(base)
                self.os_claim(manager.vpid, base, end, tid)
                return state

            self.change(manager, f, time_ns, tid, apply)
            return
        owner = holding(manager.state, base) if manager.known else None
        self.row(manager, time_ns, tid, "commit", owner and owner.base, base, end - base,
                 **common)  # fmt: skip
        self.change(
            manager,
            f,
            time_ns,
            tid,
            lambda state: set_range(state, base, end, MEM_COMMIT, protect & PAGE_BITS),
        )

    def on_virtual_free(self, manager, f, time_ns, tid):
        address, size, kind = f["address"], f["size"], f["type"]
        start = manager.page_down(address)
        owner = holding(manager.state, start) if manager.known else None
        if f["hr"] != S_OK:
            if kind == MEM_RELEASE and manager.known and owner is None and address:
                if start in manager.released:
                    self.anomaly("double_free", manager, time_ns, tid, address, size,
                                 "MEM_RELEASE of a reservation already released")  # fmt: skip
                else:
                    self.anomaly("free_unknown", manager, time_ns, tid, address, size,
                                 "MEM_RELEASE of an address never reserved")  # fmt: skip
            return
        if kind == MEM_RELEASE:
            size = owner.end - owner.base if owner is not None and owner.base == start else 0
            self.row(manager, time_ns, tid, "release", owner and owner.base, start, size,
                     seq=f["seq"])  # fmt: skip

            def release(state):
                if start not in state:
                    raise Inconsistent()
                state = dict(state)
                del state[start]
                manager.released.remember(start, len(state))
                return state

            self.change(manager, f, time_ns, tid, release)
        elif kind == MEM_DECOMMIT:
            if size == 0:
                first, end = (owner.base, owner.end) if owner else (start, start)
            else:
                first, end = start, manager.page_up(address + size)
            self.row(manager, time_ns, tid, "decommit", owner and owner.base, first, end - first,
                     seq=f["seq"])  # fmt: skip

            def decommit(state):
                whole = holding(state, start)
                if size == 0:
                    if whole is None:
                        raise Inconsistent()
                    return set_range(state, whole.base, whole.end, MEM_RESERVE, 0)
                return set_range(state, start, end, MEM_RESERVE, 0)

            self.change(manager, f, time_ns, tid, decommit)
        else:
            self.change(manager, f, time_ns, tid, lambda state: state)

    def on_virtual_protect(self, manager, f, time_ns, tid):
        address, size, protect = f["address"], f["size"], f["protect"]
        start, end = manager.page_down(address), manager.page_up(address + size)
        owner = holding(manager.state, start) if manager.known else None
        if f["hr"] != S_OK:
            if f["hr"] == HR_INVALID_ADDRESS and owner is not None:
                self.anomaly(
                    "protect_uncommitted",
                    manager,
                    time_ns,
                    tid,
                    address,
                    size,
                    f"protect of {size} bytes of uncommitted pages",
                )
            return
        old = f["old_protect"]
        if old & 0xFF in WRITABLE_NOT_EXECUTABLE and protect & 0xFF in EXECUTABLE:
            self.anomaly("w_to_x_flip", manager, time_ns, tid, address, size,
                         f"{protect_name(old)} to {protect_name(protect)}")  # fmt: skip
        self.row(
            manager,
            time_ns,
            tid,
            "protect",
            owner and owner.base,
            start,
            end - start,
            protect=protect_name(protect),
            old_protect=protect_name(old),
            seq=f["seq"],
        )
        self.change(
            manager,
            f,
            time_ns,
            tid,
            lambda state: set_range(state, start, end, MEM_COMMIT, protect & PAGE_BITS),
        )

    def change(self, manager, event, time_ns, tid, apply, numbered=True):
        """A successful change ``event``; ``apply`` maps the old state to the new one.

        An event that takes no number (``numbered`` false: MEM_RESET) carries the last
        change's; one above it came after a change whose event is missing.
        """
        if not manager.known:
            return
        seq = event["seq"]
        if seq < manager.seq:
            self.anomaly(
                "seq_regression",
                manager,
                time_ns,
                tid,
                event["address"],
                event["size"],
                f"{event['_event']} seq {seq} after {manager.seq}",
            )
            self.make_unknown(manager, time_ns)
            return
        if seq > manager.seq + 1 or (not numbered and seq > manager.seq):
            self.make_unknown(manager, time_ns, heaps=True)
            return
        try:
            state = apply(manager.state)
        except Inconsistent:
            manager.flaws.add("a change the reconstructed state could not take")
            self.make_unknown(manager, time_ns)
            return
        manager.seq = seq
        self.set_state(manager, state)
        manager.history[seq] = state
        manager.history.move_to_end(seq)
        while len(manager.history) > HISTORY + 1:
            manager.history.popitem(last=False)
        self.run_pending(manager)

    def set_state(self, manager, state):
        """Make ``state`` the manager's and update the byte figures."""
        figures = manager.figures
        reserved = sum(r.end - r.base for r in state.values())
        committed = sum(r.committed() for r in state.values())
        by_protect = collections.Counter()
        for reservation in state.values():
            for run in reservation.runs:
                if run[2] == MEM_COMMIT:
                    by_protect[protect_name(reservation.reported(run))] += run[1] - run[0]
        self.totals.reserved += reserved - figures.reserved
        self.totals.committed += committed - figures.committed
        self.totals.live_regions += len(state) - figures.live_regions
        self.totals.by_protect.subtract(figures.by_protect)
        self.totals.by_protect.update(by_protect)
        figures.reserved, figures.committed, figures.live_regions = reserved, committed, len(state)
        figures.by_protect = by_protect
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
            if manager.awaiting:
                self.before_dump += 1
        elif f["seq_after"] > manager.seq:
            if len(manager.pending) >= MAX_WAITING:
                self.unverifiable += 1
            else:
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
        seqs = range(query["seq_before"], query["seq_after"] + 1)
        states = [manager.history.get(s) for s in seqs]
        available = [s for s in states if s is not None]
        if any(query_matches(manager, state, query) for state in available):
            self.checked += 1
            return
        if len(available) < len(states):
            self.unverifiable += 1
            return
        self.checked += 1
        self.mismatches += 1
        newest = states[-1]
        page = manager.page_down(query["address"])
        owner = holding(newest, page)
        overlaps = None
        if owner is None:
            begin, end = query["base"], query["base"] + query["region_size"]
            overlapping = sorted(r.base for r in newest.values() if r.base < end and begin < r.end)
            overlaps = overlapping[0] if overlapping else None
        detail = {
            "time_ns": query["time_ns"],
            "vpid": manager.vpid,
            "manager_id": manager.manager_id,
            "address": query["address"],
            "seq_before": query["seq_before"],
            "seq_after": query["seq_after"],
            "got": named_answer(query),
            "expected": named_answer(owned_answer(owner, page)) if owner else None,
        }
        if owner is None:
            detail["overlaps"] = overlaps
        self.add_detail(self.mismatch_details, detail)

    # ---- heaps

    def awaiting_call(self, manager, f):
        """Whether a heap call changes nothing, its manager awaiting its first dump (which
        lists what such calls left); it is counted."""
        if not manager.awaiting or self.dumping(manager) is not None:
            return False
        name = f["_event"]
        if name in ("malloc_alloc", "malloc_free") and f["hr"] == S_OK:
            if name == "malloc_alloc" or f["ptr"]:
                figure = "allocs" if name == "malloc_alloc" else "frees"
                for figures in (manager.figures, self.totals):
                    setattr(figures, figure, getattr(figures, figure) + 1)
            # For the dump, which may still list a block freed now (dump_heaps).
            freed = manager.awaiting_freed
            if name == "malloc_alloc" or not f["heap_id"]:
                freed.pop(f["ptr"], None)
            elif f["ptr"]:
                freed[f["ptr"]] = f["heap_id"]
                if len(freed) > FORGET_AT:
                    freed.clear()
        return True

    def on_malloc_create(self, manager, f, time_ns, tid):
        if self.awaiting_call(manager, f):
            return
        if f["hr"] == S_OK and f["heap_id"]:
            heap = self.heap(manager, f["heap_id"], "malloc_create")
            if manager.dump is not None:
                manager.dump.created.add(heap.heap_id)
                manager.dump.destroyed.discard(heap.heap_id)

    def on_malloc_alloc(self, manager, f, time_ns, tid):
        if self.awaiting_call(manager, f) or f["hr"] != S_OK:
            return
        heap = self.heap(manager, f["heap_id"], "malloc_alloc")
        block = Block(f["size"], f["file"], f["line"])
        self.totals.allocs += 1
        manager.figures.allocs += 1
        if f["ptr"] in heap.live and f["ptr"] not in heap.unseen:
            # (A block a dump listed before its alloc was traced: this is its first event.)
            manager.flaws.add(f"heap {heap.heap_id} handed out a live block")
        self.put_block(manager, heap, f["ptr"], block)
        if manager.dump is not None:
            manager.dump.touched[(heap.heap_id, f["ptr"])] = block

    def on_malloc_free(self, manager, f, time_ns, tid):
        if self.awaiting_call(manager, f):
            return
        heap = self.heap(manager, f["heap_id"], "malloc_free")
        ptr = f["ptr"]
        if f["hr"] != S_OK:
            if ptr in heap.freed:
                self.anomaly("double_free", manager, time_ns, tid, ptr, 0,
                             f"free of a block of heap {heap.heap_id} already freed")  # fmt: skip
            elif heap.known and ptr not in heap.live:
                self.anomaly(
                    "free_unknown",
                    manager,
                    time_ns,
                    tid,
                    ptr,
                    0,
                    f"free of a pointer heap {heap.heap_id} never handed out",
                )
            return
        if not ptr:
            return
        self.totals.frees += 1
        manager.figures.frees += 1
        # (A block of a dumped heap with no event since the dump, which did not list it, may
        # have been freed just before the dump read the heap: this is its first event.)
        if ptr not in heap.live and heap.known and not (heap.dumped and ptr not in heap.freed):
            manager.flaws.add(f"heap {heap.heap_id} freed a block it did not hold")
        self.put_block(manager, heap, ptr, None)
        heap.freed.remember(ptr, len(heap.live))
        if manager.dump is not None:
            manager.dump.touched[(heap.heap_id, ptr)] = None

    def on_malloc_destroy(self, manager, f, time_ns, tid):
        if self.awaiting_call(manager, f):
            return
        known = manager.heaps.get(f["heap_id"])
        if self.dumping(manager) is not None:
            # Its listing in this dump, if any, is older than this.
            manager.dump.destroyed.add(f["heap_id"])
            manager.dump.created.discard(f["heap_id"])
        elif manager.dumped and (known is None or known.destroyed):
            # A heap the last dump did not list was gone before it: this is its release,
            # traced after the dump (the library takes a heap off its manager's list first).
            return
        heap = self.heap(manager, f["heap_id"], "malloc_destroy")
        self.drop_blocks(manager, heap)
        heap.destroyed = True

    def drop_blocks(self, manager, heap):
        for ptr in list(heap.live):
            self.put_block(manager, heap, ptr, None)

    def put_block(self, manager, heap, ptr, block):
        """Set (or, with None, remove) a live block and update the heap figures."""
        old = heap.live.pop(ptr, None)
        heap.unseen.discard(ptr)
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
        if manager.dump is not None and not manager.dump.dropped:
            manager.flaws.add("a state dump that never ended")
        if f["name"] and not manager.name:
            manager.name = f["name"]
        manager.dump = Dump(tid, f["seq"])

    def in_dump(self, manager):
        """The dump the manager's dump events belong to, or None (flagged when missing)."""
        if manager.dump is None:
            manager.flaws.add("state dump events outside a dump")
            return None
        return None if manager.dump.dropped else manager.dump

    def on_statedump_region(self, manager, f, time_ns, tid):
        seq = manager.dump.seq if manager.dump is not None else 0
        self.row(manager, time_ns, tid, "statedump", f["allocation_base"], f["base"], f["size"],
                 protect=protect_name(f["protect"]), hr="", seq=seq)  # fmt: skip
        dump = self.in_dump(manager)
        if dump is not None:
            dump.regions.append(f)

    def on_statedump_vas(self, manager, f, time_ns, tid):
        self.in_dump(manager)

    def on_statedump_heap(self, manager, f, time_ns, tid):
        dump = self.in_dump(manager)
        if dump is not None:
            dump.heaps[f["heap_id"]] = {}

    def on_statedump_block(self, manager, f, time_ns, tid):
        dump = self.in_dump(manager)
        if dump is not None:
            dump.heaps.setdefault(f["heap_id"], {})[f["ptr"]] = f["size"]

    def on_statedump_end(self, manager, f, time_ns, tid):
        dump = self.in_dump(manager)
        manager.dump = None
        if dump is None:
            return
        seq = f["seq"]
        previous = manager.state
        state = {}
        claims = []
        for base in sorted({region["allocation_base"] for region in dump.regions}):
            regions = [r for r in dump.regions if r["allocation_base"] == base]
            end = max(r["base"] + r["size"] for r in regions)
            aprot = regions[0]["allocation_protect"] & ~PAGE_TARGETS_INVALID
            runs = ((base, end, MEM_RESERVE, 0),)
            for region in regions:
                if region["state"] == MEM_COMMIT:
                    page = (MEM_COMMIT, region["protect"] & PAGE_BITS)
                else:
                    page = (MEM_RESERVE, 0)
                runs = set_pages(runs, region["base"], region["base"] + region["size"], *page)
            before = previous.get(base)
            if before is not None and (before.end, before.aprot) == (end, aprot):
                origin = (before.time_ns, before.tid, before.level)
            else:
                origin = (time_ns, dump.tid, "")
                claims.append((base, end))
            state[base] = Reservation(base, end, aprot, runs, *origin)
        self.make_known(manager, time_ns)
        manager.seq = seq
        self.unverifiable += sum(1 for q in manager.pending if q["seq_after"] <= seq)
        manager.pending = [q for q in manager.pending if q["seq_after"] > seq]
        self.set_state(manager, state)
        for base, end in claims:
            self.os_claim(manager.vpid, base, end, dump.tid)
        manager.history = collections.OrderedDict([(seq, state)])
        self.dump_heaps(manager, dump)
        manager.awaiting = False
        manager.dumped = True

    def dump_heaps(self, manager, dump):
        for heap_id, heap in manager.heaps.items():
            listed = heap_id in dump.heaps or heap_id in dump.created
            if (not listed or heap_id in dump.destroyed) and not heap.destroyed:
                self.drop_blocks(manager, heap)
                heap.destroyed = True
        for heap_id, blocks in dump.heaps.items():
            if heap_id in dump.destroyed:
                continue
            heap = self.heap(manager, heap_id, "statedump_heap")
            live = {}
            unseen = set()
            for ptr, size in blocks.items():
                if (heap_id, ptr) in dump.touched:
                    continue  # below
                if self.freed_before(manager, heap, ptr):
                    if ptr not in heap.freed:
                        # Freed while the manager awaited its dump: remembered from now.
                        heap.freed.remember(ptr, len(heap.live))
                    continue
                old = heap.live.get(ptr)
                if old is None or ptr in heap.unseen:
                    unseen.add(ptr)
                live[ptr] = old if old is not None and old.size == size else Block(size, "", 0)
            for (touched_heap, ptr), block in dump.touched.items():
                if touched_heap == heap_id:
                    if block is None:
                        live.pop(ptr, None)
                    else:
                        live[ptr] = block
            for ptr in list(heap.live):
                if ptr not in live:
                    self.put_block(manager, heap, ptr, None)
            for ptr, block in live.items():
                self.put_block(manager, heap, ptr, block)
            heap.unseen = unseen
            heap.dumped = True
            heap.known = True
            heap.destroyed = False
        manager.awaiting_freed = {}

    @staticmethod
    def freed_before(manager, heap, ptr):
        """Whether the last event of a block the dump lists, before the dump, was a
        successful ``malloc_free``: the block is free, the dump having read it before the free
        took effect (earlier versions of the library traced a free before clearing the block's
        word). Should it have been handed out again meanwhile, its ``malloc_alloc`` comes
        after."""
        if ptr in heap.live:
            return False
        if ptr in heap.freed:
            return heap.known
        return manager.awaiting and manager.awaiting_freed.get(ptr) == heap.heap_id

    # ------------------------------------------------------------ end

    def check_totals(self):
        """Flags the byte totals outside [0, 2^64 - 1]: a manager's own heap bytes (its
        reserved and committed bytes cover disjoint ranges and always fit), its process's
        sums, the trace's (which bound every other, committed bytes by protection too)."""
        per_vpid = collections.defaultdict(lambda: [0, 0, 0])
        for (vpid, _), manager in self.managers.items():
            figures = manager.figures
            if out_of_range(figures.live_bytes):
                manager.flaws.add(TOTALS_OUT)
            sums = per_vpid[vpid]
            sums[0] += figures.reserved
            sums[1] += figures.committed
            sums[2] += figures.live_bytes
        for vpid, sums in per_vpid.items():
            if any(out_of_range(x) for x in sums):
                self.vpids_out.add(vpid)
        totals = self.totals
        if any(out_of_range(x) for x in (totals.reserved, totals.committed, totals.live_bytes)):
            self.totals_out = True

    def after_event(self, time_ns):
        self.check_totals()
        for figures in [self.totals] + [m.figures for m in self.managers.values()]:
            figures.note_peaks()
        if self.series:
            self.series.sample(self, time_ns)

    def finish(self):
        end = self.stop_ns if self.stop_ns is not None else self.end_ns
        for manager in self.managers.values():
            self.unverifiable += len(manager.pending)
            manager.pending = []
            if manager.dump is not None and not manager.dump.dropped:
                manager.flaws.add("a state dump that never ended")
            if manager.awaiting:
                self.never_dumped(manager, end)
            for window in manager.windows:
                if window[1] is None:
                    # A lost-events notice can come after the last event.
                    window[1] = max(end, window[0])
        self.check_totals()
        if self.series:
            self.series.finish(self, end)

    # ------------------------------------------------------------ documents

    def incomplete_reasons(self):
        reasons = []
        if self.lost_notices:
            reasons.append(f"the tracer discarded {self.discarded} events")
        if self.lost_packets:
            reasons.append(f"the tracer discarded {self.lost_packets} packets")
        if self.no_vpid:
            reasons.append(f"{self.no_vpid} events without the vpid context")
        if self.malformed:
            reasons.append(f"{self.malformed} events ignored (no timestamp or missing members)")
        if self.totals_out:
            reasons.append(TOTALS_OUT)
        for vpid in sorted(self.vpids_out):
            reasons.append(f"process {vpid}: {TOTALS_OUT}")
        for (vpid, manager_id), manager in sorted(self.managers.items()):
            label = f"process {vpid} manager {manager_id}"
            if manager.windows:
                reasons.append(f"{label}: state unknown during {len(manager.windows)} window(s)")
            for flaw in sorted(manager.flaws):
                reasons.append(f"{label}: {flaw}")
        return reasons[: self.max_details]

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
                    "complete": all(m["complete"] for m in managers)
                    and vpid not in self.vpids_out,
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
                "unverifiable_before_dump": self.before_dump,
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
        regions = []
        for (vpid, manager_id), manager in self.managers.items():
            for reservation in manager.state.values():
                regions.append(
                    {
                        "vpid": vpid,
                        "manager_id": manager_id,
                        "base": reservation.base,
                        "size": reservation.end - reservation.base,
                        "committed_bytes": reservation.committed(),
                        "allocation_protect": protect_name(reservation.aprot),
                        "time_ns": reservation.time_ns,
                        "tid": reservation.tid,
                        "level": reservation.level,
                    }
                )
        regions.sort(
            key=lambda r: (-r["size"], r["time_ns"], r["vpid"], r["manager_id"], r["base"])
        )
        return regions[: self.max_details]

    def blocks_document(self):
        groups = {}
        for (vpid, manager_id), manager in self.managers.items():
            for heap_id, heap in manager.heaps.items():
                for block in heap.live.values():
                    key = (vpid, manager_id, heap_id, block.file, block.line)
                    group = groups.setdefault(key, [0, 0, 0])
                    group[0] += 1
                    group[1] = shown(group[1] + block.size)
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
            key=lambda r: (-r["bytes"], r["vpid"], r["manager_id"], r["heap_id"], r["file"],
                           r["line"])
        )  # fmt: skip
        return rows[: self.max_details]

    def map_document(self, at_ns):
        processes = []
        for vpid in sorted({vpid for vpid, _ in self.managers}):
            managers = []
            for (p, manager_id), manager in sorted(self.managers.items()):
                if p != vpid:
                    continue
                regions = []
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
                                "mem_type": mem_type_name(reservation.mem_type),
                                "path": reservation.path,
                            }
                        )
                heaps = [
                    {
                        "heap_id": heap_id,
                        "live_blocks": len(heap.live),
                        "live_bytes": shown(heap.live_bytes()),
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
            processes.append(
                {"vpid": vpid, "procname": self.procnames.get(vpid, ""), "managers": managers}
            )
        return {"format": "clrmemtrace-map", "version": 1, "at_ns": at_ns, "processes": processes}


def _plain(field):
    """A bt2 field as a Python int or str.

    Babeltrace2 2.0 recycles events and empties a string field by its length only: the text
    of an empty string can be the one the field had in an earlier event. Its length is right.
    """
    import bt2

    if isinstance(field, bt2._StringFieldConst):
        return str(field) if len(field) else ""
    return int(field)


def _context(context, name, default):
    if context is None or name not in context:
        return default
    return _plain(context[name])


# ---------------------------------------------------------------- queries


def owned_answer(reservation, page):
    """What a query of ``page`` (in ``reservation``) must report, as integers."""
    run = reservation.run_at(page)
    return {
        "base": page,
        "allocation_base": reservation.base,
        "allocation_protect": reservation.aprot,
        "region_size": run[1] - page,
        "state": run[2],
        "protect": reservation.reported(run),
        "mem_type": MEM_PRIVATE,
    }


def named_answer(answer):
    """The seven MEMORY_BASIC_INFORMATION fields, with names for protections and states."""
    return {
        "base": answer["base"],
        "allocation_base": answer["allocation_base"],
        "allocation_protect": protect_name(answer["allocation_protect"]),
        "region_size": answer["region_size"],
        "state": state_name(answer["state"]),
        "protect": protect_name(answer["protect"]),
        "mem_type": mem_type_name(answer["mem_type"]),
    }


def query_matches(manager, state, query):
    """Whether a query's answer is right for the manager's ``state``."""
    page = manager.page_down(query["address"])
    owner = holding(state, page)
    if owner is not None:
        return all(query[k] == v for k, v in owned_answer(owner, page).items())
    begin, end = query["base"], query["base"] + query["region_size"]
    return not any(r.base < end and begin < r.end for r in state.values())


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
        "mean_ns": round(sum(values) / n, 3),
        "histogram": [[bucket_upper(i), counts[i]] for i in sorted(counts)],
    }


# ---------------------------------------------------------------- series


class Counter:
    """One counter's changes: ``(time, value before, value after)``, one per event."""

    def __init__(self):
        self.value = 0
        self.changes = []

    def set(self, time_ns, value):
        if value != self.value:
            self.changes.append((time_ns, self.value, value))
            self.value = value

    def samples(self, begin_ns, slice_ns):
        """``[t, last]`` or ``[t, last, max]`` for each slice in which the value changed."""
        slices = collections.OrderedDict()
        for time_ns, before, after in self.changes:
            index = (time_ns - begin_ns) // slice_ns
            if index in slices:
                _, _, top = slices[index]
                slices[index] = (time_ns, after, max(top, after))
            else:
                slices[index] = (time_ns, after, max(before, after))
        return [[t, last] if last == top else [t, last, top] for t, last, top in slices.values()]


def slice_width(begin_ns, end_ns, points):
    """The smallest power of two ``w`` with ``(end_ns - begin_ns) // w < points``."""
    width = 1
    while (end_ns - begin_ns) // width >= points:
        width *= 2
    return width


class Series:
    """Counters over time and state spans, for the ``series`` and ``perfetto`` documents."""

    def __init__(self, points, max_details):
        self.points = points
        self.max_details = max_details
        self.totals = collections.defaultdict(Counter)  # name -> Counter
        self.by_protect = collections.defaultdict(Counter)
        self.per_process = collections.defaultdict(Counter)  # (vpid, name) -> Counter
        # (vpid, manager_id, start, end, state, protect, ident) -> begin
        self.open_spans = {}
        self.spans = []
        # (vpid, manager_id, base, ident) -> (size, aprot name, begin)
        self.open_reservations = {}
        # (vpid, manager_id, base, ident, size, aprot name, begin, end)
        self.reservations = []

    def sample(self, reconstruction, time_ns):
        totals = reconstruction.totals
        self.totals["reserved_bytes"].set(time_ns, shown(totals.reserved))
        self.totals["committed_bytes"].set(time_ns, shown(totals.committed))
        self.totals["heap_live_bytes"].set(time_ns, shown(totals.live_bytes))
        for name in set(totals.by_protect) | set(self.by_protect):
            self.by_protect[name].set(time_ns, shown(totals.by_protect[name]))
        per_vpid = collections.defaultdict(lambda: [0, 0, 0])
        for (vpid, _), manager in reconstruction.managers.items():
            figures = per_vpid[vpid]
            figures[0] += manager.figures.reserved
            figures[1] += manager.figures.committed
            figures[2] += manager.figures.live_bytes
        for vpid, figures in per_vpid.items():
            for name, value in zip(PERFETTO_COUNTERS, figures):
                self.per_process[(vpid, name)].set(time_ns, shown(value))

    def spans_update(self, manager, old, new, time_ns):
        def runs(state):
            return {
                (manager.vpid, manager.manager_id, run[0], run[1], run[2], r.reported(run),
                 r.ident)
                for r in state.values()
                for run in r.runs
            }  # fmt: skip

        def lives(state):
            return {(base, r.ident) for base, r in state.items()}

        before, after = runs(old), runs(new)
        for key in sorted(before - after):
            self.spans.append((key, self.open_spans.pop(key), time_ns))
        for key in sorted(after - before):
            self.open_spans[key] = time_ns
        for base, ident in sorted(lives(old) - lives(new)):
            key = (manager.vpid, manager.manager_id, base, ident)
            self.reservations.append(key + self.open_reservations.pop(key) + (time_ns,))
        for base, ident in sorted(lives(new) - lives(old)):
            reservation = new[base]
            self.open_reservations[(manager.vpid, manager.manager_id, base, ident)] = (
                reservation.end - base,
                protect_name(reservation.aprot),
                time_ns,
            )

    def finish(self, reconstruction, end_ns):
        for key, begin in sorted(self.open_spans.items()):
            self.spans.append((key, begin, end_ns))
        self.open_spans = {}
        for key, opened in sorted(self.open_reservations.items()):
            self.reservations.append(key + opened + (end_ns,))
        self.open_reservations = {}

    def document(self, reconstruction):
        begin, end = reconstruction.begin_ns, reconstruction.end_ns
        width = slice_width(begin, end, self.points)
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
        spans.sort(key=lambda s: (-s["size"] * (s["end_ns"] - s["begin_ns"]), s["begin_ns"]))
        failures = [[f["time_ns"], f["event"], f["hr"]] for f in reconstruction.failures]
        notifications = [[n["time_ns"], n["level"]] for n in reconstruction.notifications]
        return {
            "format": "clrmemtrace-series",
            "version": 1,
            "begin_ns": begin,
            "end_ns": end,
            "slice_ns": width,
            "counters": {
                "reserved_bytes": self.totals["reserved_bytes"].samples(begin, width),
                "committed_bytes": self.totals["committed_bytes"].samples(begin, width),
                "committed_by_protect": {
                    name: counter.samples(begin, width)
                    for name, counter in sorted(self.by_protect.items())
                },
                "heap_live_bytes": self.totals["heap_live_bytes"].samples(begin, width),
            },
            "failures": failures[: self.max_details],
            "notifications": notifications[: self.max_details],
            "spans": spans[: self.points],
        }

    def perfetto_document(self, reconstruction):
        begin, end = reconstruction.begin_ns, reconstruction.end_ns
        width = slice_width(begin, end, self.points)

        def ts(time_ns):
            return round((time_ns - begin) / 1000.0, 3)

        events = []
        for vpid in sorted({vpid for vpid, _ in reconstruction.managers}):
            name = reconstruction.procnames.get(vpid, "") or str(vpid)
            events.append({"name": "process_name", "ph": "M", "pid": vpid, "args": {"name": name}})
        for (vpid, name), counter in sorted(self.per_process.items()):
            for sample in counter.samples(begin, width):
                events.append(
                    {"name": name, "ph": "C", "ts": ts(sample[0]), "pid": vpid,
                     "args": {"value": sample[1]}}  # fmt: skip
                )
        slices = []
        for vpid, manager_id, base, _, size, aprot, b, e in self.reservations:
            # The mmap view's mappings (manager 0) are slices of their own kind.
            kind = "mapping" if manager_id == 0 else "reservation"
            common = {"cat": kind, "name": kind, "id": f"0x{base:x}", "pid": vpid,
                      "tid": vpid}  # fmt: skip
            args = {"manager_id": manager_id, "size": size, "allocation_protect": aprot}
            slices.append((b, 0, dict(common, ph="b", ts=ts(b), args=args)))
            slices.append((e, 1, dict(common, ph="e", ts=ts(e))))
        slices.sort(key=lambda s: s[:2])
        return [event for _, _, event in slices] + events
        return events


PERFETTO_COUNTERS = ("reserved_bytes", "committed_bytes", "heap_live_bytes")


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


def series(path, points=2000, max_details=1000):
    """The series document of the trace at ``path``."""
    reconstruction = Reconstruction(max_details=max_details, series_points=points).read(path)
    return reconstruction.series.document(reconstruction)


def perfetto(path, points=2000):
    """The Chrome trace-event list (Perfetto) of the trace at ``path``."""
    reconstruction = Reconstruction(series_points=points).read(path)
    return reconstruction.series.perfetto_document(reconstruction)
