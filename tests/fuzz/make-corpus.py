#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of fuzz-ops (tests/fuzz/corpus/).

Each seed is a short operation sequence in the fuzzer's input format (the
decode_* functions of fuzz-ops.c): one seed per operation kind, and the
sequences the behaviour catalogue pins (win32-vm-semantics.md, "#n"). The
fuzzer mutates from these, and every build replays them.

    tests/fuzz/make-corpus.py [DIRECTORY]

Running it again rewrites the same files byte for byte.
"""

import os
import struct
import sys

# ---------- Operation codes (the opcode byte, taken modulo 20) ----------

ALLOC, FREE, PROTECT, QUERY, TOUCH = 0, 3, 5, 7, 9
CREATE_MALLOC, HALLOC, HFREE, HEAP_REF, MANAGER, CHECK = 10, 11, 12, 13, 14, 15
BURST, FREE_ALL, OTHER = 16, 17, 19

# ---------- Argument specs ----------


def u16(v):
    return list(struct.pack('<H', v))


def u32(v):
    return list(struct.pack('<I', v & 0xffffffff))


# Addresses.
def rel(slot=0, sel=0, k=0, extra=None):
    """Relative to the slot-th reservation of the input (see decode_relative)."""
    spec = [0, slot, (k << 4) | sel]
    if sel == 12:
        spec += u16(extra or 0)
    return spec


def at(slot=0, pages=0):
    """The reservation's base plus whole pages (0-15)."""
    return rel(slot, 0, pages)


def at_plus1(slot=0, pages=0):
    return rel(slot, 1, pages)


def end_minus(slot=0, pages=0):
    return rel(slot, 3, pages)


def granule_tail(slot=0):
    return rel(slot, 6, 0)


def below(slot=0, pages=1):
    return rel(slot, 7, pages - 1)


def granule(slot=0, k=0):
    return rel(slot, 10, k)


def arena(g, pages=0):
    return [3, g, (pages << 2) | 1 if pages else 0]


def hostile(i):
    return [4, i]


HOSTILE_COUNT = 20


def block_addr(c=0):
    return [5, c]


def null():
    return [6]


def stack():
    return [7, 4]


def global_object():
    return [7, 5]


def code():
    return [7, 6]


def libc_block():
    return [7, 7]


# Sizes.
def zero():
    return [0]


def nbytes(n):
    assert 1 <= n <= 16
    return [((n - 1) << 4) | 1]


def pages(k):
    assert 0 <= k <= 15
    return [(k << 4) | 2]


def pages_plus1(k):
    return [(k << 4) | 3]


def pages_minus1(k):
    assert 1 <= k <= 16
    return [((k - 1) << 4) | 4]


def granules(k):
    assert 1 <= k <= 16
    return [((k - 1) << 4) | 5]


def many_pages(n):
    return [7] + u16(n)


def huge(i):
    return [(i << 4) | 8]


HUGE_COUNT = 16


def hist_len(k=0):
    return [(k << 4) | 9]


def hist_len_plus(k, n):
    return [(k << 4) | 11, n]


def cap(i):
    return [(i << 4) | 13]


# Allocation types (indexes into decode_type's table).
T_RESERVE, T_COMMIT, T_RC, T_RESET = 0, 1, 2, 6
T_RESERVE_TOPDOWN, T_COMMIT_TOPDOWN, T_RC_TOPDOWN = 7, 8, 9
T_TYPES = 30


def raw32(v):
    return [0xf0] + u32(v)


def flip(index, bit):
    return [0xc0, index, bit]


# Protections (indexes into decode_protect's valid table, then the invalid one).
NOACCESS, READONLY, READWRITE, EXECUTE, EXECUTE_READ, EXECUTE_READWRITE = 0, 1, 2, 3, 4, 5
RO_GUARD, RW_GUARD, XRW_GUARD, RW_NOCACHE, RO_WRITECOMBINE, XR_NOCACHE = 8, 9, 10, 11, 12, 13
RW_TARGETS, NOACCESS_TARGETS = 14, 15
VALID_COUNT = 16


def invalid(i):
    return [0xa0, i]


INVALID_COUNT = 18


def prot(i):
    return [i]


# Free types.
F_DECOMMIT, F_RELEASE, F_ZERO, F_BOTH, F_MEM_FREE = 0, 1, 4, 5, 6
F_COUNT = 15


def level(v=0):
    return [v]


BAD_LEVELS = [0xf0 + i for i in range(8)]


# ---------- Operations ----------


def alloc(addr, size, t, p, lvl=0, out_null=False):
    typ = [t] if isinstance(t, int) else t
    pr = [p] if isinstance(p, int) else p
    return bytes([ALLOC] + addr + size + typ + pr + level(lvl) + [0xff if out_null else 0])


def free(addr, size, t):
    return bytes([FREE] + addr + size + ([t] if isinstance(t, int) else t))


def protect(addr, size, p, old_null=False):
    pr = [p] if isinstance(p, int) else p
    return bytes([PROTECT] + addr + size + pr + [0xff if old_null else 0])


def query(addr, length=0, flags=0):
    return bytes([QUERY] + addr + [length, flags])


def touch(res=0, page=0, count=1, write=True):
    return bytes([TOUCH, res] + u16(page) + [count - 1, 1 if write else 0])


def create_malloc(t=1, out_null=False):
    return bytes([CREATE_MALLOC, t, 0xff if out_null else 0])


def heap_alloc(heap, size, lvl=0, debug=False, file_null=False, out_null=False):
    kind = 0xff if out_null else (1 if debug else 0) | (2 if file_null else 0)
    return bytes([HALLOC, heap] + size + level(lvl) + [kind])


def hsize(n):
    """A small heap size, 1-128 bytes."""
    assert 1 <= n <= 128
    return [8, n - 1]


def hsize_zero():
    return [0]


def hsize_boundary(i):
    return [3, i]


def hsize_pages(n):
    return [7] + u16(n)


def hsize_huge(i):
    return [6, i]


def heap_free(heap, ptr):
    return bytes([HFREE, heap] + ptr)


# Pointers for Free.
def own_block(c=0):
    return [0, c]


def freed_block(c=0):
    return [2, c]


def interior(c, delta=0):
    return [3, c] + ([delta] if c % 4 == 3 else [])


def null_ptr():
    return [4, 0]


def any_block(c=0):
    return [5, c]


def addr_ptr(addr):
    return [6, 0] + addr


def misc_ptr(c, extra=0):
    return [7, c] + ([extra] if c % 4 == 3 else [])


def burst(heap, size, count):
    assert 1 <= count <= 96
    return bytes([BURST, heap] + size + [count - 1])


def free_all(heap, order=0):
    return bytes([FREE_ALL, heap, order])


def other(action, addr, *rest):
    """A call on the second manager: 0 VirtualAlloc, 1 VirtualFree, 2 VirtualProtect, 3 VirtualQuery."""
    out = [OTHER, action] + addr
    for r in rest:
        out += r if isinstance(r, list) else [r]
    return bytes(out)


def heap_ref(heap, action):
    return bytes([HEAP_REF, heap, action])


def manager(action, *rest):
    out = [MANAGER, action]
    for r in rest:
        out += r
    return bytes(out)


def check(kind):
    return bytes([CHECK, kind])


# ---------- Seeds ----------


def seeds():
    s = {}

    # One seed per operation kind.
    s['op-alloc'] = alloc(null(), pages(4), T_RC, READWRITE)
    s['op-free'] = alloc(null(), pages(4), T_RESERVE, NOACCESS) + free(at(0), zero(), F_RELEASE)
    s['op-protect'] = (alloc(null(), pages(2), T_RC, READWRITE) +
                       protect(at(0), pages(1), READONLY))
    s['op-query'] = alloc(null(), pages(2), T_RESERVE, NOACCESS) + query(at(0, 1))
    s['op-touch'] = alloc(null(), pages(2), T_RC, READWRITE) + touch(0, 0, 2)
    s['op-create-malloc'] = create_malloc(1)
    s['op-heap-alloc'] = create_malloc(1) + heap_alloc(0, hsize(24))
    s['op-heap-free'] = create_malloc(1) + heap_alloc(0, hsize(24)) + heap_free(0, own_block())
    s['op-heap-ref'] = create_malloc(1) + heap_ref(0, 0) + heap_ref(0, 1)
    s['op-manager'] = manager(0) + manager(2) + manager(8) + manager(1)
    s['op-check'] = (alloc(null(), pages(3), T_RC, READWRITE) + create_malloc(1) +
                     heap_alloc(0, hsize(100)) + check(0) + check(1) + check(2))

    # #1-#10: VirtualAlloc's argument checks.
    s['alloc-arguments'] = (
        alloc(null(), zero(), T_RESERVE, NOACCESS) +
        alloc(null(), pages(1), T_RESERVE, invalid(0)) +
        alloc(null(), pages(1), T_COMMIT, invalid(0)) +
        alloc(null(), pages(1), T_COMMIT, invalid(3)) +
        alloc(null(), pages(1), T_COMMIT, invalid(1)) +
        alloc(null(), pages(1), T_COMMIT, invalid(2)) +
        alloc(null(), pages(1), 22, READWRITE) +
        alloc(null(), pages(1), 15, READWRITE) +
        alloc(null(), pages(1), 16, READWRITE) +
        alloc(null(), pages(1), 10, NOACCESS) +
        alloc(null(), pages(1), 11, READWRITE) +
        alloc(null(), pages(1), T_RC, READWRITE, out_null=True) +
        alloc(null(), pages(1), T_RC, READWRITE, lvl=BAD_LEVELS[0]) +
        alloc(null(), pages(1), T_RC, READWRITE, lvl=BAD_LEVELS[2]) +
        alloc(null(), pages(1), T_RC, READWRITE, lvl=BAD_LEVELS[3]))
    s['alloc-type-bits'] = b''.join(
        bytes(alloc(null(), pages(1), flip(T_RC, bit), READWRITE)) for bit in range(0, 32, 2))
    s['alloc-types'] = b''.join(
        bytes(alloc(null(), pages(1), t, READWRITE)) for t in range(15, T_TYPES))
    s['alloc-protections'] = b''.join(
        bytes(alloc(null(), nbytes(16), T_COMMIT, p)) for p in range(VALID_COUNT))
    s['alloc-invalid-protections'] = b''.join(
        bytes(alloc(null(), pages(1), T_RC, invalid(i))) for i in range(INVALID_COUNT))
    s['alloc-huge'] = b''.join(
        bytes(alloc(null(), huge(i), T_RESERVE if i % 2 else T_RC, NOACCESS if i % 2 else
                    READWRITE)) for i in range(HUGE_COUNT))
    s['alloc-hostile'] = b''.join(
        bytes(alloc(hostile(i), pages(1), T_RESERVE if i % 2 else T_COMMIT, READWRITE))
        for i in range(HOSTILE_COUNT))
    s['alloc-hostile-huge'] = b''.join(
        bytes(alloc(hostile(i), huge(i % HUGE_COUNT), T_RC, READWRITE))
        for i in range(HOSTILE_COUNT))

    # #11-#19: reservations and placement.
    s['reserve-explicit'] = (
        alloc(arena(8), granules(2), T_RESERVE, NOACCESS) +
        alloc(arena(8), pages(1), T_RESERVE, NOACCESS) +        # #18: conflicting
        alloc(at_plus1(0, 1), pages(1), T_RESERVE, NOACCESS) +  # #13: rounds to the base
        alloc(arena(9), pages(1), T_RESERVE, NOACCESS) +        # inside the first one
        alloc(arena(10), pages(1), T_RC, READWRITE) +           # adjacent above
        free(at(0), zero(), F_RELEASE) +
        alloc(at(0), pages(1), T_RC, READWRITE) +               # #12: the same address again
        query(at(0)) + query(granule_tail(0)) + query(below(0)))
    s['reserve-sizes'] = (
        alloc(null(), [0x21], T_RESERVE, NOACCESS) +            # 3 bytes: one page
        alloc(null(), pages_minus1(16), T_RESERVE, NOACCESS) +  # #14: 0xffff-like
        alloc(arena(20, 3), pages_plus1(2), T_RESERVE, READONLY) +
        alloc(null(), many_pages(16384), T_RESERVE, NOACCESS) +  # 64 MiB
        alloc(null(), cap(2), T_RESERVE, NOACCESS) +
        check(2))
    s['reserve-top-down'] = (
        alloc(null(), pages(4), T_RESERVE_TOPDOWN, NOACCESS) +
        alloc(null(), pages(4), T_COMMIT_TOPDOWN, READWRITE) +
        alloc(null(), pages(4), T_RC_TOPDOWN, EXECUTE_READWRITE) + check(2))

    # #20-#25: commit.
    s['commit'] = (
        alloc(null(), granules(1), T_RESERVE, NOACCESS) +
        alloc(at(0), pages(1), T_COMMIT, READWRITE) +           # #20
        touch(0, 0, 1) +
        alloc(at(0), pages(1), T_COMMIT, READWRITE) +           # #21: contents kept
        touch(0, 0, 1, write=False) +
        alloc(at_plus1(0, 3), pages(2), T_COMMIT, EXECUTE_READ) +  # #25, #69
        alloc(at(0, 1), pages(1), T_COMMIT, EXECUTE_READWRITE) +   # #23
        alloc(at(0), pages(2), T_COMMIT, READONLY) +            # #24
        alloc(end_minus(0, 1), pages(2), T_COMMIT, READWRITE) +  # #17: runs past the end
        alloc(granule_tail(0), pages(1), T_COMMIT, READWRITE) +
        alloc(at(0), pages(1), T_COMMIT, invalid(1)) +          # #4
        touch(0, 0, 8) + check(0))
    s['commit-zero-after-decommit'] = (
        alloc(null(), pages(4), T_RC, READWRITE) + touch(0, 0, 4) +
        free(at(0, 1), pages(2), F_DECOMMIT) + touch(0, 0, 4, write=False) +
        alloc(at(0, 1), pages(2), T_COMMIT, READWRITE) + touch(0, 0, 4, write=False))  # #22

    # #27-#39: VirtualFree.
    s['free-rules'] = (
        alloc(null(), granules(1), T_RESERVE, NOACCESS) +
        alloc(at(0), pages(1), T_COMMIT, READWRITE) +
        free(at(0), granules(1), F_ZERO) +                      # #27
        free(at(0), zero(), F_MEM_FREE) +                       # #28
        free(at(0), nbytes(1), F_RELEASE) +                     # #29
        free(at(0), zero(), F_BOTH) +                           # #30
        free(at(0), granules(1), F_DECOMMIT) +                  # #31
        free(rel(0, 2, 1), nbytes(2), F_DECOMMIT) +             # #32
        free(at_plus1(0, 1), zero(), F_DECOMMIT) +              # #33
        free(rel(0, 2, 0), zero(), F_DECOMMIT) +                # #33 in the first page
        free(at_plus1(0, 1), zero(), F_RELEASE) +               # #34
        free(hostile(5), zero(), F_RELEASE) +                   # #35
        free(null(), zero(), F_RELEASE) +                       # #35
        free(end_minus(0, 1), pages(2), F_DECOMMIT) +           # #36
        free(rel(0, 2, 0), zero(), F_RELEASE) +                 # #34 at base+0xfff
        free(at(0), zero(), F_RELEASE) +                        # second release
        query(at(0)))                                           # #39
    s['free-mixed-release'] = (
        alloc(null(), pages(8), T_RESERVE, NOACCESS) +
        alloc(at(0, 2), pages(3), T_COMMIT, READWRITE) + touch(0, 2, 3) +
        alloc(at(0, 6), pages(1), T_COMMIT, RW_GUARD) +
        free(at(0), zero(), F_RELEASE) + query(at(0, 2)))       # #38

    # #40-#49a: VirtualProtect.
    s['protect-rules'] = (
        alloc(null(), granules(1), T_RESERVE, NOACCESS) +
        protect(at(0), pages(1), READONLY) +                    # #40
        alloc(at(0), pages(1), T_COMMIT, NOACCESS) +
        protect(at(0), pages_minus1(16), READONLY) +            # #41
        protect(at(0), pages(1), READONLY) +                    # #42
        protect(at(0), pages(1), READWRITE) +
        protect(at(0), pages(1), READWRITE, old_null=True) +    # #44
        protect(at(0), pages(1), invalid(0)) +                  # #45
        protect(at(0), pages(1), invalid(5)) +
        protect(at(0), pages(1), invalid(1)) +                  # #4
        protect(at(0), zero(), EXECUTE_READ) +                  # size 0 at a boundary
        protect(at_plus1(0), zero(), EXECUTE_READ) +
        protect(stack(), pages(1), READONLY) +                  # not the manager's
        protect(hostile(9), pages(1), READONLY) +
        protect(end_minus(0, 1), pages(2), READONLY) +          # #49a
        touch(0, 0, 2))
    s['protect-split-merge'] = (
        alloc(null(), pages(15), T_RC, READWRITE) +
        protect(at(0), pages(3), READONLY) +                    # #47
        query(at(0)) +
        protect(at(0), pages(3), READWRITE) + query(at(0)) +
        b''.join(bytes(protect(at(0, k), pages(1), READONLY if k % 2 else EXECUTE))
                 for k in range(0, 15, 1)) +
        check(2) + touch(0, 0, 8) + check(0))
    s['protect-adjacent'] = (
        alloc(arena(30), granules(1), T_RC, READWRITE) +
        alloc(arena(31), granules(1), T_RC, READWRITE) +
        protect(end_minus(0, 1), pages(2), READONLY) +          # #49a: spans two
        query(end_minus(0, 1)) + query(at(1)) + check(0))

    # #50-#58: VirtualQuery.
    s['query-arguments'] = (
        alloc(null(), pages(1), T_COMMIT, READWRITE) +
        query(at(0), 0xc0 + 0) + query(at(0), 0xc0 + 4) + query(at(0), 0xc0 + 7) +
        query(at(0), 0xc0 + 8) + query(at(0), 0xc0 + 9) +
        query(at(0), 0, 0xfe) + query(at(0), 0, 0xff) +
        query(hostile(11)) + query(hostile(17)) + query(hostile(10)) + query(hostile(0)) +
        query(stack()) + query(code()) + query(global_object()) + query(libc_block()))
    s['query-runs'] = (
        alloc(null(), granules(1), T_RESERVE, NOACCESS) +
        alloc(at(0, 3), pages(2), T_COMMIT, READWRITE) +
        alloc(at(0, 5), pages(2), T_COMMIT, READWRITE) +
        free(at(0, 3), pages(1), F_DECOMMIT) +
        query(at(0)) + query(at(0, 4)) + query(at(0, 7)) + query(granule_tail(0)) + check(2))

    # #59-#62: MEM_RESET.
    s['reset'] = (
        alloc(null(), granules(1), T_RESERVE, NOACCESS) +
        alloc(at(0), pages(1), T_COMMIT, READWRITE) + touch(0, 0, 1) +
        alloc(at(0), pages(1), T_RESET, NOACCESS) +             # #59
        touch(0, 0, 1, write=False) +
        alloc(at(0, 1), pages(1), T_RESET, NOACCESS) +          # #60
        alloc(end_minus(0, 1), pages(2), T_RESET, NOACCESS) +   # #61
        alloc(at(0), pages(1), 12, NOACCESS) +                  # #62
        alloc(at(0), pages(1), 13, NOACCESS) +
        alloc(at(0), pages(1), T_RESET, invalid(0)) +
        alloc(null(), pages(1), T_RESET, NOACCESS) +
        alloc(stack(), pages(1), T_RESET, NOACCESS) + touch(0, 0, 1))

    # #63-#66: guard pages and cache modifiers.
    s['guard-nocache'] = (
        alloc(null(), pages(1), T_RC, RW_GUARD) +               # #63
        protect(at(0), pages(1), READWRITE) + touch(0, 0, 1) +
        alloc(null(), pages(2), T_RC, RW_NOCACHE) +             # #66
        protect(at(1), pages(1), READWRITE) + protect(at(1), pages(1), READONLY) +
        query(at(1)) +
        alloc(null(), pages(2), T_RC, RO_WRITECOMBINE) +
        alloc(at(2), pages(1), T_COMMIT, XR_NOCACHE) +
        alloc(null(), pages(1), T_RC, invalid(7)) +             # #65
        alloc(null(), pages(1), T_RC, invalid(10)) +
        alloc(null(), pages(1), T_RC, invalid(12)) +
        alloc(null(), pages(1), T_RC, RW_TARGETS) +
        alloc(null(), pages(1), T_RC, NOACCESS_TARGETS) + check(0) + check(2))

    # Heaps.
    s['heap-sizes'] = (
        create_malloc(1) +
        b''.join(bytes(heap_alloc(0, hsize_boundary(i))) for i in range(20)) +
        heap_alloc(0, hsize_zero()) + heap_alloc(0, hsize_zero()) +
        heap_alloc(0, hsize_pages(256)) + check(1) + check(0))
    s['heap-arguments'] = (
        create_malloc(1) +
        heap_alloc(0, hsize(16), out_null=True) +
        heap_alloc(0, hsize(16), lvl=BAD_LEVELS[0]) +
        heap_alloc(0, hsize(16), lvl=BAD_LEVELS[3], debug=True) +
        heap_alloc(0, hsize(16), lvl=1, debug=True) +
        heap_alloc(0, hsize(16), lvl=2, debug=True, file_null=True) +
        b''.join(bytes(heap_alloc(0, hsize_huge(i))) for i in range(8)) +
        create_malloc(4) + create_malloc(0x80) + create_malloc(0xf0) + create_malloc(1, True))
    s['heap-frees'] = (
        create_malloc(1) + create_malloc(3) +
        heap_alloc(0, hsize(32)) + heap_alloc(0, hsize(32)) + heap_alloc(1, hsize(100)) +
        heap_alloc(0, hsize_pages(8)) +
        heap_free(0, own_block(0)) + heap_free(0, freed_block(0)) +  # double free
        heap_free(0, interior(0)) + heap_free(0, interior(1)) + heap_free(0, interior(2)) +
        heap_free(0, interior(3, 0)) + heap_free(0, interior(7, 9)) +
        heap_free(0, null_ptr()) + heap_free(0, any_block(1)) + heap_free(1, any_block(0)) +
        heap_free(0, misc_ptr(0)) + heap_free(0, misc_ptr(1)) + heap_free(0, misc_ptr(2)) +
        heap_free(0, misc_ptr(3, 17)) + heap_free(0, addr_ptr(hostile(16))) +
        heap_free(0, own_block(1)) + check(1) + check(0))
    s['heap-lifetime'] = (
        b''.join(bytes(create_malloc(t) + heap_alloc(t, hsize(20 + t)))
                 for t in range(6)) +                           # more heaps than a thread caches
        heap_ref(0, 3) + heap_ref(0, 4) + heap_ref(0, 5) + heap_ref(0, 6) + heap_ref(0, 7) +
        heap_ref(0, 1) + heap_ref(0, 1) + heap_ref(0, 1) +       # released with a live block
        heap_free(1, freed_block(0)) + heap_free(1, any_block(0)) +
        create_malloc(2) + heap_alloc(5, hsize_boundary(12)) + check(0) + check(1))
    s['heap-and-vm'] = (
        create_malloc(1) + heap_alloc(0, hsize(64)) +
        alloc(block_addr(0), pages(1), T_COMMIT, READWRITE) +
        protect(block_addr(0), pages(1), READONLY) +
        free(block_addr(0), zero(), F_RELEASE) +
        query(block_addr(0)) + alloc(block_addr(0), pages(1), T_RESERVE, NOACCESS) +
        alloc(null(), pages(2), T_RC, READWRITE) +
        heap_free(0, addr_ptr(at(0))) + check(1))

    # Enough blocks to fill spans, overflow a thread cache's bin and empty spans again.
    s['heap-burst'] = (
        create_malloc(1) +
        burst(0, hsize_boundary(11), 13) + free_all(0, 2) +      # 16 KiB: 3 blocks a span
        burst(0, hsize(48), 96) + free_all(0, 0) +
        burst(0, hsize(48), 96) + burst(0, hsize(48), 40) + free_all(0, 1) +
        burst(0, hsize_boundary(8), 70) + heap_free(0, own_block(5)) +
        burst(0, hsize_zero(), 20) + check(1) + check(0) + free_all(0, 2))
    s['heap-many-heaps'] = (
        b''.join(bytes(create_malloc(t % 4) + burst(t, hsize(16 + 8 * t), 5))
                 for t in range(6)) +
        b''.join(bytes(heap_free(t, own_block(t)) + heap_alloc(5 - t, hsize(40)))
                 for t in range(6)) +
        b''.join(bytes(free_all(t, t % 3)) for t in range(6)) +
        heap_ref(2, 1) + heap_ref(4, 1) + create_malloc(2) + burst(4, hsize(64), 8) +
        check(1) + check(0))

    # A second manager must treat the first one's reservations as foreign memory.
    s['other-manager'] = (
        alloc(null(), pages(8), T_RESERVE, NOACCESS) +
        alloc(at(0), pages(4), T_COMMIT, READWRITE) + touch(0, 0, 4) +
        other(0, at(0), pages(1), T_COMMIT, READONLY) +
        other(0, at(0), pages(1), T_RESERVE, NOACCESS) +
        other(0, at(0, 2), pages(1), T_RESET, NOACCESS) +
        other(1, at(0), zero(), F_RELEASE) + other(1, at(0), pages(1), F_DECOMMIT) +
        other(2, at(0), pages(1), NOACCESS) +
        other(3, at(0)) + other(3, at(0, 5)) + other(3, granule_tail(0)) + other(3, null()) +
        other(3, hostile(11)) + touch(0, 0, 4, write=False) + check(0) + check(2) +
        create_malloc(1) + heap_alloc(0, hsize(32)) + other(3, block_addr(0)))

    # The manager's other methods.
    s['manager-misc'] = (
        manager(0) + manager(0) + manager(1) + manager(2) + manager(3) + manager(4) +
        manager(5) + manager(6) + manager(7) + manager(8) +
        manager(9, [0]) + manager(9, [1]) + manager(9, [2]) +
        manager(10, null(), pages(1)) + manager(10, null(), zero()) +
        manager(10, hostile(17), pages(2)) +
        manager(11, arena(40), granules(2)) + manager(11, arena(40), granules(1)) +
        manager(11, null(), pages(1)) + manager(11, arena(41), zero()) +
        manager(11, hostile(17), pages(2)) +
        manager(12, [1], arena(41)) + manager(12, [0, 0]) + manager(12, [0, 0]) +
        manager(12, [1], null()) + manager(1) + manager(1))

    # Which check comes first, where the answers differ.
    s['check-order'] = (
        alloc(null(), pages(2), T_RESERVE, NOACCESS) +
        alloc(granule_tail(0), pages(1), T_COMMIT, invalid(0)) +   # #17 before #2
        alloc(stack(), pages(1), T_COMMIT, invalid(6)) +
        alloc(hostile(3), pages(1), T_COMMIT, READWRITE) +          # #9
        alloc(hostile(7), huge(3), T_COMMIT, invalid(0)) +
        alloc(stack(), pages(1), T_RESET, invalid(0)) +             # #62 before #61
        protect(at(0), pages(1), invalid(0)) +                      # #40 before #45
        protect(stack(), pages(1), invalid(0)) +
        protect(end_minus(0, 1), pages(2), invalid(0)) +            # #49a
        protect(hostile(9), huge(3), READONLY) +
        protect(hostile(11), pages(1), READONLY) +                  # beyond user space
        free(hostile(11), zero(), F_RELEASE) + free(hostile(9), pages(2), F_DECOMMIT) +
        free(stack(), pages(1), F_ZERO) +                           # #27 before #35
        free(null(), pages(1), F_ZERO) +
        free(stack(), pages(1), F_RELEASE) +                        # #29 first
        free(at(0), huge(3), F_DECOMMIT) +
        query(hostile(11), 0xc0 + 6) + query(hostile(11), 0xc0 + 6, 0xff) +
        query(hostile(11), 0, 0xfe) +
        create_malloc(0x80, out_null=True) + create_malloc(1) +
        heap_alloc(0, hsize_huge(0), lvl=BAD_LEVELS[1]) +
        heap_alloc(0, hsize(8), lvl=BAD_LEVELS[1], out_null=True))

    # Longer mixes.
    s['mix-runs'] = (
        alloc(null(), many_pages(300), T_RESERVE, NOACCESS) +
        b''.join(bytes(alloc(at(0, k), pages(1), T_COMMIT,
                             [READWRITE, READONLY, EXECUTE_READ, RW_GUARD][k % 4]))
                 for k in range(0, 15)) +
        check(2) + touch(0, 0, 8) + touch(0, 8, 8) +
        free(at(0, 2), pages(9), F_DECOMMIT) + check(2) +
        alloc(at(0), hist_len(0), T_COMMIT, READWRITE) + touch(0, 0, 8) + check(0))
    s['mix-slots'] = (
        b''.join(bytes(alloc(null(), pages(1 + k), T_RC if k % 2 else T_RESERVE,
                             READWRITE if k % 2 else NOACCESS)) for k in range(9)) +
        free(at(3), zero(), F_RELEASE) + free(at(4), zero(), F_RELEASE) +
        alloc(at(3), hist_len_plus(3, 2), T_RESERVE, NOACCESS) +
        alloc(at(3), pages(1), T_RC, READWRITE) +
        query(granule(3, 1)) + check(2) + check(0))
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(
        os.path.abspath(__file__)), 'corpus')
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(seeds().items()):
        with open(os.path.join(out, name), 'wb') as f:
            f.write(bytes(data))


if __name__ == '__main__':
    main()
