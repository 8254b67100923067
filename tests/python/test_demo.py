# SPDX-License-Identifier: MIT
"""scripts/demo, the quick start's first command, end to end with its short workload.

It records clrhost-sim with `clrmemtrace record`, prints the summary, runs `check`, and
writes the plot and the HTML report: the run must succeed, and the report must exist, be
self-contained and name the trace. The build is the suites' own ($CLRMEMTRACE_BUILD_DIR),
so the demo builds nothing new; the session daemon comes from conftest.py's `lttng` fixture.
"""

import os
import subprocess
from html.parser import HTMLParser

from conftest import REPO

DEMO = REPO / "scripts" / "demo"
TIMEOUT = 600


class _Page(HTMLParser):
    """The text and the external references of an HTML page."""

    def __init__(self):
        super().__init__()
        self.text = []
        self.external = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith(("#", "data:")):
                self.external.append(f"<{tag} {name}={value}>")

    def handle_data(self, data):
        self.text.append(data)


def test_demo_records_checks_and_reports(build, lttng, tmp_path):
    out = tmp_path / "demo"
    env = {k: v for k, v in lttng.env.items() if not k.startswith("CLRMEMTRACE_")}
    proc = subprocess.run(
        [str(DEMO), "--quick", "--build", os.path.relpath(build.path, REPO), "--output", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, f"scripts/demo failed ({proc.returncode}):\n{proc.stdout[-6000:]}"
    trace = out / "trace"
    report = out / "report" / "index.html"
    plot = out / "memory.png"
    assert (trace / "ust").is_dir() or any(trace.rglob("metadata")), "no trace recorded"
    assert "Mismatches:      0" in proc.stdout
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    page = _Page()
    page.feed(report.read_text(encoding="utf-8"))
    assert str(trace) in " ".join(page.text), "the report does not name the trace"
    assert page.external == [], f"the report loads external resources: {page.external}"
    for path in (trace, report, plot):
        assert str(path) in proc.stdout, f"the demo does not say where {path.name} is"
