# SPDX-License-Identifier: MIT
"""A small wrapper around the LTTng command line and daemons.

- `Lttng` runs `lttng --no-sessiond ...`, so that lttng never spawns a session daemon behind
  the caller's back.
- `SessionDaemon` finds the session daemon lttng talks to, or starts one; it stops only a
  daemon it started, by PID.
- `RelayDaemon` starts an `lttng-relayd` listening on free loopback ports and stops it.
- `Session` creates, configures, starts, stops, snapshots and destroys one recording session,
  and chooses which processes it records (the vpid tracker).

Daemons run in a session of their own (a terminal's Ctrl-C does not reach them) with no signal
blocked, whatever the caller blocks. Failures raise `LttngError` with a one-line message.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

PACKAGE = "lttng-tools"

# How long one lttng command may take (stop and destroy wait until the trace is written).
COMMAND_TIMEOUT = 120
DAEMON_START_TIMEOUT = 20
DAEMON_STOP_TIMEOUT = 30
POLL_INTERVAL = 0.05

# LTTng 2.13 sometimes reports a per-user channel's loss counters with bit 63 set. Measured
# here (README, "Recording"): the remaining bits were exactly the number of events missing
# from the trace, so the bit is dropped and its presence reported.
SPURIOUS_BIT = 1 << 63


class LttngError(Exception):
    """An LTTng command or daemon failed; the message says which and why, in one line."""


def require(*tools):
    """Fails with a message naming the Debian package when one of `tools` is not on PATH."""
    for tool in tools:
        if shutil.which(tool) is None:
            raise LttngError(
                f"{tool} not found: install the LTTng tools (Debian package {PACKAGE})"
            )


def ust_fork_library():
    """The soname of LTTng-UST's fork wrapper, `liblttng-ust-fork.so.N`; None when absent.

    LTTng-UST needs it preloaded into programs that fork without exec: it registers the
    child with the session daemon anew, under its own pid. Without it the child records its
    events into the parent's registration, with the parent's vpid.
    """
    import ctypes.util

    return ctypes.util.find_library("lttng-ust-fork")


def _reset_signal_mask():
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _spawn_daemon(argv, log_path, env):
    """Starts a daemon in the foreground of a child process in a new session."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_reset_signal_mask,
        )


def _stop_process(process, timeout=DAEMON_STOP_TIMEOUT):
    """SIGTERM, then SIGKILL after `timeout` seconds, to one child process; reaps it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _log_tail(path):
    """The last meaningful line of a daemon's log, for an error message."""
    try:
        lines = [line.strip() for line in open(path, errors="replace")]
    except OSError:
        return "no log"
    errors = [line for line in lines if line.lower().startswith(("error", "perror", "fatal"))]
    lines = errors or [line for line in lines if line]
    return lines[-1] if lines else "no output"


def _first_error(proc):
    """The line of an lttng command's output that says what went wrong."""
    lines = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    errors = [line[len("Error:") :].strip() for line in lines if line.startswith("Error:")]
    if errors:
        return errors[0]
    return lines[-1] if lines else f"exit status {proc.returncode}"


def _strip_namespaces(root):
    for element in root.iter():
        if "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]
    return root


class Lttng:
    """Runs lttng commands in one environment, never spawning a session daemon."""

    def __init__(self, env=None):
        self.env = dict(os.environ if env is None else env)

    def run(self, *args, check=True, timeout=COMMAND_TIMEOUT):
        """Runs `lttng --no-sessiond ARGS`; returns the CompletedProcess (text output)."""
        argv = ["lttng", "--no-sessiond", *args]
        try:
            proc = subprocess.run(
                argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                timeout=timeout,
            )
        except FileNotFoundError:
            require("lttng")
            raise
        except subprocess.TimeoutExpired:
            raise LttngError(f"lttng {args[0]} did not finish within {timeout} s") from None
        if check and proc.returncode != 0:
            command = next((a for a in args if not a.startswith("-")), "")
            raise LttngError(f"lttng {command}: {_first_error(proc)}")
        return proc

    def mi(self, *args, timeout=COMMAND_TIMEOUT):
        """Runs `lttng --mi=xml ARGS`; returns the XML answer's root, namespaces removed."""
        proc = self.run("--mi=xml", *args, timeout=timeout)
        try:
            return _strip_namespaces(ET.fromstring(proc.stdout))
        except ET.ParseError as e:
            raise LttngError(f"lttng {' '.join(args)}: unreadable answer ({e})") from None

    def reachable(self):
        """Whether a session daemon answers lttng."""
        try:
            return self.run("list", check=False, timeout=DAEMON_START_TIMEOUT).returncode == 0
        except LttngError:
            return False


class SessionDaemon:
    """The session daemon lttng talks to: an existing one, or one this object starts."""

    def __init__(self, ctl):
        self.ctl = ctl
        self.process = None
        self.log_path = None

    @property
    def started(self):
        """Whether this object started the daemon (and will stop it)."""
        return self.process is not None

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def ensure(self, log_path):
        """Makes a session daemon reachable; returns True when it had to start one.

        A daemon started here runs as the caller's user (the root session daemon for root, a
        per-user one otherwise, following `LTTNG_HOME`), without kernel tracing.
        """
        require("lttng")
        if self.ctl.reachable():
            return False
        require("lttng-sessiond")
        self.log_path = log_path
        process = _spawn_daemon(["lttng-sessiond", "--no-kernel"], log_path, self.ctl.env)
        deadline = time.monotonic() + DAEMON_START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                # A daemon refuses to start when another one already runs: someone else
                # started one in the meantime, which is as good (and not ours to stop).
                if self.ctl.reachable():
                    return False
                raise LttngError(
                    f"lttng-sessiond exited with status {process.returncode}: "
                    f"{_log_tail(log_path)}"
                )
            if self.ctl.reachable():
                self.process = process
                return True
            time.sleep(POLL_INTERVAL)
        _stop_process(process)
        raise LttngError(f"lttng-sessiond did not answer within {DAEMON_START_TIMEOUT} s")

    def alive(self):
        """Whether the daemon this object started still runs (True when it started none)."""
        return self.process is None or self.process.poll() is None

    def stop(self):
        """Stops the daemon this object started, by its PID; leaves any other one alone."""
        if self.process is not None:
            _stop_process(self.process)
            self.process = None


def free_ports(host, count):
    """`count` distinct TCP ports that were free on `host` a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _socket_inodes(pid):
    """The inodes of the sockets process `pid` has open."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _tcp_sockets():
    """(local port, state, inode) of every TCP socket of the machine's network namespace."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            port = int(fields[1].rsplit(":", 1)[1], 16)
            rows.append((port, fields[3], fields[9]))
    return rows


TCP_ESTABLISHED = "01"
TCP_LISTEN = "0A"


class RelayDaemon:
    """An lttng-relayd on free ports of `host` (loopback by default), storing under `output`."""

    def __init__(self, output, host="127.0.0.1"):
        self.output = str(output)
        self.host = host
        self.process = None
        self.control_port = self.data_port = self.live_port = None

    @property
    def pid(self):
        return self.process.pid if self.process else None

    @property
    def url(self):
        """The URL sessions send their trace to (`lttng create --set-url`)."""
        return f"net://{self._host_in_url()}:{self.control_port}:{self.data_port}"

    @property
    def live_url(self):
        """The URL live viewers connect to (add /host/HOSTNAME/SESSION for one session)."""
        return f"net://{self._host_in_url()}:{self.live_port}"

    def _host_in_url(self):
        return f"[{self.host}]" if ":" in self.host else self.host

    def start(self, log_path, env=None, attempts=5):
        """Starts the daemon; retries on other ports when a chosen one was taken meanwhile."""
        require("lttng-relayd")
        tcp_host = self._host_in_url()
        for _ in range(attempts):
            ports = free_ports(self.host, 3)
            argv = [
                "lttng-relayd",
                f"--output={self.output}",
                f"--control-port=tcp://{tcp_host}:{ports[0]}",
                f"--data-port=tcp://{tcp_host}:{ports[1]}",
                f"--live-port=tcp://{tcp_host}:{ports[2]}",
            ]
            process = _spawn_daemon(argv, log_path, env)
            if self._wait_listening(process, ports):
                self.process = process
                self.control_port, self.data_port, self.live_port = ports
                return
            _stop_process(process)
        raise LttngError(f"lttng-relayd did not start: {_log_tail(log_path)}")

    @staticmethod
    def _wait_listening(process, ports):
        """Waits until `process` listens on every one of `ports`; False if it exits first."""
        deadline = time.monotonic() + DAEMON_START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            inodes = _socket_inodes(process.pid)
            listening = {
                port
                for port, state, inode in _tcp_sockets()
                if state == TCP_LISTEN and inode in inodes
            }
            if set(ports) <= listening:
                return True
            time.sleep(POLL_INTERVAL)
        return False

    def live_viewers(self):
        """How many live viewers are connected to this daemon."""
        if self.process is None:
            return 0
        inodes = _socket_inodes(self.process.pid)
        return sum(
            1
            for port, state, inode in _tcp_sockets()
            if port == self.live_port and state == TCP_ESTABLISHED and inode in inodes
        )

    def wait_viewers_done(self, timeout):
        """Waits up to `timeout` seconds for live viewers to disconnect; False if some stay."""
        deadline = time.monotonic() + timeout
        while self.live_viewers():
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_INTERVAL)
        return True

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self):
        """Stops the daemon by its PID."""
        if self.process is not None:
            _stop_process(self.process)
            self.process = None


@dataclass
class Losses:
    """What a session lost, summed over its channels, as LTTng counts it."""

    discarded_events: int = 0
    lost_packets: int = 0
    spurious_bit: bool = False  # some counter came with bit 63 set (see SPURIOUS_BIT)

    def add(self, discarded_events, lost_packets):
        for name, value in (("discarded_events", discarded_events), ("lost_packets", lost_packets)):
            if value & SPURIOUS_BIT:
                self.spurious_bit = True
                value &= SPURIOUS_BIT - 1
            setattr(self, name, getattr(self, name) + value)


class Session:
    """One recording session, user-space domain only."""

    def __init__(self, ctl, name):
        self.ctl = ctl
        self.name = name
        self.created = False
        self.active = False

    def create(self, output=None, url=None, live_timer_us=None, snapshot=False):
        """Creates the session: local `output` folder, or `url` of a relay daemon."""
        args = ["create", self.name]
        if snapshot:
            args.append("--snapshot")
        if live_timer_us is not None:
            args.append(f"--live={live_timer_us}")
        if url is not None:
            args.append(f"--set-url={url}")
        elif output is not None:
            args.append(f"--output={output}")
        self.ctl.run(*args)
        self.created = True

    def _where(self, channel=None):
        where = ["--userspace", f"--session={self.name}"]
        if channel is not None:
            where.append(f"--channel={channel}")
        return where

    def enable_channel(
        self, channel, subbuf_size, num_subbuf, overwrite=False, blocking_timeout=None
    ):
        """A per-user channel; `blocking_timeout` (µs or "inf") only in discard mode."""
        args = ["enable-channel", *self._where(), "--buffers-uid"]
        args += [f"--subbuf-size={subbuf_size}", f"--num-subbuf={num_subbuf}"]
        if overwrite:
            args.append("--overwrite")
        else:
            args.append("--discard")
            if blocking_timeout not in (None, 0, "0"):
                args.append(f"--blocking-timeout={blocking_timeout}")
        self.ctl.run(*args, channel)

    def enable_events(self, channel, names):
        """Enables each of `names` (full `provider:event` names) by name, in one command."""
        self.ctl.run("enable-event", *self._where(channel), ",".join(names))

    def add_contexts(self, channel, contexts):
        self.ctl.run("add-context", *self._where(channel), *[f"--type={c}" for c in contexts])

    def untrack_all_vpids(self):
        """Empties the session's process-ID inclusion set: no process records its events."""
        self.ctl.run("untrack", *self._where(), "--all", "--vpid")

    def track_vpids(self, pids):
        """Adds `pids` to the inclusion set (one command); those processes record events."""
        if pids:
            self.ctl.run("track", *self._where(), "--vpid=" + ",".join(map(str, pids)))

    def untrack_vpids(self, pids):
        """Removes `pids` from the inclusion set (one command)."""
        if pids:
            self.ctl.run("untrack", *self._where(), "--vpid=" + ",".join(map(str, pids)))

    def tracked_vpids(self):
        """The pids in the inclusion set; None when every process is recorded."""
        root = self.ctl.mi("list", self.name)
        tracker = root.find(".//vpid_process_attr_tracker")
        if tracker is None:
            return None
        values = tracker.find("process_attr_values")
        if values is None:
            return None
        return {int(e.text) for e in values.iter("id")}

    def start(self):
        self.ctl.run("start", self.name)
        self.active = True

    def stop(self):
        """Stops recording; returns once the trace data is complete."""
        if self.active:
            self.active = False
            self.ctl.run("stop", self.name)

    def losses(self):
        """Discarded events and lost packets so far, from `lttng list` (exact after stop)."""
        root = self.ctl.mi("list", self.name)
        losses = Losses()
        for attributes in root.iter("attributes"):
            losses.add(
                int(attributes.findtext("discarded_events") or 0),
                int(attributes.findtext("lost_packets") or 0),
            )
        return losses

    def snapshot_record(self):
        """Records a snapshot to the session's snapshot output."""
        self.ctl.run("snapshot", "record", f"--session={self.name}")

    def destroy(self):
        """Destroys the session (after writing what it still holds); idempotent."""
        if self.created:
            self.created = False
            self.active = False
            self.ctl.run("destroy", self.name)
