# SPDX-License-Identifier: MIT
"""The LAMI 1.0 analyses (analysis/clrmemtrace-lami-*) as Trace Compass runs them.

Each program runs as a separate process, as Trace Compass starts it. Its output is checked
against the rules of the LAMI 1.0 specification (lttng/lami-spec, lami.adoc v1.0.1): the
version line, the metadata object (required keys, version objects, known data classes, units
only on number columns), result tables (their time range, a class the metadata declares or a
table class object, rows as wide as the class, cells of the column's data class) and error
objects, plus what Trace Compass itself requires beyond the specification (a title for the
analysis and for every table class, column descriptions in every table class, integer
timestamps and sizes, and JSON starting on a line of its own after any progress lines).

The values are compared with what ``clrmemtrace summary --json``, ``leaks --json`` and
``latency --json`` print for the same fixture trace, and a time range narrower than the trace
with the events Babeltrace2 reads in that range.
"""

import functools
import json
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))

import cases  # noqa: E402

PYTHON = "/usr/bin/python3"  # the interpreter Debian's bt2 is built for
ANALYSES = ("summary", "leaks", "latency")
ENTRY_POINT = os.path.join(cases.REPO, "analysis", "clrmemtrace")
TIMEOUT = 120

PLUGIN = cases.find_plugin()
pytestmark = pytest.mark.skipif(not PLUGIN, reason=f"no plugin in {cases.plugin_dir()}")

# Traces the values are compared on: leaks, anomalies, refusals, several processes and
# threads, a trace that starts late, and one that lost events.
TRACES = ["leaks", "rwx", "refused", "two-processes", "threads", "late-start", "discarded"]

# ---------- The LAMI 1.0 rules ----------

# Data classes a column description may name.
COLUMN_CLASSES = {
    "bool", "number", "string", "ratio", "timestamp", "duration", "size", "bitrate",
    "time-range", "syscall", "process", "path", "fd", "irq", "cpu", "disk", "part", "netif",
    "mixed",
}  # fmt: skip
# Data object classes whose value is a number (or lies between `low` and `high`).
NUMBER_CLASSES = {"number", "ratio", "timestamp", "duration", "size", "bitrate"}
# Those Trace Compass reads as long integers.
INTEGER_CLASSES = {"timestamp", "size"}


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_version_object(obj):
    assert isinstance(obj, dict) and set(obj) <= {"major", "minor", "patch", "extra"}, obj
    for key in ("major", "minor", "patch"):
        assert key not in obj or (isinstance(obj[key], int) and obj[key] >= 0), obj
    assert "minor" not in obj or "major" in obj, obj
    assert "patch" not in obj or "minor" in obj, obj
    assert isinstance(obj.get("extra", ""), str), obj


def check_table_class(table_class, declared):
    """A table class object; ``declared`` are the metadata's classes (for ``inherit``)."""
    assert isinstance(table_class, dict), table_class
    assert set(table_class) <= {"inherit", "title", "column-descriptions"}, table_class
    if "inherit" in table_class:
        assert table_class["inherit"] in declared, table_class
    else:
        # Trace Compass needs both (LAMI makes them optional).
        assert isinstance(table_class["title"], str) and table_class["title"]
        assert isinstance(table_class["column-descriptions"], list)
    assert isinstance(table_class.get("title", ""), str)
    for description in table_class.get("column-descriptions", []):
        assert isinstance(description, dict), description
        assert set(description) <= {"title", "class", "unit"}, description
        assert description.get("class", "mixed") in COLUMN_CLASSES, description
        assert isinstance(description.get("title", ""), str), description
        if "unit" in description:
            assert description.get("class") == "number", description
            assert isinstance(description["unit"], str), description


def check_metadata(metadata):
    assert isinstance(metadata, dict)
    assert metadata["mi-version"] == {"major": 1, "minor": 0}
    check_version_object(metadata["mi-version"])
    if "version" in metadata:
        check_version_object(metadata["version"])
    assert isinstance(metadata["title"], str) and metadata["title"]  # Trace Compass needs it
    for key in ("description", "url"):
        assert isinstance(metadata.get(key, ""), str), key
    for key in ("authors", "tags"):
        assert all(isinstance(item, str) for item in metadata.get(key, [])), key
    classes = metadata["table-classes"]
    assert isinstance(classes, dict) and classes, "at least one table class"
    for table_class in classes.values():
        check_table_class(table_class, classes)
        assert "inherit" not in table_class or table_class["inherit"] in classes


def check_number_object(obj):
    has_value = "value" in obj
    assert has_value or ("low" in obj and "high" in obj), obj
    assert ("low" in obj) == ("high" in obj), obj
    bounds = [obj[k] for k in ("low", "value", "high") if k in obj]
    for bound in bounds:
        assert is_number(bound) or bound in ("-inf", "+inf"), obj
    finite = [b for b in bounds if is_number(b)]
    assert finite == sorted(finite), f"low <= value <= high: {obj}"
    if obj["class"] in INTEGER_CLASSES:
        assert all(isinstance(b, int) for b in finite), obj


def check_data_object(obj, column_class):
    """A cell: null (empty), the unknown object, or an object of the column's class."""
    if obj is None:
        return
    assert isinstance(obj, dict) and isinstance(obj.get("class"), str), obj
    cls = obj["class"]
    if cls == "unknown":
        return
    assert column_class in ("mixed", cls), f"a {cls} object in a {column_class} column"
    if cls in NUMBER_CLASSES:
        check_number_object(obj)
    elif cls == "string":
        assert isinstance(obj["value"], str), obj
    elif cls == "bool":
        assert isinstance(obj["value"], bool), obj
    elif cls == "process":
        assert set(obj) <= {"class", "name", "pid", "tid"}, obj
        assert isinstance(obj.get("name", ""), str), obj
        for key in ("pid", "tid"):
            assert key not in obj or isinstance(obj[key], int), obj
    elif cls == "time-range":
        check_time_range(obj)
    else:
        pytest.fail(f"unexpected data class {cls}")


def check_time_range(obj):
    assert obj["class"] == "time-range", obj
    for key in ("begin", "end"):
        assert obj[key]["class"] == "timestamp", obj
        check_number_object(obj[key])
    assert obj["begin"]["value"] <= obj["end"]["value"], obj


def resolve(table_class, classes):
    """The (title, column descriptions) of a result table's class."""
    if isinstance(table_class, str):
        assert table_class in classes, f"table class {table_class} is not declared"
        return classes[table_class]["title"], classes[table_class]["column-descriptions"]
    check_table_class(table_class, classes)
    base = classes.get(table_class.get("inherit"), {})
    return (
        table_class.get("title", base.get("title")),
        table_class.get("column-descriptions", base.get("column-descriptions")),
    )


def check_results(document, metadata):
    assert isinstance(document, dict) and isinstance(document["results"], list)
    classes = metadata["table-classes"]
    for table in document["results"]:
        assert set(table) >= {"time-range", "class", "data"}, table.keys()
        check_time_range(table["time-range"])
        _, columns = resolve(table["class"], classes)
        for row in table["data"]:
            assert isinstance(row, list) and len(row) == len(columns), row
            for cell, column in zip(row, columns):
                check_data_object(cell, column.get("class", "mixed"))


def check_error(proc, status=None):
    """A failure: non-zero exit, a LAMI error object on stdout, one line on stderr."""
    assert proc.returncode != 0
    if status is not None:
        assert proc.returncode == status, proc.stderr
    error = json.loads(proc.stdout)
    assert isinstance(error["error-message"], str) and error["error-message"]
    assert isinstance(error.get("error-code", 0), (int, str))
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return error


# ---------- Running the programs ----------


def environment():
    return dict(os.environ, CLRMEMTRACE_PLUGIN_PATH=PLUGIN or "", CLRMEMTRACE_ENGINE="plugin")


def lami(analysis, *args):
    """Run ``clrmemtrace-lami-ANALYSIS ARGS`` as Trace Compass does: the program itself."""
    program = os.path.join(cases.REPO, "analysis", f"clrmemtrace-lami-{analysis}")
    return subprocess.run(
        [program, *map(str, args)],
        cwd=cases.REPO,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@functools.lru_cache(maxsize=None)
def metadata(analysis):
    proc = lami(analysis, "--metadata")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def results(analysis, *args):
    proc = lami(analysis, *args)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    check_results(document, metadata(analysis))
    return document


@functools.lru_cache(maxsize=None)
def cli_json(command, trace):
    """``clrmemtrace COMMAND --json TRACE``, parsed."""
    proc = subprocess.run(
        [PYTHON, ENTRY_POINT, command, "--json", cases.trace_path(trace)],
        cwd=cases.REPO,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def plain(cell):
    """A cell's value: numbers, strings and booleans as such, processes as (pid, name, tid),
    number objects with bounds and no value as (low, high)."""
    if cell is None:
        return None
    cls = cell["class"]
    if cls == "process":
        return (cell.get("pid"), cell.get("name", ""), cell.get("tid", 0))
    if cls == "time-range":
        return (cell["begin"]["value"], cell["end"]["value"])
    if "value" not in cell:
        return (cell["low"], cell["high"])
    return cell["value"]


def tables(document, analysis):
    """{table class name or title: [row as {column title: plain value}]}."""
    classes = metadata(analysis)["table-classes"]
    found = {}
    for table in document["results"]:
        title, columns = resolve(table["class"], classes)
        key = table["class"] if isinstance(table["class"], str) else title
        assert key not in found, f"two tables {key}"
        found[key] = [
            {column["title"]: plain(cell) for column, cell in zip(columns, row)}
            for row in table["data"]
        ]
    return found


def process_names(summary):
    return {p["vpid"]: p["procname"] for p in summary["processes"]}


# ---------- Version, metadata, compatibility ----------


@pytest.mark.parametrize("analysis", ANALYSES)
def test_mi_version_is_one_line_major_minor(analysis):
    proc = lami(analysis, "--mi-version")
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"\d{1,3}\.\d{1,3}\n?", proc.stdout)
    assert proc.stdout.strip() == "1.0"


@pytest.mark.parametrize("analysis", ANALYSES)
def test_metadata_follows_the_specification(analysis):
    data = metadata(analysis)
    check_metadata(data)
    assert data["title"].startswith("clrmemtrace")
    assert analysis in data["tags"]


def test_each_program_is_executable_and_speaks_lami():
    # Trace Compass starts the command's first word directly and asks it for --mi-version.
    for analysis in ANALYSES:
        program = os.path.join(cases.REPO, "analysis", f"clrmemtrace-lami-{analysis}")
        assert os.access(program, os.X_OK), program
        with open(program) as f:
            assert f.readline() == "#!/usr/bin/python3\n"


@pytest.mark.parametrize("analysis", ANALYSES)
def test_compatible_trace_prints_nothing(analysis):
    proc = lami(analysis, "--test-compatibility", cases.trace_path("leaks"))
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stderr


# Damage past the first clrmemtrace event: the compatibility test, which reads no further,
# passes; the results phase fails.
DAMAGED_LATER = {"corrupt-stream"}


@pytest.mark.parametrize("name,status", sorted(cases.BAD_INPUTS.items()))
def test_incompatible_traces_print_an_error_object(name, status):
    trace = cases.trace_path(name)
    for analysis in ANALYSES:
        compatibility = lami(analysis, "--test-compatibility", trace)
        if name in DAMAGED_LATER:
            assert (compatibility.returncode, compatibility.stdout) == (0, "")
        else:
            check_error(compatibility, status)
        check_error(lami(analysis, trace), status)


@pytest.mark.parametrize(
    "args",
    [
        ["--no-such-option"],
        ["--limit-to-tid", "1"],
        ["--begin", "yesterday"],
        ["--end", "1.5"],
        ["--begin", "20", "--end", "10"],
        ["--limit", "0"],
        ["--limit", "some"],
        ["--metadata", "--mi-version"],
    ],
    ids=lambda a: " ".join(a),
)
def test_bad_command_lines_are_errors(args):
    check_error(lami("summary", *args, cases.trace_path("leaks")), 2)


def test_a_trace_is_required():
    check_error(lami("leaks"), 2)
    check_error(lami("leaks", "--test-compatibility"), 2)


# ---------- Results against the clrmemtrace command ----------


@pytest.mark.parametrize("trace", TRACES)
def test_summary_tables_are_the_summary(trace):
    summary = cli_json("summary", trace)
    found = tables(results("summary", cases.trace_path(trace)), "summary")
    names = process_names(summary)
    virtual, malloc, check = summary["virtual"], summary["malloc"], summary["check"]

    def memory(v, m):
        return {
            "Peak reserved": v["peak_reserved_bytes"],
            "Peak committed": v["peak_committed_bytes"],
            "Final reserved": v["final_reserved_bytes"],
            "Final committed": v["final_committed_bytes"],
            "Live reservations": v["live_regions"],
            "Heaps": m["heaps"],
            "Heap allocations": m["allocs"],
            "Heap frees": m["frees"],
            "Heap peak": m["peak_live_bytes"],
            "Heap final": m["final_live_bytes"],
            "Live blocks": m["live_blocks"],
            "Calls": sum(v["calls"].values()),
            "Failed calls": v["failed_calls"],
        }

    (totals,) = found["totals"]
    assert totals == {
        "Events": summary["events"],
        "Discarded events": summary["discarded_events"],
        "Complete": summary["complete"],
        **memory(virtual, malloc),
        "Queries checked": check["queries_checked"],
        "Mismatches": check["mismatches"],
        "Unverifiable": check["unverifiable"],
        "Anomalies": sum(summary["anomaly_counts"].values()),
        "Incomplete because": "; ".join(summary["incomplete_reasons"]),
    }
    assert found["managers"] == [
        {
            "Process": (p["vpid"], p["procname"], 0),
            "Manager": m["manager_id"],
            "Name": m["name"],
            "Complete": m["complete"],
            **memory(m["virtual"], m["malloc"]),
        }
        for p in summary["processes"]
        for m in p["managers"]
    ]
    assert {r["Call"]: r["Count"] for r in found["calls"]} == {
        name: count for name, count in virtual["calls"].items() if count
    }
    assert {r["Protection"]: r["Committed"] for r in found["committed-by-protection"]} == (
        virtual["committed_by_protect"]
    )
    assert found["failures"] == [
        {
            "Time": f["time_ns"],
            "Process": (f["vpid"], names[f["vpid"]], f["tid"]),
            "Manager": f["manager_id"],
            "Call": f["event"],
            "Result": f["hr"],
            "Address": hex(f["addr"]),
            "Size": f["size"],
        }
        for f in summary["failures"]
    ]
    assert found["anomalies"] == [
        {
            "Time": a["time_ns"],
            "Process": (a["vpid"], names[a["vpid"]], a["tid"]),
            "Manager": a["manager_id"],
            "Kind": a["kind"],
            "Address": hex(a["addr"]),
            "Size": a["size"],
            "Detail": a["detail"],
        }
        for a in summary["anomalies"]
    ]
    assert [(r["Time"], r["Level"], r["Load"]) for r in found["notifications"]] == [
        (n["time_ns"], n["level"], n["load"] / 100) for n in summary["notifications"]
    ]


def test_the_fixtures_cover_every_summary_table():
    # At least one of the traces compared has rows in each of the summary's lists.
    covered = set()
    for trace in TRACES:
        summary = cli_json("summary", trace)
        for key in ("failures", "anomalies", "notifications"):
            if summary[key]:
                covered.add(key)
        if not summary["complete"]:
            covered.add("incomplete")
        if len(summary["processes"]) > 1:
            covered.add("processes")
    assert covered >= {"failures", "anomalies", "incomplete", "processes"}


@pytest.mark.parametrize("trace", TRACES)
def test_leaks_tables_are_the_leaks(trace):
    leaks = cli_json("leaks", trace)
    names = process_names(cli_json("summary", trace))
    found = tables(results("leaks", cases.trace_path(trace)), "leaks")
    assert found["leaked-reservations"] == [
        {
            "Process": (r["vpid"], names[r["vpid"]], r["tid"]),
            "Manager": r["manager_id"],
            "Base": hex(r["base"]),
            "Size": r["size"],
            "Committed": r["committed_bytes"],
            "Allocation protection": r["allocation_protect"],
            "Reserved at": r["time_ns"],
            "Level": r["level"],
        }
        for r in leaks["regions"]
    ]
    assert found["leaked-blocks"] == [
        {
            "Process": (b["vpid"], names[b["vpid"]], 0),
            "Manager": b["manager_id"],
            "Heap": b["heap_id"],
            "Allocated at": f"{b['file']}:{b['line']}" if b["file"] or b["line"] else "",
            "Blocks": b["blocks"],
            "Bytes": b["bytes"],
            "Largest": b["largest"],
        }
        for b in leaks["blocks"]
    ]
    totals = leaks["totals"]
    assert found["leak-totals"] == [
        {
            "Reservations": totals["regions"],
            "Reserved": totals["reserved_bytes"],
            "Committed": totals["committed_bytes"],
            "Blocks": totals["blocks"],
            "Block bytes": totals["block_bytes"],
            "Complete": leaks["complete"],
            "Lists cut at the limit": leaks["truncated"],
        }
    ]


def test_the_leaks_fixture_has_leaks():
    leaks = cli_json("leaks", "leaks")
    assert leaks["regions"] and leaks["blocks"]


def bucket_lower_bound(upper):
    """The histogram's buckets (analysis/README.md, "Latency"), walked from 0."""
    value = 0
    while True:
        if value < 16:
            lower, top = value, value
        else:
            e = value.bit_length() - 1
            width = 1 << (e - 4)
            lower = value - (value - (1 << e)) % width
            top = lower + width - 1
        if top == upper:
            return lower
        assert top < upper, f"{upper} is no bucket's upper bound"
        value = top + 1


@pytest.mark.parametrize("trace", TRACES)
def test_latency_tables_are_the_latency(trace):
    latency = cli_json("latency", trace)["latency"]
    found = tables(results("latency", cases.trace_path(trace)), "latency")
    assert found.pop("latency") == [
        {
            "Call": name,
            "Count": s["count"],
            "Minimum": s["min_ns"],
            "Median": s["p50_ns"],
            "90th percentile": s["p90_ns"],
            "99th percentile": s["p99_ns"],
            "Maximum": s["max_ns"],
            "Mean": s["mean_ns"],
        }
        for name, s in sorted(latency.items())
    ]
    assert found == {
        f"Latency histogram: {name}": [
            {"Duration": (bucket_lower_bound(upper), upper), "Calls": count}
            for upper, count in s["histogram"]
        ]
        for name, s in latency.items()
    }
    assert latency, "the fixture has measured calls"


@pytest.mark.parametrize("analysis", ANALYSES)
def test_tables_cover_the_trace_without_a_range(analysis):
    summary = cli_json("summary", "two-processes")
    document = results(analysis, cases.trace_path("two-processes"))
    for table in document["results"]:
        assert plain(table["time-range"]) == (summary["begin_ns"], summary["end_ns"])


def test_limit_caps_every_table():
    trace = cases.trace_path("leaks")
    for analysis in ANALYSES:
        document = results(analysis, "--limit", 1, trace)
        assert all(len(t["data"]) <= 1 for t in document["results"])
        assert document == results(analysis, "--limit=1", trace)
    everything = tables(results("leaks", "--limit", "unlimited", trace), "leaks")
    assert everything == tables(results("leaks", trace), "leaks")
    cut = tables(results("leaks", "--limit", 1, trace), "leaks")
    assert cut["leak-totals"][0]["Lists cut at the limit"] is True
    assert cut["leaked-reservations"] == everything["leaked-reservations"][:1]


def test_progress_lines_come_before_the_json():
    proc = lami("summary", "--output-progress", cases.trace_path("leaks"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # Trace Compass reads lines until one starting with "{": the JSON from there on.
    start = next(i for i, line in enumerate(lines) if re.match(r"\s*\{", line))
    assert start >= 1
    for line in lines[:start]:
        assert re.fullmatch(r"(\*|[01](\.\d+)?|0?\.\d+)( .*)?", line), line
    document = json.loads("".join(lines[start:]))
    check_results(document, metadata("summary"))
    assert document == results("summary", cases.trace_path("leaks"))


def test_incomplete_trace_warns_on_stderr():
    proc = lami("summary", cases.trace_path("discarded"))
    assert proc.returncode == 0
    assert proc.stderr.startswith("WARNING: incomplete trace: ")
    assert len(proc.stderr.splitlines()) == 1
    (totals,) = tables(json.loads(proc.stdout), "summary")["totals"]
    assert totals["Complete"] is False and totals["Incomplete because"]


# ---------- Time ranges ----------


def clrmemtrace_events(trace):
    """(time, name, duration_ns, hr, ptr) of every clrmemtrace event of the trace, in order.

    ``hr`` and ``ptr`` are None for events without them.
    """
    import bt2

    found = []
    for message in bt2.TraceCollectionMessageIterator(os.path.join(cases.REPO, trace)):
        if type(message) is not bt2._EventMessageConst:
            continue
        event = message.event
        provider, _, name = event.name.partition(":")
        if provider != "clrmemtrace":
            continue
        payload = event.payload_field
        duration = int(payload["duration_ns"]) if "duration_ns" in payload else 0
        hr = int(payload["hr"]) if "hr" in payload else None
        ptr = int(payload["ptr"]) if "ptr" in payload else None
        found.append((message.default_clock_snapshot.ns_from_origin, name, duration, hr, ptr))
    return found


def in_range(events, begin, end):
    return [e for e in events if (begin is None or e[0] >= begin) and (end is None or e[0] <= end)]


def expected_counts(events):
    """What the analysis counts in a list of events: calls and measured calls per name."""
    calls, measured = {}, {}
    for _, name, duration, hr, _ in events:
        if hr is not None:
            calls[name] = calls.get(name, 0) + 1
        if duration:
            measured[name] = measured.get(name, 0) + 1
    return calls, measured


@pytest.fixture(scope="module")
def ranged():
    """The addrspace-map trace's events and a range over its middle half, on event times."""
    trace = cases.trace_path("addrspace-map")
    events = clrmemtrace_events(trace)
    assert len(events) > 100
    begin, end = events[len(events) // 4][0], events[3 * len(events) // 4][0]
    return trace, events, begin, end


def test_a_narrower_range_counts_only_its_events(ranged):
    trace, events, begin, end = ranged
    inside = in_range(events, begin, end)
    assert 0 < len(inside) < len(events)
    calls, measured = expected_counts(inside)

    summary = tables(results("summary", "--begin", begin, "--end", end, trace), "summary")
    (totals,) = summary["totals"]
    assert totals["Events"] == len(inside)
    assert {r["Call"]: r["Count"] for r in summary["calls"]} == calls
    assert totals["Calls"] == sum(calls.values())
    # The manager was created before the range: its state is unknown there, and said so.
    assert totals["Complete"] is False and totals["Incomplete because"]

    latency = tables(results("latency", "--begin", begin, "--end", end, trace), "latency")
    assert {r["Call"]: r["Count"] for r in latency["latency"]} == measured
    whole = cli_json("latency", "addrspace-map")["latency"]
    assert sum(r["Count"] for r in latency["latency"]) < sum(s["count"] for s in whole.values())

    for analysis in ANALYSES:
        for table in results(analysis, "--begin", begin, "--end", end, trace)["results"]:
            assert plain(table["time-range"]) == (begin, end)


def test_a_range_ending_early_sees_the_heap_up_to_its_end(ranged):
    trace, events, _, end = ranged
    inside = in_range(events, None, end)
    (totals,) = tables(results("summary", "--end", end, trace), "summary")["totals"]
    assert totals["Events"] == len(inside)
    # From its creation on, the manager is known: every successful Alloc and Free counts.
    allocs = sum(1 for _, name, _, hr, _ in inside if name == "malloc_alloc" and hr == 0)
    frees = sum(1 for _, name, _, hr, ptr in inside if name == "malloc_free" and hr == 0 and ptr)
    assert (totals["Heap allocations"], totals["Heap frees"]) == (allocs, frees)
    assert totals["Complete"] is True
    whole = cli_json("summary", "addrspace-map")
    assert totals["Events"] < whole["events"]
    assert totals["Heap frees"] < whole["malloc"]["frees"]


def test_the_whole_range_is_the_whole_trace(ranged):
    trace, events, _, _ = ranged
    first, last = events[0][0], events[-1][0]
    for analysis in ANALYSES:
        assert tables(results(analysis, "--begin", first, "--end", last, trace), analysis) == (
            tables(results(analysis, trace), analysis)
        )


def test_a_range_without_events_gives_empty_results(ranged):
    trace, events, _, _ = ranged
    after = events[-1][0] + 1
    found = tables(results("summary", "--begin", after, "--end", after + 10, trace), "summary")
    assert found["totals"][0]["Events"] == 0
    assert found["managers"] == [] and found["calls"] == []
    latency = results("latency", "--begin", after, trace)
    assert [t["data"] for t in latency["results"]] == [[]]
