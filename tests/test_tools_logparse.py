"""The log parser every printer reads through, and its JSON equivalent."""

from __future__ import annotations

import json

import pytest

from vprobe_tools.log.json_lines import from_json, looks_like_json_log, parse_json_line, to_json
from vprobe_tools.log.parse import AggrBlock, AggrEntry, Fault, LogParser, LogText, parse_fault, parse_log
from vprobe_tools.log.reader import LogReader
from vprobe_tools.views.pipeline import Pipeline

LOG = (
    "hello\n"
    "aggr: pf (1 integer key) (1 string key)\n"
    'pf[0x10, "bash"] == avg 1 count 3 min 1 max 1 latest 1\n'
    'pf[0xffffffff81001370, "init"] == avg 2 count 5 min 1 max 3 latest 3\n'
    "vprobe error: probe VMM1Hz aborted at t.vp:1:24: guest linear address 0x0 is not mapped\n"
    "aggr: k (0 integer keys) (0 string keys)\n"
    "k[] == avg 5 count 2 min 1 max 9 latest 9\n"
    "tail"
)


class Recorder:
    def __init__(self):
        self.events, self.idles, self.finished = [], 0, False

    def event(self, event):
        self.events.append(event)

    def idle(self):
        self.idles += 1

    def finish(self):
        self.finished = True


def test_a_log_parses_into_text_aggregate_blocks_and_faults():
    events = parse_log(LOG)
    assert [type(e).__name__ for e in events] == ["LogText", "AggrBlock", "Fault", "AggrBlock", "LogText"]
    pf = events[1]
    assert (pf.name, pf.int_keys, pf.str_keys) == ("pf", 1, 1)
    assert pf.entries == [AggrEntry((0x10, "bash"), 1, 3, 1, 1, 1),
                          AggrEntry((0xFFFFFFFF81001370, "init"), 2, 5, 1, 3, 3)]
    assert pf.total_count == 8
    assert events[3].entries == [AggrEntry((), 5, 2, 1, 9, 9)]
    assert events[4] == LogText("tail")  # a last partial line keeps having no newline


def test_every_event_keeps_the_exact_text_it_came_from():
    assert "".join(e.text for e in parse_log(LOG)) == LOG


def test_fault_lines_with_and_without_a_location():
    fault = parse_fault("vprobe error: probe GUEST:sys_read aborted at dir/my file.vp:12:3: division by zero\n")
    assert (fault.probe, fault.file, fault.line, fault.col, fault.message) == (
        "GUEST:sys_read", "dir/my file.vp", 12, 3, "division by zero")
    bare = parse_fault("vprobe error: probe VMM1Hz aborted: VP stack overflow: too deep")
    assert (bare.file, bare.line, bare.message) == (None, None, "VP stack overflow: too deep")
    assert parse_fault("vprobe errors are fun") is None


@pytest.mark.parametrize("line, keys", [
    ('a[0x1, 0x2, "x", "y"] == avg 1 count 1 min 1 max 1 latest 1', (1, 2, "x", "y")),
    ('a[0x1, 0x2, "", "a, b"] == avg 1 count 1 min 1 max 1 latest 1', (1, 2, "", "a, b")),
    # A string holding `", "` is ambiguous (strings are logged unescaped): it goes to the last key.
    ('a[0x1, 0x2, "p", "q", "r"] == avg 1 count 1 min 1 max 1 latest 1', (1, 2, "p", 'q", "r')),
])
def test_integer_keys_come_first_then_strings(line, keys):
    [block] = parse_log("aggr: a (2 integer keys) (2 string keys)\n" + line + "\n")
    assert block.entries[0].keys == keys


def test_a_line_that_is_not_an_entry_ends_the_block():
    events = parse_log("aggr: a (1 integer key) (0 string keys)\n"
                       "a[0x1] == avg 1 count 1 min 1 max 1 latest 1\n"
                       'a["s"] == avg 1 count 1 min 1 max 1 latest 1\n'
                       "b[0x1] == avg 1 count 1 min 1 max 1 latest 1\n")
    assert isinstance(events[0], AggrBlock) and len(events[0].entries) == 1
    assert [type(e) for e in events[1:]] == [LogText, LogText]


def test_an_empty_aggregate_is_a_block_with_no_entries():
    [block, text] = parse_log("aggr: e (0 integer keys) (1 string key)\nafter\n")
    assert block.name == "e" and block.entries == [] and text == LogText("after\n")


def test_blocks_complete_at_a_write_boundary_or_at_the_end():
    parser = LogParser()
    assert parser.feed("aggr: a (1 integer key) (0 string keys)\na[0x1] == avg 1 count 1 min") == []
    assert parser.feed(" 1 max 1 latest 1\n") == []
    [block] = parser.boundary()
    assert block.entries[0].keys == (1,)
    assert parser.feed("aggr: b (1 integer key) (0 string keys)\n") == []
    [block_b] = parser.finish()
    assert block_b.name == "b"


def test_the_pipeline_is_a_log_sink_and_each_write_is_a_boundary():
    rec = Recorder()
    pipeline = Pipeline([rec])
    pipeline.sink("aggr: a (1 integer key) (0 string keys)\na[0x1] == avg 1 count 1 min 1 max 1 latest 1\n")
    assert isinstance(rec.events[-1], AggrBlock) and rec.idles == 1
    pipeline.sink("aggr: a (1 integer key) (0 string keys)\n")
    pipeline.finish()
    assert [e.entries for e in rec.events] == [[AggrEntry((1,), 1, 1, 1, 1, 1)], []]
    assert rec.finished


# ---- JSON --------------------------------------------------------------------------------------------

def test_json_objects_for_each_event_type():
    text, pf, fault, keyless, tail = parse_log(LOG)
    assert to_json(text) == {"type": "log", "data": "hello\n"}
    assert to_json(pf) == {"type": "aggr", "name": "pf", "int_keys": 1, "str_keys": 1, "entries": [
        {"keys": [0x10, "bash"], "avg": 1, "count": 3, "min": 1, "max": 1, "latest": 1},
        {"keys": [0xFFFFFFFF81001370, "init"], "avg": 2, "count": 5, "min": 1, "max": 3, "latest": 3}]}
    assert to_json(fault) == {"type": "error", "probe": "VMM1Hz", "file": "t.vp", "line": 1, "col": 24,
                              "message": "guest linear address 0x0 is not mapped", "data": fault.text}
    assert to_json(keyless)["entries"] == [{"keys": [], "avg": 5, "count": 2, "min": 1, "max": 9, "latest": 9}]


def test_json_round_trips_events_and_keeps_log_bytes():
    raw = "caf\xc3\xa9 \xff\x00 end\n"  # the log's bytes, one character each
    for event in parse_log(LOG) + [LogText(raw)]:
        line = json.dumps(to_json(event))
        assert line.isascii()
        back = parse_json_line(line)
        assert to_json(back) == to_json(event)
    assert parse_json_line(json.dumps(to_json(LogText(raw)))).text.encode("latin-1") == raw.encode("latin-1")


def test_json_errors_without_their_line_are_rebuilt():
    fault = from_json({"type": "error", "probe": "P", "file": None, "line": None, "col": None, "message": "m"})
    assert isinstance(fault, Fault) and fault.text == "vprobe error: probe P aborted: m\n"


def test_json_input_is_recognised_by_its_first_line():
    assert looks_like_json_log('{"type": "log", "data": "x"}')
    assert not looks_like_json_log('{"type": "other"}')
    assert not looks_like_json_log("hello")


@pytest.mark.parametrize("kind", ["auto", "json"])
def test_a_reader_takes_json_lines_in_any_pieces(kind):
    rec = Recorder()
    reader = LogReader(Pipeline([rec]), kind)
    data = "".join(json.dumps(to_json(e)) + "\n" for e in parse_log(LOG)).encode()
    for i in range(0, len(data), 7):
        reader.feed(data[i:i + 7])
    reader.finish()
    assert [to_json(e) for e in rec.events] == [to_json(e) for e in parse_log(LOG)]


def test_a_reader_passes_text_logs_to_the_parser():
    rec = Recorder()
    reader = LogReader(Pipeline([rec]))
    reader.feed(LOG.encode("latin-1"))
    reader.finish()
    assert "".join(e.text for e in rec.events) == LOG


def test_malformed_json_lines_are_skipped_with_a_warning():
    rec, warnings = Recorder(), []
    reader = LogReader(Pipeline([rec]), "json", warnings.append)
    reader.feed(b'{"type": "log", "data": "a"}\nnot json\n{"type": "aggr"}\n')
    reader.finish()
    assert rec.events == [LogText("a")]
    assert [w.split(":")[0] for w in warnings] == ["line 2", "line 3"]
