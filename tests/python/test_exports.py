# SPDX-License-Identifier: MIT
"""The library exports exactly its public API, on both systems.

- src/clrmemtrace.sym (the ELF version script) lists exactly the
  CLRMEMTRACE_EXPORT declarations include/clrmemtrace.h makes on POSIX;
- src/clrmemtrace.def (the DLL's exports) lists exactly those it makes on
  Windows (the same less IID_IUnknown, which is the SDK's there);
- a built library exports exactly its list: the shared object of
  $CLRMEMTRACE_BUILD_DIR (default build-test) with nm, the DLL of
  $CLRMEMTRACE_WIN_BUILD_DIR with objdump, and the DLL never imports
  EventWriteEx (Wine does not implement it).

Runs under pytest, or alone (the Windows meson suite does this):
    python3 tests/python/test_exports.py [--dll DLL --objdump OBJDUMP] [--so SO]
"""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEADER = REPO / "include" / "clrmemtrace.h"
SYM = REPO / "src" / "clrmemtrace.sym"
DEF = REPO / "src" / "clrmemtrace.def"


def _condition(expr, defined):
    """Evaluates a preprocessor condition; macros other than those in `defined` are undefined."""
    expr = re.sub(r"defined\s*\(\s*(\w+)\s*\)", lambda m: str(m.group(1) in defined), expr)
    expr = re.sub(r"defined\s+(\w+)", lambda m: str(m.group(1) in defined), expr)
    expr = expr.replace("&&", " and ").replace("||", " or ")
    expr = re.sub(r"!(?!=)", " not ", expr)
    expr = re.sub(r"\b(?!True\b|False\b|and\b|or\b|not\b)[A-Za-z_]\w*", "False", expr)
    return bool(eval(expr, {"__builtins__": {}}))  # noqa: S307 - a condition of our own header


def header_exports(windows):
    """The names the header declares with CLRMEMTRACE_EXPORT, as that system's compiler sees it."""
    defined = {"_WIN32"} if windows else set()
    text = re.sub(r"/\*.*?\*/", " ", HEADER.read_text(), flags=re.S)
    stack, active, code = [], True, []
    for line in text.splitlines():
        m = re.match(r"\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b(.*)", line)
        if m:
            kind, rest = m.group(1), m.group(2).strip()
            if kind in ("if", "ifdef", "ifndef"):
                if kind == "ifdef":
                    cond = rest in defined
                elif kind == "ifndef":
                    cond = rest not in defined
                else:
                    cond = _condition(rest, defined)
                stack.append((active, cond, cond))
                active = active and cond
            elif kind == "elif":
                parent, _cond, taken = stack.pop()
                cond = not taken and _condition(rest, defined)
                stack.append((parent, cond, taken or cond))
                active = parent and cond
            elif kind == "else":
                parent, _cond, taken = stack.pop()
                stack.append((parent, not taken, True))
                active = parent and not taken
            else:
                active = stack.pop()[0]
            continue
        if active and not line.lstrip().startswith("#"):
            code.append(line)
    joined = " ".join(code)
    names = set()
    for decl in re.findall(r"CLRMEMTRACE_EXPORT\b([^;]*);", joined):
        m = re.search(r"(\w+)\s*\(", decl) or re.search(r"(\w+)\s*$", decl.strip())
        names.add(m.group(1))
    return names


def sym_exports():
    text = re.sub(r"/\*.*?\*/", " ", SYM.read_text(), flags=re.S)
    names = set()
    for block in re.findall(r"global:(.*?)(?:local:|\})", text, flags=re.S):
        names |= set(re.findall(r"(\w+)\s*;", block))
    return names


def def_exports():
    names, in_exports = set(), False
    for line in DEF.read_text().splitlines():
        line = line.split(";", 1)[0].strip()
        if not line:
            continue
        if line.upper() == "EXPORTS":
            in_exports = True
            continue
        if in_exports:
            names.add(line.split()[0])
    return names


def dll_exports(dll, objdump):
    out = subprocess.run([objdump, "-p", str(dll)], check=True, stdout=subprocess.PIPE).stdout
    text = out.decode()
    table = text.split("[Ordinal/Name Pointer] Table", 1)
    exports = (
        set(re.findall(r"^\s*\[\s*\d+\]\s+(\S+)\s*$", table[1], flags=re.M))
        if len(table) > 1
        else set()
    )
    imports = set(re.findall(r"^\s*[0-9a-f]+\s+\d+\s+(\w+)\s*$", text, flags=re.M))
    return exports, imports


def so_exports(so):
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(so)], check=True, stdout=subprocess.PIPE
    ).stdout.decode()
    return {
        m.group(2).split("@")[0]
        for m in re.finditer(r"^\S+\s+([TDRBVW])\s+(\S+)$", out, flags=re.M)
    }


def check(dll=None, objdump="objdump", so=None):
    """The mismatches, as sentences."""
    problems = []
    posix, windows = header_exports(False), header_exports(True)
    if sym_exports() != posix:
        problems.append(
            "clrmemtrace.sym %s != header (POSIX) %s" % (sorted(sym_exports()), sorted(posix))
        )
    if def_exports() != windows:
        problems.append(
            "clrmemtrace.def %s != header (Windows) %s" % (sorted(def_exports()), sorted(windows))
        )
    if posix - windows != {"IID_IUnknown"} or windows - posix:
        problems.append(
            "POSIX and Windows exports differ by more than IID_IUnknown: %s / %s"
            % (sorted(posix - windows), sorted(windows - posix))
        )
    if dll:
        exports, imports = dll_exports(dll, objdump)
        if exports != def_exports():
            problems.append(
                "%s exports %s, clrmemtrace.def says %s"
                % (dll, sorted(exports), sorted(def_exports()))
            )
        if "EventWriteEx" in imports:
            problems.append("%s imports EventWriteEx, which Wine does not implement" % dll)
    if so:
        exports = so_exports(so) - {"CLRMEMTRACE_0.1"}
        if exports != sym_exports():
            problems.append(
                "%s exports %s, clrmemtrace.sym says %s"
                % (so, sorted(exports), sorted(sym_exports()))
            )
    return problems


# ---------- pytest ----------


def test_lists_match_header():
    assert check() == []


def test_built_shared_object():
    import pytest

    build = Path(os.environ.get("CLRMEMTRACE_BUILD_DIR", "build-test"))
    if not build.is_absolute():
        build = REPO / build
    sos = sorted(p for p in (build / "src").glob("libclrmemtrace.so.*.*.*") if p.is_file())
    if not sos:
        pytest.skip("no shared library built in %s" % build)
    assert check(so=sos[0]) == []


def test_built_dll():
    import pytest

    build = os.environ.get("CLRMEMTRACE_WIN_BUILD_DIR")
    dlls = (
        sorted(p for p in (Path(build) / "src").glob("libclrmemtrace-*.dll") if p.is_file())
        if build
        else []
    )
    if not dlls:
        pytest.skip("no Windows build ($CLRMEMTRACE_WIN_BUILD_DIR)")
    assert check(dll=dlls[0], objdump="x86_64-w64-mingw32-objdump") == []


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dll")
    parser.add_argument("--objdump", default="x86_64-w64-mingw32-objdump")
    parser.add_argument("--so")
    args = parser.parse_args()
    problems = check(dll=args.dll, objdump=args.objdump, so=args.so)
    for p in problems:
        print("test_exports: " + p)
    if not problems:
        print(
            "test_exports: .sym, .def and the header agree%s"
            % ("; so does " + args.dll if args.dll else "")
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
