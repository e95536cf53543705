"""Emmett: the C-like language for VProbes, and `emmettc`, its compiler to VP.

    import emmett
    result = emmett.compile(source, "prog.emt", emmett.CompileOptions(auto_aggr=True))
    if result.ok:
        print(result.vp)
    else:
        for d in result.diagnostics:
            print(d.format())

`compile` never raises; see `emmett.driver` for the pipeline and the
language in the project's EMMETT.md.  This package does not import the VP
runtime or the machine: VP text is the contract between them.

The names below are loaded on first use, so that `emmettc` can start by
parsing its options before it imports the compiler.
"""

__all__ = ["compile", "CompileOptions", "CompileResult", "Diagnostic"]


def __getattr__(name):
    if name == "compile":
        from .driver import compile
        return compile
    if name in ("CompileOptions", "CompileResult", "Diagnostic"):
        from . import diagnostics
        return getattr(diagnostics, name)
    raise AttributeError(f"module 'emmett' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
