# SPDX-License-Identifier: MIT
"""Runs cases through ``sink.clrmemtrace.analysis``, one Babeltrace2 graph each.

    /usr/bin/python3 -m hostile.runner PLUGIN_DIR CASES_JSON OUT_DIR [FIRST [LAST [EVERY]]]

Each case of the JSON list CASES_JSON, from index FIRST to LAST (default: all), is played
by source.Source straight into the plugin loaded from PLUGIN_DIR, which writes
``OUT_DIR/INDEX.out``. For each case the runner prints ``start INDEX`` before and ``done
INDEX RESULT`` after, RESULT being a JSON object: ``{"status": "ok"}`` or ``{"status":
"error", "error": TEXT}`` (the graph failed). It writes ``=== case INDEX`` to stderr first,
so that what a sanitizer says there can be told apart. A case that crashes or hangs the
process shows as a ``start`` without its ``done``.

When LeakSanitizer is loaded, the runner asks it for lost memory after every EVERY cases
(default 25: a check scans the whole heap, which costs far more than a case) and after the
last one, and prints ``leaks FROM TO`` when it found some lost since the cases FROM..TO.
"""

import ctypes
import gc
import json
import os
import sys

import bt2

from .source import Source


def load_plugin(directory):
    for plugin in bt2.find_plugins_in_path(directory, recurse=False) or ():
        if plugin.name == "clrmemtrace":
            return plugin.sink_component_classes["analysis"]
    raise SystemExit(f"no clrmemtrace plugin in {directory}")


def plugin_params(case, output):
    params = {"mode": case.get("mode", "summary"), "output": output}
    for key, value in case.get("params", {}).items():
        if isinstance(value, int) and not isinstance(value, bool):
            value = bt2.SignedIntegerValue(value) if value < 0 or key == "at" \
                else bt2.UnsignedIntegerValue(value)
        params[key] = value
    return params


def run_case(sink_class, case, output, collect=False):
    """Plays ``case`` into the plugin; None on success, else the error's text.

    ``collect``: collect Python's garbage after the graph is gone, so that everything the
    plugin allocated has been freed (before a leak check).
    """
    graph = bt2.Graph()
    try:
        source = graph.add_component(Source, "source", obj=case)
        sink = graph.add_component(sink_class, "analysis", plugin_params(case, output))
        graph.connect_ports(source.output_ports["out"], sink.input_ports["in"])
        graph.run()
        return None
    except bt2._Error as e:
        causes = [" ".join(str(c.message).split()) for c in e]
        return " | ".join(c for c in causes if c) or str(e)
    finally:
        del graph
        if collect:
            gc.collect()


def leak_checker():
    """LeakSanitizer's recoverable check when the process has it loaded, else None."""
    try:
        check = ctypes.CDLL(None).__lsan_do_recoverable_leak_check
    except AttributeError:
        return None
    check.restype = ctypes.c_int
    return check


def main(argv):
    plugin_dir, cases_path, out_dir = argv[:3]
    sink_class = load_plugin(plugin_dir)
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)
    first = int(argv[3]) if len(argv) > 3 else 0
    last = int(argv[4]) if len(argv) > 4 else len(cases) - 1
    every = int(argv[5]) if len(argv) > 5 else 25
    check = leak_checker()
    since = first
    for index in range(first, last + 1):
        print("start", index, flush=True)
        sys.stderr.write(f"=== case {index}\n")
        sys.stderr.flush()
        error = run_case(sink_class, cases[index], os.path.join(out_dir, f"{index}.out"),
                         collect=check is not None)
        result = {"status": "ok"} if error is None else {"status": "error", "error": error}
        print("done", index, json.dumps(result), flush=True)
        if check is not None and (index - since + 1 >= every or index == last):
            if check():
                print("leaks", since, index, flush=True)
            since = index + 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
