"""The C preprocessing step: `#include`, `#define`/`#undef`, conditional sections.

The preprocessor works on lines and never rewrites the text of code lines:
it cuts each file into *chunks*, runs of consecutive code lines that share
one macro table, and the lexer expands macros token by token while it reads a
chunk.  So every token keeps its original file, line and column, and
diagnostics point at the source as written, also inside included files.

A line starting with `#` is a directive only if it is well formed (`#include
"file"`, `#define NAME ...`, `#ifdef NAME`, ...); any other `#` line is a
comment, as in the reference's appendix (`# guestload --`).

Supported: `#include "file"` / `<file>` (the including file's folder first,
then each `-I` folder), object-like and function-like `#define`, `#undef`,
`#ifdef`, `#ifndef`, `#if`/`#elif` with integer expressions and `defined`,
`#else`, `#endif`, `#error`, `#warning`.  Lines may continue with `\\`.
"""

import os
import re

from vprobes_shared.script_text import not_text

from .language import MASK64
from .lexer import decode_number

MAX_INCLUDE_DEPTH = 32

_DIRECTIVE = re.compile(r"\s*#\s*([A-Za-z_]\w*)(.*)\Z", re.S)
_IDENT = re.compile(r"[A-Za-z_]\w*")
_INCLUDE_ARG = re.compile(r'\s*(?:"([^"]*)"|<([^>]*)>)\s*(?://.*|/\*.*)?\Z')
_DEFINE_HEAD = re.compile(r"\s+([A-Za-z_]\w*)(\([^)]*\))?(.*)\Z", re.S)
_ONE_NAME = re.compile(r"\s+([A-Za-z_]\w*)\s*(?://.*|/\*.*)?\Z")
_NOTHING = re.compile(r"\s*(?://.*|/\*.*|[A-Za-z_]\w*\s*)?\Z")
_EXPR_TOKEN = re.compile(r"\s*(?:(0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*|([A-Za-z_]\w*)|(&&|\|\||==|!=|<=|>=|<<|>>|[-+*/%<>()!~&|^?:]))")


class Macro:
    __slots__ = ("name", "params", "body", "pos", "tokens")

    def __init__(self, name, params, body, pos):
        self.name = name
        self.params = params  # None for an object-like macro, else a list of names
        self.body = body
        self.pos = pos
        self.tokens = None  # the body's tokens, lexed on first use


class Chunk:
    """Consecutive code lines of one file, and the macros in force for them."""

    __slots__ = ("fid", "first_line", "text", "macros")

    def __init__(self, fid, first_line, text, macros):
        self.fid = fid
        self.first_line = first_line
        self.text = text
        self.macros = macros


class _IfFrame:
    __slots__ = ("parent_active", "taken", "active", "seen_else", "pos")

    def __init__(self, parent_active, active, pos):
        self.parent_active = parent_active
        self.taken = active
        self.active = active
        self.seen_else = False
        self.pos = pos


class _ExprError(Exception):
    """Not an integer expression; with a message when it is one that is wrong (a number too large)."""


class Preprocessor:
    def __init__(self, files, reporter, include_dirs=(), defines=None, reader=None):
        self.files = files
        self.reporter = reporter
        self.include_dirs = list(include_dirs)
        self.macros = {}
        self.macros_shared = False  # the current dict is referenced by an emitted chunk
        self.chunks = []
        self.reader = reader or _read_file
        self.depth = 0
        for name, value in (defines or {}).items():
            self.macros[name] = Macro(name, None, "1" if value is None else str(value), None)

    # ---- macros -----------------------------------------------------------

    def _mutable_macros(self):
        if self.macros_shared:
            self.macros = dict(self.macros)
            self.macros_shared = False
        return self.macros

    # ---- files ----------------------------------------------------------------

    def run_file(self, name, text, dirname, origin=()):
        """Preprocess file `name` (its `text`); its file id."""
        fid, is_text = self._add_file(name, text, origin)
        if is_text:
            self._process(fid, text, dirname)
        return fid

    def _add_file(self, name, text, origin):
        """(file id, whether it is text): a file that is not text is one error, and is not read."""
        refused = not_text(text.encode("utf-8", "surrogateescape"))
        if refused is None:
            return self.files.add(name, text, origin), True
        line, col, why = refused
        fid = self.files.add(name, "", origin)  # no source line: the text is binary
        self.reporter.error((fid, line, col), why)
        return fid, False

    def _process(self, fid, text, dirname):
        lines = text.split("\n")
        n = len(lines)
        stack = []
        active = True
        run_start = None  # first line (index) of the current code run
        run = []
        i = 0

        def flush():
            nonlocal run_start, run
            if run:
                self.chunks.append(Chunk(fid, run_start + 1, "\n".join(run), self.macros))
                self.macros_shared = True
            run_start, run = None, []

        depth = 0  # how many /* */ comments are open at the start of the line
        while i < n:
            line = lines[i]
            stripped = line.lstrip()
            if depth or not stripped.startswith("#"):
                if "/*" in line or "*/" in line:
                    depth = _comment_depth(line, depth)
                if active:
                    if run_start is None:
                        run_start = i
                        run = []
                    elif run_start + len(run) != i:
                        # Lines were skipped since: keep line numbers exact with blank lines.
                        run.extend([""] * (i - run_start - len(run)))
                    run.append(line)
                i += 1
                continue
            # A '#' line: join continuation lines first.
            first = i
            full = line
            while full.endswith("\\") and i + 1 < n:
                i += 1
                full = full[:-1] + " " + lines[i]
            i += 1
            m = _DIRECTIVE.match(full)
            col = len(line) - len(stripped) + 1
            pos = (fid, first + 1, col)
            word = m.group(1) if m else ""
            rest = m.group(2) if m else ""
            handled = self._conditional(word, rest, pos, stack, active)
            if handled is not None:
                active = handled
                continue
            if not active:
                continue
            if word == "include" and _INCLUDE_ARG.match(rest):
                flush()
                self._include(rest, pos, dirname)
            elif word == "define" and _DEFINE_HEAD.match(rest):
                flush()
                self._define(rest, pos)
            elif word == "undef" and _ONE_NAME.match(rest):
                flush()
                self._mutable_macros().pop(_ONE_NAME.match(rest).group(1), None)
            elif word in ("error", "warning") and (not rest or rest[0] in " \t"):
                message = rest.strip() or f"#{word}"
                if word == "error":
                    self.reporter.error(pos, message)
                else:
                    self.reporter.warning(pos, message)
            # Anything else starting with '#' is a comment line.
        flush()
        for frame in stack:
            self.reporter.error(frame.pos, "this conditional section is never closed: #endif is missing")

    def _conditional(self, word, rest, pos, stack, active):
        """Handle a conditional directive; return the new `active` state, or None if `word` is not one."""
        if word in ("ifdef", "ifndef"):
            m = _ONE_NAME.match(rest)
            if not m:
                return None
            value = (m.group(1) in self.macros) == (word == "ifdef")
            stack.append(_IfFrame(active, active and value, pos))
            return active and value
        if word == "if":
            if not active:
                stack.append(_IfFrame(False, False, pos))
                return False
            try:
                value = self._evaluate(rest)
            except _ExprError as e:
                if not e.args:
                    return None  # not an expression: a comment line such as "# if the guest ..."
                self.reporter.error(pos, f"#if: {e.args[0]}")
                value = 0
            stack.append(_IfFrame(active, bool(value), pos))
            return bool(value)
        if word == "elif":
            if not stack:
                return None
            frame = stack[-1]
            if frame.seen_else:
                self.reporter.error(pos, "#elif after #else")
                return frame.active
            if not frame.parent_active or frame.taken:
                frame.active = False
                return False
            try:
                value = bool(self._evaluate(rest))
            except _ExprError as e:
                self.reporter.error(pos, f"#elif: {e.args[0]}" if e.args else "#elif needs an integer expression")
                value = False
            frame.active = value
            frame.taken = value
            return value
        if word in ("else", "endif"):
            if not _NOTHING.match(rest):
                return None
            if not stack:
                self.reporter.error(pos, f"#{word} without a matching #if, #ifdef or #ifndef")
                return active
            frame = stack[-1]
            if word == "endif":
                stack.pop()
                return frame.parent_active
            if frame.seen_else:
                self.reporter.error(pos, "a second #else for the same conditional section")
                return False
            frame.seen_else = True
            frame.active = frame.parent_active and not frame.taken
            frame.taken = True
            return frame.active
        return None

    def _include(self, rest, pos, dirname):
        m = _INCLUDE_ARG.match(rest)
        quoted, angled = m.group(1), m.group(2)
        name = quoted if quoted is not None else angled
        if not name:
            self.reporter.error(pos, "#include needs a file name")
            return
        if self.depth >= MAX_INCLUDE_DEPTH:
            self.reporter.error(pos, f"#include nested more than {MAX_INCLUDE_DEPTH} deep (does a file include itself?)")
            return
        candidates = []
        if os.path.isabs(name):
            candidates.append(name)
        else:
            if quoted is not None and dirname is not None:
                candidates.append(os.path.join(dirname, name))
            candidates.extend(os.path.join(d, name) for d in self.include_dirs)
        for path in candidates:
            if os.path.isfile(path):
                try:
                    text = self.reader(path)
                except OSError as e:
                    self.reporter.error(pos, f"cannot read '{path}': {e.strerror or e}")
                    return
                self.depth += 1
                try:
                    fid, is_text = self._add_file(path, text, self.files.origins[pos[0]] + ((pos[1], pos[2]),))
                    if is_text:
                        self._process(fid, text, os.path.dirname(path))
                finally:
                    self.depth -= 1
                return
        where = " (searched: " + ", ".join(candidates) + ")" if candidates else ""
        self.reporter.error(pos, f"cannot find include file '{name}'{where}")

    def _define(self, rest, pos):
        m = _DEFINE_HEAD.match(rest)
        name, params, body = m.group(1), m.group(2), m.group(3)
        param_list = None
        if params is not None:
            inner = params[1:-1].strip()
            param_list = [p.strip() for p in inner.split(",")] if inner else []
            if any(not _IDENT.fullmatch(p) for p in param_list):
                self.reporter.error(pos, f"bad parameter list in the definition of macro '{name}'")
                return
        body = _strip_comments(body).strip()
        self._mutable_macros()[name] = Macro(name, param_list, body, pos)

    # ---- #if expressions ------------------------------------------------------

    def _evaluate(self, text):
        tokens = self._expr_tokens(_strip_comments(text), set())
        if not tokens:
            raise _ExprError
        parser = _ExprParser(tokens)
        value = parser.expression()
        if parser.i != len(tokens):
            raise _ExprError
        return value

    def _expr_tokens(self, text, expanding):
        out = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _EXPR_TOKEN.match(text, pos)
            if not m:
                raise _ExprError
            pos = m.end()
            number, ident, op = m.groups()
            if number is not None:
                kind, value = decode_number(number)
                if kind != "int":
                    raise _ExprError(value)
                out.append(value)
            elif ident is not None:
                if ident == "defined":
                    m2 = re.compile(r"\s*(?:\(\s*([A-Za-z_]\w*)\s*\)|([A-Za-z_]\w*))").match(text, pos)
                    if not m2:
                        raise _ExprError
                    pos = m2.end()
                    out.append(1 if (m2.group(1) or m2.group(2)) in self.macros else 0)
                    continue
                macro = self.macros.get(ident)
                if macro is not None and macro.params is None and ident not in expanding:
                    out.extend(self._expr_tokens(macro.body, expanding | {ident}))
                else:
                    out.append(0)  # an unknown identifier is 0, as in C
            else:
                out.append(op)
        return out


class _ExprParser:
    """Integer expressions of #if / #elif (C precedence, 64-bit unsigned arithmetic)."""

    _BINARY = [("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", ">", "<=", ">="),
               ("<<", ">>"), ("+", "-"), ("*", "/", "%")]

    def __init__(self, tokens):
        self.tokens = tokens
        self.i = 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self):
        tok = self.peek()
        if tok is None:
            raise _ExprError
        self.i += 1
        return tok

    def expression(self):
        cond = self.binary(0)
        if self.peek() == "?":
            self.i += 1
            a = self.expression()
            if self.take() != ":":
                raise _ExprError
            b = self.expression()
            return a if cond else b
        return cond

    def binary(self, level):
        if level == len(self._BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek() in self._BINARY[level]:
            op = self.take()
            right = self.binary(level + 1)
            left = _apply(op, left, right)
        return left

    def unary(self):
        tok = self.take()
        if tok == "(":
            value = self.expression()
            if self.take() != ")":
                raise _ExprError
            return value
        if tok == "-":
            return (-self.unary()) & MASK64
        if tok == "+":
            return self.unary()
        if tok == "!":
            return 0 if self.unary() else 1
        if tok == "~":
            return self.unary() ^ MASK64
        if isinstance(tok, int):
            return tok
        raise _ExprError


def _apply(op, a, b):
    m = MASK64
    if op in ("/", "%") and b == 0:
        raise _ExprError
    return {
        "||": lambda: 1 if a or b else 0, "&&": lambda: 1 if a and b else 0,
        "|": lambda: a | b, "^": lambda: a ^ b, "&": lambda: a & b,
        "==": lambda: int(a == b), "!=": lambda: int(a != b), "<": lambda: int(a < b),
        ">": lambda: int(a > b), "<=": lambda: int(a <= b), ">=": lambda: int(a >= b),
        "<<": lambda: (a << b) & m if b < 64 else 0, ">>": lambda: a >> b,
        "+": lambda: (a + b) & m, "-": lambda: (a - b) & m, "*": lambda: (a * b) & m,
        "/": lambda: a // b, "%": lambda: a % b,
    }[op]()


def _comment_depth(line, depth):
    """How many (nested) /* comments are open after `line`, `depth` being open before it."""
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if depth:
            if line.startswith("*/", i):
                depth -= 1
                i += 2
            elif line.startswith("/*", i):
                depth += 1
                i += 2
            else:
                i += 1
        elif c == '"' or c == "'":
            j = i + 1
            while j < n and line[j] != c:
                j += 2 if line[j] == "\\" else 1
            i = j + 1
        elif line.startswith("//", i):
            break
        elif line.startswith("/*", i):
            depth += 1
            i += 2
        else:
            i += 1
    return depth


def _strip_comments(text):
    """Drop // and /* */ comments outside string literals from a directive's text."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            break
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            out.append(" ")
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _read_file(path):
    with open(path, "rb") as f:
        data = f.read()
    return data.decode("utf-8", "surrogateescape")
