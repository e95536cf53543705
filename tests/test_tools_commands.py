"""The commands on click, driven in process with click's CliRunner: help, --version, usage errors,
exit statuses, and shell completion (also through the installed scripts and a real bash).

The end-to-end behaviour of each command (VMs, logs, signals, pipes) is in
the other test_tools_* files and test_emmett_cli.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

from emmett import cli as emmettc
from vprobe_tools.commands import vmrun, vprobe, vprobe_aggr, vprobe_report, vprobe_stacks

BIN = Path(sys.executable).parent
COMMANDS = {"vprobe": vprobe.command, "vmrun": vmrun.command, "vprobe-aggr": vprobe_aggr.command,
            "vprobe-stacks": vprobe_stacks.command, "vprobe-report": vprobe_report.command,
            "emmettc": emmettc.command}


def invoke(name: str, *args, input: bytes | None = None, env: dict | None = None):
    result = CliRunner().invoke(COMMANDS[name], [str(a) for a in args], input=input, env=env, prog_name=name)
    assert "Traceback" not in result.stderr
    return result


# ---- help and --version ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_prints_its_version(name):
    result = invoke(name, "--version")
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.splitlines()[0] == f"{name} (vprobes-toolchain) {version('vprobes-toolchain')}"


@pytest.mark.parametrize("name", ["vprobe", "vmrun"])
def test_the_vm_commands_also_print_the_vp_version(name):
    assert invoke(name, "--version").stdout.splitlines()[1] == "VP 1.0"


@pytest.mark.parametrize("name", COMMANDS)
def test_help_starts_with_the_synopsis_and_shows_examples(name):
    result = invoke(name, "--help")
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.startswith(f"usage: {name} ")
    assert "\nEXAMPLES\n" in result.stdout or "\n  Examples:\n" in result.stdout
    assert "--version" in result.stdout


@pytest.mark.parametrize("name", ["vprobe", "vmrun", "vprobe-aggr", "vprobe-stacks", "vprobe-report"])
def test_help_is_a_man_page(name):
    text = invoke(name, "-h").stdout
    for section in ("NAME", "DESCRIPTION", "EXAMPLES", "EXIT STATUS", "SEE ALSO"):
        assert f"\n{section}\n" in text, section


def test_option_names_are_listed_as_typed_in_titled_groups():
    text = invoke("vprobe", "--help").stdout
    assert "\nVM OPTIONS:\n  -d SECONDS, --duration SECONDS\n" in text
    assert "\n  -f {text,json}, --format {text,json}\n" in text
    assert "\n  -h, --help            show this help and exit\n" in text


def test_vmrun_lists_its_verbs_as_the_reference_spells_them():
    text = invoke("vmrun", "--help").stdout
    verbs = [line.split()[0] for line in text.split("\nCOMMANDS:\n")[1].split("\n\n")[0].splitlines()
             if line.startswith("  ") and not line.startswith("   ")]
    assert verbs == ["start", "stop", "list", "vprobeVersion", "vprobeLoad", "vprobeLoadFile", "vprobeReset",
                     "vprobeListProbes", "vprobeListGlobals", "vprobeListLoaded",
                     "createGuest",  # the project's own: it writes a QEMU guest (docs/real-guests.md)
                     "help"]


def test_vmrun_describes_one_verb():
    for argv in (["help", "vprobeloadfile"], ["vprobeLoadFile", "--help"]):
        result = invoke("vmrun", *argv)
        assert result.exit_code == 0 and result.stdout.startswith("usage: vmrun vprobeLoadFile VM.vmx FILE\n")


def test_vmrun_without_a_command_shows_its_help_as_a_usage_error():
    result = invoke("vmrun")
    assert result.exit_code == 2 and result.stdout.startswith("usage: vmrun ") and "\nCOMMANDS:\n" in result.stdout


# ---- usage errors -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, argv, status, message", [
    ("vprobe", ["--no-such-option"], 2, "vprobe: error: No such option"),
    ("vprobe", ["--folded", "--dot", "x.vp"], 2, "vprobe: error: --dot cannot be given with --folded"),
    ("vprobe", ["-f", "xml", "x.vp"], 2, "vprobe: error: Invalid value for '-f' / '--format': 'xml' is not one of"),
    ("vprobe-aggr", ["--top", "0"], 2, "vprobe-aggr: error: Invalid value for '--top': 0 is not in the range x>=1"),
    ("vprobe-stacks", ["--syms", "k", "--vmx", "v.vmx"], 2, "vprobe-stacks: error: --vmx cannot be given with --syms"),
    ("vprobe-stacks", ["a.out", "b.out"], 2, "vprobe-stacks: error: Got unexpected extra argument (b.out)"),
    ("emmettc", ["-i", "-3"], 1, "emmettc: error: Invalid value for '-i': -3 is not in the range x>=0"),
])
def test_a_malformed_command_line_is_the_synopsis_and_one_message(name, argv, status, message):
    result = invoke(name, *argv)
    assert result.exit_code == status and result.stdout == ""
    usage, error = result.stderr.splitlines()
    assert usage.startswith(f"usage: {name} ") and error.startswith(message)


@pytest.mark.parametrize("argv, message, usage", [
    (["vprobeFrobnicate", "x.vmx"], "unknown command 'vprobeFrobnicate' (vmrun --help lists them)",
     "usage: vmrun [-T ws] [--host-config FILE] COMMAND [PARAMETERS]"),
    (["vprobeLoad", "x.vmx"], "Missing argument 'VP TEXT'.", "usage: vmrun vprobeLoad VM.vmx 'VP TEXT'"),
    (["stop", "x.vmx", "medium"], "Invalid value for 'MODE': 'medium' is not one of 'soft', 'hard'.",
     "usage: vmrun stop VM.vmx [soft|hard]"),
    (["list", "extra"], "Got unexpected extra argument (extra)", "usage: vmrun list"),
])
def test_vmrun_usage_errors_name_the_verb_they_belong_to(argv, message, usage):
    result = invoke("vmrun", *argv)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"vmrun: Error: {message}\n{usage}\n"


# ---- running in process ---------------------------------------------------------------------------------------

def test_vprobe_runs_a_script_in_process(tmp_path):
    script = tmp_path / "hello.vp"
    script.write_text('(vprobe VMM1Hz (printf "hello!\\n"))')
    result = invoke("vprobe", "-d", "1", script)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "hello!\n" * 2, "")


def test_vprobe_reports_a_missing_script_with_status_1():
    result = invoke("vprobe", "nope.vp")
    assert (result.exit_code, result.stderr) == (1, "vprobe: cannot read nope.vp: No such file or directory\n")


def test_vmrun_verbs_are_matched_without_regard_to_case(tmp_path):
    vmx = tmp_path / "web01.vmx"
    vmx.write_text('vprobe.enable = "TRUE"\n')
    for spelling in ("vprobeVersion", "VPROBEVERSION", "vprobeversion"):
        result = invoke("vmrun", spelling, vmx)
        assert (result.exit_code, result.stderr) == (1, "vmrun: Error: the VM web01.vmx is not running\n")


def test_vmrun_list_takes_its_options_first(tmp_path):
    result = invoke("vmrun", "-T", "ws", "list", env={"VMRUN_STATE_DIR": str(tmp_path / "state")})
    assert (result.exit_code, result.stdout) == (0, "Total running VMs: 0\n")


def test_vprobe_aggr_reads_a_saved_log_in_process(tmp_path):
    log = tmp_path / "vprobe.out"
    log.write_text("hello\naggr: n (1 integer key) (0 string keys)\nn[0x1] == avg 2 count 3 min 1 max 3 latest 3\n")
    result = invoke("vprobe-aggr", log)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        "hello", "aggr: n  (1 integer key, 0 string keys)  epoch 1  total count 3"]


def test_emmettc_compiles_in_process():
    result = invoke("emmettc", "-c", 'VMM1Hz { printf("hi\\n"); }')
    assert result.exit_code == 0 and '(printf "hi\\n")' in result.stdout
    piped = invoke("emmettc", input=b"VMM1Hz { x = ; }")
    assert piped.exit_code == 1 and piped.stderr.startswith("<stdin>:1:14: error: syntax error")


# ---- shell completion ---------------------------------------------------------------------------------------

def complete(name: str, words: str) -> list[str]:
    """What bash completion offers for the last word of `words` (in process, as the bash script asks)."""
    variable = f"_{name.replace('-', '_').upper()}_COMPLETE"
    parts = words.split(" ")
    result = invoke(name, env={variable: "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1)})
    assert result.exit_code == 0, result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines()]


def test_completion_of_options_choices_verbs_and_memory_models():
    assert complete("vprobe", "vprobe --form") == ["--format"]
    assert complete("vprobe", "vprobe -f ") == ["text", "json"]
    assert complete("vprobe-aggr", "vprobe-aggr --sort l") == ["latest"]
    assert complete("vmrun", "vmrun vprobel") == ["vprobeLoad", "vprobeLoadFile", "vprobeListProbes",
                                                  "vprobeListGlobals", "vprobeListLoaded"]
    assert complete("vmrun", "vmrun stop web01.vmx ") == ["soft", "hard"]
    assert complete("emmettc", "emmettc -m guest3") == ["guest32"]


@pytest.mark.parametrize("name", ["vprobe", "vmrun", "vprobe-aggr", "vprobe-stacks", "vprobe-report", "emmettc"])
def test_the_installed_commands_write_their_bash_completion_script(name):
    function = f"_{name.replace('-', '_')}_completion"
    variable = f"_{name.replace('-', '_').upper()}_COMPLETE"
    done = subprocess.run([str(BIN / name)], env=dict(os.environ, **{variable: "bash_source"}),
                          capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stderr == b""
    assert f"complete -o nosort -F {function} {name}" in done.stdout.decode()


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash on this machine")
def test_bash_completes_an_option_with_the_script():
    script = ('eval "$(_VPROBE_COMPLETE=bash_source vprobe)"\n'
              'COMP_WORDS=(vprobe --list-g); COMP_CWORD=1\n'
              '_vprobe_completion vprobe\n'
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"--list-globals\n"


# ---- start-up ---------------------------------------------------------------------------------------------

def test_help_and_completion_do_not_load_the_machine_the_runtime_or_the_compiler():
    code = ("import sys\n"
            "from vprobe_tools.commands import vmrun, vprobe, vprobe_aggr, vprobe_report, vprobe_stacks\n"
            "import emmett.cli\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('machine', 'vp_runtime')\n"
            "               or m.startswith('emmett.') and m != 'emmett.cli')\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
