"""`vprobe`: compile a probe script if needed, load it into a VM, show its log, unload.

This module is the command line (options, help, exit statuses on click);
what a run does is `vprobe_run`, imported only when a run starts, so that
--help, --version and shell completion do not load the machine.

stdout carries exactly what the user asked to see (the script's log, its
aggregates as tables, its stacks, JSON, or the probe and global lists);
status, warnings and errors go to stderr.  A script that fails to compile or
load exits 1 with located diagnostics; so does a VM that cannot run scripts.
Nothing ever ends in a traceback.
"""

from __future__ import annotations

import signal
from types import SimpleNamespace

import click

from .base import Streams, ToolCommand, exclusive, missing_requirement, option, version_option, write_message
from ..fleet.merge import DEFAULT_MAX_LINES
from .options import aggr_options, format_option, stack_options

DESCRIPTION = """\
NAME
    vprobe - run a VProbes script in a virtual machine and show what it logs

DESCRIPTION
    vprobe compiles SCRIPT if it is Emmett (.emt; through the Emmett compiler,
    with the guest's preload library and symbols), or concatenates
    the VP files given (.vp; each keeps its own name and line numbers in
    messages), loads the result into a VM and streams the script's log to
    standard output.  Emmett and VP files cannot be mixed in one run.

    The VM is the one VM.vmx describes.  If that VM runs in the background
    (vmrun start VM.vmx), the script is loaded into it and vprobe shows only
    the output produced while its script is loaded; otherwise vprobe powers
    the VM on in this process (the embedded default machine when no .vmx is
    given: two VCPUs, a 64-bit Linux guest), with the script attached from
    power-on, and powers it off at the end.  A .vmx that sets qemu.* keys
    describes a real Linux VM under QEMU (booted here, or attached to with
    qemu.attach); it offers only the probe points QEMU can fire (vprobe -p).
    A .vmx machine's log also goes to its vprobe.outFile (default vprobe.out
    beside the .vmx).

    The script is unloaded after -d SECONDS (of simulated time; real seconds
    on a QEMU VM), on Ctrl-C, or when the VM is powered off; the log is
    complete when vprobe exits.  VP scripts may call curpid, curprocname,
    curtid and curppid without defining them: the guest's own VP library is
    added on demand.

    An aggregate the script never logs is logged once when it is unloaded.
    -a shows the aggregates the script logs as sorted, aligned tables (for
    Emmett programs that never call logaggr, a probe that logs and clears
    every aggregate once a second is added).  For compiled Emmett the
    columns are named by the keys' source, numbers are decimal unless they
    are addresses (symbolized) or system call numbers (named, from the VM's
    vprobe.syscalls or its kernel's table), a counted aggregate shows count
    and share, and a histogram is drawn as one, with its percentiles.  On a
    terminal the tables are redrawn at every epoch, like top; otherwise each
    epoch's tables are printed in turn, between the script's other output.  -s shows every
    guest stack the script logs (GUEST_0x..._0x..., in lines or aggregate
    keys), symbolized, one frame per line, counted, once the script is
    unloaded.  -f json writes one JSON object per line instead of text.
    On a terminal, a long -d run shows on stderr how far it got.

    --html FILE writes, besides, one self-contained HTML page of the run
    (vprobe-report makes the same from a saved log)."""

EPILOG = """\
EXAMPLES
    vprobe -d 3 hello.vp
        Run hello.vp on the embedded machine for three simulated seconds.
    vprobe -c 'VMM1Hz { printf("%d %s\\n", curpid(), curprocname()); }'
        Compile and run an Emmett one-liner until Ctrl-C.
    vprobe -d 10 -a web01.vmx vptop.emt
        Sorted aggregates of vptop on the VM web01.vmx describes.
    vprobe -d 5 -s --folded stacks.emt | flamegraph.pl > stacks.svg
        A flame graph of the guest stacks the script collects.
    vprobe -d 5 --html report.html pagefault-stacks.emt
        A report to open in a browser: the run, each probe's firings,
        the aggregates as sortable tables, a flame graph of the stacks.
    vmrun start web01.vmx; vprobe web01.vmx irqs.vp
        Stream a script's output from a VM running in the background.
    vprobe -l web01.vmx irqs.vp; vprobe -r web01.vmx
        Leave a script loaded in the running VM; unload it later.
    vprobe -p 'GUEST:sys_*'; vprobe -p -v 'Disk_*'
        Which system calls can be probed; what the disk probes pass in ARG0...
    echo '(vprobe VMM1Hz (printf "tick\\n"))' | vprobe -i -d 2
        A VP script from standard input.
    vprobe --fleet 100 -d 5 -a strace.emt
        The script on 100 default VMs (seeds 0..99) on a local Dask
        cluster, their aggregates merged into one table (--by-vm: each
        VM's too); --fleet 'vms/*.vmx' runs the .vmx files a glob names.

FILES
    VM.vmx                  the VM: vprobe.enable, vprobe.outFile, vprobe.guestSyms ...
    vprobe.out              the VM's log (vprobe.outFile), beside the .vmx
    NAME.vmrun.sock         the control socket of a VM running in the background
    /etc/vmware/config      the host configuration (vprobe.allow), or --host-config

SHELL COMPLETION
    eval "$(_VPROBE_COMPLETE=bash_source vprobe)"
    in ~/.bashrc completes options, their values and file names
    (zsh_source in ~/.zshrc; fish_source for fish).

EXIT STATUS
    0 the script ran (or the listing was printed); 1 the script did not compile
    or load, the VM cannot run scripts, or the options do not go together;
    2 a malformed command line, or an internal error of the simulated machine.

SEE ALSO
    vmrun(1): start, stop and control VMs in the background; vprobe-aggr and
    vprobe-stacks: the same printers for saved logs; emmettc: the compiler."""


# A century of simulated time: beyond any run anyone waits for, and far inside
# what the machines' nanosecond clocks hold.
MAX_DURATION_S = 100 * 365 * 24 * 3600


class Seconds(click.ParamType):
    """-d: a number of seconds from 0 to a century."""

    name = "seconds"

    def convert(self, value, param, ctx) -> float:
        try:
            seconds = float(value)
        except ValueError:
            self.fail(f"not a number of seconds: {value!r}", param, ctx)
        if not 0 <= seconds <= MAX_DURATION_S:
            self.fail(f"must be a number of seconds from 0 to {MAX_DURATION_S:g}", param, ctx)
        return seconds


SCRIPT, VM, OUTPUT = "SCRIPT OPTIONS", "VM OPTIONS", "OUTPUT OPTIONS"
# Options that shape what another shows: each needs one of these (parameter names) too.
REQUIRES = {
    "verbose": ("list_probes",),
    "sort": ("aggregates",), "reverse": ("aggregates",), "no_refresh": ("aggregates",),
    "top": ("aggregates", "stacks"),
    "folded": ("stacks",), "dot": ("stacks",), "offsets": ("stacks",), "cumulative": ("stacks",),
}
FLEET = "FLEET (one script on many simulated VMs, on Dask)"


@click.command("vprobe", cls=ToolCommand, synopsis="[options] [VM.vmx] [SCRIPT.emt ... | SCRIPT.vp ...]",
               help=DESCRIPTION, epilog=EPILOG, help_group=OUTPUT,
               context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("files", nargs=-1, type=click.Path(), metavar="[VM.vmx] SCRIPT|PATTERN")
@option("-c", "--code", metavar="CODE", group=SCRIPT, help="run the Emmett program CODE (no script file)")
@option("-i", "--stdin", is_flag=True, group=SCRIPT, help="read a VP script from standard input")
@option("--syms", type=click.Path(), metavar="FILE", group=SCRIPT,
        help="guest symbols (/proc/kallsyms or WinDbg x format) for compiling and for symbolizing stacks "
             "(default: the VM's vprobe.guestSyms, or its kernel's symbols)")
@option("--max-loop", type=click.IntRange(min=1, max=65536), metavar="N", group=SCRIPT,
        help="compile Emmett loops to at most N iterations each (default 64; emmettc --max-loop)")
@option("-d", "--duration", type=Seconds(), metavar="SECONDS", group=VM,
        help="unload after SECONDS of simulated time (run as fast as possible on a simulated "
             "machine; real seconds on a QEMU VM); without it, run in real time until Ctrl-C")
@option("-l", "--load-only", is_flag=True, group=VM,
        help="load the script into the running VM and return without streaming (the "
             "output goes to its vprobe.out); on the embedded machine: only check that it loads. "
             "Either way, list each probe with the most VP operations one firing can execute")
@option("-r", "--reset", is_flag=True, group=VM, help="unload whatever script runs in the VM")
@option("-p", "--list-probes", is_flag=True, group=VM,
        help="list the probe points the VM offers; PATTERN arguments (shell globs such as 'GUEST:sys_*') "
             "keep those whose name matches one")
@option("-v", "--verbose", is_flag=True, group=VM, help="with -p, also what each probe's ARG0.. hold")
@option("-g", "--list-globals", is_flag=True, group=VM,
        help="list the built-in globals with type and scope (PATTERN arguments as for -p)")
@option("--kallsyms", is_flag=True, group=VM,
        help="print the guest kernel's symbols (/proc/kallsyms format; WinDbg x format for a Windows guest)")
@option("--charge", type=click.Choice(["model", "host", "off"]), group=VM,
        help="what the time probes take costs the guest's clocks (TSC, PTSC, host time), instead of "
             "the VM's vprobe.chargeProbeTime: model (the default) a fixed cost per VP operation "
             "executed, so runs are reproducible; host the host time the runtime took; off nothing "
             "(simulated VMs powered on by vprobe)")
@option("--structs", type=click.Path(allow_dash=True), metavar="FIELDS", group=VM,
        help="print the guest kernel's structures as Emmett declarations, the fields the file FIELDS "
             "(- for standard input) asks for: one STRUCT.FIELD, STRUCT.* or STRUCT a line, as the "
             "toolkit's pdb2structs.py reads (e.g. _EPROCESS.ImageFileName for a Windows guest)")
@option("--host-config", type=click.Path(), metavar="FILE", group=VM,
        help="the host configuration that holds vprobe.allow (default /etc/vmware/config)")
@format_option(OUTPUT, 'text (default), or one JSON object per line: {"type": "log"|"aggr"|"error"...}')
@option("-a", "--aggregates", is_flag=True, group=OUTPUT, help="show the aggregates as sorted tables")
@option("-s", "--stacks", is_flag=True, group=OUTPUT,
        help="show the guest stacks, symbolized and counted, when the script is unloaded")
@option("--html", type=click.Path(dir_okay=False), metavar="FILE", group=OUTPUT,
        help="also write an HTML report to FILE when the script is unloaded: the run and its "
             "probes' firings, sortable tables, flame graphs, the log with its faults")
@version_option(with_vp=True, group=OUTPUT)
@aggr_options("SORTED AGGREGATES (-a)")
@stack_options("FORMATTED STACKS (-s)", with_top=False)
@option("--fleet", metavar="N|DIR|GLOB", group=FLEET,
        help="run the script on N VMs (the VM.vmx given, or the default machine, with sim.seed "
             "0 .. N-1), or on each .vmx file of DIR or matching GLOB; the results are merged "
             "into one (needs -d)")
@option("--scheduler", metavar="ADDRESS", group=FLEET,
        help="run on the Dask cluster whose scheduler is at ADDRESS (default: a local cluster, "
             "one worker per core)")
@option("--workers", type=click.IntRange(min=1), metavar="N", group=FLEET, help="workers of the local cluster")
@option("--max-lines", type=click.IntRange(min=1), metavar="N", group=FLEET,
        help=f"keep at most N printed lines of the whole fleet, the first in guest time "
             f"(default {DEFAULT_MAX_LINES})")
@option("--by-vm", is_flag=True, group=FLEET, help="show each VM's own aggregates after the merged ones")
@click.pass_context
def command(ctx: click.Context, **options) -> int:
    exclusive(ctx, "folded", "dot")
    missing = missing_requirement(ctx, REQUIRES)
    if missing is not None:
        write_message(Streams.of(ctx).stderr, f"vprobe: {missing}\n")
        return 1
    from .vprobe_run import run_vprobe  # the machine, the runtime and the compiler: only for a run

    return run_vprobe(SimpleNamespace(**options), Streams.of(ctx))


def run(argv: list[str], stdin, stdout, stderr) -> int:
    """vprobe with these arguments and (binary) streams; returns the exit status."""
    return command.main(list(argv), "vprobe", standalone_mode=False, obj=Streams(stdin, stdout, stderr))


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """The console script: SIGTERM interrupts as Ctrl-C does (the script is unloaded, the log
    complete), and so does SIGINT in a vprobe a shell started in the background, which would
    otherwise inherit it ignored (`kill -INT` then stops it as Ctrl-C stops it in the foreground)."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    command.main(argv, "vprobe")


if __name__ == "__main__":
    main()
