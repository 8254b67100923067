# SPDX-License-Identifier: MIT
"""The trace records the host policy's decisions (tracepoints/EVENTS.md).

tests/policy/policy-trace-host logs, one JSON object a line, every call it makes and what came
back, in three scenarios: a manager whose budgets refuse, one whose budget crosses the
notification thresholds, and a decorator (clrmemtrace_wrap) over an untraced manager of the
library's own. Under a session recording every clrmemtrace event, the trace must show:

- each refusal with its `reason` (virtual_alloc, vas_needs, malloc_alloc), and no reason on
  anything else;
- each delivery as memory_notification, in order, with its level, callback, load and a reason
  that names what caused it;
- the decorator as a manager_create with flags bit 31, every call made through it as its own
  event with the values the host got back, the inner manager's notifications relayed, and none
  of the inner manager's own events.

The fixtures (build, lttng, sessions) come from conftest.py.
"""

import json
import re
import subprocess

import pytest

S_OK = 0
E_OUTOFMEMORY = -2147024882
EMEMORY_LOW, EMEMORY_HIGH = 1, 3
WRAPPED = 0x80000000  # manager_create flags: a decorator made by clrmemtrace_wrap

HOST_TIMEOUT = 60
REGISTER_TIMEOUT_MS = "10000"

COMMIT_REFUSED = "commit budget exceeded"
ADDRESS_SPACE_REFUSED = "address-space budget exceeded"
# What the budget scenario expects each step's event to say, by step.
REASONS = {
    "commit-refused": COMMIT_REFUSED,
    "reserve-refused": ADDRESS_SPACE_REFUSED,
    "needs-refused": ADDRESS_SPACE_REFUSED,
    "alloc-refused": COMMIT_REFUSED,
    "debugalloc-refused": COMMIT_REFUSED,
}
BUDGET_REASON = re.compile(r"commit budget (\d+)% used")
SYSTEM_REASON = re.compile(r"system memory (\d+)% used")
RELAYED = "from the wrapped manager"
# A memory stall anywhere on the machine brings Low too (tests/policy/policy-common.h): with one
# during a scenario, only the trace's agreement with the host is checked, not which levels came.
STALL_EXCUSE_US = 10000

# The host's calls and the event each emits (deliveries, which the host only sees some of, are
# check_notifications' business).
EVENT_OF = {
    "VirtualAlloc": "virtual_alloc",
    "VirtualFree": "virtual_free",
    "VirtualQuery": "virtual_query",
    "VirtualProtect": "virtual_protect",
    "GetMemoryLoad": "memory_load",
    "RegisterMemoryNotificationCallback": "notification_register",
    "NeedsVirtualAddressSpace": "vas_needs",
    "AcquiredVirtualAddressSpace": "vas_acquired",
    "ReleasedVirtualAddressSpace": "vas_released",
    "CreateMalloc": "malloc_create",
    "Alloc": "malloc_alloc",
    "DebugAlloc": "malloc_alloc",
    "Free": "malloc_free",
}
# The fields of each event that the host's record gives, as (event field, record field).
FIELDS = {
    "virtual_alloc": [("address",) * 2, ("size",) * 2, ("type",) * 2, ("protect",) * 2,
                      ("level",) * 2, ("result",) * 2, ("hr",) * 2],
    "virtual_free": [("address",) * 2, ("size",) * 2, ("type",) * 2, ("hr",) * 2],
    "virtual_query": [("address",) * 2, ("result",) * 2, ("state",) * 2, ("region_size",) * 2,
                      ("hr",) * 2],
    "virtual_protect": [("address",) * 2, ("size",) * 2, ("protect",) * 2,
                        ("old_protect",) * 2, ("hr",) * 2],
    "memory_load": [("load",) * 2, ("available",) * 2, ("hr",) * 2],
    "notification_register": [("callback",) * 2, ("hr",) * 2],
    "vas_needs": [("address",) * 2, ("size",) * 2, ("hr",) * 2],
    "vas_acquired": [("address",) * 2, ("size",) * 2, ("hr",) * 2],
    "vas_released": [("address",) * 2, ("hr",) * 2],
    "malloc_create": [("heap",) * 2, ("hr",) * 2],
    "malloc_alloc": [("size",) * 2, ("level",) * 2, ("file",) * 2, ("line",) * 2, ("ptr",) * 2,
                     ("hr",) * 2],
    "malloc_free": [("ptr",) * 2, ("hr",) * 2],
}


def run_host(build, lttng):
    """Builds and runs policy-trace-host to completion; its log and process id."""
    host = build.path / "tests" / "policy" / "policy-trace-host"
    proc = subprocess.run(["ninja", "-C", str(build.path), str(host.relative_to(build.path))],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, f"building policy-trace-host failed:\n{proc.stdout[-4000:]}"
    env = {k: v for k, v in lttng.env.items() if not k.startswith("CLRMEMTRACE_")}
    env["LTTNG_UST_REGISTER_TIMEOUT"] = REGISTER_TIMEOUT_MS
    child = subprocess.Popen([str(host)], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = child.communicate(timeout=HOST_TIMEOUT)
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert child.returncode == 0, f"policy-trace-host failed ({child.returncode}):\n{out}\n{err}"
    assert records[0]["call"] == "start" and records[-1] == {"call": "end", "failures": 0}
    return records, child.pid


@pytest.fixture
def traced(build, lttng, sessions):
    """The host's records and its events, read back from a session recording every event."""
    session = sessions.create()
    records, pid = run_host(build, lttng)
    events = [e for e in session.read() if e.context.get("vpid") == pid]
    assert events, "the session recorded nothing of the host"
    return records, events


def managers(events):
    """Manager ids by name, from manager_create; fails if a name appears twice."""
    ids = {}
    for ev in events:
        if ev.name == "manager_create":
            name = ev.fields["name"]
            assert name not in ids, f"two managers named {name!r}"
            ids[name] = ev
    return ids


def of_manager(events, manager_id, name):
    return [e for e in events if e.name == name and e.fields.get("manager_id") == manager_id]


def check_calls(records, events, scenario, manager_id):
    """Every call the host logged for `scenario` is its event, in order, with its values.

    Returns the events matched, by step.
    """
    matched = {}
    by_event = {}
    for rec in records:
        if rec.get("manager") != scenario or rec["call"] not in EVENT_OF:
            continue
        by_event.setdefault(EVENT_OF[rec["call"]], []).append(rec)
    for name, recs in by_event.items():
        evs = of_manager(events, manager_id, name)
        assert len(evs) == len(recs), (
            f"{scenario}: {len(recs)} {name} calls, {len(evs)} events: {evs}")
        for rec, ev in zip(recs, evs):
            for field, key in FIELDS[name]:
                if key in rec:
                    assert ev.fields[field] == rec[key], (
                        f"{scenario} {rec['step']}: {name}.{field} is {ev.fields[field]!r}, "
                        f"the host got {rec[key]!r}")
            matched.setdefault(rec["step"], []).append(ev)
    return matched


def test_budget_refusals_carry_their_reason(traced):
    records, events = traced
    budget = managers(events)["policy-budget"].fields["manager_id"]
    matched = check_calls(records, events, "budget", budget)

    for step, reason in REASONS.items():
        (ev,) = matched[step]
        assert ev.fields["hr"] == E_OUTOFMEMORY, step
        assert ev.fields["reason"] == reason, f"{step}: {ev!r}"
    # Everything the policy let through says nothing.
    for step, evs in matched.items():
        if step not in REASONS:
            for ev in evs:
                assert ev.fields.get("reason", "") == "", f"{step}: {ev!r}"
    # The refused DebugAlloc keeps its file and line.
    (ev,) = matched["debugalloc-refused"]
    assert (ev.fields["file"], ev.fields["line"]) == ("policy-trace-host.c", 4242)


def check_notifications(records, events, scenario, manager_id, quiet):
    """The deliveries the host's callback got are the manager's memory_notification events.

    Returns the events, and whether the levels are the scenario's own (no stall meanwhile).
    """
    told = [r for r in records if r.get("manager") == scenario
            and r["call"] == "OnMemoryNotification"]
    (stall,) = [r for r in records if r.get("manager") == scenario and r["call"] == "stall"]
    evs = of_manager(events, manager_id, "memory_notification")
    # The host logs what its callback got after it returned: the trace has them all, in order.
    levels = [e.fields["level"] for e in evs]
    assert levels[: len(told)] == [r["level"] for r in told]
    for ev in evs:
        assert ev.fields["callback"] == told[0]["callback"]
        assert ev.fields["hr"] == S_OK
    own = stall["us"] < STALL_EXCUSE_US
    if own and quiet:
        assert levels == [EMEMORY_LOW, EMEMORY_HIGH]
    elif own:
        # The system's own load may hold the level at Neutral once the budget is given back.
        assert levels[0] == EMEMORY_LOW and EMEMORY_LOW not in levels[1:]
    else:
        assert EMEMORY_LOW in levels
    return evs, own


def test_memory_notifications_are_traced(traced):
    records, events = traced
    start = records[0]
    notify = managers(events)["policy-notify"].fields["manager_id"]
    check_calls(records, events, "notify", notify)
    evs, own = check_notifications(records, events, "notify", notify, start["quiet"])
    if not own:
        pytest.skip("the system stalled on memory meanwhile: the levels are not all the budget's")

    # Low, with the load that caused it: the budget's 85 %, or the system's if that is higher.
    low = evs[0]
    m = BUDGET_REASON.fullmatch(low.fields["reason"])
    if m:
        assert int(m.group(1)) == low.fields["load"] == 85
    else:
        m = SYSTEM_REASON.fullmatch(low.fields["reason"])
        assert m, low
        assert int(m.group(1)) == low.fields["load"] > 85
    for ev in evs[1:]:
        # Out of Low: the budget's load (0) or the system's, whichever is higher, says why, and
        # the level is that load's (thresholds 80/40, hysteresis 5).
        m = BUDGET_REASON.fullmatch(ev.fields["reason"]) or SYSTEM_REASON.fullmatch(
            ev.fields["reason"])
        assert m, ev
        assert int(m.group(1)) == ev.fields["load"]
        assert ev.fields["load"] <= 40 if ev.fields["level"] == EMEMORY_HIGH else \
            ev.fields["load"] + 5 < 80


def test_decorated_manager_calls_are_traced(traced):
    records, events = traced
    start = records[0]
    created = managers(events)
    wrap = created["policy-wrap"]
    wrap_id = wrap.fields["manager_id"]
    (rec,) = [r for r in records if r["call"] == "clrmemtrace_wrap"]
    assert wrap.fields["manager"] == rec["object"]
    assert wrap.fields["flags"] & WRAPPED
    # The library's own managers are not marked.
    assert not created["policy-budget"].fields["flags"] & WRAPPED
    # The inner manager (CLRMEMTRACE_FLAG_NO_TRACE) leaves no event: every event is one of the
    # traced managers'.
    assert "policy-inner" not in created
    known = {ev.fields["manager_id"] for ev in created.values()}
    strays = [e for e in events if "manager_id" in e.fields and e.fields["manager_id"] not in known]
    assert not strays, strays[:5]

    matched = check_calls(records, events, "wrap", wrap_id)
    # The inner manager's budget refused; the decorator has no policy reason of its own.
    (refused,) = matched["commit-refused"]
    assert refused.fields["hr"] == E_OUTOFMEMORY
    assert refused.fields["reason"] == ""
    # Heap calls are the wrapped heap's, with DebugAlloc's file and line and the freed sizes.
    (heap,) = matched["heap"]
    allocs = of_manager(events, wrap_id, "malloc_alloc")
    assert {e.fields["heap_id"] for e in allocs} == {heap.fields["heap_id"]}
    assert (allocs[1].fields["file"], allocs[1].fields["line"]) == ("policy.c", 7)
    frees = of_manager(events, wrap_id, "malloc_free")
    assert [e.fields["size"] for e in frees] == [100, 200]
    assert [e.name for e in events if e.fields.get("heap_id") == heap.fields["heap_id"]][-1] \
        == "malloc_destroy"

    # The inner manager's monitor notified the decorator's relay, which passed it on.
    evs, _ = check_notifications(records, events, "wrap", wrap_id, start["quiet"])
    assert {e.fields["reason"] for e in evs} == {RELAYED}
    # And the decorator's last Release is traced too.
    assert len(of_manager(events, wrap_id, "manager_destroy")) == 1
