"""`vprobe` end to end on the embedded machine: sources, compiling, listings, -f json, -a, -s, .vmx output.

Most runs call the command in process (`commands.vprobe.run`, with byte streams);
a few go through the installed console script.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vprobe_tools.commands.vprobe import run

BIN = Path(sys.executable).parent


def _has_emmett() -> bool:
    try:
        import emmett
    except Exception:
        return False
    return callable(getattr(emmett, "compile", None)) and hasattr(emmett, "CompileOptions")


needs_emmett = pytest.mark.skipif(not _has_emmett(), reason="the Emmett compiler (emmett.compile) is not available yet")


class Result:
    def __init__(self, status: int, out: bytes, err: bytes):
        self.status, self.out, self.err = status, out, err.decode("utf-8", "replace")

    @property
    def text(self) -> str:
        return self.out.decode("latin-1")


def vprobe(*argv: str, stdin: bytes = b"") -> Result:
    out, err = io.BytesIO(), io.BytesIO()
    status = run([str(a) for a in argv], io.BytesIO(stdin), out, err)
    result = Result(status, out.getvalue(), err.getvalue())
    assert "Traceback" not in result.err
    return result


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---- VP sources --------------------------------------------------------------------------------------

def test_stdout_is_exactly_the_log(tmp_path):
    script = write(tmp_path / "hello.vp", '(vprobe VMM1Hz (printf "hello!\\n"))')
    result = vprobe("-d", "2", script)
    assert (result.status, result.out, result.err) == (0, b"hello!\n" * 4, "")


def test_vp_files_are_concatenated_in_order(tmp_path):
    lib = write(tmp_path / "lib.vp", "(definteger n 41)\n(defun next () (setint n (+ n 1)))\n")
    main = write(tmp_path / "main.vp", "(vprobe VMXLoad (logint (next)) (logstr \"\\n\"))\n")
    assert vprobe("-d", "0", lib, main).out == b"42\n"


def test_a_load_error_is_located_in_its_own_file_and_line(tmp_path):
    lib = write(tmp_path / "lib.vp", "(definteger n 41)\n\n(defun next () (setint n (+ n 1)))\n")
    main = write(tmp_path / "main.vp", "; main\n(vprobe VMXLoad\n  (logint (nxet)))\n")
    result = vprobe("-d", "0", lib, main)
    assert result.status == 1 and result.out == b""
    assert result.err.startswith(f"{main}:3:12: error: call to undefined function 'nxet'\n  (logint (nxet)))\n")


def test_a_duplicate_definition_names_the_other_file(tmp_path):
    a = write(tmp_path / "a.vp", "(definteger x)\n")
    b = write(tmp_path / "b.vp", "\n(definteger x)\n(vprobe VMXLoad (logint x))\n")
    result = vprobe("-d", "0", a, b)
    assert result.status == 1
    first = result.err.splitlines()[0]
    assert first.startswith(f"{b}:2:") and f"already defined at {a} line 1" in first


def test_run_time_faults_point_into_the_file_that_faulted(tmp_path):
    a = write(tmp_path / "a.vp", '(vprobe VMXLoad (logstr "a\\n"))\n')
    b = write(tmp_path / "b.vp", '\n\n(vprobe VMXLoad (logint (getguest "nope")))\n')
    result = vprobe("-d", "0", a, b)
    assert result.status == 0
    assert result.text == f"a\nvprobe error: probe VMXLoad aborted at {b}:3:25: unknown guest symbol 'nope'\n"


def test_the_guest_library_is_added_on_demand(tmp_path):
    script = write(tmp_path / "pid.vp", '(vprobe VMXLoad (printf "%s\\n" (curprocname)))')
    result = vprobe("-d", "0", script)
    assert result.status == 0 and result.out.endswith(b"\n") and result.out.strip()


def test_emmett_and_vp_cannot_be_mixed(tmp_path):
    result = vprobe(write(tmp_path / "a.emt", "VMM1Hz { }"), write(tmp_path / "b.vp", "(vprobe VMM1Hz)"))
    assert result.status == 1
    assert result.err.startswith("vprobe: cannot mix Emmett (.emt) and VP scripts in one run")


@pytest.mark.parametrize("argv, message", [
    (["-c", "VMM1Hz {}", "x.vp"], "give script files, -c CODE or -i, not several of them"),
    (["-r"], "-r needs the VM: vprobe -r VM.vmx"),
    (["nope.vp"], "cannot read nope.vp: No such file or directory"),
    ([], "give a script file, -c CODE, or -i to read VP from standard input"),
])
def test_usage_problems_are_plain_messages(argv, message):
    result = vprobe(*argv)
    assert result.status == 1 and result.out == b""
    assert result.err == f"vprobe: {message}\n"


@pytest.mark.parametrize("seconds", ["nan", "-1", "inf", "1e300", "soon"])
def test_a_duration_must_be_a_sensible_number_of_seconds(seconds, tmp_path):
    result = vprobe("-d", seconds, write(tmp_path / "t.vp", '(vprobe VMM1Hz (printf "x\\n"))'))
    assert result.status == 2 and result.out == b""
    usage, error = result.err.splitlines()
    assert usage == "usage: vprobe [options] [VM.vmx] [SCRIPT.emt ... | SCRIPT.vp ...]"
    assert error.startswith("vprobe: error: Invalid value for '-d' / '--duration': ")
    assert ("not a number of seconds: 'soon'" if seconds == "soon" else "from 0 to 3.1536e+09") in error


def test_help_reads_like_a_man_page(capsys):
    assert run(["--help"], io.BytesIO(), io.BytesIO(), io.BytesIO()) == 0
    text = capsys.readouterr().out
    for section in ("NAME", "DESCRIPTION", "EXAMPLES", "FILES", "EXIT STATUS", "SEE ALSO"):
        assert f"\n{section}\n" in text
    for option in ("-c CODE", "-i,", "-d SECONDS", "-r,", "-l,", "-p,", "-g,", "--syms FILE", "-f {text,json}",
                   "-a,", "-s,", "--sort", "--reverse", "--top N", "--folded", "--dot", "--kallsyms",
                   "--host-config FILE"):
        assert option in text, option


# ---- listings ------------------------------------------------------------------------------------------

def test_probe_global_and_symbol_listings():
    result = vprobe("-p", "-g", "--kallsyms")
    lines = result.text.splitlines()
    assert result.status == 0
    assert any(line.startswith("VMM1Hz ") for line in lines)
    assert any(line.startswith("GUEST:sys_read ") for line in lines)
    assert any(line.split()[:3] == ["RIP", "integer", "per-VCPU"] for line in lines)
    assert any(line.endswith(" T sys_read") for line in lines)


def test_probe_patterns_are_shell_globs_over_the_names():
    result = vprobe("-p", "GUEST:sys_*")
    names = [line.split()[0] for line in result.text.splitlines()]
    assert result.status == 0 and "GUEST:sys_read" in names and "GUEST:sys_getpid" in names
    assert all(name.startswith("GUEST:sys_") for name in names)
    both = vprobe("-p", "Guest_P?", "VMM1[0-9]Hz").text.splitlines()
    assert [line.split()[0] for line in both] == ["VMM10Hz", "Guest_PF"]  # in the VM's order


def test_a_pattern_that_matches_nothing_says_so():
    result = vprobe("-p", "GUEST:sys_nope*")
    assert (result.status, result.out) == (1, b"")
    assert result.err == ("vprobe: no probe point matches 'GUEST:sys_nope*' (names are case-sensitive; "
                          "shell globs: * ? [...])\n")


def test_a_script_given_to_p_is_not_a_pattern():
    result = vprobe("-p", "nonexist.emt")
    assert (result.status, result.out) == (1, b"")
    assert "not scripts: nonexist.emt is a script's name" in result.err and "vprobe -l SCRIPT" in result.err


def test_verbose_probes_show_what_each_argument_holds():
    lines = vprobe("-p", "-v", "Disk_IOFinish", "VMM1Hz", "GUEST:sys_read").text.splitlines()
    assert lines[0].startswith("VMM1Hz ") and lines[1] == "    no arguments"
    assert lines[2].startswith("Disk_IOFinish ")
    assert lines[3:5] == ["    ARG0  adapter type", "    ARG1  controller ID"]
    assert "    ARG6  number of sectors" in lines
    assert lines[-2].startswith("GUEST:sys_read ") and "RDI, RSI, RDX" in lines[-1]


def test_listings_in_json():
    probes = [json.loads(line) for line in vprobe("-p", "-f", "json", "Guest_IRQ", "USEC*").text.splitlines()]
    assert probes[0] == {"type": "probe", "name": "Guest_IRQ", "description": "before a hardware interrupt is delivered",
                         "args": [{"name": "ARG0", "meaning": "IRQ vector"}]}
    assert probes[1]["name"] == "USEC:<n>" and probes[1]["args"] == [] and probes[1]["note"] == "no arguments"
    (rip,) = [json.loads(line) for line in vprobe("-g", "-f", "json", "RIP").text.splitlines()]
    assert rip["type"] == "global" and (rip["name"], rip["value_type"], rip["scope"]) == ("RIP", "integer", "per-VCPU")


@pytest.mark.parametrize("argv, message", [
    (["--folded", "-d", "1"], "--folded needs -s (--stacks)"),
    (["--dot", "-a", "-d", "1"], "--dot needs -s (--stacks)"),
    (["--offsets", "-d", "1"], "--offsets needs -s (--stacks)"),
    (["--sort", "max", "-d", "1"], "--sort needs -a (--aggregates)"),
    (["--no-refresh", "-s", "-d", "1"], "--no-refresh needs -a (--aggregates)"),
    (["--top", "3", "-d", "1"], "--top needs -a (--aggregates) or -s (--stacks)"),
    (["-v", "-g"], "--verbose needs -p (--list-probes)"),
])
def test_an_option_that_needs_another_says_so(tmp_path, argv, message):
    script = write(tmp_path / "t.vp", "(vprobe VMM1Hz 1)")
    result = vprobe(*argv, script)
    assert (result.status, result.out, result.err) == (1, b"", f"vprobe: {message}\n")


# ---- nothing collected is lost from view --------------------------------------------------------------

@needs_emmett
def test_an_emmett_aggregate_never_logged_is_printed_at_unload():
    result = vprobe("-d", "3", "-c", "GUEST:system_call { calls[curprocname()]++; }")
    assert result.status == 0
    lines = result.text.splitlines()
    assert lines[0] == "aggr: calls (0 integer keys) (1 string key)"
    assert any(line.startswith('calls["mysqld"] == avg 1 count ') for line in lines[1:])
    assert len(lines) >= 3 and all(line.startswith("calls[") for line in lines[1:])


def test_only_aggregates_the_run_never_logged_are_printed_at_unload(tmp_path):
    script = write(tmp_path / "t.vp", "(defaggr seen 0 0)\n(defaggr unseen 0 0)\n(defaggr empty 1 1)\n"
                                      "(vprobe VMM1Hz (aggr seen () () 1) (aggr unseen () () 2) (logaggr seen))\n"
                                      '(vprobe VMXUnload (printf "bye\\n"))\n')
    result = vprobe("-d", "1", script)
    assert result.text == ("aggr: seen (0 integer keys) (0 string keys)\nseen[] == avg 1 count 1 min 1 max 1 latest 1\n"
                           "aggr: seen (0 integer keys) (0 string keys)\nseen[] == avg 1 count 2 min 1 max 1 latest 1\n"
                           "bye\n"
                           "aggr: unseen (0 integer keys) (0 string keys)\nunseen[] == avg 2 count 2 min 2 max 2 latest 2\n")
    # (empty never collected anything: nothing of it to show)


def test_aggregates_printed_at_unload_show_as_tables_with_a(tmp_path):
    script = write(tmp_path / "t.vp", "(defaggr irqs 1 0)\n(vprobe Guest_IRQ (aggr irqs (ARG0) () 1))\n")
    result = vprobe("-a", "-d", "1", script)
    assert result.text.startswith("aggr: irqs  (1 integer key, 0 string keys)  epoch 1  total count ")


# ---- JSON ----------------------------------------------------------------------------------------------

def test_json_output_has_log_aggregate_and_error_objects(tmp_path):
    script = tmp_path / "j.vp"
    script.write_bytes(b'(defaggr a 1 1)\n'
                       b'(vprobe VMXLoad (logstr "caf\xc3\xa9\\n") (aggr a (7) ("k") 3)\n'
                       b'  (logaggr a) (logint (getguest "nope")))\n')
    result = vprobe("-d", "0", "-f", "json", script)
    objects = [json.loads(line) for line in result.out.decode("ascii").splitlines()]
    assert objects[0] == {"type": "log", "data": "caf\xc3\xa9\n"}  # the log's bytes, one character each
    assert objects[1] == {"type": "aggr", "name": "a", "int_keys": 1, "str_keys": 1,
                          "entries": [{"keys": [7, "k"], "avg": 3, "count": 1, "min": 3, "max": 3, "latest": 3}]}
    assert objects[2]["type"] == "error" and objects[2]["probe"] == "VMXLoad"
    assert (objects[2]["file"], objects[2]["line"], objects[2]["col"]) == (str(script), 3, 23)
    assert len(objects) == 3


# ---- -a and -s --------------------------------------------------------------------------------------------

AGGR_VP = ('(defaggr irqs 1 0)\n'
           '(vprobe Guest_IRQ (aggr irqs (VCPUID) () 1))\n'
           '(vprobe VMXUnload (printf "done\\n") (logaggr irqs))\n')
STACK_VP = ('(defstring s)\n(defaggr st 0 1)\n'
            '(vprobe GUEST:sys_read (gueststack s) (aggr st () (s) 1))\n'
            '(vprobe VMXUnload (logaggr st))\n')


def test_sorted_aggregates_of_a_vp_script(tmp_path):
    result = vprobe("-d", "1", "-a", write(tmp_path / "irqs.vp", AGGR_VP))
    assert result.status == 0
    lines = result.text.splitlines()
    assert lines[0] == "done"
    assert lines[1].startswith("aggr: irqs  (1 integer key, 0 string keys)  epoch 1  total count ")
    assert lines[2].split() == ["key", "count", "avg", "min", "max", "latest", "%", "bar"]
    rows = [line.split() for line in lines[3:]]
    assert sorted(row[0] for row in rows) == ["0x0", "0x1"]  # one row per VCPU
    counts = [int(row[1]) for row in rows]
    assert counts == sorted(counts, reverse=True)


def test_sorted_aggregates_by_key_with_top(tmp_path):
    result = vprobe("-d", "1", "-a", "--sort", "key", "--top", "1", write(tmp_path / "irqs.vp", AGGR_VP))
    lines = result.text.splitlines()
    assert lines[3].split()[0] == "0x0" and lines[4].startswith("(1 more entry not shown, count ")


def test_formatted_stacks_of_a_running_guest(tmp_path):
    result = vprobe("-d", "3", "-s", write(tmp_path / "st.vp", STACK_VP))
    assert result.status == 0
    lines = result.text.splitlines()
    assert lines[0].startswith("stack 1: count ")
    assert lines[1] == "  sys_read+0x0" and lines[2].startswith("  system_call+0x")


def test_folded_and_dot_stacks(tmp_path):
    script = write(tmp_path / "st.vp", STACK_VP)
    folded = vprobe("-d", "3", "-s", "--folded", script).text.splitlines()
    assert folded and all(line.rsplit(" ", 1)[0].endswith(";system_call;sys_read") for line in folded)
    dot = vprobe("-d", "3", "-s", "--dot", script).text
    assert dot.startswith("digraph stacks {\n") and " -> " in dot


def test_syms_file_names_the_frames(tmp_path):
    from machine import SimulatedMachine, default_config

    renamed = SimulatedMachine(default_config()).symbol_text.replace(" T sys_read\n", " T my_read\n")
    syms = write(tmp_path / "kallsyms", renamed)
    result = vprobe("-d", "3", "-s", "--folded", "--syms", syms, write(tmp_path / "st.vp", STACK_VP))
    assert all(line.rsplit(" ", 1)[0].endswith(";system_call;my_read") for line in result.text.splitlines())


def test_aggregates_and_stacks_together(tmp_path):
    result = vprobe("-d", "3", "-a", "-s", write(tmp_path / "st.vp", STACK_VP))
    text = result.text
    assert text.index("aggr: st  (0 integer keys, 1 string key)") < text.index("stack 1: count ")
    assert "\nsystem_call+0x" in text  # the stack key, symbolized in the table


# ---- .vmx machines --------------------------------------------------------------------------------------

def test_a_vmx_machine_writes_the_log_to_its_out_file_too(tmp_path):
    vmx = write(tmp_path / "web01.vmx", 'vprobe.enable = "TRUE"\nvprobe.outFile = "probe.log"\n')
    result = vprobe("-d", "1", "-a", vmx, write(tmp_path / "irqs.vp", AGGR_VP))
    log = (tmp_path / "probe.log").read_text()
    assert log.startswith("done\naggr: irqs (1 integer key) (0 string keys)\nirqs[0x")  # the raw log
    assert result.text.startswith("done\naggr: irqs  (1 integer key, 0 string keys)")  # what -a shows


def test_a_vmx_without_vprobes_enabled_refuses(tmp_path):
    vmx = write(tmp_path / "off.vmx", 'vprobe.enable = "FALSE"\n')
    result = vprobe("-d", "0", vmx, write(tmp_path / "h.vp", "(vprobe VMXLoad (logint 1))"))
    assert result.status == 1 and "VProbes are not enabled for this VM" in result.err


def test_reset_needs_a_running_vm(tmp_path):
    vmx = write(tmp_path / "web01.vmx", 'vprobe.enable = "TRUE"\n')
    result = vprobe("-r", vmx)
    assert result.status == 1 and result.err == f"vprobe: the VM {vmx} is not running: nothing to unload\n"


def test_load_only_on_the_embedded_machine_checks_the_script(tmp_path):
    good = vprobe("-l", write(tmp_path / "g.vp", "(vprobe VMM1Hz (logint 1))"))
    assert good.status == 0 and good.err.startswith("vprobe: the script loads")
    header, row = good.out.decode().splitlines()
    assert header.split() == "PROBE AT VP OPERATIONS PER FIRING, AT MOST".split()
    assert row == f"VMM1Hz  {tmp_path / 'g.vp'}:1:9  2"
    bad = vprobe("-l", write(tmp_path / "b.vp", "(vprobe VMM1Hz (logint zork))"))
    assert bad.status == 1 and bad.err.startswith(f"{tmp_path / 'b.vp'}:1:24: error: unknown name 'zork'")


# ---- Emmett ----------------------------------------------------------------------------------------------

@needs_emmett
def test_inline_emmett_runs():
    result = vprobe("-d", "2", "-c", 'VMM1Hz { printf("hello %d\\n", VCPUID); }')
    assert (result.status, result.text) == (0, "hello 0\nhello 1\n" * 2)


@needs_emmett
def test_emmett_errors_are_located_and_exit_1():
    result = vprobe("-d", "1", "-c", "VMM1Hz { printf(zork); }")
    assert result.status == 1 and result.out == b""
    assert result.err.startswith("<command line>:1:17: error: ")


@needs_emmett
def test_several_emmett_files_keep_their_own_locations(tmp_path):
    a = write(tmp_path / "a.emt", "int twice(int x) { return x * 2; }\n")
    b = write(tmp_path / "b.emt", "\nVMM1Hz {\n  printf(\"%d\\n\", twice(1, 2));\n}\n")
    result = vprobe("-d", "1", a, b)
    assert result.status == 1
    assert result.err.startswith(f"{b}:3:18: error: 'twice' takes 1 argument, but 2 are given\n"
                                 '  printf("%d\\n", twice(1, 2));\n')
    ok = write(tmp_path / "b.emt", "\nVMXLoad {\n  printf(\"%d\\n\", twice(21));\n}\n")
    assert vprobe("-d", "0", a, ok).out == b"42\n"


DIV_EMT = "int zero;\n\nVMM1Hz {\n    int x;\n    x = 10 / zero;\n    printf(\"%d\\n\", x);\n}\n"


@needs_emmett
def test_a_fault_in_emmett_is_reported_at_its_emmett_line_in_text_and_json(tmp_path):
    div = write(tmp_path / "div.emt", DIV_EMT)
    result = vprobe("-d", "1", div)
    assert result.status == 0 and result.err == ""
    assert result.text == f"vprobe error: probe VMM1Hz aborted at {div}:5:12: division by zero\n" * 2
    objects = [json.loads(line) for line in vprobe("-f", "json", "-d", "1", div).text.splitlines()]
    assert [(o["type"], o["file"], o["line"], o["col"], o["message"]) for o in objects] == \
        [("error", str(div), 5, 12, "division by zero")] * 2


@needs_emmett
def test_vp_compiled_by_emmettc_still_names_the_emmett_line_when_loaded_later(tmp_path):
    write(tmp_path / "div.emt", DIV_EMT)
    compiled = subprocess.run([str(BIN / "emmettc"), "div.emt", "-o", "div.vp"], cwd=tmp_path, capture_output=True)
    assert compiled.returncode == 0, compiled.stderr
    result = vprobe("-d", "1", tmp_path / "div.vp")
    assert result.text == "vprobe error: probe VMM1Hz aborted at div.emt:5:12: division by zero\n" * 2
    # A load error of the compiled VP (a probe on a symbol the guest lacks) names the Emmett line, no VP text.
    write(tmp_path / "sym.emt", "// a guest function the kernel does not have\nGUEST:no_such_function {\n"
                                "    printf(\"%d\\n\", RIP);\n}\n")
    assert subprocess.run([str(BIN / "emmettc"), "sym.emt", "-o", "sym.vp"], cwd=tmp_path).returncode == 0
    bad = vprobe("-d", "1", tmp_path / "sym.vp")
    assert bad.status == 1
    assert bad.err == "sym.emt:2:1: error: unknown guest symbol 'no_such_function' in probe point " \
                      "'GUEST:no_such_function'\n"


@needs_emmett
def test_a_fault_in_the_second_of_several_emmett_files_names_that_file(tmp_path):
    lib = write(tmp_path / "lib.emt", "int zero;\n")
    main = write(tmp_path / "main.emt", "\nVMM1Hz { printf(\"%d\\n\", 3 / zero); }\n")
    assert vprobe("-d", "1", lib, main).text == f"vprobe error: probe VMM1Hz aborted at {main}:2:27: division " \
                                                 f"by zero\n" * 2


@needs_emmett
def test_emmett_aggregates_are_logged_each_second_for_minus_a(tmp_path):
    script = write(tmp_path / "ticks.emt", "aggr ticks[1][1];\nGuest_IRQ { ticks[VCPUID, curprocname()]++; }\n")
    result = vprobe("-d", "2", "-a", script)
    assert result.status == 0, result.err
    lines = result.text.splitlines()
    titles = [line for line in lines if line.startswith("aggr: ticks  ")]
    assert [t.split("  ")[1] for t in titles] == ["epoch 1", "epoch 2"]
    # The compiled program's annotations name the columns; VCPUID is a number, in decimal.
    assert lines[lines.index(titles[0]) + 1].split() == ["VCPUID", "curprocname()", "count", "%", "bar"]
    assert lines[lines.index(titles[0]) + 2].split()[0] in ("0", "1")


@needs_emmett
def test_emmett_gets_the_guest_symbols(tmp_path):
    result = vprobe("-d", "0", "-c", 'VMXLoad { printf("%x\\n", &sys_read); }')
    from machine import SimulatedMachine, default_config
    from machine.symbols import parse_symbols

    expected = parse_symbols(SimulatedMachine(default_config()).symbol_text)["sys_read"]
    assert (result.status, result.text) == (0, f"{expected:x}\n")


# ---- the installed command --------------------------------------------------------------------------------

def test_the_console_script_streams_and_exits_cleanly(tmp_path):
    script = write(tmp_path / "hello.vp", '(vprobe VMM1Hz (printf "hello!\\n"))')
    done = subprocess.run([str(BIN / "vprobe"), "-d", "1", "-f", "json", str(script)], capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stderr == b""
    assert done.stdout == b'{"type": "log", "data": "hello!\\n"}\n' * 2


def test_vp_from_standard_input_with_sorted_aggregates():
    result = vprobe("-i", "-d", "1", "-a", "--sort", "key", stdin=AGGR_VP.encode())
    assert result.status == 0
    assert [line.split()[0] for line in result.text.splitlines()[3:]] == ["0x0", "0x1"]


def test_the_host_configuration_can_forbid_vprobes(tmp_path):
    host = write(tmp_path / "config", 'vprobe.allow = "FALSE"\n')
    result = vprobe("--host-config", host, "-d", "0", write(tmp_path / "h.vp", "(vprobe VMXLoad (logint 1))"))
    assert (result.status, result.out) == (1, b"")
    assert result.err == f"vprobe: VProbes are not allowed on this host: vprobe.allow is FALSE in {host}\n"


class Terminal(io.BytesIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("refresh", [True, False])
def test_on_a_terminal_minus_a_redraws_in_place_unless_told_not_to(tmp_path, refresh):
    from vprobe_tools.views.aggr import CLEAR_SCREEN

    script = write(tmp_path / "irqs.vp", AGGR_VP.replace("VMXUnload", "VMM1Hz"))
    screen = Terminal()
    argv = ["-d", "2", "-a", str(script)] + ([] if refresh else ["--no-refresh"])
    assert run(argv, io.BytesIO(), screen, io.BytesIO()) == 0
    text = screen.getvalue().decode()
    if refresh:
        frames = text.split(CLEAR_SCREEN)[1:]
        assert len(frames) >= 2 and "epoch 4" in frames[-1] and "-- log --\ndone\n" in frames[-1]
    else:
        assert CLEAR_SCREEN not in text and text.count("aggr: irqs  (") == 4


def test_a_script_that_calls_exit_ends_the_run_and_vprobe_says_where(tmp_path):
    script = write(tmp_path / "three.vp", "(definteger n)\n"
                   '(vprobe VMM10Hz (setint n (+ n 1)) (printf "tick %d\\n" n) (cond ((== n 3) (exit))))\n'
                   '(vprobe VMXUnload (printf "done\\n"))')
    result = vprobe("-d", "1000", script)
    assert (result.status, result.out) == (0, b"tick 1\ntick 2\ntick 3\ndone\n")
    assert result.err == f"vprobe: the script called exit() at {script}:2:75; it is unloaded\n"
