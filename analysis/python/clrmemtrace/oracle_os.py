# SPDX-License-Identifier: MIT
"""The mmap view of the reference reconstruction (oracle.py).

The interposer's events (provider ``clrmemtrace_os``) read as Win32-style state, as
analysis/README.md ("The mmap view") says, written on their own for the tests to compare
the plugin's ``os.c`` with. ``MmapView`` is a mixin of ``oracle.Reconstruction``: each
process's view is a ``Manager`` with id 0 named ``mmap`` whose reservations are mappings.

A change is applied as the plugin applies it, one step at a time (cut a range out, insert
a mapping, change protections), each step a new state handed to ``set_state``: the series'
spans and the Perfetto slices see the same steps in both engines. A mapping's ``ident``
tells its lives apart: the piece of a mapping left at its start keeps it, any other piece,
and every new mapping, gets a new one.
"""

import collections

OS_PROVIDER_PREFIX = "clrmemtrace_os:"
VIEW_ID = 0
VIEW_NAME = "mmap"

MEM_COMMIT = 0x1000
MEM_RESERVE = 0x2000
MEM_PRIVATE = 0x20000
MEM_MAPPED = 0x40000
MEM_IMAGE = 0x1000000

PROT_READ, PROT_WRITE, PROT_EXEC = 0x1, 0x2, 0x4
MAP_SHARED = 0x01
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_FIXED_NOREPLACE = 0x100000
MREMAP_DONTUNMAP = 0x4
MAP_FAILED = (1 << 64) - 1
# The advice that throws pages' contents away: the pages read zeros (MEM_RESET).
DISCARDING_ADVICE = {4, 8, 9, 24}  # MADV_DONTNEED, MADV_FREE, MADV_REMOVE, MADV_DONTNEED_LOCKED

PAGE_NOACCESS = 0x01
PAGE_READONLY = 0x02
PAGE_READWRITE = 0x04
PAGE_WRITECOPY = 0x08
PAGE_EXECUTE = 0x10
PAGE_EXECUTE_READ = 0x20
PAGE_EXECUTE_READWRITE = 0x40
PAGE_EXECUTE_WRITECOPY = 0x80

# The members each event must have (optional ones are read with a default).
OS_EVENT_MEMBERS = {
    "mmap": ("addr", "length", "prot", "flags", "result", "errnum"),
    "munmap": ("addr", "length", "result", "errnum"),
    "mprotect": ("addr", "length", "prot", "result", "errnum"),
    "madvise": ("addr", "length", "advice", "result", "errnum"),
    "posix_madvise": ("addr", "length", "advice", "result"),
    "mremap": ("old_addr", "old_length", "new_length", "flags", "result", "errnum"),
    "maps_begin": (),
    "maps_mapping": ("start", "end", "prot", "shared"),
    "maps_end": (),
}
OS_CALLS = ("mmap", "munmap", "mprotect", "madvise", "posix_madvise", "mremap")

ERRNO_NAMES = {
    1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG",
    8: "ENOEXEC", 9: "EBADF", 10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES",
    14: "EFAULT", 15: "ENOTBLK", 16: "EBUSY", 17: "EEXIST", 18: "EXDEV", 19: "ENODEV",
    20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 23: "ENFILE", 24: "EMFILE", 25: "ENOTTY",
    26: "ETXTBSY", 27: "EFBIG", 28: "ENOSPC", 29: "ESPIPE", 30: "EROFS", 31: "EMLINK",
    32: "EPIPE", 33: "EDOM", 34: "ERANGE", 35: "EDEADLK", 36: "ENAMETOOLONG", 37: "ENOLCK",
    38: "ENOSYS", 39: "ENOTEMPTY", 40: "ELOOP", 42: "ENOMSG", 43: "EIDRM", 44: "ECHRNG",
    45: "EL2NSYNC", 46: "EL3HLT", 47: "EL3RST", 48: "ELNRNG", 49: "EUNATCH", 50: "ENOCSI",
    51: "EL2HLT", 52: "EBADE", 53: "EBADR", 54: "EXFULL", 55: "ENOANO", 56: "EBADRQC",
    57: "EBADSLT", 59: "EBFONT", 60: "ENOSTR", 61: "ENODATA", 62: "ETIME", 63: "ENOSR",
    64: "ENONET", 65: "ENOPKG", 66: "EREMOTE", 67: "ENOLINK", 68: "EADV", 69: "ESRMNT",
    70: "ECOMM", 71: "EPROTO", 72: "EMULTIHOP", 73: "EDOTDOT", 74: "EBADMSG",
    75: "EOVERFLOW", 76: "ENOTUNIQ", 77: "EBADFD", 78: "EREMCHG", 79: "ELIBACC",
    80: "ELIBBAD", 81: "ELIBSCN", 82: "ELIBMAX", 83: "ELIBEXEC", 84: "EILSEQ",
    85: "ERESTART", 86: "ESTRPIPE", 87: "EUSERS", 88: "ENOTSOCK", 89: "EDESTADDRREQ",
    90: "EMSGSIZE", 91: "EPROTOTYPE", 92: "ENOPROTOOPT", 93: "EPROTONOSUPPORT",
    94: "ESOCKTNOSUPPORT", 95: "EOPNOTSUPP", 96: "EPFNOSUPPORT", 97: "EAFNOSUPPORT",
    98: "EADDRINUSE", 99: "EADDRNOTAVAIL", 100: "ENETDOWN", 101: "ENETUNREACH",
    102: "ENETRESET", 103: "ECONNABORTED", 104: "ECONNRESET", 105: "ENOBUFS",
    106: "EISCONN", 107: "ENOTCONN", 108: "ESHUTDOWN", 109: "ETOOMANYREFS",
    110: "ETIMEDOUT", 111: "ECONNREFUSED", 112: "EHOSTDOWN", 113: "EHOSTUNREACH",
    114: "EALREADY", 115: "EINPROGRESS", 116: "ESTALE", 117: "EUCLEAN", 118: "ENOTNAM",
    119: "ENAVAIL", 120: "EISNAM", 121: "EREMOTEIO", 122: "EDQUOT", 123: "ENOMEDIUM",
    124: "EMEDIUMTYPE", 125: "ECANCELED", 126: "ENOKEY", 127: "EKEYEXPIRED",
    128: "EKEYREVOKED", 129: "EKEYREJECTED", 130: "EOWNERDEAD", 131: "ENOTRECOVERABLE",
    132: "ERFKILL", 133: "EHWPOISON",
}  # fmt: skip


def errno_name(value):
    """An errno value's name (``ENOMEM``), else its decimal number."""
    return ERRNO_NAMES.get(value, str(value))


def win32_protect(prot, cow):
    """The PAGE_* value of PROT_* bits; writable copy-on-write pages are PAGE_WRITECOPY."""
    r, w, x = prot & PROT_READ, prot & PROT_WRITE, prot & PROT_EXEC
    if x:
        if w:
            return PAGE_EXECUTE_WRITECOPY if cow else PAGE_EXECUTE_READWRITE
        return PAGE_EXECUTE_READ if r else PAGE_EXECUTE
    if w:
        return PAGE_WRITECOPY if cow else PAGE_READWRITE
    return PAGE_READONLY if r else PAGE_NOACCESS


def page_of(prot, cow):
    """A run's (state, protect): PROT_NONE pages are reserved, others committed."""
    if prot & 7:
        return (MEM_COMMIT, win32_protect(prot, cow))
    return (MEM_RESERVE, 0)


def clip(runs, lo, hi):
    """The parts of ``runs`` inside [lo, hi)."""
    return tuple(
        (max(s, lo), min(e, hi), st, p) for s, e, st, p in runs if s < hi and e > lo
    )


def _signed32(value):
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


class MmapView:
    """The mixin of ``Reconstruction`` that keeps each process's mmap view."""

    next_ident = 0

    def new_ident(self):
        self.next_ident += 1
        return self.next_ident

    # ------------------------------------------------------------ the view

    def os_view(self, vpid, time_ns, event):
        from clrmemtrace.oracle import Manager

        key = (vpid, VIEW_ID)
        view = self.managers.get(key)
        if view is None:
            view = Manager(vpid, VIEW_ID)
            view.name = VIEW_NAME
            view.seq = 0
            # The rwx_commit of the last mmap, if it was one (see os_claim).
            view.rwx_pending = None
            self.managers[key] = view
            if event != "maps_begin":
                view.windows.append([time_ns, None])
        return view

    def os_wrong(self, view, time_ns):
        """A successful call the reconstructed view cannot take."""
        if view.known:
            view.flaws.add("calls the reconstructed mappings could not take")
            self.make_unknown(view, time_ns)

    def os_set(self, view, state):
        self.set_state(view, state)

    def unheld(self, view, lo, hi):
        """The pieces of [lo, hi) no manager of the view's process holds."""
        if lo >= hi:
            return []
        held = []
        for (vpid, manager_id), manager in self.managers.items():
            if vpid != view.vpid or manager is view:
                continue
            for r in manager.state.values():
                if r.base < hi and r.end > lo:
                    held.append((max(r.base, lo), min(r.end, hi)))
        held.sort()
        free, cursor = [], lo
        for a, b in held:
            if a > cursor:
                free.append((cursor, a))
            cursor = max(cursor, b)
        if cursor < hi:
            free.append((cursor, hi))
        return free

    def cut(self, view, lo, hi):
        """The view with [lo, hi) taken out (one step)."""
        if lo >= hi:
            return
        state = dict(view.state)
        changed = False
        for base, r in sorted(view.state.items()):
            if r.end <= lo or base >= hi:
                continue
            changed = True
            del state[base]
            if lo > base:
                state[base] = r._replace(end=lo, runs=clip(r.runs, base, lo))
                if hi < r.end:
                    state[hi] = r._replace(
                        base=hi, runs=clip(r.runs, hi, r.end), ident=self.new_ident()
                    )
            elif hi < r.end:
                state[hi] = r._replace(base=hi, runs=clip(r.runs, hi, r.end),
                                       ident=self.new_ident())  # fmt: skip
        if changed:
            self.os_set(view, state)

    def insert(self, view, reservation):
        state = dict(view.state)
        state[reservation.base] = reservation
        self.os_set(view, state)

    def mapping(self, view, lo, hi, aprot, runs, time_ns, tid, mem_type, path, cow):
        from clrmemtrace.oracle import Reservation

        return Reservation(lo, hi, aprot, runs, time_ns, tid, "", mem_type, path, cow,
                           self.new_ident())  # fmt: skip

    def os_claim(self, vpid, base, end, tid):
        """A manager of ``vpid`` reserved [base, end) for thread ``tid``: the view gives
        those pages up, and the rwx_commit of the mmap that made them if it was the view's
        last mmap (the library reserves and commits PAGE_EXECUTE_READWRITE memory with one
        mmap, and its manager reports that reservation)."""
        view = self.managers.get((vpid, VIEW_ID))
        if view is None:
            return
        pending = view.rwx_pending
        if pending is not None and pending[2] == tid and base < pending[1] and pending[0] < end:
            view.rwx_pending = None
            self.anomaly_counts["rwx_commit"] -= 1
            record = pending[3]
            for i, listed in enumerate(self.anomalies):
                if listed is record:
                    del self.anomalies[i]
                    break
        if view.state:
            self.cut(view, base, end)

    # ------------------------------------------------------------ events

    def on_os_event(self, name, f, time_ns, vpid, tid):
        view = self.os_view(vpid, time_ns, name)
        getattr(self, "on_os_" + name)(view, f, time_ns, tid)

    def os_call(self, view, name, f, time_ns, tid, failed, err, addr, size):
        view.figures.calls[name] += 1
        self.totals.calls[name] += 1
        if not failed:
            return
        view.figures.failed_calls += 1
        self.totals.failed_calls += 1
        self.add_detail(
            self.failures,
            {
                "time_ns": time_ns,
                "vpid": view.vpid,
                "tid": tid,
                "manager_id": VIEW_ID,
                "event": name,
                "hr": errno_name(err),
                "hr_value": err,
                "addr": addr,
                "size": size,
            },
        )

    def os_row(self, view, time_ns, tid, op, base, address, size, protect=None):
        from clrmemtrace.oracle import protect_name

        self.row(view, time_ns, tid, op, base, address, size,
                 protect="" if protect is None else protect_name(protect), hr="",
                 seq=view.seq)  # fmt: skip

    def page_range(self, view, addr, length):
        """[page_down(addr), page_up(addr + length)), or None when it overflows."""
        lo = view.page_down(addr)
        hi = view.page_up(addr + length)
        if hi >= 1 << 64:
            return None
        return lo, hi

    def os_range_call(self, view, name, f, time_ns, tid):
        """Counts a call on [addr, addr + length) that returns 0 or -1 with errno; whether it
        failed."""
        failed = _signed32(f["result"]) != 0
        self.os_call(view, name, f, time_ns, tid, failed, _signed32(f["errnum"]),
                     f["addr"], f["length"])  # fmt: skip
        return failed

    def unheld_pages(self, view, f, time_ns):
        """The pages [lo, hi) of f's addr and length and the pieces of them no manager holds
        (unheld), or None when there are none or the range overflows (the view is then
        wrong)."""
        span = self.page_range(view, f["addr"], f["length"])
        if span is None:
            self.os_wrong(view, time_ns)
            return None
        lo, hi = span
        ranges = self.unheld(view, lo, hi)
        if not ranges:
            return None
        return lo, hi, ranges

    def holder(self, view, address):
        for r in view.state.values():
            if r.base <= address < r.end:
                return r
        return None

    def on_os_mmap(self, view, f, time_ns, tid):
        from clrmemtrace.oracle import protect_name

        result, length = f["result"], f["length"]
        failed = result == MAP_FAILED
        view.rwx_pending = None
        self.os_call(view, "mmap", f, time_ns, tid, failed, _signed32(f["errnum"]), f["addr"],
                     length)  # fmt: skip
        if failed:
            return
        span = self.page_range(view, result, length)
        if length == 0 or span is None:
            self.os_wrong(view, time_ns)
            return
        lo, hi = span
        prot, flags = f["prot"] & 7, f["flags"] & 0xFFFFFFFF
        file = not flags & MAP_ANONYMOUS
        shared = bool(flags & MAP_SHARED)
        cow = file and not shared
        if file:
            mem_type = MEM_IMAGE if prot & PROT_EXEC else MEM_MAPPED
        else:
            mem_type = MEM_MAPPED if shared else MEM_PRIVATE
        path = f.get("path", "") if file else ""
        aprot = win32_protect(prot, cow)
        if flags & MAP_FIXED and not flags & MAP_FIXED_NOREPLACE:
            ranges = self.unheld(view, lo, hi)
            if not ranges:
                return
        else:
            ranges = [(lo, hi)]
        state, protect = page_of(prot, cow)
        for a, b in ranges:
            self.cut(view, a, b)
            self.insert(view, self.mapping(view, a, b, aprot, ((a, b, state, protect),),
                                           time_ns, tid, mem_type, path, cow))  # fmt: skip
        if prot & PROT_WRITE and prot & PROT_EXEC:
            listed = len(self.anomalies)
            self.anomaly("rwx_commit", view, time_ns, tid, lo, hi - lo,
                         f"mmap of {hi - lo} bytes with {protect_name(aprot)}")  # fmt: skip
            record = self.anomalies[-1] if len(self.anomalies) > listed else None
            view.rwx_pending = (lo, hi, tid, record)
        view.seq += 1
        self.os_row(view, time_ns, tid, "reserve_commit" if prot else "reserve", lo, lo,
                    hi - lo, aprot)  # fmt: skip

    def on_os_munmap(self, view, f, time_ns, tid):
        if self.os_range_call(view, "munmap", f, time_ns, tid):
            return
        pages = self.unheld_pages(view, f, time_ns)
        if pages is None:
            return
        lo, hi, ranges = pages
        holder = self.holder(view, lo)
        for a, b in ranges:
            self.cut(view, a, b)
        view.seq += 1
        self.os_row(view, time_ns, tid, "release", holder and holder.base, lo, hi - lo)

    def on_os_mprotect(self, view, f, time_ns, tid):
        from clrmemtrace.oracle import protect_name, set_pages

        if self.os_range_call(view, "mprotect", f, time_ns, tid):
            return
        pages = self.unheld_pages(view, f, time_ns)
        if pages is None:
            return
        lo, hi, ranges = pages
        prot = f["prot"] & 7
        holder = self.holder(view, lo)
        cow, first_reserved, old = False, False, 0
        if holder is not None:
            run = holder.run_at(lo)
            cow = holder.cow
            first_reserved = run[2] != MEM_COMMIT
            old = holder.reported(run)
        new = win32_protect(prot, cow)
        if prot & PROT_WRITE and prot & PROT_EXEC:
            self.anomaly("rwx_commit", view, time_ns, tid, lo, hi - lo,
                         f"mprotect of {hi - lo} bytes with {protect_name(new)}")  # fmt: skip
        if old & 0xFF in (PAGE_READWRITE, PAGE_WRITECOPY) and prot & PROT_EXEC:
            self.anomaly("w_to_x_flip", view, time_ns, tid, lo, hi - lo,
                         f"{protect_name(old)} to {protect_name(new)}")  # fmt: skip
        op = "decommit" if prot == 0 else "commit" if first_reserved else "protect"
        for a, b in ranges:
            state = dict(view.state)
            covered = 0
            for base, r in sorted(view.state.items()):
                if r.end <= a or base >= b:
                    continue
                s, e = max(a, base), min(b, r.end)
                covered += e - s
                state[base] = r._replace(runs=set_pages(r.runs, s, e, *page_of(prot, r.cow)))
            self.os_set(view, state)
            if covered != b - a:
                self.unseen(view, a, b, prot, time_ns, tid)
        view.seq += 1
        self.os_row(view, time_ns, tid, op, holder and holder.base, lo, hi - lo, new)

    def unseen(self, view, lo, hi, prot, time_ns, tid):
        """The pages of [lo, hi) the view lacks, which a successful mprotect proves mapped
        (glibc maps thread stacks and malloc's arenas out of the interposer's sight): each
        gap becomes a private mapping of its own."""
        cursor = lo
        for base, r in sorted(view.state.items()):
            if r.end <= lo or base >= hi:
                continue
            if base > cursor:
                self.insert(view, self.mapping(view, cursor, base, win32_protect(prot, False),
                                               ((cursor, base) + page_of(prot, False),),
                                               time_ns, tid, MEM_PRIVATE, "", False))  # fmt: skip
            cursor = max(cursor, r.end)
        if cursor < hi:
            self.insert(view, self.mapping(view, cursor, hi, win32_protect(prot, False),
                                           ((cursor, hi) + page_of(prot, False),), time_ns, tid,
                                           MEM_PRIVATE, "", False))  # fmt: skip

    def on_os_madvise(self, view, f, time_ns, tid):
        if self.os_range_call(view, "madvise", f, time_ns, tid):
            return
        if _signed32(f["advice"]) not in DISCARDING_ADVICE:
            return
        pages = self.unheld_pages(view, f, time_ns)
        if pages is None:
            return
        lo, hi, _ = pages
        holder = self.holder(view, lo)
        view.seq += 1
        self.os_row(view, time_ns, tid, "reset", holder and holder.base, lo, hi - lo)

    def on_os_posix_madvise(self, view, f, time_ns, tid):
        result = _signed32(f["result"])
        self.os_call(view, "posix_madvise", f, time_ns, tid, result != 0, result, f["addr"],
                     f["length"])  # fmt: skip

    def on_os_mremap(self, view, f, time_ns, tid):
        from clrmemtrace.oracle import set_pages

        result, flags = f["result"], f["flags"] & 0xFFFFFFFF
        old_addr, old_length, new_length = f["old_addr"], f["old_length"], f["new_length"]
        failed = result == MAP_FAILED
        self.os_call(view, "mremap", f, time_ns, tid, failed, _signed32(f["errnum"]), old_addr,
                     old_length)  # fmt: skip
        if failed:
            return
        page = view.page_size
        r = view.page_down(result)
        old_lo = view.page_down(old_addr)
        old_hi = view.page_up(old_addr + old_length)
        new_size = view.page_up(new_length)
        if old_hi == old_lo:
            old_hi = old_lo + page
        if old_hi >= 1 << 64 or new_size == 0 or r + new_size >= 1 << 64:
            self.os_wrong(view, time_ns)
            return
        new_hi = r + new_size
        probe_hi = old_hi
        if old_length == 0:
            old_hi = old_lo
        if self.unheld(view, old_lo, probe_hi) != [(old_lo, probe_hi)]:
            return
        src = self.holder(view, old_lo)
        last = self.holder(view, probe_hi - page)
        mem_type, path, cow, aprot = MEM_PRIVATE, "", False, PAGE_NOACCESS
        if src is not None:
            mem_type, path, cow, aprot = src.mem_type, src.path, src.cow, src.aprot
        last_page = (MEM_RESERVE, 0)
        if last is not None:
            last_page = last.run_at(probe_hi - page)[2:]
        if r == old_lo and old_hi > old_lo and not flags & MREMAP_DONTUNMAP:
            if new_hi < old_hi:
                self.cut(view, new_hi, old_hi)
            elif new_hi > old_hi:
                self.cut(view, old_hi, new_hi)
                last = self.holder(view, probe_hi - page)
                if last is not None and last.end == old_hi:
                    runs = last.runs[:-1] + ((last.runs[-1][0], new_hi) + last.runs[-1][2:],)
                    state = dict(view.state)
                    state[last.base] = last._replace(end=new_hi, runs=runs)
                    self.os_set(view, state)
                else:
                    self.os_wrong(view, time_ns)
                    self.insert(view, self.mapping(view, old_hi, new_hi, aprot,
                                                   ((old_hi, new_hi) + last_page,), time_ns, tid,
                                                   mem_type, path, cow))  # fmt: skip
        else:
            keep = min(old_hi - old_lo, new_size)
            runs = ((r, new_hi, MEM_RESERVE, 0),)
            if old_hi == old_lo:
                if src is None:
                    self.os_wrong(view, time_ns)
                runs = ((r, new_hi) + last_page,)
            else:
                covered = 0
                for base, res in sorted(view.state.items()):
                    if res.end <= old_lo or base >= old_lo + keep:
                        continue
                    covered += min(res.end, old_lo + keep) - max(base, old_lo)
                    for s, e, st, p in clip(res.runs, old_lo, old_lo + keep):
                        runs = set_pages(runs, s - old_lo + r, e - old_lo + r, st, p)
                if covered != keep:
                    self.os_wrong(view, time_ns)
                if new_size > keep:
                    runs = set_pages(runs, r + keep, new_hi, *last_page)
                if not flags & MREMAP_DONTUNMAP:
                    self.cut(view, old_lo, old_hi)
            self.cut(view, r, new_hi)
            self.insert(view, self.mapping(view, r, new_hi, aprot, runs, time_ns, tid, mem_type,
                                           path, cow))  # fmt: skip
        view.seq += 1
        self.os_row(view, time_ns, tid, "remap", r, r, new_size)

    # ------------------------------------------------------------ the maps dump

    def on_os_maps_begin(self, view, f, time_ns, tid):
        from clrmemtrace.oracle import Dump

        if view.dump is not None and not view.dump.dropped:
            view.flaws.add("a /proc/self/maps dump that never ended")
        view.dump = Dump(tid, view.seq)
        page_size = f.get("page_size")
        if page_size is not None:
            valid = 512 <= page_size <= 1 << 30 and page_size & (page_size - 1) == 0
            view.page_size = page_size if valid else 4096

    @staticmethod
    def dump_line(f):
        """(file, shared, tag fields) of a maps_mapping event."""
        path = f.get("path", "")
        file = path != "" and not path.startswith("[")
        shared = f["shared"] != 0
        cow = file and not shared
        mem_type = MEM_MAPPED if file or shared else MEM_PRIVATE
        return file, shared, cow, mem_type, path

    def on_os_maps_mapping(self, view, f, time_ns, tid):
        start, end, prot = f["start"], f["end"], f["prot"] & 7
        file, shared, cow, mem_type, path = self.dump_line(f)
        self.os_row(view, time_ns, tid, "statedump", start, start, max(end - start, 0),
                    win32_protect(prot, cow))  # fmt: skip
        if view.dump is None:
            view.flaws.add("maps events outside a dump")
            return
        if view.dump.dropped:
            return
        line = dict(f, prot=prot, file=file, shared=shared, cow=cow, mem_type=mem_type,
                    path=path, inode=f.get("inode", 0) if file else 0)  # fmt: skip
        view.dump.regions.append(line)

    def on_os_maps_end(self, view, f, time_ns, tid):
        dump = view.dump
        view.dump = None
        if dump is None:
            view.flaws.add("maps events outside a dump")
            return
        if dump.dropped:
            return
        lines = dump.regions
        if f.get("mappings") is not None and f["mappings"] != len(lines):
            view.flaws.add("a /proc/self/maps dump with lines missing")
            return
        executable = collections.defaultdict(bool)
        for line in lines:
            if line["inode"]:
                key = (line.get("major", 0), line.get("minor", 0), line["inode"])
                executable[key] |= bool(line["prot"] & PROT_EXEC)
        built = {}
        prev_end = 0
        for line in sorted(lines, key=lambda x: (x["start"], x["end"])):
            start, end = line["start"], line["end"]
            if end <= start or start < prev_end:
                view.flaws.add("a /proc/self/maps dump with overlapping lines")
                continue
            prev_end = end
            mem_type = line["mem_type"]
            if line["inode"] and executable[(line.get("major", 0), line.get("minor", 0),
                                             line["inode"])]:  # fmt: skip
                mem_type = MEM_IMAGE
            prot, cow = line["prot"], line["cow"]
            for a, b in self.unheld(view, start, end):
                built[a] = self.mapping(view, a, b, win32_protect(prot, cow),
                                        ((a, b) + page_of(prot, cow),), time_ns, dump.tid,
                                        mem_type, line["path"], cow)  # fmt: skip
        state = {}
        for base, old in view.state.items():
            new = built.get(base)
            if new is not None and (new.end, new.aprot, new.mem_type, new.path, new.cow) == (
                old.end, old.aprot, old.mem_type, old.path, old.cow
            ):
                state[base] = old._replace(runs=new.runs)
                del built[base]
        self.os_set(view, state)
        if built:
            state = dict(state)
            state.update(built)
            self.os_set(view, state)
        self.make_known(view, time_ns)
