"""The `emmettc` command: options, output, exit status, and never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EMMETTC = Path(sys.executable).parent / "emmettc"
REPO = Path(__file__).resolve().parent.parent
HELLO = REPO / "cookbook" / "hello.emt"


def emmettc(*argv: str, stdin: bytes | None = None, cwd: str | Path | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.pop("PYTHONWARNINGS", None)
    full_env.update(env or {})
    return subprocess.run([str(EMMETTC), *argv], input=stdin, capture_output=True, timeout=60,
                          cwd=cwd, env=full_env)


def text(data: bytes) -> str:
    return data.decode("utf-8")


def test_compiles_a_file_to_standard_output():
    r = emmettc("cookbook/hello.emt", cwd=REPO)
    assert r.returncode == 0, text(r.stderr)
    # The VP, then its annotations (docs/architecture.md): where each part comes from in hello.emt.
    assert text(r.stdout) == ('(version "1.0")\n\n(vprobe VMM1Hz\n  (printf "hello!\\n"))\n'
                              ';@emmett 1 lines=4\n;@file 0 "cookbook/hello.emt"\n;@map 3 1=3:1\n;@map 4 3=4:5\n')
    assert r.stderr == b""


def test_o_writes_the_output_file(tmp_path):
    out = tmp_path / "hello.vp"
    r = emmettc(str(HELLO), "-o", str(out))
    assert r.returncode == 0 and r.stdout == b""
    assert out.read_text().startswith('(version "1.0")')


def test_c_compiles_code_from_the_command_line():
    r = emmettc("-c", 'VMM1Hz { logint(VCPUID); }')
    assert r.returncode == 0
    assert "(logint VCPUID)" in text(r.stdout)


def test_reads_standard_input():
    r = emmettc(stdin=b'VMM1Hz { printf("in\\n"); }')
    assert r.returncode == 0 and '(printf "in\\n")' in text(r.stdout)
    r = emmettc("-", stdin=b'VMM1Hz { x = ; }')
    assert r.returncode == 1 and text(r.stderr).startswith("<stdin>:1:14: error: syntax error")


def test_include_dirs_and_defines(tmp_path):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "greet.emt").write_text("#define GREETING \"hi\"\n")
    src = tmp_path / "main.emt"
    src.write_text('#include "greet.emt"\nVMM1Hz { printf("%s %d %d\\n", GREETING, LEVEL, FLAG); }\n')
    r = emmettc(str(src), "-I", str(tmp_path / "inc"), "-D", "LEVEL=3", "-D", "FLAG")
    assert r.returncode == 0, text(r.stderr)
    assert '(printf "%s %d %d\\n" "hi" 3 1)' in text(r.stdout)


def test_symbols_memmodel_auto_aggr_indent_and_no_preload(tmp_path):
    syms = tmp_path / "kallsyms"
    syms.write_text("ffffffff81600000 D jiffies\n")
    r = emmettc("-c", "VMM1Hz { x = *(long *)&jiffies; }", "-s", str(syms))
    assert r.returncode == 0 and "(getguest 0xffffffff81600000)" in text(r.stdout)
    r = emmettc("-c", "VMM1Hz { x = *(long *)RAX; }", "-m", "guest32")
    assert "(& 0xffffffff (getguest RAX))" in text(r.stdout)
    r = emmettc("-c", "Guest_PF { pf[CR2]++; }", "-a")
    assert "(vprobe VMM1Hz\n  (cond ((== VCPUID 0) (do (logaggr pf) (clearaggr pf)))))" in text(r.stdout)
    r = emmettc("-c", "VMM1Hz { x = 1; }", "-i", "4")
    assert "(vprobe VMM1Hz\n    (setint x 1))" in text(r.stdout)
    r = emmettc("-c", "VMM1Hz { x = curpid(); }", "--no-preload")
    assert r.returncode == 1 and "--no-preload" in text(r.stderr)
    r = emmettc("-c", "VMM1Hz { x = curpid(); }")
    assert r.returncode == 0 and "(defun curpid ()" in text(r.stdout)


def test_errors_go_to_stderr_with_exit_status_1(tmp_path):
    src = tmp_path / "bad.emt"
    src.write_text("VMM1Hz {\n    x = nosuch;\n    y = 1 + zork;\n}\n")
    r = emmettc(str(src))
    assert r.returncode == 1
    assert r.stdout == b""
    assert text(r.stderr) == (
        f"{src}:2:9: error: unknown name 'nosuch'\n    x = nosuch;\n        ^\n"
        f"{src}:3:13: error: unknown name 'zork'\n    y = 1 + zork;\n            ^\n")


def test_warnings_do_not_fail_the_compilation():
    r = emmettc("-c", "int f() { return 1; x = 2; } VMM1Hz { y = f(); }")
    assert r.returncode == 0
    assert "warning: unreachable code after 'return'" in text(r.stderr)


@pytest.mark.parametrize("argv", [
    ["/nonexistent/file.emt"],
    ["--no-such-option"],
    ["-i", "-3", str(HELLO)],
    ["-D", "1BAD", str(HELLO)],
    [str(HELLO), "-o", "/nonexistent/dir/out.vp"],
])
def test_bad_usage_exits_1_without_a_traceback(argv):
    r = emmettc(*argv)
    assert r.returncode == 1
    assert b"Traceback" not in r.stderr
    assert text(r.stderr).strip()


def test_garbage_input_never_shows_a_traceback(tmp_path):
    junk = tmp_path / "junk.emt"
    junk.write_bytes(bytes(range(256)) * 4 + b"\xff\xfe{{{(((")
    r = emmettc(str(junk))
    assert r.returncode == 1
    assert b"Traceback" not in r.stderr


def test_an_internal_error_is_one_located_line_and_exit_status_2():
    code = ("import emmett.sema as s\n"
            "def boom(self): raise KeyError('boom')\n"
            "s.Program.resolve_all = boom\n"
            "from emmett.cli import main\n"
            "main(['-c', 'VMM1Hz { }'])\n")
    env = dict(os.environ)
    env.pop("EMMETT_DEBUG", None)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, env=env)
    assert r.returncode == 2
    assert b"Traceback" not in r.stderr
    lines = text(r.stderr).splitlines()
    assert lines[0] == "<command line>:1:1: error: internal error: KeyError: 'boom'"


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "emmett.cli", str(HELLO)], capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith(b'(version "1.0")')


def test_the_compiler_imports_only_the_language_spec_of_the_runtime_and_not_the_machine():
    code = ("import sys, emmett\n"
            "r = emmett.compile(open(sys.argv[1]).read(), 'vt-exit.emt')\n"
            "assert r.ok\n"
            "assert 'vp_runtime.spec' in sys.modules\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('vp_runtime', 'machine', 'vprobe_tools')\n"
            "             and m != 'vp_runtime' and not m.startswith('vp_runtime.spec'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code, str(REPO / "cookbook" / "vt-exit.emt")], check=True, timeout=60)


def test_an_internal_error_is_located_at_the_construct_being_compiled(monkeypatch):
    import emmett
    from emmett.lower import Lowerer

    def boom(self, e, ctx, discard):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(Lowerer, "x_Binary", boom)
    monkeypatch.delenv("EMMETT_DEBUG", raising=False)
    result = emmett.compile("VMM1Hz { }\n\nint f()\n{\n    return 1 + RAX;\n}\nVMM10Hz { f(); }\n", "t.emt")
    assert result.internal_error and not result.ok and result.vp is None
    (d,) = result.diagnostics
    assert d.format() == "t.emt:3:5: error: internal error: ZeroDivisionError: boom\nint f()\n    ^"


def test_help():
    r = emmettc("--help")
    assert r.returncode == 0 and text(r.stdout).startswith("usage: emmettc")


def test_attached_option_values(tmp_path):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "v.emt").write_text("#define V 7\n")
    r = emmettc("-c", '#include "v.emt"\nVMM1Hz { logint(V + W); }', f"-I{tmp_path / 'inc'}", "-DW=2", "-i0")
    assert r.returncode == 0, text(r.stderr)
    assert "(vprobe VMM1Hz\n(logint 9))" in text(r.stdout)


def test_the_compiler_bytecode_is_cached_outside_the_source_tree(tmp_path):
    r = emmettc(str(HELLO), env={"XDG_CACHE_HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"})
    assert r.returncode == 0
    cached = list((tmp_path / "vprobes-toolchain" / "pycache").rglob("driver.*.pyc"))
    assert cached and all(REPO not in p.parents for p in cached)


def test_o_dash_writes_the_vp_to_standard_output(tmp_path):
    r = emmettc(str(HELLO), "-o", "-", cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == b""
    plain = emmettc(str(HELLO), cwd=tmp_path)
    assert r.stdout == plain.stdout and r.stdout.startswith(b'(version "1.0")')
    assert list(tmp_path.iterdir()) == []  # no file named '-'


def test_o_dash_with_errors_writes_nothing_to_standard_output():
    r = emmettc("-c", "VMM1Hz { x = ; }", "-o", "-")
    assert r.returncode == 1 and r.stdout == b""
    assert text(r.stderr).startswith("<command line>:1:14: error: syntax error")


@pytest.mark.parametrize("cache", ["not-a-directory", "missing/deeper/cache"])
def test_compiles_without_a_usable_cache_and_without_a_word_about_it(tmp_path, cache):
    """A cache folder that cannot be made (a file is in the way) or does not exist yet:
    the tables are built in memory (or the folder is made), the compile is the same."""
    (tmp_path / "not-a-directory").write_text("")
    for dont_write_bytecode in ("", "1"):
        r = emmettc(str(HELLO), env={"XDG_CACHE_HOME": str(tmp_path / cache),
                                     "PYTHONDONTWRITEBYTECODE": dont_write_bytecode})
        assert r.returncode == 0 and r.stderr == b""
        assert r.stdout.startswith(b'(version "1.0")\n\n(vprobe VMM1Hz')
    assert (tmp_path / "not-a-directory").read_text() == ""


def test_without_a_home_directory_nothing_is_cached_and_nothing_lands_in_the_current_folder(tmp_path):
    """No HOME and no XDG_CACHE_HOME, for a user the password database does not know: the
    tables are built in memory, never in a folder named '~' where emmettc runs."""
    code = ("import os, sys\n"
            "os.environ.pop('HOME', None); os.environ.pop('XDG_CACHE_HOME', None)\n"
            "os.path.expanduser = lambda path: path\n"
            "from emmett.cli import main\n"
            "sys.argv = ['emmettc', sys.argv[1]]\n"
            "main()\n")
    r = subprocess.run([sys.executable, "-c", code, str(HELLO)], capture_output=True, timeout=60, cwd=tmp_path,
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert r.returncode == 0 and r.stderr == b""
    assert r.stdout.startswith(b'(version "1.0")')
    assert list(tmp_path.iterdir()) == []
