"""The differential suite without the toolkit: each program's golden VP (what the
toolkit's compiler emitted for it) and emmettc's VP, run side by side on the
default machine with `vprobe -d`, log the same, non-empty output."""

from __future__ import annotations

import pytest

import differential as d

PROGRAMS = d.all_programs()


@pytest.fixture(scope="module")
def symbols(tmp_path_factory):
    return d.guest_symbols(tmp_path_factory.mktemp("syms"))


def test_every_program_has_its_golden_vp_and_every_golden_vp_its_program():
    programs = {p.name for p in PROGRAMS}
    golden = {p.stem for p in d.GOLDEN.glob("*.vp")}
    assert programs, "no differential programs"
    assert programs == golden


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.name)
def test_golden_vp_and_emmettc_vp_log_the_same(program, symbols):
    ours = d.compile_with_emmettc(program, symbols)
    assert ours.ok, ours.error
    golden = program.golden.read_text(encoding="latin-1")
    theirs = d.run_vp(golden, program.seconds, f"{program.name}.toolkit")
    assert theirs.ok, theirs.error
    mine = d.run_vp(ours.text, program.seconds, program.name)
    assert mine.ok, mine.error
    assert mine.text.strip(), "the program logs nothing, so the comparison would prove nothing"
    assert d.comparable(theirs.text) == d.comparable(mine.text)
