# SPDX-License-Identifier: MIT
"""End-to-end tests of the clrmemtrace LTTng-UST events, against a real session.

tests/trace/trace-host calls every method of every interface and logs, one JSON object a line,
what it called and what it got back. `Checker` replays that log against the trace, event by
event: each call must have produced exactly its event, with exactly the fields the log implies
(HRESULTs, outputs, sequence numbers, identities, contexts), and nothing else. State dumps are
checked against the host's own VirtualQuery walk of every region it holds.

The rest covers running without LTTng: no provider, CLRMEMTRACE_TRACE=0,
CLRMEMTRACE_FLAG_NO_TRACE, and a start-up that never waits for a session daemon.
"""

import json
import os
import re
import select
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

S_OK = 0
S_FALSE = 1
E_OUTOFMEMORY = -2147024882
MEM_COMMIT = 0x1000
NO_TRACE = 0x1  # CLRMEMTRACE_FLAG_NO_TRACE
MBI_SIZE = 48  # sizeof(MEMORY_BASIC_INFORMATION)

HOST_TIMEOUT = 60
# Long enough for any registration; short enough that a broken daemon fails the test.
REGISTER_TIMEOUT_MS = "10000"

# The methods trace-host must exercise: every one of both interfaces.
MANAGER_METHODS = {
    "QueryInterface",
    "AddRef",
    "Release",
    "CreateMalloc",
    "VirtualAlloc",
    "VirtualFree",
    "VirtualQuery",
    "VirtualProtect",
    "GetMemoryLoad",
    "RegisterMemoryNotificationCallback",
    "NeedsVirtualAddressSpace",
    "AcquiredVirtualAddressSpace",
    "ReleasedVirtualAddressSpace",
}
HEAP_METHODS = {"QueryInterface", "AddRef", "Release", "Alloc", "DebugAlloc", "Free"}

# Events emitted when a call returns carry its duration; lifetime and dump events do not.
UNTIMED_EVENTS = {"manager_create", "manager_destroy", "malloc_destroy"}

# The `reason` of a refusal the host annotated, by kind; other E_OUTOFMEMORY results are the
# system's, and everything else has no reason.
REFUSALS = {"commit": "commit budget exceeded", "address-space": "address-space budget exceeded"}
EMEMORY_LOW, EMEMORY_HIGH = 1, 3
# What a memory_notification's reason says caused it.
NOTIFICATION_REASON = re.compile(
    r"(commit budget|system memory) (?P<load>\d+)% used|memory pressure stall \(.+\)"
)


def reason(rec):
    """The `reason` field expected for a call of the host's log."""
    if rec.get("refusal"):
        return REFUSALS[rec["refusal"]]
    return "out of memory" if rec["hr"] == E_OUTOFMEMORY else ""


# ---------- Running the host ----------


def host_env(lttng, **changes):
    """The host's environment: the daemon's, no clrmemtrace settings, then `changes`.

    LTTNG_UST_REGISTER_TIMEOUT is set so that the host registers with the session daemon before
    its first call (a value of None removes a variable).
    """
    env = {k: v for k, v in lttng.env.items() if not k.startswith("CLRMEMTRACE_")}
    env["LTTNG_UST_REGISTER_TIMEOUT"] = REGISTER_TIMEOUT_MS
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def read_log(path):
    """The host's log: one dict per line."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_host(build, log, *args, env):
    """Runs trace-host to completion; returns its log. Fails if any call surprised the host."""
    proc = subprocess.run(
        [str(build.trace_host), "--log", str(log), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=HOST_TIMEOUT,
    )
    assert proc.returncode == 0, f"trace-host failed ({proc.returncode}):\n{proc.stderr}"
    records = read_log(log)
    assert records[0]["call"] == "start" and records[-1]["call"] == "end"
    assert records[-1]["failures"] == 0
    return records


def pid_of(records):
    """The process id of the host that wrote `records`."""
    return records[0]["pid"]


def marker(records, call):
    """The one record of `call` (a marker such as "start" or "maps") in a log."""
    (found,) = [r for r in records if r["call"] == call]
    return found


class Host:
    """trace-host in state-dump mode, driven line by line."""

    def __init__(self, build, log, env):
        self.proc = subprocess.Popen(
            [str(build.trace_host), "--log", str(log), "--mode", "statedump"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def expect(self, *lines):
        """Waits for the host to print one of `lines`, and returns it; fails on anything else."""
        deadline = time.monotonic() + HOST_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                got = self.proc.stdout.readline().strip()
                assert got in lines, f"trace-host said {got!r}, expected {lines}"
                return got
            if self.proc.poll() is not None:
                break
        raise AssertionError(f"trace-host never said {lines}: {self.proc.stderr.read()}")

    def command(self, line, answer=None):
        """Sends a command line, then waits for `answer` if one is given."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        if answer:
            self.expect(answer)

    def finish(self):
        """Tells the host to release everything and exit; fails unless it exits with 0."""
        self.command("exit")
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=HOST_TIMEOUT)
        finally:
            self.kill()
        assert self.proc.returncode == 0, f"trace-host failed:\n{self.proc.stderr.read()}"

    def kill(self):
        """Kills the host if it still runs (cleanup after a failure)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------- The model: what the log says the trace must contain ----------


class Manager:
    """What the log says of one IHostMemoryManager."""

    def __init__(self, ptr, name, flags, options):
        self.ptr = ptr
        self.name = name
        self.traced = not flags & NO_TRACE
        self.options = options
        self.id = None  # learnt from its first event (creation or dump)
        self.seq = 0
        self.callback = 0
        self.vas = {}  # address -> size
        self.walk = None  # the regions of its last walk, while nothing changed since


class Heap:
    """What the log says of one IHostMalloc."""

    def __init__(self, ptr, manager, malloc_type):
        self.ptr = ptr
        self.manager = manager
        self.type = malloc_type
        self.id = None
        self.blocks = {}  # pointer -> requested size


def walk_regions(queries):
    """Regions as statedump_region reports them, from a walk's VirtualQuery records."""
    return [
        {
            "base": q["out"]["BaseAddress"],
            "allocation_base": q["out"]["AllocationBase"],
            "size": q["out"]["RegionSize"],
            "state": q["out"]["State"],
            "protect": q["out"]["Protect"],
            "allocation_protect": q["out"]["AllocationProtect"],
        }
        for q in queries
    ]


class Checker:
    """Replays a host's log against the events of its process in one session.

    `active_from_step`: None when the session recorded the process from its start; k when the
    session started just before the host's k-th "step" (the log before it only builds state,
    and the trace must begin with a state dump there). Every step after that dumps again.
    """

    def __init__(self, records, events, active_from_step=None):
        start = records[0]
        self.records = records
        self.context = {"vpid": start["pid"], "vtid": start["tid"], "procname": start["procname"]}
        self.page_size = start["page_size"]
        self.version = start["version"]
        mine = [e for e in events if e.context.get("vpid") == start["pid"]]
        # The main thread's events follow its calls; the monitor threads' are notifications.
        self.events = [e for e in mine if e.context.get("vtid") == start["tid"]]
        self.notification_events = [e for e in mine if e.context.get("vtid") != start["tid"]]
        self.notifications = []  # (record, manager) of each OnMemoryNotification the host got
        self.callbacks = {}  # callback pointer -> the manager it was registered with
        self.pos = 0
        self.active = active_from_step is None
        self.active_from_step = active_from_step
        self.steps = 0
        self.pending_dump = False
        self.managers = {}  # live managers by interface pointer
        self.heaps = {}  # live heaps by interface pointer
        self.ids = set()  # every manager and heap id seen
        self.dumps = 0
        self.walking = None

    # ----- Events -----

    def take(self, name, rec):
        """The next event of the process, which must be `name`, emitted for record `rec`."""
        if self.pending_dump:
            self.pending_dump = False
            self.check_dump(rec)
        return self.next_event(name, rec)

    def next_event(self, name, rec):
        """The next event, which must be `name`, with the host's contexts and a duration."""
        where = f"record #{rec['n']} ({rec['call']})"
        assert self.pos < len(self.events), f"{where}: no {name} event in the trace"
        ev = self.events[self.pos]
        self.pos += 1
        assert ev.name == name, f"{where}: expected {name}, the trace has {ev}"
        assert ev.context == self.context, f"{where}: contexts {ev.context}"
        if name not in UNTIMED_EVENTS and not name.startswith("statedump_"):
            d = ev.fields.get("duration_ns")
            assert d is not None and 0 < d < 10**10, f"{where}: duration_ns {d} in {ev}"
        return ev

    def compare(self, ev, expected, rec):
        """The event's fields are exactly `expected` (plus duration_ns when it has one)."""
        fields = dict(ev.fields)
        fields.pop("duration_ns", None)
        assert fields == expected, f"record #{rec['n']} {rec}:\nevent    {ev}\nexpected {expected}"

    def learn(self, obj, ev, key):
        """Checks or learns the id of a manager or heap from an event."""
        value = ev.fields[key]
        if obj.id is None:
            assert value not in self.ids and value != 0, f"id {value} reused or 0 in {ev}"
            obj.id = value
            self.ids.add(value)
        assert value == obj.id, f"{ev}: expected {key} {obj.id}"

    def emit(self, m, name, rec, expected, learn=None):
        """Expects event `name` when `m` is traced and the session is recording."""
        if not (self.active and m.traced):
            return
        ev = self.take(name, rec)
        if m.id is None:
            self.learn(m, ev, "manager_id")
        if learn is not None:
            self.learn(learn, ev, "heap_id")
            expected["heap_id"] = learn.id
        self.compare(ev, {"manager_id": m.id, **expected}, rec)

    # ----- State dumps -----

    def next_walks(self, index):
        """The regions of each manager's first walk after record `index`, with no change between."""
        walks, changed, current = {}, set(), None
        for rec in self.records[index + 1 :]:
            call, this = rec["call"], rec["this"]
            if call == "walk_begin":
                current, queries = this, []
            elif call == "walk_end":
                if this not in walks and this not in changed:
                    walks[this] = walk_regions(queries)
                current = None
            elif current is not None and call == "VirtualQuery" and this == current:
                queries.append(rec)
            elif rec.get("changes"):
                changed.add(this)
        return walks

    def check_dump(self, rec):
        """A state dump of every live traced manager, before the event of record `rec`."""
        index = self.records.index(rec)
        walks = self.next_walks(index - 1)
        expected = {ptr for ptr, m in self.managers.items() if m.traced}
        dumped = set()
        while self.pos < len(self.events) and self.events[self.pos].name == "statedump_begin":
            begin = self.next_event("statedump_begin", rec)
            m = self.managers.get(begin.fields["manager"])
            assert m is not None and m.traced, f"a dump of an unknown manager: {begin}"
            assert m.ptr not in dumped, f"manager dumped twice: {begin}"
            dumped.add(m.ptr)
            self.check_manager_dump(m, begin, walks, rec)
        assert dumped == expected, f"record #{rec['n']}: dumped {dumped}, live {expected}"
        if dumped:
            self.dumps += 1

    def check_manager_dump(self, m, begin, walks, rec):
        """One manager's dump; its regions are those of its last walk if nothing changed since,
        else those of its next walk."""
        self.learn(m, begin, "manager_id")
        want = m.walk if m.walk is not None else walks.get(m.ptr)
        assert want is not None, f"the host did not walk manager {m.ptr:#x} around the dump"
        want = sorted(want, key=lambda r: r["base"])
        regions = []
        for _ in range(begin.fields["regions"]):
            ev = self.next_event("statedump_region", rec)
            regions.append(ev.fields)
        assert all(r.pop("manager_id") == m.id for r in regions)
        assert [r["base"] for r in regions] == sorted(r["base"] for r in regions)
        assert regions == want, f"dumped regions\n{regions}\nVirtualQuery says\n{want}"

        vas = {}
        while self.events[self.pos].name == "statedump_vas":
            ev = self.next_event("statedump_vas", rec)
            assert ev.fields["manager_id"] == m.id
            vas[ev.fields["address"]] = ev.fields["size"]
        assert vas == m.vas

        heaps = {h.ptr: h for h in self.heaps.values() if h.manager is m}
        seen = set()
        for _ in range(begin.fields["heaps"]):
            ev = self.next_event("statedump_heap", rec)
            h = heaps.get(ev.fields["heap"])
            assert h is not None and h.ptr not in seen, f"unexpected {ev}"
            seen.add(h.ptr)
            self.learn(h, ev, "heap_id")
            self.compare(
                ev,
                {
                    "manager_id": m.id,
                    "heap_id": h.id,
                    "heap": h.ptr,
                    "malloc_type": h.type,
                    "live_blocks": len(h.blocks),
                    "live_bytes": sum(h.blocks.values()),
                },
                rec,
            )
            blocks = {}
            for _ in range(len(h.blocks)):
                b = self.next_event("statedump_block", rec)
                assert (b.fields["manager_id"], b.fields["heap_id"]) == (m.id, h.id)
                blocks[b.fields["ptr"]] = b.fields["size"]
            assert blocks == h.blocks, f"dumped blocks {blocks}, live {h.blocks}"
        assert seen == set(heaps), f"dumped heaps {seen}, live {set(heaps)}"

        end = self.next_event("statedump_end", rec)
        assert end.fields == {"manager_id": m.id, "seq": m.seq}
        want_begin = {
            "manager_id": m.id,
            "manager": m.ptr,
            "seq": m.seq,
            "regions": len(want),
            "heaps": len(heaps),
            "name": m.name,
        }
        assert begin.fields == want_begin

    # ----- The log, record by record -----

    def run(self):
        """Replays the whole log; fails at the first event that differs from it."""
        for rec in self.records:
            call = rec["call"]
            handler = getattr(self, "on_" + call, None)
            if handler is None:
                assert call in MANAGER_METHODS | HEAP_METHODS, f"unknown record {rec}"
                continue
            handler(rec, rec.get("args", {}), rec.get("out", {}), rec.get("hr"))
        assert not self.pending_dump, "a step expected a state dump that never came"
        rest = self.events[self.pos :]
        assert not rest, f"{len(rest)} events the host's log does not explain: {rest[:5]}"
        self.check_notifications()

    def check_notifications(self):
        """Each notification the host's callbacks got is a memory_notification, in order."""
        expected = [(rec, m) for rec, m in self.notifications if self.active and m.traced]
        got = self.notification_events
        assert len(got) == len(expected), f"notifications {got}, host log {expected}"
        for ev, (rec, m) in zip(got, expected):
            where = f"record #{rec['n']}: {ev}"
            assert ev.name == "memory_notification", where
            assert ev.context["vtid"] == rec["tid"] != self.context["vtid"], where
            assert ev.context["procname"] == "clrmemtrace-mon", where
            f = dict(ev.fields)
            load, text, duration = f.pop("load"), f.pop("reason"), f.pop("duration_ns")
            want = {
                "manager_id": m.id,
                "callback": rec["this"],
                "level": rec["args"]["eMemoryAvailable"],
                "hr": rec["returned"],
            }
            assert f == want, where
            assert 0 < duration < 10**10 and 0 <= load <= 100, where
            match = NOTIFICATION_REASON.fullmatch(text)
            assert match, where
            if match["load"] is not None:
                assert int(match["load"]) == load, where
                low = m.options.get("low_memory_percent") or 90
                high = m.options.get("high_memory_percent") or 60
                if f["level"] == EMEMORY_LOW:
                    assert load >= low, where
                elif f["level"] == EMEMORY_HIGH:
                    assert load <= high, where

    def on_OnMemoryNotification(self, rec, a, o, hr):
        self.notifications.append((rec, self.callbacks[rec["this"]]))

    def on_start(self, rec, a, o, hr):
        pass

    def on_end(self, rec, a, o, hr):
        pass

    def on_maps(self, rec, a, o, hr):
        pass

    def on_step(self, rec, a, o, hr):
        self.steps += 1
        if self.active_from_step is not None and self.steps >= self.active_from_step:
            self.active = True
            self.pending_dump = True

    def on_walk_begin(self, rec, a, o, hr):
        self.walking = (rec["this"], [])

    def on_walk_end(self, rec, a, o, hr):
        ptr, queries = self.walking
        self.managers[ptr].walk = walk_regions(queries)
        self.walking = None

    def on_clrmemtrace_create(self, rec, a, o, hr):
        if hr != S_OK:
            assert o["manager"] == 0
            return
        flags = a["flags"] if a["options"] else 0
        m = Manager(o["manager"], a["name"] or "", flags, a)
        self.managers[m.ptr] = m
        if self.active and m.traced:
            ev = self.take("manager_create", rec)
            self.learn(m, ev, "manager_id")
            expected = {
                "manager_id": m.id,
                "manager": m.ptr,
                "flags": flags,
                "page_size": self.page_size,
                "name": m.name,
                "version": self.version,
            }
            self.compare(ev, expected, rec)

    def on_clrmemtrace_statedump(self, rec, a, o, hr):
        if hr == S_OK and self.active:
            self.check_dump(rec)

    def on_Release(self, rec, a, o, hr):
        if o["refs"] != 0:
            return
        ptr = rec["this"]
        if self.pending_dump:
            # The last Release dumps (when a session just started) before the object goes.
            self.pending_dump = False
            self.check_dump(rec)
        if ptr in self.heaps:
            h = self.heaps.pop(ptr)
            expected = {"live_blocks": len(h.blocks), "live_bytes": sum(h.blocks.values())}
            self.emit(h.manager, "malloc_destroy", rec, expected, learn=h)
            return
        m = self.managers.pop(ptr)
        if not (self.active and m.traced):
            return
        assert m.walk is not None, f"record #{rec['n']}: walk the manager before releasing it"
        expected = {
            "regions": len({r["allocation_base"] for r in m.walk}),
            "reserved_bytes": sum(r["size"] for r in m.walk),
            "committed_bytes": sum(r["size"] for r in m.walk if r["state"] == MEM_COMMIT),
        }
        self.emit(m, "manager_destroy", rec, expected)

    def manager(self, rec):
        """The live manager a record's call was made on."""
        return self.managers[rec["this"]]

    def change(self, m, rec):
        """Applies a VM call's state change to the model: the sequence number moves by one."""
        assert rec["changes"] in (0, 1)
        if rec["changes"]:
            assert rec["hr"] == S_OK
            m.seq += 1
            m.walk = None

    def on_VirtualAlloc(self, rec, a, o, hr):
        m = self.manager(rec)
        self.change(m, rec)
        expected = {
            "address": a["pAddress"],
            "size": a["dwSize"],
            "type": a["flAllocationType"],
            "protect": a["flProtect"],
            "level": a["eCriticalLevel"],
            "result": o["ppMem"],
            "hr": hr,
            "seq": m.seq,
            "reason": reason(rec),
        }
        assert hr == S_OK or o["ppMem"] == 0
        self.emit(m, "virtual_alloc", rec, expected)

    def on_VirtualFree(self, rec, a, o, hr):
        m = self.manager(rec)
        self.change(m, rec)
        expected = {
            "address": a["lpAddress"],
            "size": a["dwSize"],
            "type": a["dwFreeType"],
            "hr": hr,
            "seq": m.seq,
        }
        self.emit(m, "virtual_free", rec, expected)

    def on_VirtualProtect(self, rec, a, o, hr):
        m = self.manager(rec)
        self.change(m, rec)
        assert hr == S_OK or o["pflOldProtect"] == 0
        expected = {
            "address": a["lpAddress"],
            "size": a["dwSize"],
            "protect": a["flNewProtect"],
            "old_protect": o["pflOldProtect"],
            "hr": hr,
            "seq": m.seq,
        }
        self.emit(m, "virtual_protect", rec, expected)

    def on_VirtualQuery(self, rec, a, o, hr):
        m = self.manager(rec)
        if self.walking is not None and self.walking[0] == m.ptr:
            self.walking[1].append(rec)
        # Argument checks fail before the query reaches the manager's state (no seq read).
        reached = a["dwLength"] >= MBI_SIZE and not a["null_lpBuffer"] and not a["null_pResult"]
        seq = m.seq if reached else 0
        mbi = {
            "base": o.get("BaseAddress", 0),
            "allocation_base": o.get("AllocationBase", 0),
            "allocation_protect": o.get("AllocationProtect", 0),
            "region_size": o.get("RegionSize", 0),
            "state": o.get("State", 0),
            "protect": o.get("Protect", 0),
            "mem_type": o.get("Type", 0),
        }
        result = MBI_SIZE if hr == S_OK else 0
        if not a["null_pResult"]:
            assert o["pResult"] == result
        expected = {
            "address": a["lpAddress"],
            "length": a["dwLength"],
            "result": result,
            **mbi,
            "hr": hr,
            "seq_before": seq,
            "seq_after": seq,
        }
        self.emit(m, "virtual_query", rec, expected)

    def on_GetMemoryLoad(self, rec, a, o, hr):
        expected = {"load": o["pMemoryLoad"], "available": o["pAvailableBytes"], "hr": hr}
        if hr == S_OK:
            assert 0 <= o["pMemoryLoad"] <= 100
        self.emit(self.manager(rec), "memory_load", rec, expected)

    def on_RegisterMemoryNotificationCallback(self, rec, a, o, hr):
        m = self.manager(rec)
        previous = m.callback if hr == S_OK else 0
        if hr == S_OK:
            m.callback = a["pCallback"]
            self.callbacks[m.callback] = m
        expected = {"callback": a["pCallback"], "previous": previous, "hr": hr}
        self.emit(m, "notification_register", rec, expected)

    def on_NeedsVirtualAddressSpace(self, rec, a, o, hr):
        m = self.manager(rec)
        expected = {
            "address": a["startAddress"],
            "size": a["size"],
            "hr": hr,
            "total": sum(m.vas.values()),
            "reason": reason(rec),
        }
        self.emit(m, "vas_needs", rec, expected)

    def on_AcquiredVirtualAddressSpace(self, rec, a, o, hr):
        m = self.manager(rec)
        if hr == S_OK:
            m.vas[a["startAddress"]] = a["size"]
        expected = {
            "address": a["startAddress"],
            "size": a["size"],
            "hr": hr,
            "total": sum(m.vas.values()),
            "reason": "",
        }
        self.emit(m, "vas_acquired", rec, expected)

    def on_ReleasedVirtualAddressSpace(self, rec, a, o, hr):
        m = self.manager(rec)
        size = m.vas.pop(a["startAddress"]) if hr == S_OK else 0
        expected = {
            "address": a["startAddress"],
            "size": size,
            "hr": hr,
            "total": sum(m.vas.values()),
            "reason": "",
        }
        self.emit(m, "vas_released", rec, expected)

    def on_CreateMalloc(self, rec, a, o, hr):
        m = self.manager(rec)
        h = None
        if hr == S_OK:
            h = Heap(o["ppMalloc"], m, a["dwMallocType"])
            self.heaps[h.ptr] = h
        assert hr == S_OK or o["ppMalloc"] == 0
        expected = {"heap": o["ppMalloc"], "malloc_type": a["dwMallocType"], "hr": hr}
        if h is None:
            expected["heap_id"] = 0
        self.emit(m, "malloc_create", rec, expected, learn=h)

    def on_QueryInterface(self, rec, a, o, hr):
        """No event; the interface returned is the object itself."""
        assert (hr == S_OK) == (o["ppv"] == rec["this"])

    def on_Alloc(self, rec, a, o, hr):
        h = self.heaps[rec["this"]]
        if hr == S_OK:
            assert o["ppMem"] not in h.blocks
            h.blocks[o["ppMem"]] = a["cbSize"]
        debug = rec["call"] == "DebugAlloc"
        expected = {
            "size": a["cbSize"],
            "level": a["eCriticalLevel"],
            "ptr": o["ppMem"],
            "hr": hr,
            "file": (a["pszFileName"] or "") if debug else "",
            "line": a["iLineNo"] if debug else 0,
            "reason": reason(rec),
        }
        self.emit(h.manager, "malloc_alloc", rec, expected, learn=h)

    on_DebugAlloc = on_Alloc

    def on_Free(self, rec, a, o, hr):
        h = self.heaps[rec["this"]]
        size = h.blocks.pop(a["pMem"]) if hr == S_OK and a["pMem"] else 0
        expected = {"ptr": a["pMem"], "size": size, "hr": hr}
        self.emit(h.manager, "malloc_free", rec, expected, learn=h)


# ---------- Tests ----------


def test_every_call_emits_its_event_exactly(build, lttng, sessions, tmp_path):
    """Every call of the script is in the trace, in order, with exactly the host's values.

    Covers failing calls' HRESULTs, outputs, MEMORY_BASIC_INFORMATION fields, old_protect,
    DebugAlloc's file and line, seq (+1 per state change, constant otherwise), manager and heap
    ids, durations, contexts, the lifetime events, clrmemtrace_statedump(), the host policy's
    refusals and their reasons, and the memory notifications the monitor thread delivers.
    """
    session = sessions.create()
    records = run_host(build, tmp_path / "script.jsonl", "--statedump", "yes", env=host_env(lttng))
    checker = Checker(records, session.read(pids=[pid_of(records)]))
    checker.run()

    managers = {r["out"]["manager"] for r in records if r["call"] == "clrmemtrace_create"}
    calls = {r["call"] for r in records if r["this"] in managers - {0}}
    assert MANAGER_METHODS <= calls, f"not exercised: {MANAGER_METHODS - calls}"
    heap_calls = {r["call"] for r in records if r["call"] in HEAP_METHODS}
    assert HEAP_METHODS <= heap_calls
    failing = [r for r in records if r.get("hr") not in (None, S_OK, S_FALSE)]
    assert len({r["hr"] for r in failing}) >= 6, "the script should fail in many ways"
    assert checker.dumps == 1
    assert marker(records, "maps")["provider"] == 1
    assert EMEMORY_LOW in [e.fields["level"] for e in checker.notification_events]
    assert {r["refusal"] for r in records if r.get("refusal")} == set(REFUSALS)


def test_late_sessions_start_with_a_state_dump(build, lttng, sessions, tmp_path):
    """A session started while the host holds memory gets a dump that rebuilds it exactly.

    The first session dumps at the host's first call after it starts; a second one, started
    while the first runs, gets its own dump because it enables statedump_request. Regions must
    equal the host's VirtualQuery walk, heaps and blocks its live allocations, the address
    space ranges its acquired ones, and begin/end seq the manager's count of state changes.

    A session of another program that already records clrmemtrace's state-dump events in every
    process (`clrmemtrace:*` on the same daemon) takes those dumps for itself: the test is then
    skipped, as it cannot tell what the library does.
    """
    log = tmp_path / "dump.jsonl"
    host = Host(build, log, host_env(lttng))
    try:
        if host.expect("ready", "ready busy") == "ready busy":
            pytest.skip("another session on the daemon records clrmemtrace's state dumps")
        first = sessions.create()
        host.command("step", "done")
        second = sessions.create(events=sessions.ALL_EVENTS + (sessions.STATEDUMP_REQUEST,))
        host.command("step", "done")
        host.finish()
    finally:
        host.kill()
    records = read_log(log)
    assert records[-1]["failures"] == 0
    first_checker = Checker(records, first.read(pids=[pid_of(records)]), active_from_step=1)
    first_checker.run()
    assert first_checker.dumps == 2
    second_checker = Checker(records, second.read(pids=[pid_of(records)]), active_from_step=2)
    second_checker.run()
    assert second_checker.dumps == 1


def assert_no_events(events, records):
    """No event in `events` comes from the process that wrote `records`."""
    mine = [e for e in events if e.context.get("vpid") == pid_of(records)]
    assert not mine, f"{len(mine)} events from a process that must not trace: {mine[:3]}"


@pytest.mark.parametrize("how", ["environment", "library-alone"])
def test_runs_without_the_provider(build, lttng, sessions, tmp_path, how):
    """Without the provider the library loads, every call works, and nothing is traced.

    The provider is missing either where CLRMEMTRACE_LTTNG_PROVIDER points, or beside a copy
    of the library alone. A normal host run in the same session is traced in full.
    """
    env = host_env(lttng)
    if how == "environment":
        env["CLRMEMTRACE_LTTNG_PROVIDER"] = str(tmp_path / "missing" / "libclrmemtrace-lttng.so")
    else:
        lib = tmp_path / "lib"
        lib.mkdir()
        shutil.copy(build.library.resolve(), lib / build.library.name)
        env["LD_LIBRARY_PATH"] = str(lib)
    session = sessions.create()
    records = run_host(build, tmp_path / "host.jsonl", env=env)
    control = run_host(build, tmp_path / "control.jsonl", "--statedump", "yes", env=host_env(lttng))
    maps = marker(records, "maps")
    assert maps["provider"] == 0 and maps["lttng_ust"] == 0
    if how == "library-alone":
        assert maps["library"].startswith(str(tmp_path / "lib"))
    events = session.read(pids=[pid_of(records), pid_of(control)])
    assert_no_events(events, records)
    Checker(control, events).run()


def test_trace_off_in_the_environment(build, lttng, sessions, tmp_path):
    """CLRMEMTRACE_TRACE=0 (or off/no/false): no provider loaded, no event, calls unchanged.

    The session records everything, state-dump requests included; a normal host run in the
    same session afterwards is traced in full.
    """
    session = sessions.create(events=sessions.ALL_EVENTS + (sessions.STATEDUMP_REQUEST,))
    runs = []
    for value in ("0", "off", "No", "FALSE"):
        env = host_env(lttng, CLRMEMTRACE_TRACE=value)
        records = run_host(build, tmp_path / f"host-{value}.jsonl", env=env)
        maps = marker(records, "maps")
        assert maps["provider"] == 0 and maps["lttng_ust"] == 0, value
        runs.append(records)
    control = run_host(build, tmp_path / "control.jsonl", "--statedump", "yes", env=host_env(lttng))
    events = session.read(pids=[pid_of(r) for r in runs + [control]])
    for records in runs:
        assert_no_events(events, records)
    Checker(control, events).run()


def test_no_trace_flag_silences_one_manager(build, lttng, sessions, tmp_path):
    """CLRMEMTRACE_FLAG_NO_TRACE: no event from that manager or its heaps, even in dumps.

    The same process's managers created without the flag are traced as usual.
    """
    session = sessions.create()
    records = run_host(
        build,
        tmp_path / "host.jsonl",
        "--no-trace-flag",
        "--control",
        "--statedump",
        "yes",
        env=host_env(lttng),
    )
    events = session.read(pids=[pid_of(records)])
    Checker(records, events).run()

    created = [r for r in records if r["call"] == "clrmemtrace_create" and r["hr"] == S_OK]
    flagged = {r["out"]["manager"] for r in created if r["args"]["options"] and r["args"]["flags"]}
    traced = {r["out"]["manager"] for r in created} - flagged
    assert flagged and traced
    assert sum(r["this"] in flagged for r in records) > 50, "the flagged manager did little"
    pid = pid_of(records)
    mine = [e for e in events if e.context["vpid"] == pid]
    ids = {e.fields["manager_id"] for e in mine if e.name == "manager_create"}
    assert {e.fields["manager"] for e in mine if e.name == "manager_create"} == traced
    assert {e.fields["manager_id"] for e in mine} == ids
    assert not [e for e in mine if e.name.startswith(("malloc_", "statedump_", "vas_"))]


def time_startup(build, tmp_path, home, timeout_ms):
    """Wall time of a whole script run with LTTNG_HOME=home, and the host's log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLRMEMTRACE_", "LTTNG_"))}
    env["LTTNG_HOME"] = str(home)
    if timeout_ms is not None:
        env["LTTNG_UST_REGISTER_TIMEOUT"] = timeout_ms
    log = tmp_path / f"startup-{timeout_ms}.jsonl"
    t0 = time.monotonic()
    # Sessions of other programs on the machine may record the state dump: either result goes.
    records = run_host(build, log, "--statedump", "any", env=env)
    return time.monotonic() - t0, records


def test_startup_never_waits_for_a_session_daemon(build, tmp_path):
    """A session daemon that never answers does not delay start-up (LTTng-UST waits 3 s).

    The daemon is a socket at LTTng-UST's per-user path that accepts connections and never
    replies. Unless the program sets LTTNG_UST_REGISTER_TIMEOUT, the library makes it 0 while
    it loads the provider, then restores the environment. The control run sets it to 1000 ms
    and must wait that long, which shows the fake daemon does hold registration up.
    """
    home = tempfile.mkdtemp(prefix="clrmemtrace-")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.mkdir(os.path.join(home, ".lttng"))
        sock.bind(os.path.join(home, ".lttng", "lttng-ust-sock-8"))
        sock.listen(64)

        elapsed, records = time_startup(build, tmp_path, home, None)
        assert elapsed < 2.0, f"start-up took {elapsed:.2f} s"
        assert marker(records, "start")["register_timeout"] is None
        assert marker(records, "maps")["provider"] == 1

        elapsed, records = time_startup(build, tmp_path, home, "1000")
        assert elapsed >= 0.9, f"the unresponsive daemon did not hold start-up ({elapsed:.2f} s)"
        assert marker(records, "start")["register_timeout"] == "1000"
    finally:
        sock.close()
        shutil.rmtree(home, ignore_errors=True)
