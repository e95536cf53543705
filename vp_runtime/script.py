"""Loading a script: read, check, translate, compile, size-check; then fire probes.

`load()` is the runtime's one entry point.  It does all the work once, so
that a firing is a call of a compiled Python function.  The loaded `Script`
gives the machine one handler per probe point (duplicate probes run in
order) and owns the script's log.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import CodeType
from typing import Callable

from .backend import Backend, CatalogBackend
from .builtins import Builtins, builtin_namespace
from .probe_points import ProbeSpec
from .checker import check
from .cost import ProbeCost, probe_costs
from .errors import Diagnostic, VPFault, VPLoadError
from .limits import LoadConfig
from .reader import Source, read
from .spec.builtins import BUILTINS
from .state import AggregateTable, Bag, BagStore, Cell, LogWriter, aggregate_add
from .translate import translate
from .typevars import STR

Handler = Callable[[], None]


def _code_bytes(code: CodeType) -> int:
    """Bytecode size of `code` and every function nested in it."""
    total = len(code.co_code)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            total += _code_bytes(const)
    return total


def _fault_line(probe: str, fault: VPFault) -> str:
    where = f" at {fault.where}" if fault.where else ""
    return f"vprobe error: probe {probe} aborted{where}: {fault.message}"


@dataclass(frozen=True)
class ProbeEntry:
    spec: ProbeSpec
    handler: Handler


class Script:
    """A loaded, translated script, ready for a machine to fire."""

    def __init__(self, source: Source, backend: Backend, config: LoadConfig,
                 log_sink: Callable[[str], None], aggregate_clock: Callable[[], int] | None = None):
        forms = read(source)
        program, self.warnings = check(source, forms, backend)
        self.costs = probe_costs(program, config.max_calls_per_firing)
        _check_costs(source, self.costs, config)
        budgeted = frozenset(i for i, cost in enumerate(self.costs) if not cost.bounded)
        self.aggregate_clock = aggregate_clock
        # The globals the machine says where to read (`Backend`: global_path): from what object.
        located = getattr(backend, "global_path", None)
        where = {name: located(name) for name in program.builtin_globals} if located else {}
        roots = {name: found[0] for name, found in where.items() if found is not None}
        paths = {name: found[1:] for name, found in where.items() if found is not None}

        def translated(counting: bool):
            translation = translate(program, source.location, budgeted, stamped=aggregate_clock is not None,
                                    counting=counting, paths=paths)
            try:
                code = compile(translation.source, "<vp script>", "exec")
            except (SyntaxError, RecursionError, MemoryError, ValueError):
                raise source.error((1, 1), "the script is too deeply nested to translate") from None
            return translation, code, sum(_code_bytes(c) for c in code.co_consts if isinstance(c, CodeType))

        translation, code, self.code_bytes = translated(config.count_operations)
        # The translation cache holds the script's own code: the counting of a modelled charge
        # does not count against it (measured without it only for a script near the limit).
        own_bytes = self.code_bytes
        if own_bytes > config.max_code_bytes and config.count_operations:
            own_bytes = translated(False)[2]
        if own_bytes > config.max_code_bytes:
            raise source.error((1, 1), f"the translated script takes {own_bytes} bytes, more than the "
                                       f"translation cache holds ({config.max_code_bytes} bytes, vprobe.maxCodeBytes; "
                                       f"at most 65536)")
        self.source = source
        # What compiled VP says about its Emmett source: the source map (already used for
        # diagnostics and fault lines) and each aggregate's record, for the printers.
        self.annotations = source.annotations
        self.log = LogWriter(log_sink)
        # How often each probe (in script order) has fired: each probe's code adds one (`_fired`).
        self.firings = [0] * len(program.probes)
        self.builtins = Builtins(backend, self.log)
        self.aggregates = {a.name: AggregateTable(a.name, a.int_keys, a.str_keys,
                                                  keep_run_totals=aggregate_clock is not None)
                           for a in program.aggregates}
        store = BagStore(config.bag_bytes)
        namespace = self._namespace(program, translation, backend, config, store, roots)
        namespace["__builtins__"] = {}
        exec(code, namespace)  # noqa: S102 - source built only from invented names, see translate.py
        entries = []
        for name, probe in zip(translation.probe_functions, program.probes):
            entries.append(ProbeEntry(probe.spec, namespace[name]))
        self.entries = entries
        self.python_source = translation.source
        self.machine_globals = tuple(translation.readers)  # built-in globals the script reads from the machine
        # What a machine's firings need to do for this script, decided once at attach: write what
        # the machine keeps only in its model before a firing that may read guest memory (a builtin
        # that reads it: the spec's guest_words), and call `end_firing` after each firing of a
        # script that writes text (which can leave a line unfinished).
        self.builtins_called = translation.builtins  # the builtins its code calls, by name
        self.reads_guest_memory = any(BUILTINS[name].guest_words for name in translation.builtins)
        self.writes_text = translation.writes_text
        self.may_exit = "exit" in translation.builtins  # a firing may end the script (`exited`)
        self._namespace_ref = namespace
        self._program = program

    def _namespace(self, program, translation, backend, config, store, roots) -> dict:
        ns: dict[str, object] = dict(translation.constants)
        ns.update(builtin_namespace(self.builtins))
        for i, var in enumerate(program.variables):
            ns[f"g{i}"] = Cell(var.init) if var.type == STR else var.init
        for i, aggr in enumerate(program.aggregates):
            table = self.aggregates[aggr.name]
            ns[f"a{i}"] = table.entries
            ns[f"Aa{i}"] = table
        for i, bag in enumerate(program.bags):
            ns[f"b{i}"] = Bag(bag.size, store)
        for name, reader in translation.readers.items():
            ns[reader] = roots[name] if name in roots else backend.global_reader(name)
        ns["_fired"] = self.firings

        def logaggr(table: AggregateTable) -> int:
            # The block is whole lines (pretty-printers parse it): end a partial line first.
            self.log.line(table.format().rstrip("\n"))
            table.logged = True
            return 1

        def clearaggr(table: AggregateTable) -> int:
            table.clear()
            return 1

        def overflow(where: str):
            raise VPFault(f"VP stack overflow: recursion deeper than {config.max_call_depth} calls", where)

        def exhausted(where: str):
            raise VPFault(f"work budget exhausted: more than {config.max_calls_per_firing} calls of recursive "
                          f"functions in one firing (vprobe.maxCallsPerFiring)", where)

        ns.update({
            "_logaggr": logaggr, "_clearaggr": clearaggr, "_aggr_add": aggregate_add, "_Cell": Cell,
            "_set": _set_cell, "_Fault": VPFault, "_RecursionError": RecursionError, "_Exception": Exception,
            "_fault": self._report_fault, "_stack_fault": _stack_fault, "_internal_fault": _internal_fault,
            "_host_overflow": _host_overflow,
            "_depth": [0], "_max_depth": config.max_call_depth, "_overflow": overflow,
            "_calls_left": 0, "_max_calls": config.max_calls_per_firing, "_exhausted": exhausted,
            "_probename_box": ["", 0], "_clock": self.aggregate_clock, "_ops": 0,
        })
        return ns

    def _report_fault(self, probe: str, fault: VPFault) -> None:
        self.log.line(_fault_line(probe, fault))

    # ---- what the machine uses -----------------------------------------------

    def probe_specs(self) -> list[ProbeSpec]:
        """Each distinct probe point the script enables, in first-appearance order (one spec
        for a point however many spellings name it: VMM1Hz and VMM:VMM1Hz)."""
        seen: dict[tuple, ProbeSpec] = {}
        for entry in self.entries:
            seen.setdefault(entry.spec.point, entry.spec)
        return list(seen.values())

    def probe_kinds(self) -> dict[str, ProbeSpec]:
        """The static probes the script enables, by name (kind): e.g. whether it has a VMXLoad."""
        return {s.kind: s for s in self.probe_specs() if s.static is not None}

    def handler(self, spec_text: str) -> Handler:
        """The callable to fire for a probe point: its probes (whatever their spelling), in
        script order."""
        point = next(e.spec.point for e in self.entries if e.spec.text == spec_text)
        handlers = [e.handler for e in self.entries if e.spec.point == point]
        if len(handlers) == 1:
            return handlers[0]

        def run_all() -> None:
            for h in handlers:
                h()
        return run_all

    def operations(self) -> int:
        """The VP operations the script's firings have executed so far (counted only when it was
        loaded with `LoadConfig.count_operations`; 0 otherwise).  A machine that charges a
        modelled cost reads it for its clocks, during a firing too."""
        return self._namespace_ref["_ops"]

    def variable(self, name: str) -> int | str:
        """The current value of user global `name` (for tests and tools)."""
        for i, var in enumerate(self._program.variables):
            if var.name == name:
                value = self._namespace_ref[f"g{i}"]
                return value.v if isinstance(value, Cell) else value
        raise KeyError(name)

    def run_totals(self) -> dict[str, dict]:
        """Every aggregate's entries over the whole run, what clearaggr cleared included:
        name -> {key: [count, sum, min, max, latest, stamp]}, the stamp being the aggregate
        clock's value at the entry's last update.  Only for a script loaded with an
        aggregate clock."""
        if self.aggregate_clock is None:
            raise ValueError("run totals are kept only for a script loaded with an aggregate clock")
        return {name: table.run_totals() for name, table in self.aggregates.items()}

    def log_unlogged_aggregates(self) -> list[str]:
        """Log, as `logaggr` would, every aggregate that holds entries and that no `logaggr` has
        logged so far, in declaration order (the tools do so at unload, so that nothing a script
        collects is lost from view, as bpftrace prints its maps at exit); their names."""
        names = []
        for table in self.aggregates.values():
            if not table.logged and table.entries:
                self.log.line(table.format().rstrip("\n"))
                table.logged = True
                names.append(table.name)
        self.log.flush()
        return names

    @property
    def exited(self) -> str | None:
        """Where the script called `(exit)` (FILE:LINE:COL), or None: once set, the machine
        fires none of its probes but the unload probes, and detaches it."""
        return self.builtins.exited_at

    def end_firing(self) -> None:
        """A machine calls this after each firing of a script that `writes_text`: its output is
        a record of the log, so a line the firing left unfinished ends here (the reference's
        printf sample prints one RIP per line without a newline of its own)."""
        self.log.end_line()

    def flush(self) -> None:
        self.log.flush()


def _check_costs(source: Source, costs: list[ProbeCost], config: LoadConfig) -> None:
    """Refuse a script one firing of which could execute more than `config.max_ops_per_firing`
    VP operations; with recursion, under the call budget."""
    limit = config.max_ops_per_firing
    errors = []
    for cost in costs:
        if cost.worst_case <= limit:
            continue
        line, col = cost.pos
        if cost.bounded:
            why = f"probe {cost.probe} may execute up to {cost.operations:,} VP operations in one firing"
        else:
            why = (f"probe {cost.probe} calls recursive functions ({', '.join(cost.recursion)}), one call of which "
                   f"may execute up to {cost.per_call:,} VP operations: with the budget of {cost.max_calls:,} calls "
                   f"(vprobe.maxCallsPerFiring) a firing may execute up to {cost.worst_case:,}")
        errors.append(source.diagnostic(line, col, f"{why}, more than this VM allows ({limit:,}, "
                                                   f"vprobe.maxOpsPerFiring)"))
    if errors:
        raise VPLoadError(errors)


def _set_cell(cell: Cell, value: str) -> str:
    cell.v = value
    return value


def _stack_fault(where: str) -> VPFault:
    """The host stack ran out outside any recursive function; `where` is the probe's position."""
    return VPFault("VP stack overflow: the host stack limit was reached", where)


def _host_overflow(where: str):
    """The host stack ran out inside recursive function at `where`."""
    raise VPFault("VP stack overflow: recursion deeper than the host stack allows", where)


def _internal_fault(error: Exception, where: str) -> VPFault:
    return VPFault(f"internal error in the VP runtime: {type(error).__name__}: {error}", where)


def load(vp_text: str | bytes, config: LoadConfig | None = None, *, backend: Backend | None = None,
         filename: str = "<script>", log_sink: Callable[[str], None] | None = None,
         aggregate_clock: Callable[[], int] | None = None) -> Script:
    """Parse, check and translate `vp_text`; raise VPLoadError with located diagnostics.

    `backend` is the machine the script will run on (what probe points and
    globals exist); without one the reference's whole catalogue is assumed.
    `log_sink` receives the script's log output a line at a time.
    `aggregate_clock` is for tools that merge the aggregates of several runs
    exactly: each aggregate entry also records its value at the entry's last
    update (so a merge can tell which run's `latest` came last), and what
    clearaggr clears is kept in `Script.run_totals()`.  The stamping adds a
    few bytes of translated code per `aggr`.
    """
    source = Source(vp_text, filename)
    return Script(source, backend or CatalogBackend(), config or LoadConfig(),
                  log_sink or (lambda text: None), aggregate_clock)


__all__ = ["Diagnostic", "Script", "VPLoadError", "load"]
