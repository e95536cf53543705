"""Sorted aggregates: `vprobe -a` and `vprobe-aggr`, pinned against logs with known contents."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vprobe_tools.log.json_lines import to_json
from vprobe_tools.log.parse import parse_log
from vprobe_tools.output import LogStream
from vprobe_tools.views.aggr import CLEAR_SCREEN, AggrView, render_table, sort_entries
from vprobe_tools.views.pipeline import Pipeline
from vprobe_tools.views.symbolize import Symbolizer
from conftest import TOY_KALLSYMS as SYMS

BIN = Path(sys.executable).parent
LAT = ('aggr: lat (1 integer key) (1 string key)\n'
       'lat[0x1, "bash"] == avg 10 count 4 min 2 max 30 latest 5\n'
       'lat[0x2, "sshd"] == avg 50 count 8 min 40 max 60 latest 41\n'
       'lat[0x3, "init"] == avg 10 count 4 min 1 max 90 latest 7\n'
       'lat[0x10, "cron"] == avg 7 count 1 min 7 max 7 latest 7\n')


def lat():
    [block] = parse_log(LAT)
    return block


def names(entries):
    return [e.keys[1] for e in entries]


@pytest.mark.parametrize("by, reverse, order", [
    ("count", False, ["sshd", "bash", "init", "cron"]),  # largest first; equal counts keep log order
    ("count", True, ["cron", "bash", "init", "sshd"]),
    ("avg", False, ["sshd", "bash", "init", "cron"]),
    ("min", False, ["sshd", "cron", "bash", "init"]),
    ("max", False, ["init", "sshd", "bash", "cron"]),
    ("latest", False, ["sshd", "init", "cron", "bash"]),
    ("key", False, ["bash", "sshd", "init", "cron"]),  # keys smallest first (0x10 after 0x3)
    ("key", True, ["cron", "init", "sshd", "bash"]),
])
def test_sort_orders(by, reverse, order):
    assert names(sort_entries(lat().entries, by, reverse)) == order


def test_the_table_is_aligned_with_keys_counts_statistics_share_and_bar():
    assert render_table(lat(), epoch=1) == (
        "aggr: lat  (1 integer key, 1 string key)  epoch 1  total count 17\n"
        "key1  key2  count  avg  min  max  latest      %  bar\n"
        " 0x2  sshd      8   50   40   60      41  47.1%  ####################\n"
        " 0x1  bash      4   10    2   30       5  23.5%  ##########\n"
        " 0x3  init      4   10    1   90       7  23.5%  ##########\n"
        "0x10  cron      1    7    7    7       7   5.9%  ##\n")


def test_top_keeps_the_first_rows_and_says_what_it_left_out():
    assert render_table(lat(), top=2).splitlines()[2:] == [
        " 0x2  sshd      8   50   40   60      41  47.1%  ####################",
        " 0x1  bash      4   10    2   30       5  23.5%  ##########",
        "(2 more entries not shown, count 5)"]
    assert render_table(lat(), by="max", top=1).splitlines()[2].split()[:2] == ["0x3", "init"]


def test_stack_keys_show_their_symbolized_frames():
    [block] = parse_log('aggr: st (1 integer key) (1 string key)\n'
                        'st[0x7, "GUEST_0xffffffff81001205_0xffffffff81001310_0x4005b3"] == '
                        'avg 1 count 3 min 1 max 1 latest 1\n'
                        'st[0x8, "plain"] == avg 1 count 1 min 1 max 1 latest 1\n')
    assert render_table(block, symbolizer=Symbolizer(SYMS)).splitlines()[1:] == [
        "key1  key2              count  avg  min  max  latest      %  bar",
        " 0x7  sys_read+0x5          3    1    1    1       1  75.0%  ####################",
        "      system_call+0x10",
        "      0x4005b3",
        " 0x8  plain                 1    1    1    1       1  25.0%  #######"]


def test_keyless_and_empty_aggregates():
    keyless, empty = parse_log("aggr: k (0 integer keys) (0 string keys)\nk[] == avg 5 count 2 min 1 max 9 latest 9\n"
                               "aggr: e (1 integer key) (0 string keys)\n")
    assert render_table(keyless).splitlines()[1:] == ["count  avg  min  max  latest       %  bar",
                                                      "    2    5    1    9       9  100.0%  ####################"]
    assert render_table(empty) == "aggr: e  (1 integer key, 0 string keys)  total count 0\n(no entries)\n"


def test_string_keys_are_unquoted_with_control_characters_escaped():
    [block] = parse_log('aggr: s (0 integer keys) (1 string key)\ns["a\tb\\c\x7f"] == avg 1 count 1 min 1 max 1 latest 1\n')
    assert render_table(block).splitlines()[2].startswith("a\\tb\\c\\x7f ")


class Screen(io.BytesIO):
    def isatty(self):
        return True


def view_run(text_writes, **options):
    out = io.BytesIO()
    view = AggrView(LogStream(out), **options)
    pipeline = Pipeline([view])
    for text in text_writes:
        pipeline.sink(text)
    pipeline.finish()
    return out.getvalue().decode("latin-1")


def test_without_a_terminal_each_epoch_is_printed_in_turn_between_the_other_lines():
    second = LAT.replace("count 8", "count 1")
    assert view_run(["start\n", LAT, second, "end\n"]) == (
        "start\n" + render_table(lat(), epoch=1) + "\n"
        + render_table(parse_log(second)[0], epoch=2) + "end\n")


def test_json_mode_writes_sorted_cut_aggregates_and_passes_other_events():
    lines = view_run(["start\n", LAT], fmt="json", top=2).splitlines()
    assert json.loads(lines[0]) == {"type": "log", "data": "start\n"}
    aggr = json.loads(lines[1])
    assert [e["keys"] for e in aggr["entries"]] == [[2, "sshd"], [1, "bash"]]
    assert aggr == to_json(lat(), sort_entries(lat().entries)[:2])


def test_on_a_terminal_the_tables_are_redrawn_at_each_epoch():
    screen = Screen()
    view = AggrView(LogStream(screen), live=True, min_interval=0)
    pipeline = Pipeline([view])
    pipeline.sink("before\n")
    pipeline.sink(LAT)
    first = screen.getvalue().decode()
    assert first.count(CLEAR_SCREEN) == 2
    frame = first.rsplit(CLEAR_SCREEN, 1)[1]
    assert frame == render_table(lat(), epoch=1) + "\n-- log --\nbefore\n"
    pipeline.sink(LAT.replace("count 8", "count 9"))
    pipeline.finish()
    last = screen.getvalue().decode().rsplit(CLEAR_SCREEN, 1)[1]
    assert "epoch 2" in last and " 0x2  sshd      9" in last


def test_a_live_view_draws_once_per_pause_not_per_event():
    screen = Screen()
    view = AggrView(LogStream(screen), live=True, min_interval=0)
    pipeline = Pipeline([view])
    pipeline.text(LAT + LAT + "x\n")  # several epochs in one read
    pipeline.boundary()
    assert screen.getvalue().decode().count(CLEAR_SCREEN) == 1


# ---- vprobe-aggr on saved logs ---------------------------------------------------------------------

def run_aggr(*args, stdin=None):
    return subprocess.run([str(BIN / "vprobe-aggr"), *args], input=stdin, capture_output=True, timeout=60)


def test_vprobe_aggr_reads_a_saved_log(tmp_path):
    log = tmp_path / "vprobe.out"
    log.write_text("start\n" + LAT)
    result = run_aggr("--sort", "key", "--top", "3", str(log))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "start\n" + render_table(lat(), by="key", top=3, epoch=1)


def test_vprobe_aggr_reads_json_lines_from_standard_input():
    data = "".join(json.dumps(to_json(e)) + "\n" for e in parse_log("start\n" + LAT)).encode()
    result = run_aggr("--reverse", "-", stdin=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "start\n" + render_table(lat(), reverse=True, epoch=1)


def test_vprobe_aggr_reports_a_missing_file_plainly(tmp_path):
    result = run_aggr(str(tmp_path / "nope.out"))
    assert result.returncode == 1
    assert result.stderr.decode().startswith("vprobe-aggr: cannot read ")
    assert b"Traceback" not in result.stderr


def test_vprobe_aggr_can_be_told_the_input_is_text_and_use_a_vms_symbols(tmp_path):
    (tmp_path / "kallsyms").write_text(SYMS)
    vmx = tmp_path / "web01.vmx"
    vmx.write_text('vprobe.guestSyms = "kallsyms"\n')
    log = tmp_path / "vprobe.out"
    log.write_text('{"type": "log", "data": "x"}\naggr: st (0 integer keys) (1 string key)\n'
                   'st["GUEST_0xffffffff81001205"] == avg 1 count 3 min 1 max 1 latest 1\n')
    result = run_aggr("--input", "text", "--vmx", str(vmx), str(log))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == '{"type": "log", "data": "x"}' and lines[3].startswith("sys_read+0x5 ")
