"""The documentation a newcomer learns from: its Emmett examples compile, the files it names exist.

docs/emmett.md is the language reference: every ```emmett block in it is a
program (or, with no probe of its own, declarations and functions that compile
once a probe is added).  README.md and docs/ name files by their path in the
repository (`cookbook/hello.emt`): each must be there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import emmett

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "emmett.md"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP_LEVEL = "|".join(sorted(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")))
# A path in backquotes that starts with a folder of the repository: `cookbook/strace.emt`, `docs/emmett.md`.
CITED = re.compile(rf"`((?:{TOP_LEVEL})/[\w./-]*\w)`")
EXAMPLE = re.compile(r"^```emmett\n(.*?)^```", re.S | re.M)


def examples():
    return [pytest.param(m.group(1), id=f"line {REFERENCE.read_text()[:m.start()].count(chr(10)) + 1}")
            for m in EXAMPLE.finditer(REFERENCE.read_text())]


def test_the_reference_has_examples():
    assert len(examples()) >= 6


@pytest.mark.parametrize("program", examples())
def test_each_example_of_the_language_reference_compiles(program):
    result = emmett.compile(program, "example.emt")
    if [d.message.split(":")[0] for d in result.errors] == ["the program has no probe"]:
        result = emmett.compile(program + "\nVMXLoad { }\n", "example.emt")
    assert result.ok, result.format_diagnostics()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_file_a_doc_names_is_in_the_repository(doc):
    cited = {m.group(1) for m in CITED.finditer(doc.read_text())}
    missing = sorted(path for path in cited if not (ROOT / path).exists())
    assert not missing, f"{doc.name} names files that are not in the repository: {missing}"


def test_emmettc_help_points_at_the_reference_and_its_one_liners_compile():
    import shlex
    import subprocess
    import sys

    emmettc = Path(sys.executable).parent / "emmettc"
    shown = subprocess.run([str(emmettc), "--help"], capture_output=True, timeout=60, text=True)
    assert shown.returncode == 0 and "docs/emmett.md" in shown.stdout and REFERENCE.exists()
    one_liners = [line.strip() for line in shown.stdout.splitlines() if line.strip().startswith("emmettc -c ")]
    assert len(one_liners) >= 2
    for line in one_liners:
        argv = shlex.split(line)
        run = subprocess.run([str(emmettc), *argv[1:]], capture_output=True, timeout=60, text=True)
        assert run.returncode == 0 and run.stdout.startswith('(version "1.0")'), (line, run.stderr)
