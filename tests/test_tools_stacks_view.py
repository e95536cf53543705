"""Formatted stacks: symbolization, counting, the text, folded, dot and JSON outputs, vprobe-stacks."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vprobe_tools.output import LogStream, MessageStream
from vprobe_tools.views.pipeline import Pipeline
from vprobe_tools.views.stacks import StackView
from vprobe_tools.views.symbolize import Symbolizer, find_stacks, is_stack, parse_stack
from conftest import TOY_KALLSYMS as SYMS

BIN = Path(sys.executable).parent
A = "GUEST_0xffffffff81001205_0xffffffff81001310_0x4005b3"  # sys_read <- system_call <- user
B = "GUEST_0xffffffff81001100_0xffffffff81001310_0x4005b3"  # schedule <- system_call (same site)
C = "GUEST_0xffffffff81001100_0xffffffff81001320_0x4005b3"  # schedule <- system_call (another site)
LOG = (f"Stack: {A}\n"
       f"Stack: {A}\n"
       f"Stack: {B} and no other\n"
       "vprobe error: probe GUEST:sys_read aborted at s.vp:3:9: guest linear address 0x0 is not mapped\n"
       "aggr: st (0 integer keys) (1 string key)\n"
       f'st["{C}"] == avg 1 count 5 min 1 max 1 latest 1\n'
       f'st["{A}"] == avg 1 count 1 min 1 max 1 latest 1\n')


@pytest.fixture
def symbols():
    return Symbolizer(SYMS)


@pytest.mark.parametrize("address, frame", [
    (0xFFFFFFFF81001100, "schedule+0x0"),
    (0xFFFFFFFF81001205, "sys_read+0x5"),
    (0xFFFFFFFF810012FF, "sys_read+0xff"),
    (0xFFFFFFFF81000FFF, "_text+0xfff"),
    (0xFFFFFFFF81001410, "_etext+0x10"),  # the last text symbol covers one page
    (0xFFFFFFFF81002400, "0xffffffff81002400"),
    (0x4005B3, "0x4005b3"),  # below every text symbol (a data symbol at 0 does not count)
    (0xFFFFFFFF81400008, "0xffffffff81400008"),  # data, not text
])
def test_frames_are_symbol_plus_offset_from_text_symbols_or_hex(symbols, address, frame):
    assert symbols.frame(address) == frame


def test_stack_strings_are_found_anywhere():
    assert parse_stack(A) == (0xFFFFFFFF81001205, 0xFFFFFFFF81001310, 0x4005B3)
    assert find_stacks(f"x {A}, y {B}\n") == [parse_stack(A), parse_stack(B)]
    assert is_stack(A) and not is_stack(A + " ") and not is_stack("GUEST")


def run_view(log: str, symbols, **options) -> tuple[str, str]:
    out, err = io.BytesIO(), io.BytesIO()
    pipeline = Pipeline([StackView(LogStream(out), MessageStream(err), symbols, **options)])
    pipeline.sink(log)
    pipeline.finish()
    return out.getvalue().decode(), err.getvalue().decode()


def test_stacks_are_counted_symbolized_and_listed_innermost_first(symbols):
    out, err = run_view(LOG, symbols)
    assert out == ("stack 1: count 5 (55.6%)\n"
                   "  schedule+0x0\n"
                   "  system_call+0x20\n"
                   "  0x4005b3\n"
                   "\n"
                   "stack 2: count 3 (33.3%)\n"  # two log lines and one aggregate entry
                   "  sys_read+0x5\n"
                   "  system_call+0x10\n"
                   "  0x4005b3\n"
                   "\n"
                   "stack 3: count 1 (11.1%)\n"
                   "  schedule+0x0\n"
                   "  system_call+0x10\n"
                   "  0x4005b3\n"
                   "\n")
    assert err == "vprobe error: probe GUEST:sys_read aborted at s.vp:3:9: guest linear address 0x0 is not mapped\n"


def test_top_limits_the_stacks_shown(symbols):
    out, _ = run_view(LOG, symbols, top=1)
    assert out.endswith("  0x4005b3\n\n(2 more stacks not shown, count 4)\n")
    assert out.count("stack ") == 1


def test_folded_format_is_outermost_first_merged_by_function_and_sorted(symbols):
    assert run_view(LOG, symbols, shape="folded")[0] == ("0x4005b3;system_call;schedule 6\n"
                                                         "0x4005b3;system_call;sys_read 3\n")
    assert run_view(LOG, symbols, shape="folded", offsets=True)[0] == (
        "0x4005b3;system_call+0x10;schedule+0x0 1\n"
        "0x4005b3;system_call+0x10;sys_read+0x5 3\n"
        "0x4005b3;system_call+0x20;schedule+0x0 5\n")


def test_aggregate_blocks_add_up_unless_cumulative(symbols):
    again = LOG + "aggr: st (0 integer keys) (1 string key)\n" + f'st["{C}"] == avg 1 count 7 min 1 max 1 latest 1\n'
    assert run_view(again, symbols)[0].startswith("stack 1: count 12 ")
    cumulative = run_view(again, symbols, cumulative=True)[0]
    # Only each aggregate's last block counts: C 7, and A from the log lines alone.
    assert cumulative.startswith("stack 1: count 7 ") and "stack 2: count 2 " in cumulative


def test_dot_graph_of_the_hottest_stacks(symbols):
    out, _ = run_view(LOG, symbols, shape="dot", top=2)
    assert out.splitlines() == [
        "digraph stacks {",
        '  node [shape=box, fontname="monospace"];',
        '  n0 [label="0x4005b3\\n8 (100.0%)"];',
        '  n1 [label="system_call\\n8 (100.0%)"];',
        '  n2 [label="schedule\\n5 (62.5%)\\nself 5"];',
        '  n3 [label="sys_read\\n3 (37.5%)\\nself 3"];',
        '  n0 -> n1 [label="8", penwidth=5.00];',
        '  n1 -> n2 [label="5", penwidth=3.50];',
        '  n1 -> n3 [label="3", penwidth=2.50];',
        "}"]


def test_json_stacks(symbols):
    out, _ = run_view(LOG, symbols, fmt="json", top=1)
    [line] = out.splitlines()
    assert json.loads(line) == {"type": "stack", "count": 5, "stack": C, "frames": [
        {"address": 0xFFFFFFFF81001100, "symbol": "schedule", "offset": 0},
        {"address": 0xFFFFFFFF81001320, "symbol": "system_call", "offset": 0x20},
        {"address": 0x4005B3, "symbol": None, "offset": None}]}


def test_a_log_without_stacks_says_so_on_stderr(symbols):
    assert run_view("nothing here\n", symbols) == ("", "no guest stacks in the log\n")


# ---- vprobe-stacks on saved logs ---------------------------------------------------------------------

def run_stacks(*args, stdin=None):
    return subprocess.run([str(BIN / "vprobe-stacks"), *args], input=stdin, capture_output=True, timeout=60)


def test_vprobe_stacks_with_a_symbol_file(tmp_path):
    (tmp_path / "kallsyms").write_text(SYMS)
    (tmp_path / "vprobe.out").write_text(LOG)
    result = run_stacks("--syms", str(tmp_path / "kallsyms"), "--folded", str(tmp_path / "vprobe.out"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"0x4005b3;system_call;schedule 6\n0x4005b3;system_call;sys_read 3\n"
    assert b"aborted at s.vp:3:9" in result.stderr


def test_vprobe_stacks_defaults_to_the_simulated_machines_symbols():
    from machine import SimulatedMachine, default_config
    from machine.symbols import parse_symbols

    address = parse_symbols(SimulatedMachine(default_config()).symbol_text)["sys_read"]
    result = run_stacks("-", stdin=f"GUEST_0x{address + 3:x}_0x1\n".encode())
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"stack 1: count 1 (100.0%)\n  sys_read+0x3\n  0x1\n\n"
