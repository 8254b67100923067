#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Checks the ETW manifest against the LTTng-UST provider and EVENTS.md.

- The manifest is well-formed XML with one provider, "clrmemtrace", whose
  GUID is the one the library registers.
- It has exactly the events of tracepoints/clrmemtrace_tp.h (the event
  name is the task name), each with the same fields in the same order and
  the manifest types those fields' C types and displays call for
  (etwschema.Field.etw_types); every map a field names holds the values of
  the LTTng enumeration of the same name.
- EVENTS.md names the same events, and each event's table row mentions
  every one of its fields.
- Event values, task values and symbols are unique; keywords are single bits.
- src/win32/trace_etw_events.h is what gen-etw-header.py makes of the manifest.
- The recording profile, clrmemtrace.wprp, is well-formed, records that
  provider with all its keywords and captures the state when it starts.

Exit status 0 when all holds; otherwise every mismatch is printed.

    python3 tracepoints/etw/check-manifest.py
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import etwschema  # noqa: E402

TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
MANIFEST = os.path.join(TOP, "tracepoints", "etw", "clrmemtrace.man")
LTTNG = os.path.join(TOP, "tracepoints", "clrmemtrace_tp.h")
EVENTS_MD = os.path.join(TOP, "tracepoints", "EVENTS.md")
WPRP = os.path.join(TOP, "tracepoints", "etw", "clrmemtrace.wprp")
PROVIDER_GUID = "{678C4D34-5A8B-483E-8051-872BB8947FD2}"


def check():
    errors = []
    err = errors.append

    try:
        ET.parse(MANIFEST)
    except ET.ParseError as e:
        return ["%s is not well-formed XML: %s" % (MANIFEST, e)]
    attrs, keywords, maps, events = etwschema.parse_manifest(MANIFEST)
    lttng, enums = etwschema.parse_lttng(LTTNG)
    md = etwschema.parse_events_md(EVENTS_MD)

    if attrs.get("name") != "clrmemtrace":
        err("provider name is %r, not 'clrmemtrace'" % attrs.get("name"))
    if attrs.get("guid", "").upper() != PROVIDER_GUID:
        err("provider GUID is %s, not %s" % (attrs.get("guid"), PROVIDER_GUID))

    man_names = [ev.name for ev in events]
    for what, names in (
        ("event values", [ev.value for ev in events]),
        ("task values", [ev.task[1] for ev in events]),
        ("event symbols", [ev.symbol for ev in events]),
        ("event names", man_names),
    ):
        dup = sorted({str(n) for n in names if names.count(n) > 1})
        if dup:
            err("duplicate %s: %s" % (what, ", ".join(dup)))
    for name, mask in keywords.items():
        if mask == 0 or mask & (mask - 1) or mask >> 48:
            err("keyword %s has mask %#x: not a single bit below bit 48" % (name, mask))

    for src, names in (("clrmemtrace_tp.h", set(lttng)), ("EVENTS.md", set(md))):
        for n in sorted(names - set(man_names)):
            err("event %s is in %s but not in the manifest" % (n, src))
        for n in sorted(set(man_names) - names):
            err("event %s is in the manifest but not in %s" % (n, src))

    for ev in events:
        if ev.name not in lttng:
            continue
        fields = lttng[ev.name][1]
        man = ev.template
        if [f.name for f in fields] != [d[0] for d in man]:
            err(
                "%s: fields differ\n    LTTng:    %s\n    manifest: %s"
                % (ev.name, " ".join(f.name for f in fields), " ".join(d[0] for d in man))
            )
            continue
        for f, (name, in_type, out_type, map_name) in zip(fields, man):
            want = f.etw_types()
            got = (in_type, out_type, map_name)
            if want != got:
                err(
                    "%s.%s: manifest has inType=%s outType=%s map=%s, %s %s calls for %s"
                    % (ev.name, name, in_type, out_type, map_name, f.ctype, f.kind, want)
                )
        row = md.get(ev.name)
        if row:
            missing = [d[0] for d in man if d[0] not in row]
            if missing:
                err("%s: EVENTS.md's row does not mention %s" % (ev.name, ", ".join(missing)))

    for name, values in enums.items():
        if name == "hresult":
            continue  # shown with win:HResult, not a map
        if name not in maps:
            err("map %s (an LTTng enumeration) is missing from the manifest" % name)
            continue
        want = {v: k for k, v in values.items()}
        if maps[name] != want:
            err(
                "map %s differs from the LTTng enumeration:\n    LTTng:    %s\n    manifest: %s"
                % (name, sorted(want.items()), sorted(maps[name].items()))
            )

    errors.extend(check_wprp(keywords))

    gen = subprocess.run(
        [sys.executable, os.path.join(HERE, "gen-etw-header.py"), "--check"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    if gen.returncode != 0:
        err(gen.stdout.decode().strip() or "gen-etw-header.py --check failed")
    return errors


def check_wprp(keywords):
    """The recording profile is well-formed, names the provider's GUID and records every keyword."""
    errors = []
    try:
        root = ET.parse(WPRP).getroot()
    except ET.ParseError as e:
        return ["%s is not well-formed XML: %s" % (WPRP, e)]
    providers = root.findall("./Profiles/EventProvider")
    if len(providers) != 1:
        return ["%s has %d event providers, not 1" % (WPRP, len(providers))]
    prov = providers[0]
    if "{%s}" % prov.get("Name", "").upper() != PROVIDER_GUID:
        errors.append("%s records provider %s, not %s" % (WPRP, prov.get("Name"), PROVIDER_GUID))
    mask = 0
    for k in prov.findall("./Keywords/Keyword"):
        mask |= int(k.get("Value"), 0)
    all_keywords = 0
    for m in keywords.values():
        all_keywords |= m
    if mask & all_keywords != all_keywords:
        errors.append(
            "%s records keywords %#x, the manifest defines %#x" % (WPRP, mask, all_keywords)
        )
    capture = [int(k.get("Value"), 0) for k in prov.findall("./CaptureStateOnStart/Keyword")]
    if not capture or not capture[0] & keywords.get("StateDump", 0):
        errors.append("%s does not capture the state (StateDump) when recording starts" % WPRP)
    return errors


def main():
    errors = check()
    for e in errors:
        print("check-manifest: " + e)
    if not errors:
        _attrs, _keywords, _maps, events = etwschema.parse_manifest(MANIFEST)
        print(
            "check-manifest: %d events, manifest, clrmemtrace_tp.h and EVENTS.md agree"
            % len(events)
        )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
