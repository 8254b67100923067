# SPDX-License-Identifier: MIT
"""Progress lines on stderr for the steps of a command that take a while.

A step that ends within ``DELAY_S`` seconds prints nothing; one still running then is
announced (``clrmemtrace plot: reading the trace...``) and, when it succeeds, timed
(``clrmemtrace plot: reading the trace: done in 4.2 s``). Progress is shown only when
stderr is a terminal, so that scripts reading stderr see only warnings and errors.
"""

import contextlib
import sys
import threading
import time

DELAY_S = 2.0


class Progress:
    """Announces on stderr the steps of command ``command`` that run past ``delay`` seconds."""

    def __init__(self, command, delay=DELAY_S, enabled=None):
        self.prefix = f"clrmemtrace {command}: "
        self.delay = delay
        self.enabled = enabled

    def _active(self):
        if self.enabled is not None:
            return self.enabled
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty())

    def _print(self, text):
        print(self.prefix + text, file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def step(self, label):
        """A context in which the work described by ``label`` runs."""
        if not self._active():
            yield
            return
        lock = threading.Lock()
        state = {"finished": False, "announced": False}

        def announce():
            with lock:
                if not state["finished"]:
                    state["announced"] = True
                    self._print(f"{label}...")

        start = time.monotonic()
        timer = threading.Timer(self.delay, announce)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            with lock:
                state["finished"] = True
        if state["announced"]:
            self._print(f"{label}: done in {time.monotonic() - start:.1f} s")
