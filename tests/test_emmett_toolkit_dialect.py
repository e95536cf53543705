"""The VProbes toolkit's Emmett dialect, compiled by emmettc and run on the default machine.

Each form the toolkit's compiler accepts (its `cookbook/` and `preload/` use them) is
compiled here and, where it does something at run time, fired on the simulated guest.
The differential suite (tests/toolkit/) runs the same forms side by side with what the
toolkit's own compiler emitted; these tests also cover what that compiler gets wrong or
lacks (bit-field layout, library programs, the header lines' errors).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import emmett
from conftest import new_machine, run_machine

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def machine_symbols(tmp_path_factory) -> Path:
    """The default machine's kernel symbols, in a file."""
    path = tmp_path_factory.mktemp("syms") / "kallsyms"
    path.write_text(new_machine().symbol_text)
    return path


def compiled(source: str, **options) -> emmett.CompileResult:
    result = emmett.compile(source, "t.emt", emmett.CompileOptions(**options))
    assert result.ok, result.format_diagnostics()
    return result


def error_of(source: str, **options) -> str:
    result = emmett.compile(source, "t.emt", emmett.CompileOptions(**options))
    assert not result.ok, result.vp
    return result.diagnostics[0].format()


def run(source: str, seconds: float = 2, **options) -> str:
    """The log of `source`, compiled with the default preload, run on the default machine."""
    return run_machine(compiled(source, **options).vp, seconds)


def tool(name: str, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([str(BIN / name), *argv], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


# ---- aggregates, probes -------------------------------------------------------------------------

def test_aggregates_declared_with_integer_keys_only():
    log = run("aggr perCpu[1];\naggr pairs[2];\n"
              "VMM10Hz { perCpu[VCPUID]++; pairs[VCPUID, NUMVCPUS]++; }\n"
              "VMXUnload { logaggr(perCpu, pairs); }")
    assert "aggr: perCpu (1 integer key) (0 string keys)" in log
    assert re.search(r"^perCpu\[0x1\] == avg 1 count \d+", log, re.M)
    assert re.search(r"^pairs\[0x0, 0x2\] == avg 1 count \d+", log, re.M)
    assert "aggr NAME[N] needs its number of integer keys" in error_of("aggr a[];\nVMM1Hz { a[1]++; }")
    assert "aggr NAME[INTEGER-KEYS]" in error_of("aggr a[1][1][1];\nVMM1Hz { a[1]++; }")


def test_logaggr_and_clearaggr_of_several_aggregates():
    log = run("aggr a; aggr b;\nVMM10Hz { a[VCPUID]++; b[1]++; }\n"
              "VMX1Hz { logaggr(a, b); clearaggr(a, b); }", 2.5)
    assert log.count("aggr: a (") == 2 and log.count("aggr: b (") == 2
    counts = [int(n) for n in re.findall(r"^b\[0x1\] == avg 1 count (\d+)", log, re.M)]
    assert len(counts) == 2 and counts[1] <= 22  # ten a second on each VCPU, from 0 again
    assert "logaggr takes an aggregate" in error_of("aggr a; int x;\nVMM1Hz { a[1]++; logaggr(a, x); }")


def test_static_probes_with_their_domain():
    log = run('VMM:VMM1Hz { printf("vmm %d\\n", VCPUID); }\nVMX:VMX1Hz { printf("vmx\\n"); }')
    assert sorted(set(log.splitlines())) == ["vmm 0", "vmm 1", "vmx"]
    assert "VMM1Hz fires in the VMM, not in the VMX" in error_of('VMX:VMM1Hz { printf("x"); }')
    assert "unknown probe 'VMX1hz' (did you mean VMX1Hz?)" in error_of("VMX:VMX1hz { }")


def test_an_exit_probe_sees_the_return_value_in_its_parameter():
    log = run("aggr returned[1];\nint entered;\nENTER:vfs_read { entered++; }\n"
              "EXIT:vfs_read(int count) { returned[count]++; }\n"
              'VMXUnload { logaggr(returned); printf("entered %d\\n", entered); }')
    count = int(re.search(r"^returned\[0x1000\] == avg 1 count (\d+)", log, re.M).group(1))
    entered = int(re.search(r"^entered (\d+)", log, re.M).group(1))
    assert count > 10 and entered - count in range(0, 3)  # every read returns its 4096 bytes


def test_a_step_probe_is_refused_with_the_reason():
    assert "STEP: probes are not supported" in error_of('GUEST:STEP:vfs_read { printf("x"); }')


def test_names_with_a_module_prefix_from_a_windbg_symbol_file(tmp_path, machine_symbols):
    address = next(line.split()[0] for line in machine_symbols.read_text().splitlines()
                   if line.endswith(" vfs_read"))
    (tmp_path / "nt.syms").write_text(f"{address[:8]}`{address[8:]} nt!NtReadFile\n")
    (tmp_path / "win.vmx").write_text('vprobe.enable = "TRUE"\nvprobe.guestSyms = "nt.syms"\n')
    (tmp_path / "t.emt").write_text("GUEST:nt!NtReadFile {\n"
                                    '   printf("%d %d\\n", RIP == &nt!NtReadFile, RIP != 0);\n   exit();\n}\n')
    r = tool("vprobe", "win.vmx", "-d", "3", "t.emt", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == "1 1\n", r.stderr
    vp = compiled("VMM1Hz { if (VCPUID != 1) printf(\"%d\\n\", VCPUID!=1); }").vp
    assert "(!= VCPUID 1)" in vp  # '!' joins names, not 'a!=b'


# ---- constants, offat*, names ---------------------------------------------------------------------

def test_the_predefined_constants_and_a_program_s_own_declaration_of_one():
    log = run('VMMLoad { if (VCPUID == 0) printf("%d %d %d %#x %d\\n", NULL, REG_RSP, REG_R15, '
              "VT_EXIT_QUAL, getgpr(REG_RSP) == RSP); }")
    assert log == "0 4 15 0x6400 1\n"
    assert run('int REG_RAX = 7;\nVMMLoad { if (VCPUID == 0) printf("%d\\n", REG_RAX); }') == "7\n"


def test_offat_forms_of_symbol_addresses(machine_symbols):
    log = run('memmodel guest64;\nVMM1Hz { printf("%#x %#x %#x\\n", offatret(&sys_getpid), '
              "offatseg(&sys_getpid), offatstrcpy(&get_task_comm, &strncpy)); exit(); }",
              symbols_file=str(machine_symbols))
    from machine.guest import layout as L
    assert [int(x, 16) for x in log.split()] == [L.TASK_TGID, L.PERCPU_CURRENT_TASK, L.TASK_COMM]


def test_a_function_named_like_a_vp_builtin_the_dialect_does_not_declare():
    result = compiled("int logint(int x) { return x + 1; }\n"
                      'VMMLoad { if (VCPUID == 0) printf("%d\\n", logint(41)); }')
    assert "(defun _logint (x)" in result.vp and "hides the VP builtin" in result.diagnostics[0].message
    assert run_machine(result.vp, 1) == "42\n"
    assert "'printf' is a built-in function and cannot be redefined" in error_of(
        "int printf(int x) { return x; }\nVMM1Hz { }")


# ---- structs --------------------------------------------------------------------------------------

CURRENT_TASK = """memmodel guest64;
%s
struct task *current() { return *(struct task **)(GSBASE >= 0x100000000 ? GSBASE : KERNELGSBASE); }
"""


def lines_about_the_running_task(structs: str, printf_args: str) -> set[str]:
    """The distinct lines `printf(printf_args)` prints at VMM10Hz while a task runs, with `structs`
    (which declare `struct task`) in the program; there must be some."""
    log = run(CURRENT_TASK % structs + "VMM10Hz {\n   if (current() != 0)\n"
              f"      printf({printf_args});\n}}")
    assert log
    return set(log.splitlines())


def test_pinned_fields_in_any_order_read_the_running_task():
    from machine.guest import layout as L
    struct = (f"struct task {{ @{L.TASK_COMM:#x} char comm[16]; long after_comm; @{L.TASK_TGID:#x} int tgid; "
              f"@{L.TASK_PID:#x} int pid; }}")
    assert lines_about_the_running_task(struct, '"%d %d %d\\n", current()->tgid == curpid(), '
                                        "current()->pid == curtid(), "
                                        "strcmp((string)current()->comm, curprocname()) == 0") == {"1 1 1"}
    message = error_of("struct s { @0x8 int a; @0x4 long b; };\nVMM1Hz { }")
    assert message.startswith("t.emt:1:12: error: the field pinned at offset 0x8 overlaps the one before it in "
                              "offset order, which ends at 0xc")  # b: @0x4, 8 bytes


def test_struct_bodies_without_their_semicolon():
    vp = compiled('struct a { int x; }\nstruct b { struct a inner; long y; }\nenum e { ONE = 1 }\n'
                  'int n;\nVMM1Hz { n = ONE; printf("%d %d\\n", sizeof(struct b), n); }').vp
    assert '(printf "%d %d\\n" 16 n)' in vp


def test_bit_fields_are_laid_out_as_c_compilers_do_and_read_from_guest_memory():
    sizes = compiled("struct s { unsigned a : 3, b : 5; int : 0; unsigned c : 30, d : 4; long e; };\n"
                     "struct t { char a; unsigned b : 12, c : 12; unsigned short d : 9; char e; };\n"
                     "struct t *p;\n"
                     'VMM1Hz { printf("%d %d %d\\n", sizeof(struct s), sizeof(struct t), &p->e - (char *)p); }').vp
    assert '(printf "%d %d %d\\n" 24 8 (- (+ p 6) p))' in sizes  # as GCC lays them out for x86-64
    from machine.guest import layout as L
    struct = (f"struct task {{ @{L.TASK_TGID:#x} unsigned low : 4, high : 4, rest : 24; }}\n"
              f"struct whole {{ @{L.TASK_TGID:#x} unsigned tgid; }}")
    assert lines_about_the_running_task(struct, '"%d\\n", current()->low + 16 * current()->high + '
                                        "256 * current()->rest == ((struct whole *)current())->tgid") == {"1"}
    assert "bit-field 'x' is 33 bits wide" in error_of("struct s { int x : 33; };\nVMM1Hz { }")
    assert "must have an integer type" in error_of("struct s { char *x : 3; };\nVMM1Hz { }")
    assert "cannot take the address of bit-field 'x'" in error_of(
        "struct s { int x : 3; };\nstruct s *p;\nVMM1Hz { printf(\"%d\\n\", &p->x); }")


# ---- expressions, statements ----------------------------------------------------------------------

def test_comma_expressions():
    log = run("int a, b;\nint next() { return a++, a; }\n"
              'VMMLoad { if (VCPUID == 0) { a = 1, b = 2; if (b++, b == 3) printf("%d %d %d\\n", a, b, (a = 5, next())); } }')
    assert log == "1 3 6\n"


def test_try_catch_is_refused_with_the_reason():
    assert "'try'/'catch' is not supported" in error_of("int x;\nVMM1Hz { try { x = 1; } catch { x = 2; } }")


# ---- programs, files, header lines -----------------------------------------------------------------

def test_header_lines_set_the_memory_model_and_name_the_symbol_file(tmp_path, machine_symbols):
    (tmp_path / "kallsyms").write_text(machine_symbols.read_text())
    (tmp_path / "t.emt").write_text("@MEMORY_MODEL = guest32\n@SYMBOL_FILE = kallsyms\n"
                                    'VMMLoad { if (VCPUID == 0) printf("%d %#x\\n", sizeof(long), &vfs_read); }\n')
    r = tool("vprobe", "-d", "1", str(tmp_path / "t.emt"), cwd=tmp_path.parent)  # the symbol file is beside it
    vfs_read = next(line.split()[0] for line in machine_symbols.read_text().splitlines() if line.endswith(" vfs_read"))
    assert r.returncode == 0 and r.stdout == f"4 0x{int(vfs_read, 16):x}\n", r.stderr
    assert "@SYMBOL_FILE is ignored" in r.stderr  # the VM's own symbols win: here, the same
    assert "'@VM1' is ESX only" in error_of("@VM1 = web01\nVMM1Hz { }")
    assert error_of("@SYMBOL_FILE = /nonexistent.syms\nVMM1Hz { }").startswith(
        "t.emt:1:1: error: cannot read the guest symbol file '/nonexistent.syms' this line names")
    assert "unknown header line '@FOO'" in error_of("@FOO = 1\nVMM1Hz { }")


def test_a_library_and_a_program_in_two_files_and_code_after_them(tmp_path):
    (tmp_path / "lib.emt").write_text("int twice(int x) { return 2 * x; }\n")
    r = tool("emmettc", "lib.emt", cwd=tmp_path)
    assert r.returncode == 0 and "(defun twice (x)" in r.stdout and "compiled as a library" in r.stderr
    r = tool("emmettc", "-c", "int base() { return 20; }", "lib.emt", "-c",
             'VMMLoad { if (VCPUID == 0) printf("%d\\n", twice(base()) + 2); }', "-o", "t.vp", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    vp = (tmp_path / "t.vp").read_text()
    assert vp.index("(defun base") < vp.index("(defun twice")  # read in the order given
    r = tool("vprobe", "-d", "1", "t.vp", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == "42\n", r.stderr
    r = tool("emmettc", "-c", "VMM1Hz { x = ; }", "-c", "VMM1Hz { }", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.startswith("<command line 1>:1:14: error: ")
