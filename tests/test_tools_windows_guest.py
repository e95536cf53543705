"""The Windows guest from the command line: chosen by the .vmx, its symbols in WinDbg x format, its
structure declarations (--structs), the guest library, and a preload in the public toolkit's style."""

from __future__ import annotations

import re
from collections import Counter

from vp_runtime.spec import symbol_files

from test_machine_config import vprobe, write_vmx
from test_emmett_cli import emmettc

FIELDS = """_KPCR.Prcb
_KPRCB.CurrentThread
_KTHREAD.Process
_ETHREAD.Cid
_CLIENT_ID.*
_EPROCESS.UniqueProcessId
_EPROCESS.ImageFileName
"""

# A preload written as the toolkit writes its Windows 7 one: the structures from the generated
# include, the process found from the KPCR at the kernel GS base.
TOOLKIT_STYLE_PRELOAD = """
#include "win7-amd64-offsets.emt"

typedef struct _KPCR KPCR;
typedef struct _EPROCESS EPROCESS;

string w7_name;

KPCR *w7_kpcr()
{
    if (GSBASE >= 0xffff800000000000) {
        return (KPCR *)GSBASE;
    }
    return (KPCR *)KERNELGSBASE;
}

EPROCESS *w7_process()
{
    return (EPROCESS *)w7_kpcr()->Prcb.CurrentThread->Process;
}

string w7_procname()
{
    w7_name = (string)w7_process()->ImageFileName;
    return w7_name;
}

int w7_pid()
{
    return (int)w7_process()->UniqueProcessId;
}
"""


def windows_vmx(tmp_path, name="win.vmx"):
    path = tmp_path / name
    path.write_text('displayName = "win"\nguestOS = "windows7srv-64"\nvprobe.enable = "TRUE"\n')
    return path


def test_the_guest_follows_guestos_and_sim_guest_must_agree(tmp_path):
    from machine.vmx import read_vmx

    assert read_vmx(windows_vmx(tmp_path)).guest == "windows"
    assert read_vmx(write_vmx(tmp_path, "l.vmx")).guest == "linux"
    path = tmp_path / "only.vmx"
    path.write_text('sim.guest = "windows"\n')
    assert (read_vmx(path).guest, read_vmx(path).guest_os) == ("windows", "windows7srv-64")
    path.write_text('guestOS = "ubuntu-64"\nsim.guest = "windows"\n')
    result = vprobe("-d", "1", "-c", "VMM1Hz { }", str(path), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{path}:2:13: error: sim.guest is 'windows' but guestOS 'ubuntu-64' is a "
                                    "Linux guest")


def test_the_same_emmett_script_names_each_guests_processes(tmp_path):
    (tmp_path / "p.emt").write_text('VMM10Hz { printf("%s %d\\n", curprocname(), curpid()); }\n')
    seen = {}
    for name, path in (("windows", windows_vmx(tmp_path)), ("linux", write_vmx(tmp_path, "l.vmx",
                                                                              **{"vprobe.enable": "TRUE"}))):
        result = vprobe("-d", "3", str(path), "p.emt", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        seen[name] = Counter(line.split()[0] for line in result.stdout.splitlines() if line.split())
    assert {"Idle", "System"} <= set(seen["windows"]) and any(n.endswith(".exe") for n in seen["windows"])
    assert {"swapper", "init"} <= set(seen["linux"]) and not any(n.endswith(".exe") for n in seen["linux"])


def test_kallsyms_prints_windbg_x_symbols_and_stacks_are_symbolized(tmp_path):
    path = windows_vmx(tmp_path)
    result = vprobe("--kallsyms", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert symbol_files.parse(result.stdout).format == symbol_files.WINDBG
    assert re.search(r"^fffff800`[0-9a-f]{8} nt!KiSystemCall64 \(<no parameter info>\)$", result.stdout, re.M)
    (tmp_path / "s.emt").write_text('string s; VMM10Hz { gueststack(s); printf("Stack: %s\\n", s); }\n')
    stacks = vprobe("-s", "-d", "2", str(path), "s.emt", cwd=tmp_path)
    assert stacks.returncode == 0, stacks.stderr
    assert "nt!KiIdleLoop+0x" in stacks.stdout and "hal!HalProcessorIdle+0x" in stacks.stdout


def test_structs_prints_the_requested_declarations_and_names_an_unknown_one(tmp_path):
    path = windows_vmx(tmp_path)
    (tmp_path / "fields.txt").write_text(FIELDS)
    result = vprobe("--structs", "fields.txt", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "struct _EPROCESS {\n   @0x180 void                *UniqueProcessId;\n" \
           "   @0x2e0 unsigned char        ImageFileName[15];\n};" in result.stdout
    # A structure held by value comes before its holder.
    assert result.stdout.index("struct _KPRCB {") < result.stdout.index("struct _KPCR {")
    (tmp_path / "bad.txt").write_text("_EPROCESS.ImageName\n")
    bad = vprobe("--structs", "bad.txt", str(path), cwd=tmp_path)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "bad.txt: line 1: '_EPROCESS' has no field 'ImageName'" in bad.stderr


def test_a_toolkit_style_preload_with_the_generated_include_finds_the_current_process(tmp_path):
    path = windows_vmx(tmp_path)
    (tmp_path / "fields.txt").write_text(FIELDS)
    include = vprobe("--structs", "fields.txt", str(path), cwd=tmp_path)
    assert include.returncode == 0, include.stderr
    (tmp_path / "win7-amd64-offsets.emt").write_text(include.stdout)
    (tmp_path / "w7.emt").write_text(TOOLKIT_STYLE_PRELOAD)
    (tmp_path / "t.emt").write_text('#include "w7.emt"\nVMM10Hz { printf("%s %d\\n", w7_procname(), w7_pid()); }\n')
    compiled = emmettc("--no-preload", "-I", str(tmp_path), "t.emt", "-o", "t.vp", cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr
    # The same VM and seed, probe time not charged: the same firings as the guest library's.
    (tmp_path / "lib.emt").write_text('VMM10Hz { printf("%s %d\\n", curprocname(), curpid()); }\n')
    mine, library = (vprobe("--charge", "off", "-d", "3", str(path), script, cwd=tmp_path) for script in ("t.vp", "lib.emt"))
    assert mine.returncode == 0 and library.returncode == 0, (mine.stderr, library.stderr)
    pairs = list(zip(mine.stdout.splitlines(), library.stdout.splitlines(), strict=True))
    booted = [(a, b) for a, b in pairs if not b.startswith("<none>")]  # (the library's before the kernel runs)
    assert len(pairs) == 60 and len(booted) > 30
    assert all(a == b for a, b in booted), booted[:3]
    assert any(a.split()[0].endswith(".exe") for a, _ in booted)
