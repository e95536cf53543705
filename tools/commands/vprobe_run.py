"""What one run of `vprobe` does, once its command line is parsed (`commands.vprobe`).

It picks the VM (a running one for the .vmx, else one powered on here),
gets the script's VP (files, -c, -i, or compiled Emmett), and either lists,
resets, loads only, or runs the script with its log going to the views
asked for.  Errors become plain messages on stderr and an exit status
(`run_vprobe`); nothing ends in a traceback.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from machine.vmx import VmxError, VProbesDisabled, check_enabled, host_allows_vprobes

from ..errors import LoadFailed, ToolError, machine_failure
from ..output import LogStream, MessageStream, Tee, is_terminal
from ..log.aggr_info import SYSCALL, AggregateCatalog
from ..scripts.sources import (SourceFile, SourceMap, compile_emmett, compiled_name, is_emmett, needs_auto_aggr,
                               read_sources)
from ..views import aggr, stacks
from ..views.json_view import JsonView
from ..log.json_lines import dumps
from ..views.listings import format_costs, format_globals, format_probes, global_json, matching, probe_json
from ..views.pipeline import Pipeline
from ..views.report.model import RunSummary
from ..views.report.writer import ReportWriter, check_writable
from ..views.symbolize import Symbolizer
from ..views.tables import KeyFormat
from ..vm.machine_info import read_symbol_file
from ..vm.targets import EmbeddedVM, find_vm, machine_warnings
from .base import Streams
from .options import shape
from .status_line import RunProgress
from .vprobe_fleet import check_fleet_usage, run_fleet_command


class _Plain(ToolError):
    """A message that is already complete (located diagnostics): printed without the program's name."""


def with_charge(config, charge: str | None):
    """`config` with the probe-time charge --charge asks for (None: the VM's own)."""
    if charge is None:
        return config
    if not hasattr(config, "charge_probe_time"):
        raise ToolError("--charge applies to simulated VMs: a VM under QEMU runs on real clocks")
    return dataclasses.replace(config, charge_probe_time=charge)


def check_report_usage(args) -> None:
    """--html reports a run: not a listing, -l or -r; and it must be writable before the run starts."""
    if args.html is None:
        return
    for name, flag in (("load_only", "-l"), ("reset", "-r"), ("list_probes", "-p"), ("list_globals", "-g"),
                       ("kallsyms", "--kallsyms")):
        if getattr(args, name):
            raise ToolError(f"--html reports a run of a script: it does not go with {flag}")
    check_writable(args.html)


class VprobeRun:
    """One run of vprobe, with its options and streams."""

    def __init__(self, args, stdin, stdout, stderr):
        self.args = args
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.out = LogStream(stdout)
        self.err = MessageStream(stderr)
        self._symbols: str | None = None
        self.started = time.monotonic()  # the run's start, for its report (run_summary sets it)

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
        if a.list_probes or a.list_globals:
            if a.code is not None or a.stdin:
                raise ToolError("-p and -g list what the VM offers: they run no script (-c, -i)")
            scripts_given = [s for s in scripts if s.endswith((".emt", ".vp"))]
            if scripts_given:
                raise ToolError(f"-p and -g take name patterns (shell globs such as 'GUEST:sys_*'), not scripts: "
                                f"{scripts_given[0]} is a script's name (vprobe -l SCRIPT lists the probes a "
                                f"script uses)")
            return
        if a.kallsyms and (scripts or a.code is not None or a.stdin):
            raise ToolError("--kallsyms prints the guest's symbols: give it no script")
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
        if a.structs is not None and (scripts or a.code is not None or a.stdin):
            raise ToolError("--structs prints the guest's structure declarations: give no script with it")

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
        config = with_charge(config, self.args.charge)
        try:
            check_enabled(config)
        except VProbesDisabled as e:
            raise ToolError(str(e)) from None
        vm = EmbeddedVM(config, write_out_file=vmx is not None)
        for warning in machine_warnings(vm.machine):  # what powering on found (a QEMU VM: KVM fell back)
            self.warn(f"vprobe: warning: {warning}")
        return vm

    def print_structs(self, vmx: str | None) -> int:
        """The guest's structure declarations for the fields asked for (from the VM's configuration:
        a simulated guest's structures are its profile's, whether it runs or not)."""
        from machine.simulated import guest_structs
        from machine.vms import read_vm_config

        name = self.args.structs
        try:
            config = read_vm_config(vmx)
            requests = self.stdin.read() if name == "-" else open(name, "rb").read()
        except VmxError as e:
            raise _Plain(e.format()) from None
        except OSError as e:
            raise ToolError(f"cannot read {name}: {e.strerror or e}") from None
        try:
            text = guest_structs(config, requests.decode("utf-8", "replace"))
        except ValueError as e:
            raise ToolError(f"{'<stdin>' if name == '-' else name}: {e}") from None
        self.out.write(text)
        self.out.close()
        return 0

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
        if self.args.max_loop is not None:
            guest["max_loop"] = self.args.max_loop
        guest["progress_to"] = self.stderr
        vp, warnings = compile_emmett(files, **guest)
        if self.args.aggregates and needs_auto_aggr(vp):
            vp, warnings = compile_emmett(files, auto_aggr=True, **guest)
        for w in warnings:
            self.warn(w)
        return vp

    # ---- output ---------------------------------------------------------------------------------

    def sink(self, vm, files: list[SourceFile]):
        """Where the log of the script made of `files` goes, and what to call at the end."""
        a = self.args
        if not a.aggregates and not a.stacks and a.format == "text":
            return self.out.write, self.out.close
        views = []
        symbols = Symbolizer(self.symbols_text(vm)) if a.aggregates or a.stacks else None
        catalog = self.catalog(files) if a.aggregates or a.format == "json" else None
        if a.aggregates:
            views.append(aggr.AggrView(self.out, keys=self.key_format(vm, catalog, symbols), by=a.sort,
                                       reverse=a.reverse, top=a.top, fmt=a.format,
                                       live=is_terminal(self.stdout) and not a.no_refresh))
        if a.stacks:
            views.append(stacks.StackView(self.out, self.err, symbols, shape=shape(a.folded, a.dot), fmt=a.format,
                                          top=a.top, offsets=a.offsets, cumulative=a.cumulative))
        if not views:
            views.append(JsonView(self.out))
        pipeline = Pipeline(views, catalog)

        def finish() -> None:
            pipeline.finish()
            self.out.close()
        return pipeline.sink, finish

    @staticmethod
    def catalog(files: list[SourceFile]) -> AggregateCatalog:
        """What the script made of `files` says about its aggregates (compiled Emmett: their tables'
        columns, histograms; empty for VP without annotations)."""
        return AggregateCatalog.of_vp(SourceMap(files).text)

    def key_format(self, vm, catalog: AggregateCatalog, symbols: Symbolizer | None) -> KeyFormat:
        """How the aggregates' keys are shown: addresses with `symbols`, system call numbers by the
        VM's names (asked of it now, only when some aggregate has a system call key)."""
        names = vm.syscall_names() if catalog.has_kind(SYSCALL) else {}
        return KeyFormat(symbols, lambda: names)

    def output(self, vm, files: list[SourceFile], run: RunSummary):
        """`sink`, and with --html the report of `run` too (written when the log ends)."""
        sink, finish = self.sink(vm, files)
        report = self.report_output(vm, files, run)
        if report is None:
            return sink, finish
        report_sink, report_finish = report

        def finish_both() -> None:
            try:
                finish()
            finally:
                report_finish()
        return Tee(sink, report_sink), finish_both

    def report_output(self, vm, files: list[SourceFile], run: RunSummary):
        """With --html: a sink for the log and what to call at its end, when the report is written."""
        if self.args.html is None:
            return None
        catalog = self.catalog(files)
        keys = self.key_format(vm, catalog, Symbolizer(self.symbols_text(vm)))
        report = ReportWriter(self.args.html, run, lambda: keys, cumulative=self.args.cumulative,
                              complete=self.report_complete(vm))
        pipeline = Pipeline([report.view], catalog)
        return pipeline.sink, pipeline.finish

    def run_summary(self, vm, vmx: str | None, scripts: list[str]) -> RunSummary:
        """What the report says of this run, as far as it is known before it starts."""
        a = self.args
        if scripts:
            title, sources = " ".join(scripts), [(s, Path(s).read_bytes().decode("utf-8", "replace")) for s in scripts]
        elif a.code is not None:
            title, sources = "the -c program", [("-c", a.code)]
        else:
            title, sources = "the VP script from standard input" if a.stdin else "the VM's script", []
        self.started = time.monotonic()
        return RunSummary(title, vm=vmx or "the embedded default machine",
                          started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), scripts=sources,
                          duration_s=a.duration)

    def report_complete(self, vm):
        started = self.started

        def complete(run: RunSummary) -> None:
            run.wall_s = time.monotonic() - started
            if vm.probes:  # the VM ran the script (a fleet's client VM only checked that it loads)
                run.probes = list(vm.probes)
                run.guest_s = vm.guest_s
        return complete

    # ---- the run ---------------------------------------------------------------------------------

    def run(self) -> int:
        a = self.args
        vmx, scripts = self.split_files()
        self.check_usage(scripts, vmx)
        check_fleet_usage(a)
        check_report_usage(a)
        self.host_allows()
        if a.fleet is not None:
            return run_fleet_command(self, vmx, scripts)
        if a.structs is not None:
            return self.print_structs(vmx)
        vm = find_vm(vmx)
        config_vp_file = None
        if vm is not None and a.charge is not None:
            raise ToolError(f"--charge applies to a VM vprobe powers on: {vmx} runs in the background "
                            f"and charges probes as its vprobe.chargeProbeTime says")
        if vm is None:
            if a.reset:
                raise ToolError(f"the VM {vmx} is not running: nothing to unload")
            vm = self.embedded(vmx)
            config_vp_file = vm.config.vp_file if not (a.stdin or a.code is not None) else None
        try:
            status = self.run_on(vm, vmx, scripts, config_vp_file)
        finally:
            vm.close(self.warn)  # a VM powered on here is powered off (a QEMU VM it booted, too)
        if self.out.error is not None:
            self.warn(f"vprobe: cannot write the output: {self.out.error}; the rest of it was dropped")
            return status or 1
        return status

    def list(self, vm, patterns: list[str]) -> None:
        """-p, -g (the rows matching `patterns`), --kallsyms."""
        a = self.args
        json = a.format == "json"
        lists = []
        if a.list_probes:
            lists.append((vm.probe_rows(), probe_json if json else lambda rows: format_probes(rows, a.verbose)))
        if a.list_globals:
            lists.append((vm.global_rows(), global_json if json else format_globals))
        shown = [matching(rows, patterns) for rows, _ in lists]
        unmatched = [p for p in patterns if all(p in missed for _, missed in shown)]
        if unmatched:
            what = " or ".join(w for w, asked in (("probe point", a.list_probes), ("global", a.list_globals)) if asked)
            raise ToolError(f"no {what} matches {unmatched[0]!r} (names are case-sensitive; shell globs: "
                            f"* ? [...])")
        for (kept, _), (_, render) in zip(shown, lists):
            rendered = render(kept)
            self.out.write("".join(dumps(r) for r in rendered) if json else rendered)
        if a.kallsyms:
            self.out.write(vm.kallsyms())

    def run_on(self, vm, vmx: str | None, scripts: list[str], config_vp_file) -> int:
        a = self.args
        if a.list_probes or a.list_globals or a.kallsyms:
            self.list(vm, scripts)
            self.out.close()
            return 0
        if a.reset:
            unloaded = vm.reset(self.warn)
            self.warn(f"vprobe: {'unloaded the script' if unloaded else 'no script was loaded'} in {vmx}")
            return 0
        files = self.script_files(scripts, vm, config_vp_file)
        if a.load_only:
            message, costs = vm.load_only(files, self.warn)
            MessageStream(self.stdout).write(format_costs(costs))
            self.warn(f"vprobe: {message}")
            return 0
        sink, finish = self.output(vm, files, self.run_summary(vm, vmx, scripts))
        progress = None
        if a.duration is not None and is_terminal(self.stderr):
            progress = RunProgress(self.err, a.duration, not vm.realtime, enabled=True)
            sink = progress.around(sink)
        try:
            status = vm.run(files, sink, a.duration, self.warn, progress)
        finally:
            if progress is not None:
                progress.clear()
            finish()
        return status


def run_vprobe(options, streams: Streams) -> int:
    """Run vprobe with its parsed `options` (attributes named as the long options); the exit status."""
    vprobe = VprobeRun(options, streams.stdin, streams.stdout, streams.stderr)
    try:
        return vprobe.run()
    except LoadFailed as e:
        vprobe.warn(e.text)
        return 1
    except _Plain as e:
        vprobe.warn(e.message)
        return e.status
    except ToolError as e:
        vprobe.warn(f"vprobe: {e.message}")
        return e.status
    except Exception as e:  # a real VM's failure (QEMU went away ...) is a plain message too
        message = machine_failure(e)
        if message is None:
            raise
        vprobe.warn(f"vprobe: {message}")
        return 1
