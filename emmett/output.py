"""From an analysed program to VP text: frames, lowering, the globals the output needs, limits, emission.

1. `place_locals`: where each local lives.  VP has globals and function
   parameters only: locals of probes and of non-recursive functions become
   globals `function.local`; locals of recursive functions become extra
   parameters that every call passes as 0 or "", so each activation has its
   own (VP's limit of parameters then counts them).
2. `lower_all`: every probe, and every function that is emitted or may be
   (a guest preload's functions only when a probe reaches them), to VP forms.
3. `used_globals`: the globals the output declares: those of the program,
   those of the preload that the emitted code uses, implicit variables it
   uses, and the locals that became globals (dead ones dropped).
4. VP's limits on what is emitted: probes per VM; operators, `do` and
   `cond` regrouped to at most 32 operands (`vp.within_arity`); nesting (a
   form too deep has its chains of `+` and `-` made flat sums first).
5. Names and text (`emit`), and the annotations that end it (`annotations`):
   the source map from VP positions to Emmett ones and, per aggregate, what
   the printers need (`aggr_info`).
"""

from .annotations import Annotations, source_map
from .diagnostics import CompileError
from .emit import assign_names, auto_aggr_probe, global_def, referenced_syms, render
from .language import MAX_NESTING, MAX_PARAMS, MAX_PROBES
from .lower import Lowerer
from .probe_points import probe_spec
from .vp import flatten_sums, nesting, within_arity


def generate(program, options, main_fid):
    """(the VP text of `program` with its annotations, the Annotations), or None when there are
    errors (they are reported)."""
    reporter = program.reporter
    place_locals(program)
    lowerer, functions, probes = lower_all(program)
    check_probe_count(program, options, main_fid)
    if reporter.error_count:
        return None
    fn_forms = [lowerer.tag(["defun", fs, None] + body, fs.pos) for fs, body in functions]
    pr_forms = [lowerer.tag(["vprobe", spec] + body, probe.pos) for probe, spec, body in probes]
    used = referenced_syms(fn_forms + pr_forms)
    globals_, ctx_locals, local_globals = used_globals(program, functions, probes, used)
    assign_names(program, globals_, [fs for fs, _ in functions], ctx_locals)

    defs = [lowerer.tag(global_def(s), s.pos) for s in globals_ + local_globals]
    if program.temp is not None and id(program.temp) in used:
        defs.append(["defstring", program.temp])  # from no one construct: not in the source map
    for form, (fs, _) in zip(fn_forms, functions):
        form[2] = fs.ctx.params + [s for s in fs.ctx.locals if s.hidden]
    aggregates = [s for s in globals_ if s.kind == "aggr"]
    if options.auto_aggr and aggregates:
        pr_forms.append(auto_aggr_probe(aggregates))
    for form in fn_forms + pr_forms:
        within_arity(form)
    check_nesting(program, fn_forms, functions, pr_forms, probes)
    if reporter.error_count:
        return None
    vp, segments = render(defs, fn_forms, pr_forms, options.indent, lowerer.origins)
    files, segments = source_map(segments, reporter.files, vp)
    annotations = Annotations(files, segments, {a.vpname: lowerer.aggregates.record_of(a) for a in aggregates})
    return vp + annotations.text(vp.count("\n")), annotations


def place_locals(program):
    """Locals of recursive functions become hidden parameters (each activation has its own)."""
    for fs in program.functions:
        if fs.recursive and fs.ctx is not None:
            for local in fs.ctx.locals:
                if not local.static:
                    local.hidden = True
            count = len(fs.ctx.params) + sum(1 for s in fs.ctx.locals if s.hidden)
            if count > MAX_PARAMS:
                program.reporter.error(
                    fs.pos, f"recursive function '{fs.name}' has {count} parameters and locals; at most "
                            f"{MAX_PARAMS} fit in a VP function (its locals become parameters)")


def lower_all(program):
    """(the Lowerer, [(FuncSym, body forms)] of the emitted functions, [(Probe, VP probe point, body forms)])."""
    lowerer = Lowerer(program)
    functions = []
    for fs in program.functions:
        if fs.ctx is None or (fs.preload and not fs.reachable):
            continue
        body = lowerer.lower_function(fs)
        if fs.reachable:
            functions.append((fs, body))
    probes = []
    for probe in program.probes:
        try:
            spec = probe_spec(probe, program)
        except CompileError:
            spec = None
        probes.append((probe, spec, lowerer.lower_probe(probe, spec)))
    for fs, body in lowerer.histograms.bodies:  # the functions histogram updates call
        functions.append((fs, body))
    return lowerer, functions, probes


def used_globals(program, functions, probes, used):
    """(globals to declare, [(Ctx, name prefix)] of the emitted bodies, locals that become globals).

    Declared globals of the program are all kept; the preload's only when used;
    implicit variables and locals only when the emitted code uses them (static
    locals always: they keep their value between firings).  Each body's list of
    locals is cut to the ones it keeps.
    """
    globals_ = [sym for sym in program.global_order
                if sym.kind in ("var", "aggr", "bag") and not (sym.preload and id(sym) not in used)]
    declared = {id(s) for s in globals_}
    for sym in program.implicit.values():
        if sym.kind == "var" and id(sym) in used and id(sym) not in declared:
            globals_.append(sym)
    ctx_locals = [(fs.ctx, fs.name) for fs, _ in functions]
    ctx_locals += [(probe.ctx, _probe_prefix(spec)) for probe, spec, _ in probes]
    local_globals = []
    for ctx, _ in ctx_locals:
        for local in ctx.locals:
            if not local.hidden and (id(local) in used or local.static):
                local_globals.append(local)
        ctx.locals = [s for s in ctx.locals if s.hidden or id(s) in used or s.static]
    return globals_, ctx_locals, local_globals


def check_probe_count(program, options, main_fid):
    total = len(program.probes) + (1 if options.auto_aggr else 0)
    if total > MAX_PROBES:
        where = program.probes[MAX_PROBES].pos if len(program.probes) > MAX_PROBES else (main_fid, 1, 1)
        program.reporter.error(where, f"too many probes: {total}; VProbes allows at most {MAX_PROBES} per VM"
                                      + (" (counting the one -a adds)" if options.auto_aggr else ""))


def check_nesting(program, fn_forms, functions, pr_forms, probes):
    """VP's nesting limit, after long chains of `+` and `-` are made flat sums where they nest too deeply."""
    reporter = program.reporter

    def too_deep(form):
        if nesting(form) <= MAX_NESTING:
            return False
        within_arity(flatten_sums(form))
        return nesting(form) > MAX_NESTING

    for form, (fs, _) in zip(fn_forms, functions):
        if too_deep(form):
            reporter.error(fs.pos, f"the VP for '{fs.name}' nests more than {MAX_NESTING} levels deep, "
                                   f"more than VP allows: move some of it into functions")
    for form, (probe, _, _) in zip(pr_forms, probes):
        if too_deep(form):
            reporter.error(probe.pos, f"the VP for this probe nests more than {MAX_NESTING} levels deep, "
                                      f"more than VP allows: move some of it into functions")


def _probe_prefix(spec):
    text = spec or "probe"
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in text)
