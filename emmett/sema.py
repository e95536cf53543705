"""Semantic analysis: what the compiler knows about a program, and the passes that find it out.

`Program` holds the analysis of one compilation (globals, functions, probes,
implicit variables, inference constraints, C tags and typedefs); its methods
run the passes, each in a module of its own, in this order:

1. `declare`   the top level in source order: globals, types and layouts
               (`layout`), function signatures, probes.
2. `resolve`   every body with block scopes: names bound to symbols,
               implicit names and their uses, the call graph.
3. `infer`     what each implicit name is, and the type of each implicit
               variable (`decide_implicit`, `infer`).
4. `exprtypes` the type of every expression, stored on its node.
5. `reach`     the functions a probe reaches, and the recursive ones.

Lowering (`lower.py`, driven by `output.py`) then checks each construct
against these types while it translates it to VP.
"""

from . import ctype as T
from .declare import Declarations, top_level_names
from .exprtypes import ExprTypes
from .infer import decide_implicit, infer
from .language import BUILTIN_GLOBALS, BUILTINS, HIDEABLE_BUILTINS
from .layout import Layout
from .reach import mark_reachable
from .resolve import Resolver
from .symbols import FuncSym, where


class Program:
    """Everything analysis knows about one compilation."""

    def __init__(self, reporter, options, symbols):
        self.reporter = reporter
        self.options = options
        self.guest_symbols = symbols  # name -> address, from -s (or None)
        self.globals = {}  # name -> Sym | FuncSym (variables, aggregates, bags, externs, enum constants, functions)
        self.global_order = []  # Syms in declaration order (variables, aggregates, bags)
        self.functions = []  # FuncSym in definition order
        self.tags = {}  # struct/union/enum tag -> type
        self.typedefs = {}  # name -> type
        self.probes = []
        self.externals = []  # the program's top level (not the preload's), as parsed
        self.implicit = {}  # name -> Sym (undeclared, decided by use)
        self.constraints = []
        self.guestsym_uses = []  # (Sym, pos) of &name for undeclared names
        self.model = T.MEMMODELS.get(options.memmodel) or T.MEMMODELS["guest64"]
        self.temp = None  # the shared temporary string variable, when needed
        self.layout = Layout(self)
        self.types = ExprTypes(self)

    def error(self, pos, message):
        self.reporter.error(pos, message)

    def fail(self, pos, message):
        self.reporter.fail(pos, message)

    def define_global(self, name, sym, pos):
        earlier = self.globals.get(name)
        if earlier is not None:
            self.fail(pos, f"'{name}' is already declared at {where(earlier.pos)}")
        if name in BUILTIN_GLOBALS:
            self.reporter.warning(pos, f"'{name}' hides the built-in VProbes variable of the same name")
        if name in BUILTINS and isinstance(sym, FuncSym):
            if name not in HIDEABLE_BUILTINS:
                self.fail(pos, f"'{name}' is a built-in function and cannot be redefined")
            self.reporter.warning(pos, f"'{name}' hides the VP builtin of the same name: this program's "
                                       f"calls of {name}() call this function")
        self.globals[name] = sym

    # ---- the passes, in order -------------------------------------------------------------

    def analyse(self, externals_preload, externals_main):
        """Run every pass over the preload library and the program."""
        self.externals = externals_main
        self.declare(externals_preload, True, top_level_names(externals_main))
        self.model = T.MEMMODELS[self.options.memmodel]
        self.declare(externals_main, False)
        self.resolve_all()
        self.decide_implicit()
        self.infer()
        self.compute_types()
        self.mark_reachable()

    def declare(self, externals, preload, skip_names=frozenset()):
        Declarations(self).run(externals, preload, skip_names)

    def resolve_all(self):
        Resolver(self).run()

    def decide_implicit(self):
        decide_implicit(self)

    def infer(self):
        infer(self)

    def compute_types(self):
        types = self.types
        for fs in self.functions:
            if fs.ctx is not None and not fs.ctx.failed:
                types.type_body(fs.node.body, fs.model)
        for probe in self.probes:
            if not probe.ctx.failed:
                types.type_body(probe.node.body, probe.ctx.model)

    def mark_reachable(self):
        mark_reachable(self)
