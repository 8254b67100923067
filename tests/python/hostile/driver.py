# SPDX-License-Identifier: MIT
"""Runs cases in child processes (runner.py), each case with a time limit.

The cases go to one child in order; a case that crashes the child (a signal, a sanitizer's
abort) or outlives its time limit is recorded as such, and a new child goes on with the
next case. Under AddressSanitizer (``sanitizer`` true), the child is Debian's Python with
the sanitizer's runtime preloaded, Python's allocator switched to malloc, and
LeakSanitizer told to ignore what Python, GLib and Babeltrace2 themselves keep (see
``sanitizer_env``): what it reports then is memory the plugin lost.
"""

import json
import os
import select
import shutil
import signal
import subprocess
import time

PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)

# Memory the interpreter, GLib and Babeltrace2 never free, by the module that allocated it.
# Allocation stacks are kept two frames deep (the allocator's, then its caller's), so these
# never match what the plugin allocates itself.
LSAN_SUPPRESSIONS = """\
leak:python3
leak:libglib-2.0
leak:libbabeltrace2
leak:_native_bt
"""


def sanitizer_env(workdir):
    """The environment of a child running an AddressSanitizer build of the plugin."""
    supp = os.path.join(workdir, "lsan.supp")
    with open(supp, "w") as f:
        f.write(LSAN_SUPPRESSIONS)
    if shutil.which("gcc") is None:
        raise RuntimeError("gcc is needed to find AddressSanitizer's runtime")
    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True, check=True).stdout.strip()
    if not os.path.isabs(libasan):
        raise RuntimeError("gcc does not know where libasan.so is")
    return {
        "LD_PRELOAD": libasan,
        "PYTHONMALLOC": "malloc",
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:malloc_context_size=2:"
                        "detect_odr_violation=0",
        "LSAN_OPTIONS": f"suppressions={supp}:print_suppressions=0",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
    }


def _stderr_of(path, index):
    """What the child writing ``path`` wrote to stderr while it ran case ``index``."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    marker = f"=== case {index}\n"
    at = text.rfind(marker)
    if at < 0:
        return text[-4000:]
    rest = text[at + len(marker):]
    end = rest.find("=== case ")
    return (rest if end < 0 else rest[:end])[-6000:]


class _Children:
    """Runs ranges of the cases in child processes, one after the other."""

    def __init__(self, plugin_dir, cases_path, workdir, env, timeout):
        self.plugin_dir, self.cases_path, self.workdir = plugin_dir, cases_path, workdir
        self.out_dir = os.path.join(workdir, "out")
        self.env, self.timeout = env, timeout
        self.count = 0
        self.stderr = {}  # case index -> the file of the child that ran it last

    def run(self, first, last, every):
        """Runs cases first..last: returns ({index: result}, [(from, to) that leaked])."""
        results, leaks = {}, []
        while first <= last:
            self.count += 1
            err_path = os.path.join(self.workdir, f"stderr-{self.count}.txt")
            with open(err_path, "wb") as err:
                proc = subprocess.Popen(
                    [PYTHON, "-m", "hostile.runner", self.plugin_dir, self.cases_path,
                     self.out_dir, str(first), str(last), str(every)],
                    cwd=TESTS, env=self.env, stdout=subprocess.PIPE, stderr=err,
                    stdin=subprocess.DEVNULL, start_new_session=True)
            current, deadline, buf = None, None, b""
            hung = started = False
            while True:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select([proc.stdout], [], [], wait)
                if not ready:
                    hung = True
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    break
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    proc.wait()
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    word, _, rest = line.decode().partition(" ")
                    if word == "start":
                        started = True
                        current = int(rest)
                        self.stderr[current] = err_path
                        deadline = time.monotonic() + self.timeout
                    elif word == "done":
                        index, _, result = rest.partition(" ")
                        results[int(index)] = json.loads(result)
                        current, deadline = None, None
                    elif word == "leaks":
                        a, b = rest.split()
                        leaks.append((int(a), int(b)))
            proc.stdout.close()
            if not started and proc.returncode != 0:
                with open(err_path, encoding="utf-8", errors="replace") as f:
                    raise RuntimeError(f"the runner failed before its first case:\n"
                                       f"{f.read()[-4000:]}")
            if current is None:
                if proc.returncode != 0:
                    # Every case ended, but the child did not (LeakSanitizer at exit, say).
                    results[last] = {"status": "crash", "returncode": proc.returncode,
                                     "stderr": _stderr_of(err_path, last)}
                break
            results[current] = {
                "status": "hang" if hung else "crash",
                "returncode": proc.returncode,
                "stderr": _stderr_of(err_path, current),
            }
            first = current + 1
        return results, leaks


def run(plugin_dir, cases, workdir, timeout=60.0, sanitizer=False, leak_every=25):
    """Runs every case; returns {index: result} (runner.py's results, or a crash or hang).

    Under the sanitizer, a batch of cases that lost memory is run again one case at a time,
    and each case that loses memory alone gets ``"leaks": True`` and what LeakSanitizer said.
    """
    os.makedirs(os.path.join(workdir, "out"), exist_ok=True)
    cases_path = os.path.join(workdir, "cases.json")
    with open(cases_path, "w", encoding="utf-8") as f:
        json.dump(cases, f)
    env = dict(os.environ)
    env["PYTHONPATH"] = TESTS + os.pathsep + env.get("PYTHONPATH", "")
    if sanitizer:
        env.update(sanitizer_env(workdir))
    children = _Children(os.path.abspath(plugin_dir), cases_path, workdir, env, timeout)
    results, leaks = children.run(0, len(cases) - 1, leak_every)
    for a, b in leaks:
        _, alone = children.run(a, b, 1)
        for index in range(a, b + 1):
            if any(x <= index <= y for x, y in alone) and index in results:
                results[index]["leaks"] = True
                results[index]["stderr"] = _stderr_of(children.stderr[index], index)
        if not alone and b in results:
            results[b]["leaks"] = True
            results[b]["stderr"] = (f"memory lost while cases {a} to {b} ran, by none alone:\n"
                                    + _stderr_of(children.stderr.get(b, ""), b))
    return results


def output_path(workdir, index):
    return os.path.join(workdir, "out", f"{index}.out")
