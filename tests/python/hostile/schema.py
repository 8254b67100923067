# SPDX-License-Identifier: MIT
"""The payloads of the clrmemtrace and clrmemtrace_os events, as LTTng-UST records them.

Member names and types follow tracepoints/clrmemtrace_tp.h and clrmemtrace_os_tp.h: ``u64``
for ``uint64_t``, ``s32`` for ``int32_t``, ``eu32``/``es32`` for an enumeration over an
unsigned/signed 32-bit integer, ``str`` for a string (the interposer's ``path`` sequence of
text included: Babeltrace2 reads it as a string). Which members the analysis cannot do
without is not repeated here: ``required_members`` reads it from the plugin's own table
(analysis/plugin/evtab.c).

The context is LTTng's ``vpid``, ``vtid`` (``pid_t``) and ``procname`` (text).
"""

import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

EVENTS = {
    "clrmemtrace:manager_create": (
        ("manager_id", "u64"), ("manager", "u64"), ("flags", "u32"), ("page_size", "u32"),
        ("name", "str"), ("version", "str")),
    "clrmemtrace:manager_destroy": (
        ("manager_id", "u64"), ("regions", "u64"), ("reserved_bytes", "u64"),
        ("committed_bytes", "u64")),
    "clrmemtrace:virtual_alloc": (
        ("manager_id", "u64"), ("address", "u64"), ("size", "u64"), ("type", "u32"),
        ("protect", "eu32"), ("level", "es32"), ("result", "u64"), ("hr", "es32"),
        ("seq", "u64"), ("duration_ns", "u64"), ("reason", "str")),
    "clrmemtrace:virtual_free": (
        ("manager_id", "u64"), ("address", "u64"), ("size", "u64"), ("type", "eu32"),
        ("hr", "es32"), ("seq", "u64"), ("duration_ns", "u64")),
    "clrmemtrace:virtual_protect": (
        ("manager_id", "u64"), ("address", "u64"), ("size", "u64"), ("protect", "eu32"),
        ("old_protect", "eu32"), ("hr", "es32"), ("seq", "u64"), ("duration_ns", "u64")),
    "clrmemtrace:virtual_query": (
        ("manager_id", "u64"), ("address", "u64"), ("length", "u64"), ("result", "u64"),
        ("base", "u64"), ("allocation_base", "u64"), ("allocation_protect", "eu32"),
        ("region_size", "u64"), ("state", "eu32"), ("protect", "eu32"), ("mem_type", "eu32"),
        ("hr", "es32"), ("seq_before", "u64"), ("seq_after", "u64"), ("duration_ns", "u64")),
    "clrmemtrace:memory_load": (
        ("manager_id", "u64"), ("load", "u32"), ("available", "u64"), ("hr", "es32"),
        ("duration_ns", "u64")),
    "clrmemtrace:notification_register": (
        ("manager_id", "u64"), ("callback", "u64"), ("previous", "u64"), ("hr", "es32"),
        ("duration_ns", "u64")),
    "clrmemtrace:memory_notification": (
        ("manager_id", "u64"), ("callback", "u64"), ("level", "es32"), ("hr", "es32"),
        ("load", "u32"), ("duration_ns", "u64"), ("reason", "str")),
    "clrmemtrace:malloc_create": (
        ("manager_id", "u64"), ("heap_id", "u64"), ("heap", "u64"), ("malloc_type", "u32"),
        ("hr", "es32"), ("duration_ns", "u64")),
    "clrmemtrace:malloc_alloc": (
        ("manager_id", "u64"), ("heap_id", "u64"), ("size", "u64"), ("level", "es32"),
        ("ptr", "u64"), ("hr", "es32"), ("file", "str"), ("line", "s32"),
        ("duration_ns", "u64"), ("reason", "str")),
    "clrmemtrace:malloc_free": (
        ("manager_id", "u64"), ("heap_id", "u64"), ("ptr", "u64"), ("size", "u64"),
        ("hr", "es32"), ("duration_ns", "u64")),
    "clrmemtrace:malloc_destroy": (
        ("manager_id", "u64"), ("heap_id", "u64"), ("live_blocks", "u64"),
        ("live_bytes", "u64")),
    "clrmemtrace:statedump_begin": (
        ("manager_id", "u64"), ("manager", "u64"), ("seq", "u64"), ("regions", "u64"),
        ("heaps", "u64"), ("name", "str")),
    "clrmemtrace:statedump_region": (
        ("manager_id", "u64"), ("base", "u64"), ("allocation_base", "u64"), ("size", "u64"),
        ("state", "eu32"), ("protect", "eu32"), ("allocation_protect", "eu32")),
    "clrmemtrace:statedump_vas": (("manager_id", "u64"), ("address", "u64"), ("size", "u64")),
    "clrmemtrace:statedump_heap": (
        ("manager_id", "u64"), ("heap_id", "u64"), ("heap", "u64"), ("malloc_type", "u32"),
        ("live_blocks", "u64"), ("live_bytes", "u64")),
    "clrmemtrace:statedump_block": (
        ("manager_id", "u64"), ("heap_id", "u64"), ("ptr", "u64"), ("size", "u64")),
    "clrmemtrace:statedump_end": (("manager_id", "u64"), ("seq", "u64")),
    "clrmemtrace_os:mmap": (
        ("addr", "u64"), ("length", "u64"), ("prot", "s32"), ("flags", "s32"), ("fd", "s32"),
        ("offset", "s64"), ("result", "u64"), ("errnum", "s32"), ("path", "str")),
    "clrmemtrace_os:munmap": (
        ("addr", "u64"), ("length", "u64"), ("result", "s32"), ("errnum", "s32")),
    "clrmemtrace_os:mprotect": (
        ("addr", "u64"), ("length", "u64"), ("prot", "s32"), ("result", "s32"),
        ("errnum", "s32")),
    "clrmemtrace_os:madvise": (
        ("addr", "u64"), ("length", "u64"), ("advice", "s32"), ("result", "s32"),
        ("errnum", "s32")),
    "clrmemtrace_os:posix_madvise": (
        ("addr", "u64"), ("length", "u64"), ("advice", "s32"), ("result", "s32")),
    "clrmemtrace_os:mremap": (
        ("old_addr", "u64"), ("old_length", "u64"), ("new_length", "u64"), ("flags", "s32"),
        ("new_addr", "u64"), ("result", "u64"), ("errnum", "s32")),
    "clrmemtrace_os:maps_begin": (("page_size", "u64"),),
    "clrmemtrace_os:maps_mapping": (
        ("start", "u64"), ("end", "u64"), ("prot", "s32"), ("shared", "s32"), ("offset", "u64"),
        ("major", "u32"), ("minor", "u32"), ("inode", "u64"), ("path", "str")),
    "clrmemtrace_os:maps_end": (("mappings", "u64"),),
}
for _name in ("vas_needs", "vas_acquired", "vas_released"):
    EVENTS["clrmemtrace:" + _name] = (
        ("manager_id", "u64"), ("address", "u64"), ("size", "u64"), ("hr", "es32"),
        ("total", "u64"), ("duration_ns", "u64"), ("reason", "str"))

# The events that are calls of an entry point (they have hr and count in `calls`).
CALLS = tuple(
    name.partition(":")[2] for name, members in EVENTS.items()
    if name.startswith("clrmemtrace:") and any(m == "hr" for m, _ in members)
)

CONTEXT = (("vpid", "s32"), ("vtid", "s32"), ("procname", "str"))

# Integer kinds: (signed, bits).
INTEGER_KINDS = {
    "u8": (False, 8), "u16": (False, 16), "u32": (False, 32), "u64": (False, 64),
    "s8": (True, 8), "s16": (True, 16), "s32": (True, 32), "s64": (True, 64),
    "eu32": (False, 32), "es32": (True, 32), "eu64": (False, 64), "es64": (True, 64),
}
# Kinds that are not integers: a string, and field types the analysis never expects.
OTHER_KINDS = ("str", "real", "bool", "array", "struct", "bits")


def fit(kind, value):
    """``value`` wrapped into the range of integer kind ``kind`` (two's complement)."""
    signed, bits = INTEGER_KINDS[kind]
    value &= (1 << bits) - 1
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return value


_ENTRY = re.compile(r"\[CMT_EV_(\w+)\]\s*=\s*\{\s*\"(\w+)\",(.*?)\}\s*\},", re.S)
_MEMBER = re.compile(r"\b([IS])\((\w+),\s*\w+,\s*(REQ|OPT)\)")


def _read_evtab():
    path = os.path.join(REPO, "analysis", "plugin", "evtab.c")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = text.replace("CALL_TAIL", "I(hr, HR, REQ), I(duration_ns, DURATION, OPT)")
    table = {}
    for enum, name, body in _ENTRY.findall(text):
        provider = "clrmemtrace_os:" if enum.startswith("OS_") else "clrmemtrace:"
        table[provider + name] = {
            member: (req == "REQ", kind == "S") for kind, member, req in _MEMBER.findall(body)
        }
    return table


_EVTAB = None


def plugin_members():
    """{event name: {member: (required, is a string)}} from the plugin's table (evtab.c)."""
    global _EVTAB
    if _EVTAB is None:
        _EVTAB = _read_evtab()
    return _EVTAB


def required_members(name):
    """The members without which the plugin ignores an event of ``name`` (a full name)."""
    return {m for m, (req, _) in plugin_members().get(name, {}).items() if req}
