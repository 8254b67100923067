# SPDX-License-Identifier: MIT
"""`clrmemtrace record`: run a program under an LTTng session that records clrmemtrace events.

The session is named uniquely, enables every clrmemtrace event by name (and the state-dump
request) with the `vpid`, `vtid` and `procname` contexts, and is destroyed when the program
ends. It records the program and its descendants only (LTTng's vpid tracker): the program is
forked, tracked, then let exec, and its descendants are tracked as they are seen, by polling
/proc; `--all-processes` records every process instead. A session daemon is started only
when none answers, and stopped at the end; so is the relay daemon of `--live`. Progress goes
to stderr, the summary (where the trace is, how many events were discarded) to stdout. The
exit status is the program's.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from clrmemtrace import events, lttng, paths
from clrmemtrace.cli import EXIT_ERROR, EXIT_USAGE, UserError

CHANNEL = "clrmemtrace"

# Channel defaults (README, "Recording"). 8 sub-buffers of 1 MiB per CPU hold about 100,000
# events per CPU before the consumer daemon must catch up; in discard mode a full buffer makes
# the traced thread wait up to the blocking timeout for space instead of dropping the event.
DEFAULT_SUBBUF_SIZE = "1M"
DEFAULT_NUM_SUBBUF = 8
DEFAULT_BLOCKING_TIMEOUT_US = 1_000_000

# How long the traced program's LTTng-UST waits at start-up for session daemons to register
# it: long enough for a loaded machine, finite so that a wedged daemon cannot hang it.
REGISTER_TIMEOUT_MS = 10_000

# How often the program's process tree is scanned for new descendants to record.
FOLLOW_INTERVAL = 0.05

# Live mode: how often buffers are flushed to the relay daemon, and how long, after the
# session ends, live viewers may take to read the rest before the relay daemon stops.
LIVE_TIMER_US = 200_000
LIVE_VIEWER_DRAIN_TIMEOUT = 30

# Exit statuses of a program that could not be run, as a shell reports them.
EXIT_NOT_FOUND = 127
EXIT_CANNOT_EXECUTE = 126

# Signals handled while the program runs (blocked, then taken with sigtimedwait).
FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
HANDLED = FORWARDED + (signal.SIGCHLD,)
SI_KERNEL = 0x80  # si_code of a signal the kernel sent, e.g. the terminal's Ctrl-C
WAIT_SLICE = 0.5

PROG = "clrmemtrace record"


def register(subparsers):
    """Adds the `record` subcommand."""
    p = subparsers.add_parser(
        "record",
        help="run a program and record its clrmemtrace events with LTTng",
        description=(
            "Run PROGRAM under a new LTTng session that records every clrmemtrace event of "
            "PROGRAM and its descendants with the vpid, vtid and procname contexts, then print "
            "where the trace is and how many events were discarded. The exit status is "
            "PROGRAM's."
        ),
        usage="clrmemtrace record [options] [--] PROGRAM [ARGS...]",
        epilog=(
            "Ctrl-C, SIGTERM and the like are passed on to PROGRAM; the session is always "
            "torn down. With --snapshot, SIGUSR1 sent to clrmemtrace records a snapshot."
        ),
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="trace directory (default: ./clrmemtrace-trace-DATE-TIME); must not exist or be "
        "empty",
    )
    p.add_argument(
        "--force", action="store_true", help="replace the trace already in a non-empty DIR"
    )
    p.add_argument(
        "--all-processes",
        action="store_true",
        help="record the events of every process the session daemon sees, not only "
        "PROGRAM's and its descendants'",
    )
    mode = p.add_argument_group("modes")
    mode.add_argument(
        "--snapshot",
        action="store_true",
        help="flight-recorder mode: keep the latest events in memory, write a snapshot when "
        "PROGRAM ends and on each SIGUSR1",
    )
    mode.add_argument(
        "--live",
        action="store_true",
        help="stream to a relay daemon (one started on free loopback ports, unless --url) "
        "for live viewing with babeltrace2 --input-format=lttng-live",
    )
    mode.add_argument(
        "--preload",
        action="store_true",
        help="also record PROGRAM's own mmap, munmap, mprotect, madvise and mremap calls "
        "(and its children's) through the LD_PRELOAD interposer, for runtimes that take "
        "memory from the OS directly, such as Mono",
    )
    mode.add_argument(
        "--url",
        metavar="net://HOST[:CTRL:DATA][/PATH]",
        help="send the trace to the lttng-relayd at this URL instead of a local directory",
    )
    buffers = p.add_argument_group("buffers (per CPU)")
    buffers.add_argument(
        "--subbuf-size",
        metavar="SIZE",
        default=DEFAULT_SUBBUF_SIZE,
        help=f"sub-buffer size, k/M suffixes allowed (default {DEFAULT_SUBBUF_SIZE})",
    )
    buffers.add_argument(
        "--num-subbuf",
        metavar="N",
        type=int,
        default=DEFAULT_NUM_SUBBUF,
        help=f"sub-buffers per CPU (default {DEFAULT_NUM_SUBBUF})",
    )
    buffers.add_argument(
        "--blocking-timeout",
        metavar="US",
        help="how long a traced thread may wait for buffer space before an event is "
        f"discarded, in microseconds, or 'inf'; 0 never waits (default "
        f"{DEFAULT_BLOCKING_TIMEOUT_US}; not with --snapshot)",
    )
    p.add_argument("program", nargs=argparse.REMAINDER, metavar="PROGRAM [ARGS...]")
    p.set_defaults(func=run)


def _say(message):
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _timestamp():
    return time.strftime("%Y%m%d-%H%M%S")


def _check_arguments(args):
    program = list(args.program)
    if program and program[0] == "--":
        program = program[1:]
    if not program:
        raise UserError(
            "no program to run: clrmemtrace record [options] -- PROGRAM [ARGS...]", EXIT_USAGE
        )
    args.program = program
    if args.snapshot and args.live:
        raise UserError("--snapshot and --live cannot be combined", EXIT_USAGE)
    if args.url is not None:
        if args.output is not None:
            raise UserError(
                "-o and --url cannot be combined: the relay daemon chooses where the trace "
                "goes (put a path in the URL: net://HOST/PATH)",
                EXIT_USAGE,
            )
        _check_url(args.url)
    if args.num_subbuf < 1:
        raise UserError("--num-subbuf must be at least 1", EXIT_USAGE)
    timeout = args.blocking_timeout
    if timeout is None:
        args.blocking_timeout = "0" if args.snapshot else str(DEFAULT_BLOCKING_TIMEOUT_US)
    elif args.snapshot:
        raise UserError(
            "--blocking-timeout does not apply to --snapshot (flight-recorder mode overwrites)",
            EXIT_USAGE,
        )
    elif timeout != "inf" and not timeout.isdigit():
        raise UserError("--blocking-timeout takes microseconds or 'inf'", EXIT_USAGE)


def _split_url(url):
    """(scheme, host part, path) of a net:// URL; the path has no leading slash."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return scheme, "", ""
    if rest.startswith("["):
        end = rest.find("]") + 1
    else:
        end = 0
    slash = rest.find("/", end)
    if slash < 0:
        return scheme, rest, ""
    return scheme, rest[:slash], rest[slash + 1 :]


def _url_host(host_part):
    """The host of a URL's HOST[:CTRL:DATA] part (an IPv6 address keeps its brackets)."""
    if host_part.startswith("["):
        return host_part[: host_part.find("]") + 1]
    return host_part.split(":", 1)[0]


def _check_url(url):
    scheme, host, _ = _split_url(url)
    if scheme not in ("net", "net6") or not host:
        raise UserError(f"--url takes net://HOST[:CTRL:DATA][/PATH], not {url!r}", EXIT_USAGE)


def _holds_trace(path):
    """Whether `path` holds a CTF trace (a metadata file) somewhere below it."""
    return any(p.is_file() for p in path.rglob("metadata"))


def _prepare_output(output, force):
    """Creates the trace directory; returns (its absolute path, whether it was created)."""
    if output is None:
        base = Path.cwd() / f"clrmemtrace-trace-{_timestamp()}"
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
    else:
        path = Path(output).expanduser().absolute()
    created = not path.exists()
    if not created:
        if not path.is_dir():
            raise UserError(f"{path} exists and is not a directory")
        if any(path.iterdir()):
            if not force:
                raise UserError(f"{path} is not empty (--force replaces the trace in it)")
            if not _holds_trace(path):
                raise UserError(f"{path} is not empty and holds no trace: not replacing it")
            _say(f"removing the previous trace in {path}")
            shutil.rmtree(path)
            created = True
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {path}: {e.strerror}") from None
    return path, created


def _status_text(status):
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"was killed by {name}"
    return f"exited with status {status}"


class Recorder:
    """One run of `clrmemtrace record`: sets up, runs the program, tears down, reports."""

    def __init__(self, args):
        self.args = args
        self.ctl = lttng.Lttng()
        self.name = f"clrmemtrace-{os.getpid()}-{_timestamp()}"
        self.hostname = socket.gethostname()
        self.scratch = None
        self.output = None
        self.created_output = False
        self.sessiond = lttng.SessionDaemon(self.ctl)
        self.relayd = None
        self.session = None
        self.url = None
        self.trace_path = None
        self.live_url = None
        self.snapshots = []
        self.losses = None
        self.program_ran = False
        self.errors = []
        self.preload = None
        self.fork_wrapper = None

    # ---------- set-up ----------

    def setup(self):
        args = self.args
        if args.preload:
            self.preload = paths.preload_library()
            _say(f"interposing the mmap family with {self.preload}")
        self.fork_wrapper = lttng.ust_fork_library()
        if self.fork_wrapper is None:
            _say(
                "liblttng-ust-fork.so not found: a child that a traced process forks "
                "without exec would record its events under its parent's pid"
            )
        self.scratch = Path(tempfile.mkdtemp(prefix="clrmemtrace-record-"))
        if args.url is None:
            self.output, self.created_output = _prepare_output(args.output, args.force)
        if self.sessiond.ensure(self.scratch / "lttng-sessiond.log"):
            _say(f"started a session daemon (pid {self.sessiond.pid}); it stops at the end")
        if args.url is not None:
            self.url = args.url
            if not _split_url(self.url)[2]:
                self.url = f"{self.url.rstrip('/')}/clrmemtrace-trace-{_timestamp()}"
        elif args.live:
            self.relayd = lttng.RelayDaemon(self.output)
            self.relayd.start(self.scratch / "lttng-relayd.log")
            _say(
                f"started lttng-relayd (pid {self.relayd.pid}) on 127.0.0.1, ports "
                f"{self.relayd.control_port} (control), {self.relayd.data_port} (data), "
                f"{self.relayd.live_port} (live)"
            )
            self.url = f"{self.relayd.url}/{self.name}"
            self.trace_path = self.output / self.hostname / self.name
        else:
            self.trace_path = self.output
        if args.live:
            self.live_url = f"{self._live_base()}/host/{self.hostname}/{self.name}"

        self.session = lttng.Session(self.ctl, self.name)
        self.session.create(
            output=None if self.url else self.output,
            url=self.url,
            live_timer_us=LIVE_TIMER_US if args.live else None,
            snapshot=args.snapshot,
        )
        self.session.enable_channel(
            CHANNEL,
            args.subbuf_size,
            args.num_subbuf,
            overwrite=args.snapshot,
            blocking_timeout=None if args.snapshot else args.blocking_timeout,
        )
        if not args.all_processes:
            # No process records until run_program adds the program, then its descendants.
            self.session.untrack_all_vpids()
        self.session.enable_events(CHANNEL, events.record_names())
        if args.preload:
            self.session.enable_events(CHANNEL, events.os_record_names())
        self.session.add_contexts(CHANNEL, events.CONTEXTS)
        self.session.start()
        where = self.url if self.url else str(self.output)
        _say(f"session {self.name} recording to {where}")
        if args.all_processes:
            _say("recording the events of every process (--all-processes)")
        if self.live_url:
            _say(f"view it live: babeltrace2 --input-format=lttng-live {self.live_url}")

    def _live_base(self):
        if self.relayd is not None:
            return self.relayd.live_url
        # Someone else's relay daemon: viewers use its live port, 5344 unless it was changed.
        scheme, host, _ = _split_url(self.url)
        return f"{scheme}://{_url_host(host)}"

    def _program_env(self):
        env = dict(os.environ)
        # Inherited by the program's descendants, which are traced as well. LTTng-UST's fork
        # wrapper gives a child of fork without exec a registration (and vpid) of its own.
        preload = (self.preload, self.fork_wrapper, env.get("LD_PRELOAD"))
        if any(preload):
            env["LD_PRELOAD"] = " ".join(p for p in preload if p)
        env["LTTNG_UST_REGISTER_TIMEOUT"] = str(REGISTER_TIMEOUT_MS)
        if self.args.blocking_timeout != "0":
            env["LTTNG_UST_ALLOW_BLOCKING"] = "1"
        return env

    # ---------- the program ----------

    def run_program(self, mask):
        """Runs the program with signal mask `mask`; returns its exit status.

        Unless every process is recorded, the program is tracked before it execs, so its
        first event is recorded, and its descendants are tracked while it runs.
        """
        program = self.args.program
        gate = None if self.args.all_processes else self._track_program
        try:
            proc = _spawn(program, self._program_env(), mask, gate)
        except FileNotFoundError:
            raise UserError(f"{program[0]}: command not found", EXIT_NOT_FOUND) from None
        except OSError as e:
            raise UserError(f"{program[0]}: {e.strerror}", EXIT_CANNOT_EXECUTE) from None
        self.program_ran = True
        _say(f"running {' '.join(program)} (pid {proc.pid})")
        follower = None if self.args.all_processes else Follower(self.session, proc.pid)
        while True:
            status = proc.poll()
            if status is not None:
                break
            timeout = WAIT_SLICE
            if follower is not None and follower.active:
                self._step("follow the program's descendants", follower.poll)
                timeout = max(follower.due - time.monotonic(), 0)
            info = signal.sigtimedwait(HANDLED, timeout)
            if info is None or info.si_signo == signal.SIGCHLD:
                continue
            if info.si_signo == signal.SIGUSR1 and self.args.snapshot:
                self.snapshot("on SIGUSR1")
                continue
            # A terminal sends its signals to the whole foreground process group: the program
            # has it already.
            if info.si_code != SI_KERNEL:
                proc.send_signal(info.si_signo)
        _say(f"{program[0]} {_status_text(status)}")
        if follower is not None:
            n = follower.followed
            _say(f"followed {n} descendant process{'' if n == 1 else 'es'} of {program[0]}")
        return status

    def _track_program(self, pid):
        self.session.track_vpids([pid])

    def snapshot(self, why):
        before = self._snapshot_dirs()
        try:
            self.session.snapshot_record()
        except lttng.LttngError as e:
            self.errors.append(f"snapshot {why} failed: {e}")
            _say(f"snapshot {why} failed: {e}")
            return
        new = sorted(self._snapshot_dirs() - before)
        if self.output is None:
            new = [self.url]
        self.snapshots.extend(new)
        _say(f"snapshot {why} recorded: {', '.join(str(p) for p in new) or 'no data yet'}")

    def _snapshot_dirs(self):
        if self.output is None:
            return set()
        return {p for p in self.output.iterdir() if p.is_dir() and p.name.startswith("snapshot-")}

    # ---------- tear-down ----------

    def teardown(self):
        """Stops and destroys the session and the daemons started here, whatever happened."""
        session = self.session
        if session is not None and session.created:
            self._step("stop the session", session.stop)
            if self.program_ran and session.created:
                self.losses = self._step("read the loss counters", session.losses)
            if self.args.snapshot and self.program_ran:
                self._step("record the snapshot at exit", self.snapshot, "at exit")
            self._step("destroy the session", session.destroy)
        if self.relayd is not None:
            if self.relayd.live_viewers():
                _say("waiting for live viewers to read the end of the trace")
                if not self.relayd.wait_viewers_done(LIVE_VIEWER_DRAIN_TIMEOUT):
                    _say(f"live viewers still connected after {LIVE_VIEWER_DRAIN_TIMEOUT} s")
            self._step("stop lttng-relayd", self.relayd.stop)
        if self.sessiond.started:
            self._step("stop the session daemon", self.sessiond.stop)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def _step(self, what, func, *args):
        # Any failure of one step is reported and the next steps still run: the session and
        # the daemons must go whatever happened.
        try:
            return func(*args)
        except Exception as e:
            self.errors.append(f"could not {what}: {e}")
            _say(f"could not {what}: {e}")
            return None

    def discard_output(self):
        """Removes the trace directory created for a program that never ran."""
        if self.created_output and self.output is not None:
            shutil.rmtree(self.output, ignore_errors=True)

    # ---------- report ----------

    def report(self):
        """Prints where the trace is and what was lost (stdout)."""
        out = []
        if self.args.snapshot:
            n = len(self.snapshots)
            count = f"{n} snapshot{'' if n == 1 else 's'}"
            if self.output is not None:
                out.append(f"Trace: {self.output} ({count})")
                out += [f"Snapshot: {p}" for p in self.snapshots]
            else:
                out.append(f"Trace: sent to {self.url} ({count})")
        elif self.relayd is not None:
            out.append(f"Trace: {self.trace_path} (written by lttng-relayd)")
        elif self.url is not None:
            _, _, path = _split_url(self.url)
            out.append(
                f"Trace: sent to {self.url}; the relay daemon stores it in "
                f"<its output directory>/{self.hostname}/{path}"
            )
        else:
            out.append(f"Trace: {self.trace_path}")
        if self.live_url:
            out.append(f"Live: {self.live_url}")
        losses = self.losses
        if losses is None:
            out.append("unknown number of events discarded (the loss counters were not read)")
        else:
            out.append(f"{losses.discarded_events} events discarded")
            if losses.lost_packets:
                out.append(f"{losses.lost_packets} packets lost")
        print("\n".join(out), flush=True)
        if losses is not None and losses.spurious_bit:
            _say("LTTng reported a loss counter with bit 63 set; the count above leaves it out")
        if losses is not None and (losses.discarded_events or losses.lost_packets):
            _say(
                "events were lost: give the channel more room (--subbuf-size, --num-subbuf) "
                "or a longer --blocking-timeout"
            )
        if self.args.snapshot:
            _say(
                "flight-recorder mode: a snapshot holds the latest events that fit in the "
                "buffers; older ones were overwritten, which LTTng does not count as discarded"
            )
        self._warn_if_empty()

    def _warn_if_empty(self):
        if self.url is not None and self.relayd is None:
            return
        root = self.output
        if root is not None and not _holds_trace(root):
            _say(
                "no clrmemtrace event was recorded: the program did not load libclrmemtrace "
                "with its provider libclrmemtrace-lttng.so (next to the library, or "
                "$CLRMEMTRACE_LTTNG_PROVIDER), or CLRMEMTRACE_TRACE=0 is set"
            )


def _start_time(pid):
    """When process `pid` started (clock ticks after boot); None when there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name, field 2, may hold spaces and parentheses: count from its end.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22, starttime
    except (IndexError, ValueError):
        return None


def _children(pid):
    """The pids of the children of every thread of process `pid`."""
    found = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found += [int(word) for word in f.read().split()]
        except (OSError, ValueError):
            continue
    return found


class Follower:
    """Adds the program's descendants to the session's vpid tracker as they appear.

    Each poll walks the children of every process followed so far that still runs (so the
    children of an orphaned descendant are followed too), tracks the new ones in one lttng
    command, and untracks the pids of followed processes that ended, so that an unrelated
    process that reuses such a pid is not recorded. A process is told apart from a later
    one with the same pid by its start time.
    """

    def __init__(self, session, pid):
        self.session = session
        self.known = {pid: _start_time(pid)}  # pid -> start time, of each followed process
        self.followed = 0  # descendants tracked (the program itself not counted)
        self.due = time.monotonic()
        self.active = True

    def poll(self):
        """Tracks the descendants that appeared; at most once per FOLLOW_INTERVAL."""
        now = time.monotonic()
        if now < self.due:
            return
        self.due = now + FOLLOW_INTERVAL
        ended = [pid for pid, start in self.known.items() if _start_time(pid) != start]
        for pid in ended:
            del self.known[pid]
        new = []
        pending = list(self.known)
        while pending:
            for child in _children(pending.pop()):
                if child in self.known:
                    continue
                start = _start_time(child)
                if start is None:
                    continue
                self.known[child] = start
                new.append(child)
                pending.append(child)
        try:
            self.session.track_vpids(new)
            self.followed += len(new)
            self.session.untrack_vpids([pid for pid in ended if pid not in self.known])
        except Exception:
            self.active = False  # the caller reports it once; the program runs on
            raise


def _spawn(program, env, mask, gate=None):
    """Starts `program` with signal mask `mask`; returns its Popen.

    With `gate`, the child waits after the fork, before it execs, until `gate(pid)` has
    returned; when `gate` raises, the program never runs and the exception propagates.
    """
    if gate is None:
        return subprocess.Popen(
            program, env=env, preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        )
    # Popen returns only once the child has exec'd, so it runs in a thread of its own while
    # this one learns the child's pid from a pipe and opens the gate (another pipe).
    pid_r, pid_w = os.pipe()
    gate_r, gate_w = os.pipe()

    def wait_at_gate():
        os.close(gate_w)  # so that the gate reads end-of-file if record goes away
        os.close(pid_r)
        os.write(pid_w, b"%d\n" % os.getpid())
        os.close(pid_w)
        if os.read(gate_r, 1) != b"1":
            raise ChildProcessError("not started")
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    outcome = {}

    def start():
        try:
            outcome["proc"] = subprocess.Popen(program, env=env, preexec_fn=wait_at_gate)
        except BaseException as e:
            outcome["error"] = e
        finally:
            os.close(pid_w)

    starter = threading.Thread(target=start, name="spawn", daemon=True)
    try:
        starter.start()
        answer = b""
        while not answer.endswith(b"\n"):
            part = os.read(pid_r, 32)
            if not part:
                break
            answer += part
        if answer.endswith(b"\n"):
            gate(int(answer))
            os.write(gate_w, b"1")
    finally:
        os.close(gate_w)
        starter.join()
        os.close(pid_r)
        os.close(gate_r)
    error = outcome.get("error")
    if isinstance(error, subprocess.SubprocessError):
        raise UserError(f"{program[0]}: could not be started ({error})")
    if error is not None:
        raise error
    return outcome["proc"]


def _pending_stop():
    """A stopping signal that arrived while signals were blocked, if any."""
    pending = signal.sigpending()
    for signo in STOPPING:
        if signo in pending:
            signal.sigtimedwait([signo], 0)
            return signo
    return None


def _drain_signals():
    while signal.sigtimedwait(HANDLED, 0) is not None:
        pass


def run(args):
    """The `record` subcommand; returns the exit status."""
    _check_arguments(args)
    try:
        lttng.require("lttng", "lttng-sessiond")
        if args.live and args.url is None:
            lttng.require("lttng-relayd")
    except lttng.LttngError as e:
        raise UserError(str(e)) from None

    recorder = Recorder(args)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    try:
        try:
            recorder.setup()
            stop = _pending_stop()
            if stop is not None:
                _say(f"{signal.Signals(stop).name} received before the program started")
                return 128 + stop
            status = recorder.run_program(mask)
        except lttng.LttngError as e:
            raise UserError(str(e)) from None
        finally:
            recorder.teardown()
            if not recorder.program_ran:
                recorder.discard_output()
        recorder.report()
    finally:
        _drain_signals()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    if status < 0:
        return 128 - status
    if status == 0 and recorder.errors:
        return EXIT_ERROR
    return status
