# SPDX-License-Identifier: MIT
"""Holds one case's outcome against what must hold (gen.expectations)."""

import os

from . import check, gen, schema


def _manager(doc, vpid, mid):
    for p in doc["processes"]:
        if p["vpid"] == vpid:
            for m in p["managers"]:
                if m["manager_id"] == mid:
                    return m
    return None


def _exact(doc, exact, e):
    problems = []

    def same(what, got, want):
        if got != want:
            problems.append(f"{what}: {got!r}, expected {want!r}")

    procs = {p["vpid"]: p["procname"] for p in doc["processes"]}
    same("processes", sorted(procs), sorted(exact["processes"]))
    if e["procnames"]:
        same("procnames", procs, exact["processes"])
    same("discarded_events", doc["discarded_events"], 0)
    for k, v in exact["virtual"].items():
        same(f"virtual.{k}", doc["virtual"][k], v)
    for name in schema.CALLS:
        same(f"calls.{name}", doc["virtual"]["calls"].get(name, 0), exact["calls"].get(name, 0))
    for name, n in doc["virtual"]["calls"].items():
        if name not in schema.CALLS:
            same(f"calls.{name}", n, 0)
    for k, v in exact["malloc"].items():
        same(f"malloc.{k}", doc["malloc"][k], v)
    if e["check_exact"]:
        same("check.queries_checked", doc["check"]["queries_checked"], exact["queries_checked"])
        same("check.mismatches", doc["check"]["mismatches"], 0)
        same("check.unverifiable", doc["check"]["unverifiable"], 0)
    for kind in check.ANOMALIES:
        same(f"anomaly_counts.{kind}", doc["anomaly_counts"].get(kind, 0),
             exact["anomalies"].get(kind, 0))
    for (vpid, mid), want in exact["managers"].items():
        m = _manager(doc, vpid, mid)
        if m is None:
            problems.append(f"process {vpid}, manager {mid}: missing")
            continue
        where = f"process {vpid}, manager {mid}"
        for k, v in want["virtual"].items():
            same(f"{where} virtual.{k}", m["virtual"][k], v)
        for name in schema.CALLS:
            same(f"{where} calls.{name}", m["virtual"]["calls"].get(name, 0),
                 want["calls"].get(name, 0))
        for k, v in want["malloc"].items():
            same(f"{where} malloc.{k}", m["malloc"][k], v)
    return problems


def verify(case, exp, result, out_path):
    """The problems of one case's run (an empty list when everything holds)."""
    e = gen.expectations(case, exp)
    status = result["status"]
    if status in ("crash", "hang"):
        return [f"{status} (exit status {result.get('returncode')}):\n{result.get('stderr', '')}"]
    problems = []
    if result.get("leaks"):
        problems.append(f"memory leaked:\n{result.get('stderr', '')}")
    if os.path.exists(out_path + ".tmp"):
        problems.append(f"{out_path}.tmp left behind")
    if e["error"]:
        if status != "error":
            problems.append("the source failed, the graph did not")
        if os.path.exists(out_path):
            problems.append("a failed analysis wrote its document")
        return problems
    if status == "error":
        return problems + [f"the graph failed: {result['error'][:2000]}"]
    mode = case.get("mode", "summary")
    params = case.get("params", {})
    try:
        with open(out_path, encoding="utf-8") as f:
            text = f.read()
        doc = check.check_document(mode, text, params, monotonic=e["monotonic"])
    except (OSError, UnicodeDecodeError, AssertionError) as err:
        return problems + [f"{mode} document: {err}"]
    if mode != "summary":
        return problems
    if doc["events"] != e["events"]:
        problems.append(f"events: {doc['events']}, expected {e['events']}")
    if e["complete"] is not None and doc["complete"] != e["complete"]:
        problems.append(f"complete: {doc['complete']}, expected {e['complete']} "
                        f"(reasons {doc['incomplete_reasons'][:5]})")
    if params.get("max-details", 1000) >= 1000:
        for reason in e["reasons"]:
            if not any(reason in r for r in doc["incomplete_reasons"]):
                problems.append(f"no reason saying {reason!r} in {doc['incomplete_reasons'][:8]}")
    for vpid, mid in sorted(e["incomplete"]):
        m = _manager(doc, vpid, mid)
        if m is None:
            problems.append(f"process {vpid}, manager {mid}: missing (it must be incomplete)")
        elif m["complete"]:
            problems.append(f"process {vpid}, manager {mid}: complete, but it cannot be")
    if e["exact"] is not None:
        problems += _exact(doc, e["exact"], e)
    return problems
