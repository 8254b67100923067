# SPDX-License-Identifier: MIT
"""The analysis package's small pieces: TIME arguments, formatting, tables, names, latency
buckets, page runs and the metadata check, without traces."""

import argparse
import os
import struct
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "analysis", "python"))  # fmt: skip

from clrmemtrace import engine, oracle, tables, timefmt  # noqa: E402
from clrmemtrace.cli import UserError  # noqa: E402


@pytest.mark.parametrize(
    "text,value,absolute",
    [
        ("1500000000", 1_500_000_000, False),
        ("1.5s", 1_500_000_000, False),
        ("250ms", 250_000_000, False),
        ("40us", 40_000, False),
        ("7ns", 7, False),
        (" 12 ms ", 12_000_000, False),
        (".5s", 500_000_000, False),
        ("0", 0, False),
        ("@1700000000123456789", 1_700_000_000_123_456_789, True),
        ("@1700000000123456789ns", 1_700_000_000_123_456_789, True),
    ],
)
def test_parse_time(text, value, absolute):
    parsed = timefmt.parse_time(text)
    assert (parsed.value, parsed.absolute) == (value, absolute)
    assert parsed.resolve(1000) == (value if absolute else 1000 + value)


@pytest.mark.parametrize("text", ["", "s", "1.5x", "-1", "1e9", "@2s", "1.0000000001s", "@"])
def test_parse_time_refuses(text):
    with pytest.raises(ValueError):
        timefmt.parse_time(text)
    with pytest.raises(argparse.ArgumentTypeError):
        timefmt.argparse_time(text)


def test_parse_time_range():
    assert timefmt.parse_time(f"@{(1 << 63) - 1}").value == (1 << 63) - 1
    with pytest.raises(ValueError):
        timefmt.parse_time(f"@{1 << 63}")


@pytest.mark.parametrize(
    "count,text",
    [(0, "0 B"), (1023, "1023 B"), (1024, "1 KiB"), (1536, "1.5 KiB"), (3 << 20, "3 MiB"),
     (5 << 30, "5 GiB"), (-2048, "-2 KiB"), (None, "-")],
)  # fmt: skip
def test_format_bytes(count, text):
    assert timefmt.format_bytes(count) == text


def test_format_times():
    assert timefmt.format_duration(850) == "850 ns"
    assert timefmt.format_duration(12_345) == "12.3 us"
    assert timefmt.format_duration(4_560_000) == "4.56 ms"
    assert timefmt.format_duration(1_234_000_000) == "1.234 s"
    assert timefmt.format_offset(1_000_000_123, 1000) == "+0.999999123"
    assert timefmt.format_offset(0, 5) == "-0.000000005"
    assert timefmt.format_clock(1_700_000_000_123_456_789) == ("2023-11-14 22:13:20.123456789 UTC")
    assert timefmt.format_delta_bytes(0) == "0"
    assert timefmt.format_delta_bytes(4096) == "+4 KiB"
    assert timefmt.format_address(0x1000) == "0x000000001000"


def test_table():
    text = tables.table(["name", "n"], [["a", 1], ["bbb", 22]])
    assert text == "name   n\n----  --\na      1\nbbb   22\n"
    assert tables.table(["x"], [], indent="  ") == "  x\n  -\n"
    assert tables.key_values([("a", 1), ("long", "v")]) == "a:    1\nlong: v\n"


def test_histogram():
    text = tables.histogram([(15, 2), (31, 4)], str, width=4)
    assert text == "<= 15  2  ##\n<= 31  4  ####\n"
    assert tables.histogram([], str) == ""


@pytest.mark.parametrize(
    "value,name",
    [
        (0, "0"),
        (0x04, "PAGE_READWRITE"),
        (0x20 | 0x100, "PAGE_EXECUTE_READ|PAGE_GUARD"),
        (0x04 | 0x100 | 0x200, "PAGE_READWRITE|PAGE_GUARD|PAGE_NOCACHE"),
        (0x40 | 0x400, "PAGE_EXECUTE_READWRITE|PAGE_WRITECOMBINE"),
        (0x03, "3"),
        (0x100, "256"),
        (0x04 | 0x800, str(0x804)),
        (0x04 | 0x40000000, str(0x40000004)),
    ],
)
def test_protect_names(value, name):
    assert oracle.protect_name(value) == name


def test_other_names():
    assert oracle.hr_name(0) == "S_OK"
    assert oracle.hr_name(-2147024809) == "E_INVALIDARG"
    assert oracle.hr_name(-2147024409) == "HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS)"
    assert oracle.hr_name(-2147467259 + 100) == str(-2147467259 + 100)
    assert oracle.state_name(0x1000) == "MEM_COMMIT"
    assert oracle.state_name(7) == "7"
    assert oracle.mem_type_name(0x20000) == "MEM_PRIVATE"
    assert oracle.level_name(2) == "eProcessCritical"
    assert oracle.available_name(1) == "eMemoryAvailableLow"


def test_latency_buckets():
    # README: v < 16 has bucket v; else e = floor(log2 v), bucket 16 + 16(e - 4) + the next
    # four bits; its upper bound is ((16 + s + 1) << (e - 4)) - 1.
    for value in range(16):
        assert oracle.bucket(value) == value
        assert oracle.bucket_upper(value) == value
    assert oracle.bucket(16) == 16 and oracle.bucket_upper(16) == 16
    assert oracle.bucket(31) == 31 and oracle.bucket(32) == 32
    assert oracle.bucket_upper(oracle.bucket(33)) == 33
    assert oracle.bucket_upper(oracle.bucket(1000)) == 1023
    for value in list(range(1, 5000)) + [10**6 + 7, 10**9 + 3, (1 << 62) + 12345]:
        upper = oracle.bucket_upper(oracle.bucket(value))
        assert value <= upper <= value * 1.0625 + 1
        assert oracle.bucket(upper) == oracle.bucket(value)
        assert oracle.bucket(upper + 1) == oracle.bucket(value) + 1


def test_latency_document():
    document = oracle.latency_document([5, 5, 100, 1000, 0 + 7])
    assert document["count"] == 5
    assert (document["min_ns"], document["max_ns"]) == (5, 1000)
    assert document["p50_ns"] == 7
    assert document["p90_ns"] == 1000  # the bucket's bound, 1023, capped at the maximum
    assert document["mean_ns"] == 223.4
    assert document["histogram"] == [[5, 2], [7, 1], [103, 1], [1023, 1]]


def test_set_pages():
    runs = ((0, 100, oracle.MEM_RESERVE, 0),)
    runs = oracle.set_pages(runs, 10, 20, oracle.MEM_COMMIT, 4)
    assert runs == ((0, 10, 0x2000, 0), (10, 20, 0x1000, 4), (20, 100, 0x2000, 0))
    runs = oracle.set_pages(runs, 20, 30, oracle.MEM_COMMIT, 4)
    assert runs == ((0, 10, 0x2000, 0), (10, 30, 0x1000, 4), (30, 100, 0x2000, 0))
    runs = oracle.set_pages(runs, 0, 100, oracle.MEM_RESERVE, 0)
    assert runs == ((0, 100, 0x2000, 0),)
    assert oracle.set_pages(runs, 5, 5, oracle.MEM_COMMIT, 4) == runs


def metadata_packet(content, packet_size=None, order="<"):
    header_size = 37
    size = header_size + len(content)
    packet_size = packet_size or size
    header = struct.pack(order + "I16sIIIBBBBB", 0x75D11D57, b"\0" * 16, 0, size * 8,
                         packet_size * 8, 0, 0, 0, 1, 8)  # fmt: skip
    return header + content + b"\0" * (packet_size - size)


def test_check_metadata(tmp_path):
    def check(data):
        (tmp_path / "metadata").write_bytes(data)
        engine.check_metadata(str(tmp_path))

    text = b"/* CTF 1.8 */\ntrace { major = 1; minor = 8; };\n"
    check(text)
    check(text[:10])
    whole = metadata_packet(text, 128) + metadata_packet(text, 128)
    check(whole)
    check(metadata_packet(text, order=">"))
    check(whole[:-10])  # cut in the last packet's padding: its content is whole
    for cut in (3, 20, 60, 128 + 20, 128 + 60):
        with pytest.raises(UserError) as error:
            check(whole[:cut])
        assert error.value.status == 3
    with pytest.raises(UserError):
        check(metadata_packet(text) + b"garbage that is not a packet header at all.....")


def test_ctf_inputs(tmp_path):
    with pytest.raises(UserError) as error:
        engine.ctf_inputs(str(tmp_path))
    assert error.value.status == 3
    for part in ("ust/uid/0/64-bit", "ust/pid/app-1/64-bit"):
        (tmp_path / part).mkdir(parents=True)
        (tmp_path / part / "metadata").write_bytes(b"/* CTF 1.8 */\n")
    found = engine.ctf_inputs(str(tmp_path))
    assert [os.path.relpath(p, tmp_path) for p in found] == [
        "ust/pid/app-1/64-bit",
        "ust/uid/0/64-bit",
    ]


def test_engine_choice(monkeypatch):
    monkeypatch.delenv("CLRMEMTRACE_ENGINE", raising=False)
    assert engine.engine_name() == "plugin"
    monkeypatch.setenv("CLRMEMTRACE_ENGINE", "oracle")
    assert engine.engine_name() == "oracle"
    assert engine.engine_name("plugin") == "plugin"
    with pytest.raises(UserError):
        engine.engine_name("other")


def test_timeline_csv_round_trip(tmp_path):
    rows = [
        {"time_ns": 5, "vpid": 1, "tid": 2, "manager_id": 3, "op": "commit",
         "allocation_base": None, "address": 0x7F0000001000, "size": 4096,
         "protect": "PAGE_READWRITE", "old_protect": "", "level": "eTaskCritical", "hr": "S_OK",
         "seq": 9},
    ]  # fmt: skip
    out = tmp_path / "t.csv"
    with open(out, "w", newline="") as f:
        engine.write_timeline_rows(rows, f)
    text = out.read_text()
    assert (
        text.splitlines()[1]
        == "5,1,2,3,commit,,0x7f0000001000,4096,PAGE_READWRITE,,eTaskCritical,S_OK,9"
    )
    assert engine.parse_timeline_csv(text) == rows
