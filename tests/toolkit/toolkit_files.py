"""Compile the VProbes toolkit's own Emmett files with emmettc, and run its cookbook.

    .venv/bin/python tests/toolkit/toolkit_files.py --toolkit /path/to/vprobe-toolkit

For each `.emt` of the toolkit's `cookbook/` and `preload/` (the toolkit's files
are read where they are; none is copied into the project): compile it with
`emmettc` and, for a program with probes written for a Linux guest, run its
VP on the default machine (`vprobe -d 2`).  The files some of them include or
need are generated here, in a scratch folder, as the toolkit's tools would
generate them for a guest:

- `linux-offsets.emt`, what the toolkit's `vprobe-offsets` kernel module prints
  in the guest (/proc/vprobe-offsets), for the default machine's kernel;
- `win7-amd64-offsets.emt`, what its `pdb2structs.py` writes from a Windows 7
  x64 kernel's PDB for the fields its `win7-structs.txt` asks for;
- a WinDbg-format symbol file with the Windows XP kernel functions the XP
  preloads take addresses of.

It prints one line per file and the counts; the exit status is 1 if a file
that should compile does not.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
GUEST_SECONDS = "2"

# Windows 7 SP1 x64 kernel structures (ntkrnlmp), in the order a type is defined before a
# field of it: each (struct, [(offset, type, name)]).
WIN7_AMD64_STRUCTS = [
    ("_UNICODE_STRING", [(0x000, "unsigned short", "Length"), (0x002, "unsigned short", "MaximumLength"),
                         (0x008, "unsigned short", "*Buffer")]),
    ("_OBJECT_NAME_INFORMATION", [(0x000, "struct _UNICODE_STRING", "Name")]),
    ("_SE_AUDIT_PROCESS_CREATION_INFO", [(0x000, "struct _OBJECT_NAME_INFORMATION", "*ImageFileName")]),
    ("_CLIENT_ID", [(0x000, "void", "*UniqueProcess"), (0x008, "void", "*UniqueThread")]),
    ("_KPROCESS", []),
    ("_KTHREAD", [(0x210, "struct _KPROCESS", "*Process")]),
    ("_ETHREAD", [(0x000, "struct _KTHREAD", "Tcb"), (0x3b8, "struct _CLIENT_ID", "Cid")]),
    ("_EPROCESS", [(0x000, "struct _KPROCESS", "Pcb"), (0x290, "void", "*InheritedFromUniqueProcessId"),
                   (0x2e0, "unsigned char", "ImageFileName[15]"),
                   (0x390, "struct _SE_AUDIT_PROCESS_CREATION_INFO", "SeAuditProcessCreationInfo")]),
    ("_KPRCB", [(0x008, "struct _KTHREAD", "*CurrentThread")]),
    ("_KPCR", [(0x180, "struct _KPRCB", "Prcb")]),
]
# Windows XP kernel functions the XP preloads read the code of, at their addresses in a 32-bit
# and a 64-bit XP kernel.
XP_FUNCTIONS = {"32": {"nt!PsGetCurrentProcess": 0x804EE5E0, "nt!PsGetCurrentProcessId": 0x804EE5F0,
                       "nt!PsGetProcessImageFileName": 0x80533C5E},
                "64": {"nt!PsGetCurrentProcess": 0xFFFFF80001046C80, "nt!PsGetCurrentProcessId": 0xFFFFF80001046CA0,
                       "nt!PsGetProcessImageFileName": 0xFFFFF800012E3A10}}


def linux_offsets() -> str:
    """/proc/vprobe-offsets of the default machine's guest (a kernel without the files part)."""
    from machine.guest import layout as L
    return (f"/* Linux offsets for kernel version {L.KERNEL_VERSION} */\nmemmodel guest64;\n\n"
            "/* struct task_struct */\n"
            f"#define __OFF_TGID   {L.TASK_TGID:#x}\n#define __OFF_PID    {L.TASK_PID:#x}\n"
            f"#define __OFF_COMM   {L.TASK_COMM:#x}\n#define __OFF_PARENT {L.TASK_PARENT:#x}\n"
            f"#define __OFF_MM     {L.TASK_MM:#x}\n\n/* struct current_thread */\n"
            f"#define __OFF_TASK   {L.PERCPU_CURRENT_TASK:#x}\n"
            "#define __CURTHRPTR  (GSBASE >= 0x100000000 ? GSBASE : KERNELGSBASE)\n")


def win7_offsets() -> str:
    out = []
    for name, fields in WIN7_AMD64_STRUCTS:
        out.append(f"struct {name} {{")
        out += [f"   @0x{offset:03x} {type_:<19} {field};" for offset, type_, field in fields]
        out.append("};")
    return "\n".join(out) + "\n"


def windbg_symbols(bits: str) -> str:
    return "".join(f"{a >> 32:08x}`{a & 0xFFFFFFFF:08x} {name}\n" for name, a in XP_FUNCTIONS[bits].items())


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(argv, capture_output=True, text=True, encoding="latin-1", timeout=300, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--toolkit", required=True, type=Path, help="a checkout of the VProbes toolkit")
    args = parser.parse_args(argv)
    files = sorted([*args.toolkit.glob("cookbook/*.emt"), *args.toolkit.glob("preload/**/*.emt")])
    if not files:
        parser.error(f"no .emt files under {args.toolkit}/cookbook or {args.toolkit}/preload")
    compiled = ran = 0
    failed = False
    with tempfile.TemporaryDirectory() as scratch:
        gen = Path(scratch)
        (gen / "linux-offsets.emt").write_text(linux_offsets())
        (gen / "win7-amd64-offsets.emt").write_text(win7_offsets())
        for bits in XP_FUNCTIONS:
            (gen / f"xp{bits}.syms").write_text(windbg_symbols(bits))
        for path in files:
            name = str(path.relative_to(args.toolkit))
            options = ["-I", str(gen)]
            if path.name.startswith("xp"):
                options += ["-s", str(gen / f"xp{path.name[2:4]}.syms")]
            out = gen / (path.stem + ".vp")
            result = _run([str(BIN / "emmettc"), *options, str(path), "-o", str(out)])
            if result.returncode != 0:
                errors = [line for line in result.stderr.splitlines() if ": error: " in line]
                print(f"{name:38} does not compile: {errors[0] if errors else result.stderr.strip()}")
                failed = True
                continue
            compiled += 1
            library = "compiled as a library" in result.stderr
            if library or "preload" in path.name:
                print(f"{name:38} compiles ({'a library: ' if library else ''}for another guest or other scripts)")
                continue
            run = _run([str(BIN / "vprobe"), "-d", GUEST_SECONDS, str(out)])
            lines = run.stdout.splitlines()
            if run.returncode == 0 and lines:
                ran += 1
                print(f"{name:38} compiles, runs: {len(lines)} lines in {GUEST_SECONDS} s, e.g. {lines[0][:60]!r}")
            else:
                print(f"{name:38} compiles, does not run: {(run.stderr or 'no output').strip().splitlines()[0]}")
                failed = True
    print(f"\n{len(files)} files, {compiled} compile, {ran} of the programs run on the default machine")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
