"""The annotations the compiler ends its VP with: the source map (every mapped
position is a real place in the Emmett source, faults and load errors land
there) and what each aggregate's record tells the printers (headers, key
kinds, counted or not)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import emmett
from conftest import FakeBackend, Loaded
from vp_runtime import ALL_GLOBALS, Position, VPLoadError, annotations_of, load

COOKBOOK = Path(__file__).resolve().parent.parent / "cookbook"
SYMBOLS = "ffffffff81234560 T sys_open\nffffffff81700000 D jiffies\n"

DIV = """\
int zero;

VMXLoad {
    int x;
    x = 10 / zero;
    printf("%d\\n", x);
}
"""


def compiled(source, filename: str = "t.emt", **options) -> emmett.CompileResult:
    result = emmett.compile(source, filename, emmett.CompileOptions(**options))
    assert result.ok, result.format_diagnostics()
    return result


def aggregates(source: str, tmp_path=None, **options) -> dict:
    if tmp_path is not None:
        symbols = tmp_path / "kallsyms"
        symbols.write_text(SYMBOLS)
        options["symbols_file"] = str(symbols)
    result = compiled(source, **options)
    records = annotations_of(result.vp).aggregates
    assert records == result.annotations.aggregates  # the text says what the compile result holds
    return records


def keys(record: dict) -> list[tuple[str, str]]:
    return [(k["header"], k["kind"]) for k in record["keys"]]


# ---- the source map ------------------------------------------------------------------------------

def test_a_fault_names_the_emmett_line_and_column_of_the_division():
    vp = compiled(DIV, "div.emt").vp
    log = Loaded(vp, filename="div.vp").fire()
    assert log == "vprobe error: probe VMXLoad aborted at div.emt:5:12: division by zero\n"


def test_the_vp_ends_with_the_block_and_the_block_counts_the_vp_lines():
    vp = compiled(DIV, "div.emt").vp
    body, _, block = vp.partition(";@emmett ")
    assert not body.count(";@") and block.startswith(f"1 lines={body.count(chr(10))}\n")
    assert all(line.startswith(";@") for line in (";@emmett " + block).splitlines())


def test_a_load_error_names_the_emmett_position_of_the_construct():
    source = "VMXLoad {\n    printf(\"%d\\n\",\n           CR8 + 1);\n}\n"
    vp = compiled(source, "cr8.emt", preload=False).vp
    offered = {name: g for name, g in ALL_GLOBALS.items() if name != "CR8"}
    with pytest.raises(VPLoadError) as e:
        load(vp, backend=FakeBackend(offered=offered), filename="cr8.vp")
    d = e.value.diagnostics[0]
    assert (d.file, d.line, d.col, d.source_line) == ("cr8.emt", 3, 16, "")  # the '+' of CR8 + 1
    assert "CR8" in d.message


@pytest.mark.parametrize("name", sorted(p.name for p in COOKBOOK.glob("*.emt")))
def test_every_mapped_position_of_a_cookbook_program_is_a_token_of_its_source(name):
    source = (COOKBOOK / name).read_text()
    result = compiled(source, f"cookbook/{name}")
    notes = annotations_of(result.vp)
    preload = (Path(emmett.__file__).parent / "preload" / "linux64.emt").read_text()
    texts = {f"cookbook/{name}": source.split("\n"), "emmett/preload/linux64.emt": preload.split("\n")}
    assert set(notes.files) <= set(texts)
    vp_lines = result.vp.split("\n")
    mapped = 0
    for line, col, fid, eline, ecol in result.annotations.segments:
        assert vp_lines[line - 1][col - 1] not in " )", (line, col)  # a segment starts at a token
        if fid is None:
            continue
        mapped += 1
        file = result.annotations.files[fid]
        assert notes.locate(line, col) == Position(file, eline, ecol)
        text = texts[file][eline - 1]
        assert ecol <= len(text) and not text[ecol - 1].isspace(), (file, eline, ecol)
    assert mapped


def test_each_probe_of_the_program_maps_to_its_own_lines():
    source = "VMM1Hz {\n    printf(\"a\\n\");\n}\n\nVMXLoad {\n    logint(1 / ARG0 + RAX);\n}\n"
    vp = compiled(source, "two.emt", preload=False).vp
    notes = annotations_of(vp)
    lines = vp.split("\n")
    printf = next(i for i, t in enumerate(lines, 1) if "printf" in t)
    logint = next(i for i, t in enumerate(lines, 1) if "logint" in t)
    assert notes.locate(printf, lines[printf - 1].index("(printf") + 1) == Position("two.emt", 2, 5)
    assert notes.locate(logint, lines[logint - 1].index("(logint") + 1) == Position("two.emt", 6, 5)


def test_the_probe_minus_a_adds_comes_from_no_source():
    vp = compiled("VMM1Hz { n[VCPUID]++; }\n", "n.emt", preload=False, auto_aggr=True).vp
    lines = vp.split("\n")
    added = max(i for i, t in enumerate(lines, 1) if t.startswith("(vprobe VMM1Hz"))
    assert annotations_of(vp).locate(added, 1) is None
    assert annotations_of(vp).locate(added + 1, 5) is None


def test_several_files_compile_as_one_program_each_keeping_its_name():
    result = emmett.compile([("lib.emt", "int zero;\n"), ("main.emt", "\nVMXLoad { logint(3 / zero); }\n")],
                            options=emmett.CompileOptions(preload=False))
    assert result.ok, result.format_diagnostics()
    assert Loaded(result.vp).fire() == "vprobe error: probe VMXLoad aborted at main.emt:2:20: division by zero\n"
    bad = emmett.compile([("lib.emt", "int zero;\n"), ("main.emt", "VMXLoad { zero = ; }\n")],
                         options=emmett.CompileOptions(preload=False))
    assert [(d.file, d.line) for d in bad.errors][:1] == [("main.emt", 1)]


def test_a_non_ascii_string_before_a_construct_keeps_byte_columns():
    vp = compiled('VMXLoad { printf("é %d\\n", 1 / ARG0); }\n', "u.emt", preload=False).vp
    assert Loaded(vp).fire() == "vprobe error: probe VMXLoad aborted at u.emt:1:30: division by zero\n"


# ---- what the printers are told about aggregates ----------------------------------------------------

def test_the_issue_example_headers_and_a_system_call_key():
    records = aggregates("GUEST:system_call { syscalls[RAX, curprocname()]++; }\n")
    assert records["syscalls"] == {
        "name": "syscalls",
        "keys": [{"header": "RAX", "kind": "syscall"}, {"header": "curprocname()", "kind": "string"}],
        "counted": True}


@pytest.mark.parametrize("probe", ["GUEST:entry_SYSCALL_64", "ENTER:system_call", "GUEST:system_call_fastpath"])
def test_rax_is_a_system_call_number_at_every_system_call_entry(probe):
    assert keys(aggregates(f"{probe} {{ s[RAX]++; }}\n", preload=False)["s"]) == [("RAX", "syscall")]


def test_rax_elsewhere_is_a_plain_integer():
    assert keys(aggregates("GUEST:sys_open { s[RAX]++; }\n", preload=False)["s"]) == [("RAX", "integer")]
    assert keys(aggregates("VMM1Hz { s[RAX]++; }\n", preload=False)["s"]) == [("RAX", "integer")]


def test_key_kinds_addresses_hex_and_integers(tmp_path):
    source = """\
struct task { int pid; struct task *parent; };
Guest_PF {
    struct task *t = (struct task *)RDI;
    k[RIP, &sys_open, t->parent, CR2, CR3, RFLAGS, (int)RIP, curpid(), VCPUID, PROBENAME]++;
}
"""
    assert keys(aggregates(source, tmp_path)["k"]) == [
        ("RIP", "address"), ("&sys_open", "address"), ("t->parent", "address"), ("CR2", "address"),
        ("CR3", "hex"), ("RFLAGS", "hex"), ("(int)RIP", "integer"), ("curpid()", "integer"),
        ("VCPUID", "integer"), ("PROBENAME", "string")]


def test_keys_are_in_the_logs_order_integers_first():
    record = aggregates('VMM1Hz { k[curprocname(), VCPUID, "x", ARG0]++; }\n')["k"]
    assert keys(record) == [("VCPUID", "integer"), ("ARG0", "integer"),
                            ("curprocname()", "string"), ('"x"', "string")]


def test_headers_are_the_source_text_with_whitespace_collapsed_and_spellings_joined():
    source = """\
VMM1Hz { k[VCPUID   +
           1]++; }
Guest_PF { k[ARG0]++; }
"""
    assert keys(aggregates(source, preload=False)["k"]) == [("VCPUID + 1 | ARG0", "integer")]


def test_updates_that_disagree_on_a_kind_make_an_integer():
    source = "VMM1Hz { k[RIP]++; }\nGuest_PF { k[ARG0]++; }\n"
    assert keys(aggregates(source, preload=False)["k"]) == [("RIP | ARG0", "integer")]


def test_counted_only_with_plus_plus_and_the_value_added():
    source = """\
aggr c[1][0];
aggr v[0][1];
aggr mixed[1][0];
aggr declared_only[1][0];
VMM1Hz { c[VCPUID]++; v["us"] <- TSC / 1000; mixed[1]++; mixed[2] <- RAX; }
VMXLoad { v["us"] <- TSC / 1000; logaggr(declared_only); }
"""
    records = aggregates(source, preload=False)
    assert records["c"]["counted"] is True and "value" not in records["c"]
    assert records["v"]["counted"] is False and records["v"]["value"] == "TSC / 1000"
    assert records["mixed"]["counted"] is False and records["mixed"]["value"] == "RAX"
    assert records["declared_only"] == {"name": "declared_only"}


def test_an_aggregate_renamed_in_vp_names_both():
    records = aggregates("aggr cond[1][0];\nVMM1Hz { cond[VCPUID]++; logaggr(cond); }\n", preload=False)
    assert records["_cond"]["name"] == "_cond" and records["_cond"]["source"] == "cond"
    assert re.search(r"\(defaggr _cond 1 0\)", compiled("aggr cond[1][0];\nVMM1Hz { cond[VCPUID]++; }\n",
                                                        preload=False).vp)


def test_updates_in_functions_no_probe_calls_do_not_count():
    source = "void never() { k[RIP]++; }\nVMM1Hz { k[VCPUID] <- 2; }\n"
    record = aggregates(source, preload=False)["k"]
    assert keys(record) == [("VCPUID", "integer")] and record["counted"] is False


@given(st.text())
def test_file_names_are_written_as_json_writes_them(name):
    import json

    from emmett.annotations import json_string

    assert json_string(name) == json.dumps(name)


def test_a_file_name_with_quotes_and_non_ascii_reads_back(tmp_path):
    name = tmp_path / 'dé"j\\à vu \U0001f50d.emt'
    name.write_text('VMM1Hz { printf("x\\n"); }\n')
    result = emmett.compile(name.read_text(), str(name))
    assert result.ok
    assert annotations_of(result.vp).files == [str(name)]
