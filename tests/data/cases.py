# SPDX-License-Identifier: MIT
"""What the analysis tests run on the fixture traces, and what they expect (README.md).

Shared by ``make-expected`` (which writes ``expect/``) and ``tests/python/test_analysis_*.py``.
Paths are relative to the repository, where both run the commands.
"""

import functools
import os
import sys

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TRACES_DIR = os.path.join("tests", "data", "traces")
EXPECT_DIR = os.path.join("tests", "data", "expect")

# The traces the analysis reads, with the time `map --at` shows for each (inside the trace,
# from its first event).
MAP_AT = {
    "addrspace-map": "1ms",
    "leaks": "200us",
    "rwx": "300us",
    "refused": "150us",
    "threads": "2ms",
    "two-managers": "600us",
    "two-processes": "6ms",
    "late-start": "100us",
    "late-query": "1us",  # the second manager is known only from its dump on
    "late-inflight": "700us",  # the second manager dumped, the first being dumped
    "late-nodump": "100us",  # never dumped: neither manager is known
    "discarded": "100ms",  # inside the unknown window the lost events opened
    "check-altered": "300us",
    "seq-gap": "300us",  # after the gap: last known state
    "seq-regression": "300us",
    "preload-calls": "500us",  # the interposer: reserved, committed, file and shared mappings
    "preload-mixed": "550us",  # the library's reservations and its process's other mappings
    "preload-late": "350us",  # no /proc/self/maps dump: only what the calls made is known
}
TRACES = list(MAP_AT)

# Traces whose `check` must fail (exit status 1); on the others it passes.
CHECK_FAILS = {"check-altered"}

# Pairs compared with `diff`.
DIFFS = [("late-start", "late-query"), ("leaks", "two-processes"), ("rwx", "preload-mixed")]

# Inputs that cannot be analysed, and the exit status each must give.
BAD_INPUTS = {
    "not-a-trace": 3,
    "truncated-metadata": 3,
    "truncated-stream": 3,
    "corrupt-stream": 3,
    "other-provider": 4,
    "does-not-exist": 3,
    "not-a-trace/README": 3,  # a file, not a directory
}


def trace_path(name):
    """The fixture trace ``name``, relative to the repository."""
    return os.path.join(TRACES_DIR, name)


def commands(trace):
    """(command line, expected file suffix, expected exit status) for one trace."""
    path = trace_path(trace)
    at = MAP_AT[trace]
    check_status = 1 if trace in CHECK_FAILS else 0
    return [
        (["summary", path], "summary.txt", 0),
        (["summary", "--json", path], "summary.json", 0),
        (["timeline", path], "timeline.txt", 0),
        (["timeline", "--csv", path], "timeline.csv", 0),
        (["map", "--at", at, path], "map.txt", 0),
        (["map", "--at", at, "--json", path], "map.json", 0),
        (["leaks", path], "leaks.txt", 0),
        (["leaks", "--json", path], "leaks.json", 0),
        (["check", path], "check.txt", check_status),
        (["latency", path], "latency.txt", 0),
        (["latency", "--json", path], "latency.json", 0),
    ]


def diff_commands(a, b):
    """(command line, expected file suffix, exit status) of the diff of traces a and b."""
    paths = [trace_path(a), trace_path(b)]
    return [
        (["diff"] + paths, "diff.txt", 0),
        (["diff", "--json"] + paths, "diff.json", 0),
    ]


def all_cases():
    """(expected file name, command line, exit status) of every golden output."""
    cases = []
    for trace in TRACES:
        for argv, suffix, status in commands(trace):
            cases.append((f"{trace}.{suffix}", argv, status))
    for a, b in DIFFS:
        for argv, suffix, status in diff_commands(a, b):
            cases.append((f"{a}--{b}.{suffix}", argv, status))
    return cases


def build_dir():
    """The build the tests use: $CLRMEMTRACE_BUILD_DIR, default build-test (in the repository)."""
    return os.path.join(REPO, os.environ.get("CLRMEMTRACE_BUILD_DIR", "build-test"))


def plugin_dir():
    """Where the build puts the Babeltrace2 plugin."""
    return os.path.join(build_dir(), "analysis", "plugin")


def run(argv, engine, plugin_path=None):
    """Run the clrmemtrace command in this process, from the repository.

    Returns (exit status, stdout, stderr). ``engine`` is ``oracle`` or ``plugin``;
    ``plugin_path`` the plugin's directory (default: ``plugin_dir()``).
    """
    import contextlib
    import io

    sys.path.insert(0, os.path.join(REPO, "analysis", "python"))
    from clrmemtrace import cli

    saved_env = {k: os.environ.get(k) for k in ("CLRMEMTRACE_ENGINE", "CLRMEMTRACE_PLUGIN_PATH")}
    saved_cwd = os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    os.environ["CLRMEMTRACE_ENGINE"] = engine
    os.environ["CLRMEMTRACE_PLUGIN_PATH"] = plugin_path or plugin_dir()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = cli.main(argv)
            except SystemExit as e:
                status = e.code
    finally:
        os.chdir(saved_cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return status, out.getvalue(), err.getvalue()


@functools.lru_cache(maxsize=None)
def find_plugin():
    """The plugin's directory in the build, brought up to date first; None without it."""
    import glob
    import subprocess

    directory = plugin_dir()
    if os.path.isfile(os.path.join(build_dir(), "build.ninja")):
        target = os.path.join("analysis", "plugin", "babeltrace-plugin-clrmemtrace.so")
        subprocess.run(["ninja", "-C", build_dir(), target], capture_output=True)
    if glob.glob(os.path.join(directory, "*.so")):
        return directory
    return None


WARNING = "WARNING: incomplete trace:"


def normalised(document):
    """A JSON document with each ``incomplete_reasons`` list reduced to whether it is empty."""
    if isinstance(document, dict):
        return {
            key: bool(value) if key == "incomplete_reasons" else normalised(value)
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [normalised(item) for item in document]
    return document


def normalised_text(text):
    """Text with the reasons of WARNING lines left out."""
    lines = []
    for line in text.splitlines(keepends=True):
        at = line.find(WARNING)
        lines.append(line[: at + len(WARNING)] + "\n" if at >= 0 else line)
    return "".join(lines)
