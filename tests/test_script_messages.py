"""What a user reads about a script that does not compile or load: the real error first, at most
20 of them, a file that is not text refused in one line, and progress on a long compile on a terminal.

The rules are `shared/script_text.py` (shared by the VP reader and the Emmett compiler) and
the driver's: a program with a syntax error is not analysed, since what analysis would say is
mostly a consequence of the text it could not read.
"""

from __future__ import annotations

import io
import random
import subprocess
import sys
from pathlib import Path

import pytest

import emmett
from emmett.progress import CompileProgress
from vp_runtime import VPLoadError, load
from vprobes_shared.script_text import MAX_SHOWN_DIAGNOSTICS, format_diagnostics, not_text

BIN = Path(sys.executable).parent


def run(tool: str, *argv, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *map(str, argv)], cwd=cwd, capture_output=True, timeout=120)


def random_bytes(n: int, seed: int = 13) -> bytes:
    return random.Random(seed).randbytes(n)


# ---- the first error is the real one -----------------------------------------------------------

BROKEN = """\
int broken(int n)
{
    return n + ;
}

VMM1Hz { logint(broken(3)); y = zork; }
"""


def test_a_syntax_error_is_reported_without_its_consequences(tmp_path):
    (tmp_path / "broken.emt").write_text(BROKEN)
    r = run("emmettc", "broken.emt", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == b""
    # Not "'broken' must end with 'return VALUE;'" (at 2:1, before it), nor the unknown name of line 6.
    assert r.stderr.decode() == "broken.emt:3:16: error: syntax error at ';'\n    return n + ;\n               ^\n"


def test_without_a_syntax_error_every_error_is_reported_in_source_order():
    result = emmett.compile("int f(int n)\n{\n    if (n) return 1;\n}\nVMM1Hz { x = zork; }\n", "f.emt")
    assert [(d.line, d.col, d.message.split(" (")[0]) for d in result.errors] == [
        (3, 5, "'f' must end with 'return VALUE;' on every path"), (5, 14, "unknown name 'zork'")]


# ---- at most 20 errors, then how many more -----------------------------------------------------

def test_emmettc_prints_twenty_errors_then_how_many_more(tmp_path):
    (tmp_path / "many.emt").write_text("".join(f"VMM1Hz {{ x{i} = y{i}; }}\n" for i in range(1, 31)))
    r = run("emmettc", "many.emt", cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.decode().splitlines()
    heads = [line for line in lines if line.startswith("many.emt:")]
    assert heads == [f"many.emt:{i}:{14 + len(str(i))}: error: unknown name 'y{i}'" for i in range(1, 21)]
    assert lines[-1] == "10 more errors"
    # The compile result keeps them all, for programs that read it.
    assert len(emmett.compile((tmp_path / "many.emt").read_text(), "many.emt").errors) == 30


def test_vprobe_shows_twenty_load_errors_of_a_vp_script_then_how_many_more(tmp_path):
    (tmp_path / "many.vp").write_text("".join(f'(vprobe VMM1Hz (printf "%d" zork{i}))\n' for i in range(25)))
    r = run("vprobe", "-d", "0", "many.vp", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == b""
    err = r.stderr.decode()
    assert err.count(": error: unknown name 'zork") == 20 and err.endswith("\n5 more errors\n")


class _Said:
    def __init__(self, severity):
        self.severity = severity

    def format(self):
        return f"a {self.severity}"


@pytest.mark.parametrize("errors, warnings, last", [
    (21, 0, "1 more error"), (20, 3, "3 more warnings"), (23, 1, "3 more errors and 1 more warning")])
def test_the_count_of_what_is_not_shown_says_errors_and_warnings(errors, warnings, last):
    said = [_Said("error")] * errors + [_Said("warning")] * warnings
    lines = format_diagnostics(said).split("\n")
    assert len(lines) == MAX_SHOWN_DIAGNOSTICS + 1 and lines[-1] == last


def test_twenty_or_fewer_are_all_shown_with_no_count():
    assert format_diagnostics([_Said("error")] * 20) == "\n".join(["a error"] * 20)


# ---- a file that is not text -------------------------------------------------------------------

@pytest.mark.parametrize("data, where, why", [
    (b"VMM1Hz {}\n\x7fELF\x00\x01", (2, 5), "not a text file (a NUL byte here)"),
    ("VMM1Hz {}\n".encode("utf-16"), (1, 1), "not a text file (UTF-16: it starts with a byte order mark); "
                                             "save it as UTF-8"),
])
def test_binary_data_is_not_text(data, where, why):
    assert not_text(data) == (*where, why)


def test_random_bytes_without_nuls_are_not_text():
    data = b"VMM1Hz {}\n// ok\n\xff" + random_bytes(4095).replace(b"\x00", b"x")
    line, col, why = not_text(data)
    assert (line, col) == (3, 1)  # the first byte that is not text
    assert why.startswith("not a text file (") and why.endswith(
        "% of its first 4,112 bytes are invalid UTF-8 or control characters; the first is here)")


@pytest.mark.parametrize("data", [
    b"", b"VMM1Hz { printf(\"hi\\n\"); }\n",
    "// caf\u00e9, \u00fcber, \u65e5\u672c\nVMM1Hz {}\r\n\f\t\v".encode("utf-8"),
    "// cr\u00e8me br\u00fbl\u00e9e \u00e0 la fa\u00e7on\nVMM1Hz {}\n".encode("latin-1"),  # a few stray bytes
])
def test_text_with_a_few_stray_bytes_is_text(data):
    assert not_text(data) is None


def test_emmettc_refuses_a_binary_file_in_one_line(tmp_path):
    (tmp_path / "rand.emt").write_bytes(random_bytes(4096))
    r = run("emmettc", "rand.emt", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == b""
    line, col, why = not_text(random_bytes(4096))
    assert r.stderr.decode() == f"rand.emt:{line}:{col}: error: {why}\n"


def test_an_included_binary_file_is_refused_in_one_line(tmp_path):
    (tmp_path / "data.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "main.emt").write_text('#include "data.bin"\nVMM1Hz { printf("hi\\n"); }\n')
    result = emmett.compile((tmp_path / "main.emt").read_text(), str(tmp_path / "main.emt"))
    assert [d.format() for d in result.diagnostics] == [
        f"{tmp_path / 'data.bin'}:3:1: error: not a text file (a NUL byte here)"]


@pytest.mark.parametrize("name, nul_is_binary", [("rand.vp", False), ("rand.emt", True)])
def test_vprobe_refuses_a_binary_script_in_one_line(tmp_path, name, nul_is_binary):
    data = b"(vprobe VMM1Hz (printf \"hi\\n\"))\n" + random_bytes(4096) + b"\n"  # vprobe ends a VP file with a newline
    (tmp_path / name).write_bytes(data)
    r = run("vprobe", "-d", "0", name, cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == b""
    line, col, why = not_text(data, nul_is_binary=nul_is_binary)
    assert r.stderr.decode() == f"{name}:{line}:{col}: error: {why}\n"


def test_the_vp_loader_refuses_binary_text_but_takes_any_byte_in_a_string():
    with pytest.raises(VPLoadError) as e:
        load(b"(vprobe VMM1Hz (printf \"hi\\n\"))\n" + b"\x00\x01\x02\xff" * 8, filename="x.vp")
    assert e.value.format() == ("x.vp:2:1: error: not a text file (50% of its first 64 bytes are invalid "
                                "UTF-8 or control characters; the first is here)")
    assert not_text(b'(defstring s "\x00\x01\xff")\n(vprobe VMXLoad (logstr s))', nul_is_binary=False) is None


# ---- progress of a long compile: on a terminal only --------------------------------------------

class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_names_the_stage_and_is_erased_at_the_end():
    screen = _Terminal()
    with CompileProgress("big.emt", screen, delay=0, interval=0.01) as progress:
        progress.stage("analysing")
        for _ in range(2000):  # a bounded wait for the first drawing
            if "analysing" in screen.getvalue():
                break
            progress._done.wait(0.005)
    shown = screen.getvalue()
    assert "\r\x1b[Kemmettc: big.emt: analysing... " in shown
    assert shown.endswith("\r\x1b[K")  # the line is erased before anything else is written


def test_no_progress_on_a_stream_that_is_not_a_terminal():
    stream = io.StringIO()
    with CompileProgress("big.emt", stream, delay=0, interval=0.01) as progress:
        progress.stage("analysing")
        assert progress._thread is None
    assert stream.getvalue() == ""


def test_the_driver_names_each_stage():
    stages = []
    result = emmett.compile("VMM1Hz { printf(\"hi\\n\"); }\n", "hi.emt",
                            emmett.CompileOptions(progress=stages.append))
    assert result.ok and stages == ["preprocessing", "parsing", "analysing", "generating VP"]


def test_emmettc_shows_no_progress_on_a_pipe(tmp_path):
    # A compile that takes over a second (the progress line's delay) on this machine.
    lines = [f"int f{i}(int x) {{ if (x > {i}) return x * {i} + 1; return x / 3; }}" for i in range(6000)]
    (tmp_path / "big.emt").write_text("\n".join(lines) + "\nVMM1Hz { logint(f1(VCPUID)); }\n")
    piped = run("emmettc", "big.emt", "-o", "big.vp", cwd=tmp_path)
    assert piped.returncode == 0 and piped.stderr == b""
