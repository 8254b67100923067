#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The differential test: the POSIX backend against Windows (Wine) on the same calls.

tests/diff/diffops runs a seeded pseudo-random sequence of IHostMemoryManager
calls, valid and invalid, and prints one normalised line per call and per
VirtualQuery run. This script runs the native build's diffops and the
Windows build's diffops.exe under Wine with the same seeds and compares
the two outputs line by line.

Wine's VirtualAlloc is the reference, so every difference is a failure
except the intended deviations below, which are normalised explicitly, each
for its reason (DESIGN.md, "Where the sources disagree", and the markers in
tests/conformance). Each rule rewrites only the exact value it names, only
on the side that differs, so anything else still fails.

    compare.py --native BUILD/tests/diff/diffops --windows BUILD-WIN/tests/diff/diffops.exe \\
               --dll-dir BUILD-WIN/src [--wine wine] [--seeds 1,2,3] [--ops 3000]

It prints one line per seed and a last line "N ops compared, ..."; the exit
status is 0 when everything matched.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter

HR_INVALID_ADDRESS = "HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS)"
HR_INVALID_PARAMETER = "E_INVALIDARG"

# Each rule: (name, reason). The functions below apply them.
RULES = {
    "writecombine": "Wine drops PAGE_WRITECOMBINE from the protections it stores; "
    "Windows and the POSIX backend keep it (win32-vm-semantics.md #66)",
    "reserved-runs": "Wine ends a run of reserved pages where the pages' former "
    "protections differ; reserved pages compare equal whatever their history (DESIGN.md)",
    "unallocated": "VirtualFree/VirtualProtect of unallocated memory: Wine says "
    "ERROR_INVALID_PARAMETER, Windows and the POSIX backend ERROR_INVALID_ADDRESS (DESIGN.md)",
    "reset-flags": "MEM_RESET with another allocation-type bit, with an invalid flProtect or at "
    "NULL: Wine accepts it (or answers 487 with MEM_RESERVE), Microsoft's contract and the "
    "POSIX backend refuse it with ERROR_INVALID_PARAMETER (DESIGN.md)",
    "write-watch": "MEM_WRITE_WATCH: the Windows backend forwards it to the OS, the POSIX "
    "backend refuses it because the interfaces carry no GetWriteWatch (DESIGN.md)",
    "bad-protection": "modifier combinations Microsoft documents as invalid (GUARD or NOCACHE "
    "with NOACCESS, NOCACHE with GUARD or WRITECOMBINE) and unknown high bits: Wine accepts "
    "them, the POSIX backend refuses them with ERROR_INVALID_PARAMETER (DESIGN.md)",
}

LINE = re.compile(r"^(\d+) (\S+)(.*)$")


def fields(rest):
    return dict(re.findall(r"(\w+)=(\S+)", rest))


def parse(text):
    lines = []
    for raw in text.replace("\r", "").splitlines():
        m = LINE.match(raw)
        if not m:
            raise ValueError("unexpected line: %r" % raw)
        lines.append([int(m.group(1)), m.group(2), m.group(3)])
    return lines


def slot_offset(where):
    m = re.fullmatch(r"s(\d+)\+(0x[0-9a-f]+|0)", where)
    return (int(m.group(1)), int(m.group(2), 16)) if m else None


def mask_writecombine(lines, count):
    """Rule writecombine, on both sides' VirtualQuery answers (counted where it removes a bit)."""
    for ln in lines:
        if ln[1] not in ("run", "query", "protect"):
            continue

        def drop(m):
            value = int(m.group(2), 16)
            if value & 0x400:
                count["writecombine"] += 1
            return "%s=%#x" % (m.group(1), value & ~0x400)

        ln[2] = re.sub(r"\b(aprot|old)=(0x[0-9a-f]+|0)\b", drop, ln[2])
        if ln[1] != "protect":
            ln[2] = re.sub(r"\b(prot)=(0x[0-9a-f]+|0)\b", drop, ln[2])


def merge_reserved_runs(lines, count):
    """Rule reserved-runs, on both sides: adjacent reserved runs of one allocation merge,
    and a query of a reserved page reports the merged run from that page on."""
    out, runs = [], {}
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln[1] == "run":
            # The run listing of one call: merge, and remember it for later queries.
            group = []
            while i < len(lines) and lines[i][1] == "run" and lines[i][0] == ln[0]:
                group.append(lines[i])
                i += 1
            merged = []
            for r in group:
                f = fields(r[2])
                prev = merged[-1] if merged else None
                if (
                    prev is not None
                    and f.get("state") == "0x2000"
                    and prev[3].get("state") == "0x2000"
                    and f.get("abase") == prev[3].get("abase")
                    and f.get("aprot") == prev[3].get("aprot")
                ):
                    size = int(prev[3]["size"], 16) + int(f["size"], 16)
                    prev[3]["size"] = "%#x" % size
                    prev[2] = re.sub(r"size=0x[0-9a-f]+", "size=%#x" % size, prev[2])
                    count["reserved-runs"] += 1
                    continue
                merged.append([r[0], r[1], r[2], f])
            slot = None
            for r in merged:
                so = slot_offset(r[3].get("base", ""))
                if so:
                    slot = so[0]
            if slot is not None:
                runs[slot] = [
                    (slot_offset(r[3]["base"])[1], int(r[3]["size"], 16), r[3].get("state"))
                    for r in merged
                    if "size" in r[3] and slot_offset(r[3].get("base", ""))
                ]
            out.extend([r[0], r[1], r[2]] for r in merged)
            continue
        if ln[1] == "query":
            f = fields(ln[2])
            so = slot_offset(f.get("base", ""))
            if so and f.get("state") == "0x2000" and so[0] in runs:
                for off, size, state in runs[so[0]]:
                    if off <= so[1] < off + size and state == "0x2000":
                        want = off + size - so[1]
                        if int(f["size"], 16) != want:
                            ln[2] = re.sub(r"size=0x[0-9a-f]+", "size=%#x" % want, ln[2])
                            count["reserved-runs"] += 1
                        break
        if ln[1] in ("release", "reserve", "reserve_at"):
            # A slot's runs are listed again before anyone queries it.
            pass
        out.append(ln)
        i += 1
    return out


def wine_rules(native, wine, count):
    """The rules that map one of Wine's answers to the one the POSIX backend gives."""
    for n, w in zip(native, wine):
        if n[0] != w[0] or n[1] != w[1]:
            return
        kind = w[1]
        nf, wf = fields(n[2]), fields(w[2])
        if nf == wf:
            continue
        if (
            kind in ("release_again", "protect_free", "decommit_free")
            or (kind == "release" and wf.get("inside") == "0")
            or (kind == "invalid" and re.match(r" (release|protect) at=0x(1000|ffff) ", w[2]))
        ):
            if wf.get("hr") == HR_INVALID_PARAMETER and nf.get("hr") == HR_INVALID_ADDRESS:
                w[2] = w[2].replace("hr=" + HR_INVALID_PARAMETER, "hr=" + HR_INVALID_ADDRESS)
                count["unallocated"] += 1
        elif kind == "reset" or (kind == "invalid" and w[2].startswith(" reset_null")):
            bad_type = kind == "reset" and wf.get("type") != "0x80000"
            bad_prot = kind == "reset" and int(wf.get("prot", "0"), 16) & 0xFF not in (
                0x01,
                0x02,
                0x04,
                0x10,
                0x20,
                0x40,
            )
            if (bad_type or bad_prot or kind == "invalid") and nf.get("hr") == HR_INVALID_PARAMETER:
                w[2] = re.sub(r"hr=\S+", "hr=" + HR_INVALID_PARAMETER, w[2])
                w[2] = re.sub(r"out=\S+", "out=null", w[2])
                count["reset-flags"] += 1
        elif kind == "write_watch":
            if nf.get("hr") == HR_INVALID_PARAMETER and wf.get("hr") == "S_OK":
                w[2] = n[2]
                count["write-watch"] += 1
        elif kind == "bad_protection":
            if nf.get("hr") == HR_INVALID_PARAMETER and wf.get("hr") == "S_OK":
                w[2] = w[2].replace("hr=S_OK", "hr=" + HR_INVALID_PARAMETER)
                count["bad-protection"] += 1


def run(cmd):
    """The command's standard output. Through a file, not a pipe: services Wine starts on the
    way inherit the descriptor and would keep a pipe open after the program ends."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        res = subprocess.run(cmd, stdout=out, stderr=err, check=False)
        out.seek(0)
        err.seek(0)
        if res.returncode != 0:
            raise RuntimeError(
                "%s exited %d: %s"
                % (" ".join(cmd), res.returncode, err.read().decode(errors="replace"))
            )
        return out.read().decode()


def compare(native_text, wine_text, count):
    native, wine = parse(native_text), parse(wine_text)
    mask_writecombine(native, count)
    mask_writecombine(wine, Counter())
    native = merge_reserved_runs(native, Counter())
    wine = merge_reserved_runs(wine, count)
    wine_rules(native, wine, count)
    mismatches = []
    for k in range(max(len(native), len(wine))):
        n = native[k] if k < len(native) else None
        w = wine[k] if k < len(wine) else None
        if n != w:
            mismatches.append((k, n, w))
            break  # the sequences may diverge after the first difference
    ops = len({ln[0] for ln in native})
    return ops, len(native), mismatches


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--native", required=True, help="the native build's diffops")
    parser.add_argument("--windows", required=True, help="the Windows build's diffops.exe")
    parser.add_argument("--wine", default="wine")
    parser.add_argument(
        "--dll-dir", help="where libclrmemtrace-0.dll is (added to WINEPATH for diffops.exe)"
    )
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--ops", type=int, default=3000)
    args = parser.parse_args()

    if args.dll_dir:
        path = "Z:" + os.path.abspath(args.dll_dir)
        os.environ["WINEPATH"] = path + (
            ";" + os.environ["WINEPATH"] if "WINEPATH" in os.environ else ""
        )
    env_note = os.environ.get("WINEPREFIX", "(default prefix)")
    total_ops = total_lines = 0
    count = Counter()
    failed = False
    for seed in args.seeds.split(","):
        native_text = run([args.native, seed, str(args.ops)])
        wine_text = run([args.wine, args.windows, seed, str(args.ops)])
        ops, lines, mismatches = compare(native_text, wine_text, count)
        total_ops += ops
        total_lines += lines
        if mismatches:
            failed = True
            k, n, w = mismatches[0]
            print("seed %s: DIFFERENT at line %d" % (seed, k + 1))
            print("  POSIX: %s" % (" ".join(map(str, n)) if n else "(end)"))
            print("  Wine:  %s" % (" ".join(map(str, w)) if w else "(end)"))
        else:
            print("seed %s: %d calls, %d lines identical" % (seed, ops, lines))
    print("intended deviations normalised (WINEPREFIX %s):" % env_note)
    for name, reason in RULES.items():
        print("  %-15s %5d  %s" % (name, count[name], reason))
    print(
        "%d ops compared (%d lines), %s"
        % (total_ops, total_lines, "FAILED" if failed else "all identical after normalisation")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
