# SPDX-License-Identifier: MIT
"""The events of the `clrmemtrace` LTTng-UST provider (tracepoints/clrmemtrace_tp.h).

Names are append-only (tracepoints/EVENTS.md): a new event of the provider is added here too,
so that `clrmemtrace record` enables it. Sessions enable these names one by one, never a
wildcard, so that they record nothing else.
"""

PROVIDER = "clrmemtrace"

# Every event the provider emits, in the header's order.
EVENTS = (
    "manager_create",
    "manager_destroy",
    "virtual_alloc",
    "virtual_free",
    "virtual_protect",
    "virtual_query",
    "memory_load",
    "notification_register",
    "memory_notification",
    "vas_needs",
    "vas_acquired",
    "vas_released",
    "malloc_create",
    "malloc_alloc",
    "malloc_free",
    "malloc_destroy",
    "statedump_begin",
    "statedump_region",
    "statedump_vas",
    "statedump_heap",
    "statedump_block",
    "statedump_end",
)

# A control event, never emitted: a session that enables it makes every traced process dump
# its state at its next call into the library, even when another session already records
# clrmemtrace events (that one got the automatic dump).
STATEDUMP_REQUEST = "statedump_request"

# The contexts the analysis needs to tell processes and threads apart.
CONTEXTS = ("vpid", "vtid", "procname")


def qualified(names):
    """`provider:name` for each of `names`."""
    return [f"{PROVIDER}:{name}" for name in names]


def record_names():
    """What `clrmemtrace record` enables: every event, and the state-dump request."""
    return qualified(EVENTS + (STATEDUMP_REQUEST,))


# The interposer's provider (tracepoints/clrmemtrace_os_tp.h): the mmap family of a program
# traced unmodified, recorded by `clrmemtrace record --preload`.
OS_PROVIDER = "clrmemtrace_os"
OS_EVENTS = (
    "mmap",
    "munmap",
    "mprotect",
    "madvise",
    "posix_madvise",
    "mremap",
    "maps_begin",
    "maps_mapping",
    "maps_end",
)


def os_record_names():
    """What `clrmemtrace record --preload` enables on top of record_names()."""
    return [f"{OS_PROVIDER}:{name}" for name in OS_EVENTS]
