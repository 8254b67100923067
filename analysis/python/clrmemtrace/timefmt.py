# SPDX-License-Identifier: MIT
"""TIME arguments, and times, durations and byte counts written for people.

A TIME argument is nanoseconds from the trace's first event (``1500000000``), the same
with a unit (``1.5s``, ``250ms``, ``40us``, ``10ns``), or an absolute timestamp in
nanoseconds since the epoch (``@1700000000123456789``).
"""

import collections
import datetime
import decimal
import re

UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}

_TIME = re.compile(r"^\s*(@)?\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(s|ms|us|ns)?\s*$")


class TimeArgument(collections.namedtuple("TimeArgument", "value absolute text")):
    """A parsed TIME: ``value`` ns, absolute (since the epoch) or from the first event."""

    __slots__ = ()

    def resolve(self, first_ns):
        """The absolute time in ns, given the trace's first event's time ``first_ns``."""
        return self.value if self.absolute else first_ns + self.value


def parse_time(text):
    """Parse a TIME argument; raises ValueError (with a message for people) when malformed."""
    match = _TIME.match(text)
    if not match:
        raise ValueError(
            f"invalid time {text!r} (examples: 1500000000, 1.5s, 250ms, 40us, "
            "@1700000000123456789)"
        )
    absolute, number, unit = match.groups()
    if absolute and unit not in (None, "ns"):
        raise ValueError(f"invalid time {text!r}: an absolute time is in ns, without a unit")
    scaled = decimal.Decimal(number) * UNITS[unit or "ns"]
    if scaled != scaled.to_integral_value():
        raise ValueError(f"invalid time {text!r}: finer than a nanosecond")
    value = int(scaled)
    if value >= 1 << 63:
        raise ValueError(f"invalid time {text!r}: too large")
    return TimeArgument(value, bool(absolute), text)


def argparse_time(text):
    """``parse_time`` for argparse's ``type=`` (turns ValueError into a usage error)."""
    import argparse

    try:
        return parse_time(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def format_duration(ns):
    """A duration for people: ``850 ns``, ``12.3 us``, ``4.56 ms``, ``1.234 s``."""
    if ns is None:
        return "-"
    ns = float(ns)
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{sign}{ns / 1e3:.3g} us"
    if ns < 1_000_000_000:
        return f"{sign}{ns / 1e6:.3g} ms"
    return f"{sign}{ns / 1e9:.4g} s"


def format_offset(ns, first_ns):
    """A time as seconds from the first event, to the nanosecond: ``+0.001234567``."""
    delta = ns - first_ns
    sign = "-" if delta < 0 else "+"
    delta = abs(delta)
    return f"{sign}{delta // 1_000_000_000}.{delta % 1_000_000_000:09d}"


def format_clock(ns):
    """An absolute time as UTC wall-clock time, to the nanosecond."""
    seconds, rest = divmod(ns, 1_000_000_000)
    when = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return f"{when:%Y-%m-%d %H:%M:%S}.{rest:09d} UTC"


def format_bytes(count):
    """A byte count for people: ``512 B``, ``64 KiB``, ``1.5 MiB``."""
    if count is None:
        return "-"
    sign = "-" if count < 0 else ""
    count = abs(count)
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            value = count / size
            text = f"{value:.0f}" if value == int(value) else f"{value:.1f}"
            return f"{sign}{text} {unit}"
    return f"{sign}{count} B"


def format_delta_bytes(delta):
    """A signed byte difference: ``+64 KiB``, ``-1.5 MiB``, ``0``."""
    if delta == 0:
        return "0"
    return ("+" if delta > 0 else "") + format_bytes(delta)


def format_address(address):
    """An address as 0x followed by at least 12 hex digits."""
    return f"0x{address:012x}"
