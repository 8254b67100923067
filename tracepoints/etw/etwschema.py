# SPDX-License-Identifier: MIT
"""The event schema as each of its three sources states it.

- the LTTng-UST provider header, tracepoints/clrmemtrace_tp.h: events, their
  payload struct, and their fields in order with C type and display (plain,
  hex, enumeration, string);
- the ETW instrumentation manifest, tracepoints/etw/clrmemtrace.man: events,
  their descriptor (id, level, task, keywords) and template fields;
- the catalogue, tracepoints/EVENTS.md: the event names of the clrmemtrace
  provider and the field names each table row mentions.

check-manifest.py compares them; gen-etw-header.py turns the manifest into
the C the Windows library is built with.
"""

import re
import xml.etree.ElementTree as ET

MAN_NS = "http://schemas.microsoft.com/win/2004/08/events"
NS = {"e": MAN_NS}

# How a field of the LTTng header is carried in the manifest: its C type and
# display give the manifest's inType and outType. Enumerations over 32-bit
# integers keep their values in a manifest map, which the manifest schema
# only allows on unsigned types: the non-negative EMemoryCriticalLevel and
# EMemoryAvailable are therefore carried as win:UInt32 (same size), while
# HRESULTs stay signed and use the win:HResult display instead of a map.
C_TO_IN = {
    "uint64_t": "win:UInt64",
    "uint32_t": "win:UInt32",
    "int32_t": "win:Int32",
}
HEX_OUT = {"uint64_t": "win:HexInt64", "uint32_t": "win:HexInt32"}


class Field:
    def __init__(self, name, ctype, kind, enum=None):
        self.name = name
        self.ctype = ctype  # uint64_t, uint32_t, int32_t, or "string"
        self.kind = kind  # "int", "hex", "enum", "string"
        self.enum = enum

    def etw_types(self):
        """(inType, outType or None, map or None) this field must have in the manifest."""
        if self.kind == "string":
            return ("win:AnsiString", None, None)
        if self.kind == "hex":
            return (C_TO_IN[self.ctype], HEX_OUT[self.ctype], None)
        if self.kind == "enum":
            if self.enum == "hresult":
                return ("win:Int32", "win:HResult", None)
            return ("win:UInt32", None, self.enum)
        return (C_TO_IN[self.ctype], None, None)

    def __repr__(self):
        return "%s %s (%s)" % (self.ctype, self.name, self.kind)


def _strip_c_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _balanced(text, start):
    """The text inside the parentheses opening at text[start]."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    raise ValueError("unbalanced parentheses")


def _split_args(text):
    args, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        cur += ch
    if cur.strip():
        args.append(cur.strip())
    return args


def _parse_fields(body):
    fields = []
    pos = 0
    pattern = re.compile(r"lttng_ust_field_(integer_hex|integer|enum|string)\s*\(")
    while True:
        m = pattern.search(body, pos)
        if not m:
            break
        args = _split_args(_balanced(body, m.end() - 1))
        kind = m.group(1)
        if kind == "integer":
            fields.append(Field(args[1], args[0], "int"))
        elif kind == "integer_hex":
            fields.append(Field(args[1], args[0], "hex"))
        elif kind == "enum":
            fields.append(Field(args[3], args[2], "enum", args[1]))
        else:
            fields.append(Field(args[0], "string", "string"))
        pos = m.end()
    return fields


def _payload(args_text):
    """The payload C type of LTTNG_UST_TP_ARGS(type, name)."""
    args = _split_args(args_text)
    return args[0]


def parse_lttng(path):
    """{event: (payload C type, [Field])} in the header's order, and {enum: {name: value}}."""
    text = _strip_c_comments(open(path, encoding="utf-8").read())
    events, classes, enums = {}, {}, {}
    for m in re.finditer(r"LTTNG_UST_TRACEPOINT_ENUM\s*\(", text):
        args = _split_args(_balanced(text, m.end() - 1))
        values = {}
        for v in re.finditer(
            r'lttng_ust_field_enum_value\s*\(\s*"([^"]*)"\s*,'
            r"\s*(?:\(\s*\w+\s*\))?\s*(0x[0-9A-Fa-f]+|\d+)u?\s*\)",
            args[2],
        ):
            values[v.group(1)] = int(v.group(2), 0)
        enums[args[1]] = values
    pattern = re.compile(r"LTTNG_UST_TRACEPOINT_(EVENT_CLASS|EVENT_INSTANCE|EVENT)\s*\(")
    for m in pattern.finditer(text):
        args = _split_args(_balanced(text, m.end() - 1))
        kind = m.group(1)
        if kind == "EVENT":
            payload = _payload(args[2][args[2].index("(") + 1 : args[2].rindex(")")])
            events[args[1]] = (payload, _parse_fields(args[3]))
        elif kind == "EVENT_CLASS":
            payload = _payload(args[2][args[2].index("(") + 1 : args[2].rindex(")")])
            classes[args[1]] = (payload, _parse_fields(args[3]))
        else:
            events[args[3]] = classes[args[1]]
    return events, enums


class ManEvent:
    def __init__(self, name, symbol, value, version, level, task, keywords, opcode, template):
        self.name = name  # the task's name: what tracerpt and WPA show as the event
        self.symbol = symbol
        self.value = value
        self.version = version
        self.level = level
        self.task = task
        self.keywords = keywords
        self.opcode = opcode
        self.template = template  # [(name, inType, outType, map)]


LEVELS = {
    "win:LogAlways": 0,
    "win:Critical": 1,
    "win:Error": 2,
    "win:Warning": 3,
    "win:Informational": 4,
    "win:Verbose": 5,
}
OPCODES = {"win:Info": 0, "win:Start": 1, "win:Stop": 2}


def parse_manifest(path):
    """The provider's attributes, keywords {name: mask}, maps {name: {value: text}} and events."""
    tree = ET.parse(path)
    root = tree.getroot()
    providers = root.findall("./e:instrumentation/e:events/e:provider", NS)
    if len(providers) != 1:
        raise ValueError("expected exactly one provider, found %d" % len(providers))
    prov = providers[0]
    strings = {}
    for s in root.iterfind("./e:localization/e:resources/e:stringTable/e:string", NS):
        strings[s.get("id")] = s.get("value")
    keywords = {}
    for k in prov.iterfind("./e:keywords/e:keyword", NS):
        keywords[k.get("name")] = int(k.get("mask"), 0)
    tasks = {}
    for t in prov.iterfind("./e:tasks/e:task", NS):
        tasks[t.get("name")] = int(t.get("value"), 0)
    maps = {}
    for mp in prov.iterfind("./e:maps/e:valueMap", NS):
        entries = {}
        for entry in mp.iterfind("./e:map", NS):
            msg = entry.get("message", "")
            ref = re.fullmatch(r"\$\(string\.([^)]+)\)", msg)
            entries[int(entry.get("value"), 0)] = strings.get(ref.group(1)) if ref else msg
        maps[mp.get("name")] = entries
    templates = {}
    for t in prov.iterfind("./e:templates/e:template", NS):
        templates[t.get("tid")] = [
            (d.get("name"), d.get("inType"), d.get("outType"), d.get("map"))
            for d in t.iterfind("./e:data", NS)
        ]
    events = []
    for ev in prov.iterfind("./e:events/e:event", NS):
        task = ev.get("task")
        if task not in tasks:
            raise ValueError("event %s names an undefined task %s" % (ev.get("symbol"), task))
        kw = 0
        for name in (ev.get("keywords") or "").split():
            if name not in keywords:
                raise ValueError("event %s names an undefined keyword %s" % (task, name))
            kw |= keywords[name]
        tid = ev.get("template")
        if tid and tid not in templates:
            raise ValueError("event %s names an undefined template %s" % (task, tid))
        events.append(
            ManEvent(
                name=task,
                symbol=ev.get("symbol"),
                value=int(ev.get("value"), 0),
                version=int(ev.get("version", "0"), 0),
                level=LEVELS[ev.get("level", "win:Informational")],
                task=(task, tasks[task]),
                keywords=kw,
                opcode=OPCODES[ev.get("opcode", "win:Info")],
                template=templates.get(tid, []),
            )
        )
    attrs = dict(prov.attrib)
    return attrs, keywords, maps, events


def parse_events_md(path):
    """{event: set of backquoted words of its table row} for the clrmemtrace provider.

    Rows that say "same fields" inherit the fields of the row above. Events the
    text names as clrmemtrace:NAME (control events) are included with no fields.
    The section of the interposer's own provider (clrmemtrace_os) is left out.
    """
    text = open(path, encoding="utf-8").read()
    cut = text.find("## Interposed OS calls")
    if cut >= 0:
        text = text[:cut]
    rows, previous = {}, set()
    for line in text.splitlines():
        m = re.match(r"\|\s*`([a-z_]+)`\s*\|(.*)\|\s*$", line)
        if not m:
            continue
        words = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", m.group(2)))
        if "same fields" in m.group(2):
            words |= previous
        rows[m.group(1)] = words
        previous = words
    for name in re.findall(r"clrmemtrace:([a-z_]+)", text):
        rows.setdefault(name, set())
    return rows
