"""`vprobe`: compile a probe script if needed, load it into a VM, show its log, unload.

stdout carries exactly what the user asked to see (the script's log, its
aggregates as tables, its stacks, JSON, or the probe and global lists);
status, warnings and errors go to stderr.  A script that fails to compile or
load exits 1 with located diagnostics; so does a VM that cannot run scripts.
Nothing ever ends in a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys

from machine.vmx import VmxError, VProbesDisabled, check_enabled, host_allows_vprobes

from ..errors import LoadFailed, ToolError, machine_failure
from ..output import LogStream, MessageStream
from ..scripts.sources import SourceFile, compile_emmett, compiled_name, is_emmett, needs_auto_aggr, read_sources
from ..views import aggr, stacks
from ..views.json_view import JsonView
from ..views.listings import format_globals, format_probes
from ..views.pipeline import Pipeline
from ..views.symbolize import Symbolizer
from ..vm.machine_info import read_symbol_file
from ..vm.targets import EmbeddedVM, find_vm
from .options import add_aggr_options, add_stack_options

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

    -a shows the aggregates the script logs as sorted, aligned tables (for
    Emmett programs that never call logaggr, a probe that logs and clears
    every aggregate once a second is added).  On a terminal the tables are
    redrawn at every epoch, like top; otherwise each epoch's tables are
    printed in turn, between the script's other output.  -s shows every
    guest stack the script logs (GUEST_0x..._0x..., in lines or aggregate
    keys), symbolized, one frame per line, counted, once the script is
    unloaded.  -f json writes one JSON object per line instead of text."""

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
    vmrun start web01.vmx; vprobe web01.vmx irqs.vp
        Stream a script's output from a VM running in the background.
    vprobe -l web01.vmx irqs.vp; vprobe -r web01.vmx
        Leave a script loaded in the running VM; unload it later.
    vprobe -p | grep GUEST:sys_
        Which system calls can be probed.
    echo '(vprobe VMM1Hz (printf "tick\\n"))' | vprobe -i -d 2
        A VP script from standard input.

FILES
    VM.vmx                  the VM: vprobe.enable, vprobe.outFile, vprobe.guestSyms ...
    vprobe.out              the VM's log (vprobe.outFile), beside the .vmx
    NAME.vmrun.sock         the control socket of a VM running in the background
    /etc/vmware/config      the host configuration (vprobe.allow), or --host-config

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


def _duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= MAX_DURATION_S:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0 to {MAX_DURATION_S:g}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vprobe", usage="vprobe [options] [VM.vmx] [SCRIPT.emt ... | SCRIPT.vp ...]",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False)
    parser.add_argument("files", nargs="*", metavar="[VM.vmx] SCRIPT", help=argparse.SUPPRESS)
    script = parser.add_argument_group("SCRIPT OPTIONS")
    script.add_argument("-c", "--code", metavar="CODE", help="run the Emmett program CODE (no script file)")
    script.add_argument("-i", "--stdin", action="store_true", help="read a VP script from standard input")
    script.add_argument("--syms", metavar="FILE",
                        help="guest symbols (/proc/kallsyms format) for compiling and for symbolizing stacks "
                             "(default: the VM's vprobe.guestSyms, or its kernel's symbols)")
    vm = parser.add_argument_group("VM OPTIONS")
    vm.add_argument("-d", "--duration", type=_duration, metavar="SECONDS",
                    help="unload after SECONDS of simulated time (run as fast as possible on a simulated "
                         "machine; real seconds on a QEMU VM); without it, run in real time until Ctrl-C")
    vm.add_argument("-l", "--load-only", action="store_true",
                    help="load the script into the running VM and return without streaming (the "
                         "output goes to its vprobe.out); on the embedded machine: only check that it loads")
    vm.add_argument("-r", "--reset", action="store_true", help="unload whatever script runs in the VM")
    vm.add_argument("-p", "--list-probes", action="store_true", help="list the probe points the VM offers")
    vm.add_argument("-g", "--list-globals", action="store_true",
                    help="list the built-in globals with type and scope")
    vm.add_argument("--kallsyms", action="store_true",
                    help="print the guest kernel's symbols (/proc/kallsyms format)")
    vm.add_argument("--host-config", metavar="FILE",
                    help="the host configuration that holds vprobe.allow (default /etc/vmware/config)")
    out = parser.add_argument_group("OUTPUT OPTIONS")
    out.add_argument("-f", "--format", choices=("text", "json"), default="text",
                     help="text (default), or one JSON object per line: {\"type\": \"log\"|\"aggr\"|\"error\"...}")
    out.add_argument("-a", "--aggregates", action="store_true", help="show the aggregates as sorted tables")
    out.add_argument("-s", "--stacks", action="store_true",
                     help="show the guest stacks, symbolized and counted, when the script is unloaded")
    out.add_argument("-h", "--help", action="help", help="show this help and exit")
    add_aggr_options(parser, "SORTED AGGREGATES (-a)")
    add_stack_options(parser, "FORMATTED STACKS (-s)", with_top=False)
    return parser


class _Plain(ToolError):
    """A message that is already complete (located diagnostics): printed without the program's name."""


class Command:
    """One run of vprobe, with its streams."""

    def __init__(self, args, stdin, stdout, stderr):
        self.args = args
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.out = LogStream(stdout)
        self.err = MessageStream(stderr)
        self._symbols: str | None = None

    def warn(self, message: str) -> None:
        self.err.write(message + ("" if message.endswith("\n") else "\n"))

    # ---- what the command line asks for ------------------------------------------------------------

    def split_files(self) -> tuple[str | None, list[str]]:
        files = list(self.args.files)
        vmx = files.pop(0) if files and files[0].endswith(".vmx") else None
        extra = [f for f in files if f.endswith(".vmx")]
        if extra:
            raise ToolError(f"give one VM, first: {extra[0]} comes after the scripts")
        return vmx, files

    def check_usage(self, scripts: list[str], vmx: str | None) -> None:
        a = self.args
        if sum(map(bool, (a.code is not None, a.stdin, scripts))) > 1:
            raise ToolError("give script files, -c CODE or -i, not several of them")
        kinds = {is_emmett(s) for s in scripts}
        if len(kinds) > 1:
            raise ToolError("cannot mix Emmett (.emt) and VP scripts in one run: compile the Emmett "
                            "ones with emmettc first, or load them separately")
        if a.reset and (scripts or a.code is not None or a.stdin):
            raise ToolError("-r unloads what runs in the VM: give no script with it")
        if a.reset and vmx is None:
            raise ToolError("-r needs the VM: vprobe -r VM.vmx")

    def host_allows(self) -> None:
        try:
            allowed, why = host_allows_vprobes(self.args.host_config)
        except VmxError as e:
            raise _Plain(e.format()) from None
        if not allowed:
            raise ToolError(why)

    def embedded(self, vmx: str | None) -> EmbeddedVM:
        from machine.vms import read_vm_config

        try:
            config = read_vm_config(vmx)
        except VmxError as e:
            raise _Plain(e.format()) from None
        for warning in config.warnings:
            self.warn(warning.format())
        try:
            check_enabled(config)
        except VProbesDisabled as e:
            raise ToolError(str(e)) from None
        return EmbeddedVM(config, write_out_file=vmx is not None)

    def symbols_text(self, vm) -> str:
        if self._symbols is None:
            self._symbols = read_symbol_file(self.args.syms) if self.args.syms else vm.symbols_text()
        return self._symbols

    def script_files(self, scripts: list[str], vm, config_vp_file) -> list[SourceFile]:
        """The VP sources to load: files, stdin, or compiled Emmett."""
        a = self.args
        if a.stdin:
            return [SourceFile("<stdin>", self.stdin.read())]
        if a.code is not None:
            files, emmett = [SourceFile("<command line>", a.code.encode("utf-8", "surrogateescape"))], True
        elif scripts:
            files, emmett = read_sources(scripts), is_emmett(scripts[0])
        elif config_vp_file is not None:
            files, emmett = read_sources([str(config_vp_file)]), is_emmett(str(config_vp_file))
        else:
            raise ToolError("give a script file, -c CODE, or -i to read VP from standard input")
        if not emmett:
            return files
        return [SourceFile(compiled_name(files), self.compile(files, vm))]

    def compile(self, files: list[SourceFile], vm) -> bytes:
        guest = {"symbols_file": self.args.syms} if self.args.syms else {"symbols_text": self.symbols_text(vm)}
        guest["preload_text"] = vm.preload_text()  # the VM's own preload, or None: the compiler's default
        vp, warnings = compile_emmett(files, **guest)
        if self.args.aggregates and needs_auto_aggr(vp):
            vp, warnings = compile_emmett(files, auto_aggr=True, **guest)
        for w in warnings:
            self.warn(w)
        return vp

    # ---- output ---------------------------------------------------------------------------------

    def sink(self, vm):
        """Where the script's log goes, and what to call at the end."""
        a = self.args
        if not a.aggregates and not a.stacks and a.format == "text":
            return self.out.write, self.out.close
        views = []
        symbols = Symbolizer(self.symbols_text(vm)) if a.aggregates or a.stacks else None
        if a.aggregates:
            views.append(aggr.AggrView(self.out, symbolizer=symbols, by=a.sort, reverse=a.reverse,
                                            top=a.top, fmt=a.format, live=self._tty() and not a.no_refresh))
        if a.stacks:
            shape = "folded" if a.folded else "dot" if a.dot else "text"
            views.append(stacks.StackView(self.out, self.err, symbols, shape=shape, fmt=a.format, top=a.top,
                                               offsets=a.offsets, cumulative=a.cumulative))
        if not views:
            views.append(JsonView(self.out))
        pipeline = Pipeline(views)

        def finish() -> None:
            pipeline.finish()
            self.out.close()
        return pipeline.sink, finish

    def _tty(self) -> bool:
        try:
            return self.stdout.isatty()
        except (AttributeError, ValueError):
            return False

    # ---- the run ---------------------------------------------------------------------------------

    def run(self) -> int:
        a = self.args
        vmx, scripts = self.split_files()
        self.check_usage(scripts, vmx)
        self.host_allows()
        vm = find_vm(vmx)
        config_vp_file = None
        if vm is None:
            if a.reset:
                raise ToolError(f"the VM {vmx} is not running: nothing to unload")
            vm = self.embedded(vmx)
            config_vp_file = vm.config.vp_file if not (a.stdin or a.code is not None) else None
        try:
            return self.run_on(vm, vmx, scripts, config_vp_file)
        finally:
            vm.close(self.warn)  # a VM powered on here is powered off (a QEMU VM it booted, too)

    def run_on(self, vm, vmx: str | None, scripts: list[str], config_vp_file) -> int:
        a = self.args
        if a.list_probes or a.list_globals or a.kallsyms:
            if a.list_probes:
                self.out.write(format_probes(vm.probe_rows()))
            if a.list_globals:
                self.out.write(format_globals(vm.global_rows()))
            if a.kallsyms:
                self.out.write(vm.kallsyms())
            self.out.close()
            return 0
        if a.reset:
            unloaded = vm.reset()
            self.warn(f"vprobe: {'unloaded the script' if unloaded else 'no script was loaded'} in {vmx}")
            return 0
        files = self.script_files(scripts, vm, config_vp_file)
        if a.load_only:
            self.warn(f"vprobe: {vm.load_only(files, self.warn)}")
            return 0
        sink, finish = self.sink(vm)
        try:
            status = vm.run(files, sink, a.duration, self.warn)
        finally:
            finish()
        return status


def run(argv: list[str], stdin, stdout, stderr) -> int:
    """vprobe with these arguments and (binary) streams; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_intermixed_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    command = Command(args, stdin, stdout, stderr)
    try:
        return command.run()
    except LoadFailed as e:
        command.warn(e.text)
        return 1
    except _Plain as e:
        command.warn(e.message)
        return e.status
    except ToolError as e:
        command.warn(f"vprobe: {e.message}")
        return e.status
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a real VM's failure (QEMU went away ...) is a plain message too
        message = machine_failure(e)
        if message is None:
            raise
        command.warn(f"vprobe: {message}")
        return 1


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        status = run(sys.argv[1:] if argv is None else argv, sys.stdin.buffer, sys.stdout.buffer, sys.stderr.buffer)
    except Exception as e:  # a defect of vprobe itself: say so plainly
        sys.stderr.write(f"vprobe: internal error: {type(e).__name__}: {e}\n")
        status = 2
    sys.exit(status)


if __name__ == "__main__":
    main()
