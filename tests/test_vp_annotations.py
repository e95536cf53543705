"""The runtime's reader of the annotations compiled VP ends with (docs/architecture.md,
"Annotations in compiled VP"): the source map it applies to diagnostics and fault
lines, the aggregate records it exposes, and VP without annotations left as it was."""

from __future__ import annotations

import pytest

from conftest import FakeBackend
from vp_runtime import Position, VPLoadError, annotations_of, load

VP = '''(version "1.0")
(definteger zero)
(vprobe VMXLoad
  (printf "%d\\n" (/ 10 zero)))
'''
BLOCK = ''';@emmett 1 lines=4
;@file 0 "div.emt"
;@map 2 1=1:5
;@map 3 1=3:1
;@map 4 3=4:5 18=4:20
;@aggr {"name": "hits", "keys": [{"header": "RIP", "kind": "address"}], "counted": true}
'''


def fault_line(text: str) -> str:
    out: list[str] = []
    script = load(text, backend=FakeBackend(), filename="div.vp", log_sink=out.append)
    script.handler("VMXLoad")()
    return "".join(out)


def test_a_fault_names_the_emmett_position_the_map_gives():
    assert fault_line(VP + BLOCK) == "vprobe error: probe VMXLoad aborted at div.emt:4:20: division by zero\n"


def test_without_annotations_the_fault_names_the_vp_position():
    assert fault_line(VP) == "vprobe error: probe VMXLoad aborted at div.vp:4:24: division by zero\n"


def test_locate_follows_segments_over_line_ends_and_not_before_the_first():
    notes = annotations_of(VP + BLOCK)
    assert notes.locate(1, 1) is None  # (version ...) comes from no Emmett construct
    assert notes.locate(2, 1) == Position("div.emt", 1, 5)
    assert notes.locate(3, 9) == Position("div.emt", 3, 1)  # the probe's name: the probe
    assert notes.locate(4, 2) == Position("div.emt", 3, 1)  # before the segment at 4:3
    assert notes.locate(4, 17) == Position("div.emt", 4, 5)
    assert notes.locate(4, 30) == Position("div.emt", 4, 20)
    assert notes.locate(5, 1) is None  # the block's own lines are not its VP
    assert str(notes.locate(4, 18)) == "div.emt:4:20"


def test_the_aggregate_records_and_files_are_exposed_on_the_script():
    script = load(VP + BLOCK, backend=FakeBackend())
    assert script.annotations.files == ["div.emt"]
    assert script.annotations.aggregates == {
        "hits": {"name": "hits", "keys": [{"header": "RIP", "kind": "address"}], "counted": True}}


def test_a_load_error_at_a_mapped_position_names_the_emmett_file_without_vp_text():
    text = VP.replace("(printf", "(prinf") + BLOCK
    with pytest.raises(VPLoadError) as e:
        load(text, backend=FakeBackend(), filename="div.vp")
    d = e.value.diagnostics[0]
    assert (d.file, d.line, d.col, d.source_line) == ("div.emt", 4, 5, "")
    assert e.value.format() == "div.emt:4:5: error: call to undefined function 'prinf'"


def test_each_block_of_concatenated_files_maps_its_own_lines():
    second = '(vprobe VMM1Hz\n  (logint (/ 1 zero)))\n;@emmett 1 lines=2\n;@file 0 "other.emt"\n;@map 2 3=7:9\n'
    text = VP + BLOCK + "; plain VP between them\n" + second
    notes = annotations_of(text)
    comment_line = (VP + BLOCK).count("\n") + 1
    assert notes.locate(4, 20) == Position("div.emt", 4, 20)
    assert notes.locate(comment_line, 1) is None and notes.locate(comment_line + 1, 1) is None
    assert notes.locate(comment_line + 2, 12) == Position("other.emt", 7, 9)
    assert notes.files == ["div.emt", "other.emt"]


def test_segments_switch_files_and_can_say_no_source():
    text = VP + ''';@emmett 1 lines=4
;@file 0 "main.emt"
;@file 1 "lib.emt"
;@map 2 1=1/9:2
;@map 3 1=0/3:1 9=-
;@map 4 3=1/2:2 18=4:4
'''
    notes = annotations_of(text)
    assert notes.locate(2, 5) == Position("lib.emt", 9, 2)
    assert notes.locate(3, 1) == Position("main.emt", 3, 1)
    assert notes.locate(3, 12) is None
    assert notes.locate(4, 3) == Position("lib.emt", 2, 2)
    assert notes.locate(4, 19) == Position("lib.emt", 4, 4)  # the file carries over


@pytest.mark.parametrize("block", [
    ";@emmett 2 lines=4\n;@file 0 \"div.emt\"\n;@map 4 1=4:5\n",  # a version this reader does not know
    ";@emmett 1 lines=4\n;@file 0 div.emt\n;@map 4 1=4:5\n",  # the file name is not JSON
    ";@emmett 1 lines=4\n;@file 0 \"div.emt\"\n;@map four 1=4:5\n;@map 4 1:4:5\n;@aggr [1]\n;@aggr {\"n\n",
    ";@emmett 1 lines=4\n\n;@file 0 \"div.emt\"\n;@map 4 1=4:5\n",  # records must follow the header
    "  ;@emmett 1 lines=4\n",  # not in column 1
])
def test_malformed_or_foreign_annotations_are_ignored_never_an_error(block):
    notes = annotations_of(VP + block)
    assert notes.locate(4, 24) is None and notes.aggregates == {}
    assert fault_line(VP + block).endswith("aborted at div.vp:4:24: division by zero\n")


def test_an_annotation_inside_a_string_literal_is_text_not_an_annotation():
    text = '(vprobe VMXLoad (printf "a\n;@emmett 1 lines=1\n;@file 0 \\"x.emt\\"\n;@map 1 1=1:1\n"))\n'
    assert not annotations_of(text)


def test_a_file_name_cannot_break_a_log_line():
    text = VP + BLOCK.replace('"div.emt"', '"div.emt\\naggr: forged (1 integer key) (0 string keys)"')
    line = fault_line(text)
    assert line.count("\n") == 1 and "div.emt?aggr: forged" in line


def test_non_ascii_names_and_columns():
    vp = '(version "1.0")\n(definteger zero)\n(vprobe VMXLoad\n  (printf "é%d\\n" (/ 10 zero)))\n'
    block = BLOCK.replace('"div.emt"', '"d\\u00e9.emt"').replace("18=4:20", "19=4:20")
    assert annotations_of(vp + block).locate(4, 19) == Position("dé.emt", 4, 20)
    assert fault_line(vp + block) == "vprobe error: probe VMXLoad aborted at dé.emt:4:20: division by zero\n" \
        .encode("utf-8").decode("latin-1")


def test_text_that_does_not_read_as_vp_has_no_annotations():
    assert not annotations_of("(vprobe VMXLoad\n" + BLOCK)
