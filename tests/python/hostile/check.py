# SPDX-License-Identifier: MIT
"""What every document of sink.clrmemtrace.analysis must look like, whatever the trace.

Each ``check_*`` function takes the text of a document (analysis/README.md, "The plugin's
output") and raises AssertionError, saying where, when it is not well-formed or breaks an
invariant that holds for any input: JSON that parses (and CSV with the timeline's
columns), the documented keys and types, peaks at least the final values, committed bytes
within the reserved ones, a complete trace without reasons, complete managers without
unknown windows, lists within ``max-details``, per-manager figures and listed leaks adding
up to the totals (byte totals past 2^64 - 1 saturated, in an incomplete trace), latency
percentiles in order, histograms that add up to their count.
"""

import csv
import io
import json

TIMELINE_COLUMNS = ("time_ns,vpid,tid,manager_id,op,allocation_base,address,size,protect,"
                    "old_protect,level,hr,seq").split(",")
# The README's operations, and "remap", the mmap view's mremap.
TIMELINE_OPS = {"reserve", "reserve_commit", "commit", "decommit", "protect", "reset",
                "release", "statedump", "remap"}
VIRTUAL = ("peak_reserved_bytes", "peak_committed_bytes", "final_reserved_bytes",
           "final_committed_bytes", "live_regions", "failed_calls")
MALLOC = ("heaps", "allocs", "frees", "peak_live_bytes", "final_live_bytes", "live_blocks")
ANOMALIES = ("rwx_commit", "w_to_x_flip", "free_unknown", "double_free",
             "commit_outside_reservation", "protect_uncommitted", "seq_regression")
U64 = 2**64
TOTAL_MAX = U64 - 1


def _sum_shown(parts, shown, complete, where):
    """A byte total against the parts that make it: their sum, saturated at 2^64 - 1 (the
    parts may be saturated themselves); a sum past it leaves nothing complete."""
    exact = sum(parts)
    assert shown == min(exact, TOTAL_MAX), f"{where}: {shown}, the parts add up to {exact}"
    assert not (complete and exact > TOTAL_MAX), f"{where}: past 2^64 - 1 in a complete trace"


def _int(value, where, low=0, high=U64 - 1):
    assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} not an int"
    assert low <= value <= high, f"{where}: {value} out of [{low}, {high}]"


def _time(value, where):
    _int(value, where, -(2**63), 2**63 - 1)


def _keys(obj, keys, where):
    assert isinstance(obj, dict), f"{where}: not an object"
    missing = [k for k in keys if k not in obj]
    assert not missing, f"{where}: missing {missing}"


def parse_json(text, where="document"):
    try:
        return json.loads(text)
    except ValueError as e:
        raise AssertionError(f"{where}: not valid JSON ({e})") from None


def _virtual(v, where, complete):
    _keys(v, VIRTUAL + ("committed_by_protect", "calls"), where)
    for k in VIRTUAL:
        _int(v[k], f"{where}.{k}")
    assert v["peak_reserved_bytes"] >= v["final_reserved_bytes"], f"{where}: reserved peak"
    assert v["peak_committed_bytes"] >= v["final_committed_bytes"], f"{where}: committed peak"
    assert v["final_committed_bytes"] <= v["final_reserved_bytes"], f"{where}: committed > reserved"
    assert v["peak_committed_bytes"] <= v["peak_reserved_bytes"], f"{where}: peaks"
    by = v["committed_by_protect"]
    for name, n in by.items():
        assert isinstance(name, str) and name, f"{where}: protection name {name!r}"
        _int(n, f"{where}.committed_by_protect.{name}", 1)
    _sum_shown(by.values(), v["final_committed_bytes"], complete,
               f"{where}: committed_by_protect sum")
    for name, n in v["calls"].items():
        _int(n, f"{where}.calls.{name}")
    assert v["failed_calls"] <= sum(v["calls"].values()), f"{where}: failed_calls > calls"


def _malloc(h, where):
    _keys(h, MALLOC, where)
    for k in MALLOC:
        _int(h[k], f"{where}.{k}")
    assert h["peak_live_bytes"] >= h["final_live_bytes"], f"{where}: heap peak"


def check_summary(text, max_details=1000):
    """The summary document: returns it parsed."""
    doc = parse_json(text, "summary")
    _keys(doc, ("format", "version", "events", "discarded_events", "complete",
                "incomplete_reasons", "begin_ns", "end_ns", "processes", "virtual", "malloc",
                "check", "anomalies", "anomaly_counts", "failures", "latency", "memory_load",
                "notifications", "leaks"), "summary")
    assert doc["format"] == "clrmemtrace-summary" and doc["version"] == 1
    _int(doc["events"], "events")
    _int(doc["discarded_events"], "discarded_events")
    assert isinstance(doc["complete"], bool)
    reasons = doc["incomplete_reasons"]
    assert isinstance(reasons, list) and all(isinstance(r, str) and r for r in reasons)
    assert len(reasons) <= max_details, "incomplete_reasons beyond max-details"
    if doc["complete"]:
        assert reasons == [], f"a complete trace with reasons: {reasons}"
    elif max_details > 0:
        assert reasons, "an incomplete trace without a reason"
    if doc["events"] == 0:
        assert doc["begin_ns"] is None and doc["end_ns"] is None
    else:
        _time(doc["begin_ns"], "begin_ns")
        _time(doc["end_ns"], "end_ns")
    _virtual(doc["virtual"], "virtual", doc["complete"])
    _malloc(doc["malloc"], "malloc")
    totals = {k: [] for k in VIRTUAL[2:5] + MALLOC[:3] + MALLOC[4:]}
    calls = {}
    peaks = {"peak_reserved_bytes": 0, "peak_committed_bytes": 0, "peak_live_bytes": 0}
    seen = set()
    for i, p in enumerate(doc["processes"]):
        where = f"processes[{i}]"
        _keys(p, ("vpid", "procname", "complete", "managers"), where)
        _int(p["vpid"], f"{where}.vpid")
        assert p["vpid"] not in seen, f"{where}: vpid {p['vpid']} twice"
        seen.add(p["vpid"])
        assert isinstance(p["procname"], str)
        assert isinstance(p["complete"], bool)
        if doc["complete"]:
            assert p["complete"], f"{where}: incomplete in a complete trace"
        mids = set()
        for j, m in enumerate(p["managers"]):
            mw = f"{where}.managers[{j}]"
            _keys(m, ("manager_id", "name", "complete", "unknown_windows", "virtual", "malloc"),
                  mw)
            _int(m["manager_id"], f"{mw}.manager_id")
            assert m["manager_id"] not in mids, f"{mw}: manager id twice"
            mids.add(m["manager_id"])
            assert isinstance(m["name"], str)
            if p["complete"]:
                assert m["complete"], f"{mw}: incomplete in a complete process"
            windows = m["unknown_windows"]
            assert len(windows) <= max_details, f"{mw}: windows beyond max-details"
            if m["complete"]:
                assert windows == [], f"{mw}: a complete manager with unknown windows"
            for w in windows:
                assert isinstance(w, list) and len(w) == 2, f"{mw}: window {w}"
                _time(w[0], f"{mw} window")
                _time(w[1], f"{mw} window")
                assert w[0] <= w[1], f"{mw}: window {w} ends before it begins"
            _virtual(m["virtual"], f"{mw}.virtual", m["complete"])
            _malloc(m["malloc"], f"{mw}.malloc")
            for k in VIRTUAL[2:5]:
                totals[k].append(m["virtual"][k])
            for k in MALLOC[:3] + MALLOC[4:]:
                totals[k].append(m["malloc"][k])
            for name, n in m["virtual"]["calls"].items():
                calls[name] = calls.get(name, 0) + n
            for k in ("peak_reserved_bytes", "peak_committed_bytes"):
                peaks[k] = max(peaks[k], m["virtual"][k])
            peaks["peak_live_bytes"] = max(peaks["peak_live_bytes"], m["malloc"]["peak_live_bytes"])
    for k in ("final_reserved_bytes", "final_committed_bytes"):
        _sum_shown(totals[k], doc["virtual"][k], doc["complete"], f"virtual.{k}")
    _sum_shown(totals["final_live_bytes"], doc["malloc"]["final_live_bytes"], doc["complete"],
               "malloc.final_live_bytes")
    for k in ("live_regions", "heaps", "allocs", "frees", "live_blocks"):
        where = "virtual" if k == "live_regions" else "malloc"
        assert sum(totals[k]) == doc[where][k], f"{where}.{k}: managers add up to {totals[k]}"
    assert calls == doc["virtual"]["calls"] or not doc["processes"], "calls: managers differ"
    for k in ("peak_reserved_bytes", "peak_committed_bytes"):
        assert doc["virtual"][k] >= peaks[k], f"virtual.{k} below a manager's"
    assert doc["malloc"]["peak_live_bytes"] >= peaks["peak_live_bytes"], "heap peak"
    check = doc["check"]
    _keys(check, ("queries_checked", "mismatches", "unverifiable", "mismatch_details"), "check")
    for k in ("queries_checked", "mismatches", "unverifiable"):
        _int(check[k], f"check.{k}")
    assert check["mismatches"] <= check["queries_checked"]
    assert len(check["mismatch_details"]) <= min(check["mismatches"], max_details)
    counts = doc["anomaly_counts"]
    assert set(counts) <= set(ANOMALIES), f"anomaly kinds {set(counts) - set(ANOMALIES)}"
    for k, n in counts.items():
        _int(n, f"anomaly_counts.{k}")
    assert len(doc["anomalies"]) <= min(sum(counts.values()), max_details)
    for a in doc["anomalies"]:
        _keys(a, ("kind", "time_ns", "vpid", "tid", "manager_id", "addr", "size", "detail"),
              "anomaly")
        assert counts.get(a["kind"], 0) > 0, f"an anomaly {a['kind']} not counted"
        _int(a["addr"], "anomaly.addr")
        _int(a["size"], "anomaly.size")
    assert len(doc["failures"]) <= min(doc["virtual"]["failed_calls"], max_details)
    for f in doc["failures"]:
        _keys(f, ("time_ns", "vpid", "tid", "manager_id", "event", "hr", "addr", "size"),
              "failure")
    for name, lat in doc["latency"].items():
        _keys(lat, ("count", "min_ns", "p50_ns", "p90_ns", "p99_ns", "max_ns", "mean_ns",
                    "histogram"), f"latency.{name}")
        assert lat["count"] > 0
        assert lat["min_ns"] <= lat["p50_ns"] <= lat["p90_ns"] <= lat["p99_ns"] <= lat["max_ns"]
        assert sum(n for _, n in lat["histogram"]) == lat["count"], f"latency.{name} histogram"
        bounds = [b for b, _ in lat["histogram"]]
        assert bounds == sorted(set(bounds)), f"latency.{name} buckets out of order"
    assert len(doc["memory_load"]) <= max_details
    assert len(doc["notifications"]) <= max_details
    leaks = doc["leaks"]
    _keys(leaks, ("regions", "blocks"), "leaks")
    assert len(leaks["regions"]) == min(doc["virtual"]["live_regions"], max_details), \
        "leaks.regions: not one per live reservation"
    sizes = [r["size"] for r in leaks["regions"]]
    assert sizes == sorted(sizes, reverse=True), "leaks.regions not largest first"
    if len(leaks["regions"]) == doc["virtual"]["live_regions"]:
        _sum_shown(sizes, doc["virtual"]["final_reserved_bytes"], doc["complete"],
                   "leaks.regions sizes")
        _sum_shown([r["committed_bytes"] for r in leaks["regions"]],
                   doc["virtual"]["final_committed_bytes"], doc["complete"],
                   "leaks.regions committed bytes")
    assert len(leaks["blocks"]) <= max_details
    for g in leaks["blocks"]:
        _int(g["bytes"], "leaks.blocks bytes")
        assert g["largest"] <= g["bytes"], f"leaks.blocks: largest above the total {g}"
    if sum(g["blocks"] for g in leaks["blocks"]) == doc["malloc"]["live_blocks"]:
        # Every live block listed: their sizes make the live bytes, the trace's and each
        # manager's (the mmap view, manager 0, holds no heap).
        _sum_shown([g["bytes"] for g in leaks["blocks"]], doc["malloc"]["final_live_bytes"],
                   doc["complete"], "leaks.blocks bytes")
        for p in doc["processes"]:
            for m in p["managers"]:
                _sum_shown([g["bytes"] for g in leaks["blocks"]
                            if (g["vpid"], g["manager_id"]) == (p["vpid"], m["manager_id"])],
                           m["malloc"]["final_live_bytes"], m["complete"],
                           f"process {p['vpid']}, manager {m['manager_id']}: leaks.blocks bytes")
    return doc


def check_timeline(text):
    """The timeline CSV: returns its rows (dicts)."""
    rows = list(csv.reader(io.StringIO(text)))
    assert rows and rows[0] == TIMELINE_COLUMNS, f"timeline header {rows[:1]}"
    out = []
    for n, row in enumerate(rows[1:], 2):
        assert len(row) == len(TIMELINE_COLUMNS), f"timeline line {n}: {len(row)} fields"
        r = dict(zip(TIMELINE_COLUMNS, row))
        assert r["op"] in TIMELINE_OPS, f"timeline line {n}: op {r['op']!r}"
        _time(int(r["time_ns"]), f"timeline line {n} time")
        for c in ("vpid", "tid", "manager_id", "size"):
            _int(int(r[c]), f"timeline line {n} {c}")
        for c in ("allocation_base", "address"):
            if r[c] or c == "address":
                assert r[c].startswith("0x"), f"timeline line {n} {c} {r[c]!r}"
                _int(int(r[c], 16), f"timeline line {n} {c}")
        out.append(r)
    return out


def check_map(text, at_ns):
    doc = parse_json(text, "map")
    _keys(doc, ("format", "version", "at_ns", "processes"), "map")
    assert doc["format"] == "clrmemtrace-map" and doc["version"] == 1
    assert doc["at_ns"] == at_ns, f"map at_ns {doc['at_ns']} for {at_ns}"
    for p in doc["processes"]:
        _keys(p, ("vpid", "procname", "managers"), "map process")
        for m in p["managers"]:
            _keys(m, ("manager_id", "name", "known", "regions", "heaps"), "map manager")
            assert isinstance(m["known"], bool)
            prev = 0
            for r in m["regions"]:
                _keys(r, ("base", "allocation_base", "size", "state", "protect",
                          "allocation_protect"), "map region")
                _int(r["base"], "map region base")
                _int(r["size"], "map region size", 1)
                assert r["base"] >= prev, f"map regions out of order or overlapping at {r}"
                assert r["base"] + r["size"] <= U64, f"map region past 2^64: {r}"
                assert r["allocation_base"] <= r["base"]
                prev = r["base"] + r["size"]
            for h in m["heaps"]:
                _keys(h, ("heap_id", "live_blocks", "live_bytes"), "map heap")
    return doc


def _samples(samples, where, points, monotonic):
    assert isinstance(samples, list) and len(samples) <= points, f"{where}: {len(samples)} samples"
    last = None
    for s in samples:
        assert isinstance(s, list) and len(s) in (2, 3), f"{where}: sample {s}"
        _time(s[0], f"{where} time")
        _int(s[1], f"{where} value")
        if len(s) == 3:
            assert s[2] > s[1], f"{where}: slice max {s[2]} not above {s[1]}"
        if monotonic and last is not None:
            assert s[0] >= last, f"{where}: samples out of time order"
        last = s[0]


def check_series(text, points=2000, max_details=1000, monotonic=True):
    doc = parse_json(text, "series")
    _keys(doc, ("format", "version", "begin_ns", "end_ns", "slice_ns", "counters", "failures",
                "notifications", "spans"), "series")
    assert doc["format"] == "clrmemtrace-series" and doc["version"] == 1
    counters = doc["counters"]
    _keys(counters, ("reserved_bytes", "committed_bytes", "committed_by_protect",
                     "heap_live_bytes"), "series counters")
    for k in ("reserved_bytes", "committed_bytes", "heap_live_bytes"):
        _samples(counters[k], k, points, monotonic)
    for name, samples in counters["committed_by_protect"].items():
        _samples(samples, f"committed_by_protect.{name}", points, monotonic)
    assert len(doc["failures"]) <= max_details
    assert len(doc["notifications"]) <= max_details
    assert len(doc["spans"]) <= points
    for s in doc["spans"]:
        _keys(s, ("vpid", "manager_id", "base", "size", "begin_ns", "end_ns", "state",
                  "protect"), "span")
        if monotonic:
            assert s["begin_ns"] <= s["end_ns"], f"span {s} ends before it begins"
    return doc


def check_perfetto(text, monotonic=True):
    doc = parse_json(text, "perfetto")
    assert isinstance(doc, list), "perfetto: not an array"
    open_slices = {}
    for e in doc:
        assert isinstance(e, dict) and e.get("ph") in ("C", "b", "e", "M"), f"perfetto event {e}"
        if e["ph"] in ("b", "e"):
            key = (e.get("pid"), e.get("id"))
            if e["ph"] == "b":
                open_slices[key] = open_slices.get(key, 0) + 1
            else:
                assert open_slices.get(key, 0) > 0, f"perfetto: an end without a beginning {e}"
                open_slices[key] -= 1
        if monotonic and "ts" in e:
            assert e["ts"] >= 0, f"perfetto: ts before the beginning {e}"
    assert not any(open_slices.values()), "perfetto: slices never ended"
    return doc


def check_document(mode, text, params, monotonic=True):
    """Checks the document of ``mode`` (given the plugin's ``params``); returns it parsed."""
    max_details = params.get("max-details", 1000)
    if mode == "summary":
        return check_summary(text, max_details)
    if mode == "timeline":
        return check_timeline(text)
    if mode == "map":
        return check_map(text, params["at"])
    if mode == "series":
        return check_series(text, params.get("points", 2000), max_details, monotonic)
    return check_perfetto(text, monotonic)
