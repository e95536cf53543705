"""The Emmett lexer: PLY token rules, plus the stream the parser reads.

`TokenStream` feeds the parser from the preprocessor's chunks.  On the way it
expands macros (token by token, so every token keeps the position where it was
written, or where the macro was used), turns identifiers into keywords or
typedef names, and decodes numbers, strings and character constants.
"""

import os
import re
import types
from bisect import bisect_right

from ply import lex

from . import cache
from .language import MASK64

KEYWORDS = {
    w: w.upper()
    for w in (
        "int long short char signed unsigned void string bag aggr struct union enum typedef "
        "sizeof if else return memmodel perthread pervm pervmk perhost extern static const volatile "
        "auto register inline "
        "int8 int16 int32 int64 uint8 uint16 uint32 uint64 "
        "for while do switch case default break continue goto try catch"
    ).split()
}

OPERATOR_TOKENS = (
    "ARROW", "INC", "DEC", "LSHIFT", "RSHIFT", "LE", "GE", "EQ", "NE", "ANDAND", "OROR", "LARROW",
    "MULEQ", "DIVEQ", "MODEQ", "ADDEQ", "SUBEQ", "LSHIFTEQ", "RSHIFTEQ", "ANDEQ", "XOREQ", "OREQ",
    "ELLIPSIS",
)

TOKENS = ("ID", "TYPE_NAME", "INT_LIT", "TIME_LIT", "STRING_LIT", "HEADER") + OPERATOR_TOKENS + tuple(sorted(set(KEYWORDS.values())))

TIME_UNITS = {"usec": 1, "us": 1, "msec": 1000, "ms": 1000, "sec": 1000000, "s": 1000000}

_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
                   "\\": "\\", "'": "'", '"': '"', "?": "?", "e": "\x1b"}

_NEWLINE = re.compile("\n")


class _Rules:
    """The PLY token rules (raw tokens; `TokenStream` refines them)."""

    tokens = ("ID", "NUMBER", "STRING", "CHAR", "UNTERMINATED", "HEADER") + OPERATOR_TOKENS
    literals = "+-*/%&|^~!<>=?:;,.()[]{}@"

    t_ignore = " \t\r\f\v"
    t_ignore_LINECOMMENT = r"//[^\n]*"
    t_ignore_SPACE = r"[ \t\n]+"  # newlines too: TokenStream locates tokens from their offsets

    t_ID = r"[A-Za-z_][A-Za-z0-9_]*(?:![A-Za-z0-9_]+)*"  # WinDbg module!symbol names too
    t_NUMBER = r"[0-9][A-Za-z0-9_]*"
    t_STRING = r'"(?:[^"\\\n]|\\.)*"'
    t_CHAR = r"'(?:[^'\\\n]|\\.)*'"
    t_UNTERMINATED = r'"(?:[^"\\\n]|\\.)*'

    t_ELLIPSIS = r"\.\.\."
    t_LSHIFTEQ = r"<<="
    t_RSHIFTEQ = r">>="
    t_ARROW = r"->"
    t_INC = r"\+\+"
    t_DEC = r"--"
    t_LSHIFT = r"<<"
    t_RSHIFT = r">>"
    t_LE = r"<="
    t_GE = r">="
    t_EQ = r"=="
    t_NE = r"!="
    t_ANDAND = r"&&"
    t_OROR = r"\|\|"
    t_LARROW = r"<-"
    t_MULEQ = r"\*="
    t_DIVEQ = r"/="
    t_MODEQ = r"%="
    t_ADDEQ = r"\+="
    t_SUBEQ = r"-="
    t_ANDEQ = r"&="
    t_XOREQ = r"\^="
    t_OREQ = r"\|="

    def t_HEADER(self, t):
        r"@[A-Z][A-Z0-9_]*[ \t]*=[^\n]*|@VMK(?![A-Za-z0-9_])"
        # The toolkit's header lines: `@MEMORY_MODEL = guest64`, `@SYMBOL_FILE = path` (the value
        # is the rest of the line), and ESX's target lines (`@VMK`, `@VM1 = name`).
        name, _, value = t.value[1:].partition("=")
        t.value = (name.strip(), value.strip())
        return t

    def t_comment(self, t):
        r"/\*"
        # Nested /* */ comments: find the matching close by hand.
        lexer = t.lexer
        data = lexer.lexdata
        i = lexer.lexpos
        depth = 1
        n = len(data)
        while i < n:
            j = data.find("*/", i)
            k = data.find("/*", i)
            if j < 0:
                i = n
                break
            if 0 <= k < j:
                depth += 1
                i = k + 2
                continue
            depth -= 1
            i = j + 2
            if depth == 0:
                break
        if depth:
            lexer.stream.lex_error(t, "unterminated /* comment */")
        lexer.lexpos = i
        return None

    def t_error(self, t):
        ch = t.value[0]
        shown = repr(ch) if ch.isprintable() else f"\\x{ord(ch):02x}"
        t.lexer.stream.lex_error(t, f"unexpected character {shown}")
        t.lexer.skip(1)


_TOKEN_AT = None


def token_length(text, col):
    """The length of the token that starts at column `col` (1-based) of source line `text` (at least 1).

    Ranges end where their last token ends: this finds that end from the
    source line, by the token rules above, so nodes need not store it.
    """
    global _TOKEN_AT
    if _TOKEN_AT is None:
        operators = sorted((getattr(_Rules, "t_" + name) for name in OPERATOR_TOKENS), key=len, reverse=True)
        shapes = [_Rules.t_NUMBER, _Rules.t_ID, _Rules.t_STRING, _Rules.t_CHAR, _Rules.t_UNTERMINATED]
        _TOKEN_AT = re.compile("|".join(shapes + operators))
    m = _TOKEN_AT.match(text, max(col - 1, 0))
    return max(len(m.group()), 1) if m else 1


_MASTER = None  # the process's lexer, built once; each TokenStream reads with a clone


def _master_lexer():
    """The PLY lexer of `_Rules`, from its table in the compiler's cache when the rules are unchanged.

    Building it from the rules makes PLY check every rule (each regex
    compiled alone, the source read back for duplicate rules), which costs
    more than a small compile.  So the built lexer's table (PLY's lextab, a
    Python file) is kept in the cache under a signature of the rules, and a
    later process makes the lexer from it in PLY's optimize mode, compiling
    only the master regex.  Without a usable cache the lexer is built and
    checked in memory.
    """
    global _MASTER
    if _MASTER is None:
        try:
            path = cache.table_path("emmett-lexer", _rules_signature(), ".py")
        except OSError:  # no home directory for the cache
            path = None
        lexer = None
        if path is not None:
            try:
                lexer = lex.lex(module=_Rules(), optimize=True, lextab=_read_lextab(path), reflags=0)
            except Exception:  # not there yet, unreadable or damaged: build it
                lexer = None
        if lexer is None:
            lexer = lex.lex(module=_Rules(), reflags=0)
            if path is not None:
                cache.store(path, lambda partial: lexer.writetab(os.path.basename(partial)[:-3],
                                                                 os.path.dirname(partial)))
        _MASTER = lexer
    return _MASTER


def _rules_signature():
    """A signature of what the lexer's table is built from: the rules, their order, the PLY version."""
    parts = [lex.__tabversion__, repr(_Rules.tokens), _Rules.literals]
    functions = []
    for name in dir(_Rules):
        if name.startswith("t_"):
            rule = getattr(_Rules, name)
            if callable(rule):
                functions.append((rule.__code__.co_firstlineno, name, rule.__doc__ or ""))
            else:
                parts += [name, rule]
    for _, name, doc in sorted(functions):  # PLY tries function rules in the order they are written
        parts += [name, doc]
    return cache.signature(parts)


def _read_lextab(path):
    """The lextab module kept at `path` (read without importing: the cache is not on sys.path)."""
    with open(path, encoding="utf-8") as f:
        code = compile(f.read(), path, "exec")
    module = types.ModuleType("emmett_lextab")
    exec(code, module.__dict__)
    if getattr(module, "_tabversion", None) != lex.__tabversion__:
        raise ValueError("a lexer table of another PLY version")
    return module


def _make(type_, value, pos, hide=None):
    t = lex.LexToken()
    t.type = type_
    t.value = value
    t.lineno = pos[1]
    t.lexpos = pos[2]
    t.pos = pos
    t.hide = hide
    return t


def decode_number(text):
    """(kind, value): ("int", n), ("time", microseconds) or ("error", message), for literals of any length.

    A decimal of more digits than 2^64 has is too large without being
    converted (Python refuses to convert more than a few thousand digits).
    """
    lower = text.lower()
    for unit in ("usec", "msec", "sec", "us", "ms", "s"):
        digits = lower[: -len(unit)]
        if lower.endswith(unit) and digits.isdigit():
            value = _decimal(digits)
            if value is None or value * TIME_UNITS[unit] > MASK64:
                return "error", f"the time {shown_literal(text)} does not fit in 64 bits of microseconds"
            return "time", value * TIME_UNITS[unit]
    body = lower.rstrip("ul")
    if lower[len(body):] not in ("", "u", "l", "ul", "lu", "ll", "ull", "llu"):
        return "error", f"bad number '{shown_literal(text)}'"
    try:
        if body.startswith("0x"):
            if len(body) == 2:
                raise ValueError
            value = int(body[2:], 16)
        elif len(body) > 1 and body[0] == "0":
            value = int(body[1:], 8)
        elif len(body.replace("_", "").lstrip("0")) > _MAX_DECIMAL_DIGITS and body.replace("_", "").isdigit():
            return "error", f"the number {shown_literal(text)} does not fit in 64 bits"
        else:
            value = int(body, 10)  # (Python's int, so "1_000" is 1000, as it always was)
    except ValueError:
        value = None
    if value is None:
        return "error", f"bad number '{shown_literal(text)}'"
    if value > MASK64:
        return "error", f"the number {shown_literal(text)} does not fit in 64 bits"
    return "int", value


_MAX_DECIMAL_DIGITS = len(str(MASK64))  # 20


def _decimal(digits):
    """The value of a string of ASCII decimal digits; None if it has more digits than any 64-bit number."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_DECIMAL_DIGITS else None


def shown_literal(text, limit=40):
    """A literal as a message shows it: cut in the middle when it is long."""
    if len(text) <= limit:
        return text
    return f"{text[:limit // 2]}...{text[-10:]} ({len(text)} characters)"


def decode_escapes(body, pos, reporter):
    """The characters of a string or character literal body (C escapes)."""
    if "\\" not in body:
        return body
    out = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
        elif e == "x":
            j = i + 2
            while j < n and j < i + 4 and body[j] in "0123456789abcdefABCDEF":
                j += 1
            if j == i + 2:
                reporter.error(pos, "\\x escape without hex digits")
                i += 2
                continue
            out.append(chr(int(body[i + 2:j], 16)))
            i = j
        elif e in "01234567":
            j = i + 1
            while j < n and j < i + 4 and body[j] in "01234567":
                j += 1
            out.append(chr(int(body[i + 1:j], 8) & 0xFF))
            i = j
        else:
            reporter.warning(pos, f"unknown escape sequence '\\{e}'")
            out.append(e)
            i += 2
    return "".join(out)


class TokenStream:
    """What the PLY parser reads: classified tokens from every chunk, macros expanded."""

    MAX_EXPANSION = 100000

    def __init__(self, chunks, reporter, typedefs):
        self.chunks = chunks
        self.reporter = reporter
        self.typedefs = typedefs
        self.lexer = _master_lexer().clone()
        self.lexer.stream = self
        self.chunk_index = -1
        self.fid = 0
        self.macros = {}
        self.pending = []  # tokens to deliver before reading further, last first
        self.expansions = 0
        self.last_pos = (0, 1, 1)
        self.prev_pos = None  # the token before the last one delivered
        self.first_line = 1
        self.starts = [0]
        self.line_index = 0
        self._next_chunk()

    # ---- positions and errors ----------------------------------------------------------

    def locate(self, lexpos):
        """(fid, line, col) of offset `lexpos` in the current chunk."""
        k = bisect_right(self.starts, lexpos) - 1
        return (self.fid, self.first_line + k, lexpos - self.starts[k] + 1)

    def lex_error(self, t, message):
        self.reporter.error(self.locate(t.lexpos), message)

    def report(self, pos, message):
        self.reporter.error(pos, message)

    # ---- raw tokens --------------------------------------------------------------

    def _next_chunk(self):
        self.chunk_index += 1
        if self.chunk_index >= len(self.chunks):
            if self.chunk_index == 0:
                self.lexer.input("")  # no code at all
            return False
        chunk = self.chunks[self.chunk_index]
        self.lexer.input(chunk.text)
        self.fid = chunk.fid
        self.first_line = chunk.first_line
        self.starts = [0] + [m.end() for m in _NEWLINE.finditer(chunk.text)]
        self.line_index = 0
        self.macros = chunk.macros
        return True

    def _raw(self):
        if self.pending:
            return self.pending.pop()
        lexer = self.lexer
        while True:
            t = lexer.token()
            if t is not None:
                self._place(t)
                return t
            if not self._next_chunk():
                return None

    def _place(self, t):
        """Give `t` its position: lines are found from offsets, moving forward as the lexer does."""
        lexpos = t.lexpos
        starts = self.starts
        k = self.line_index
        last = len(starts) - 1
        while k < last and starts[k + 1] <= lexpos:
            k += 1
        self.line_index = k
        line = self.first_line + k
        t.lineno = line
        t.pos = (self.fid, line, lexpos - starts[k] + 1)
        t.hide = None

    def _push(self, tokens):
        self.pending.extend(reversed(tokens))

    # ---- macros ------------------------------------------------------------------

    def _body_tokens(self, macro):
        if macro.tokens is None:
            lexer = _master_lexer().clone()
            lexer.stream = _BodyErrors(self, macro)
            lexer.input(macro.body)
            raw = []
            while True:
                t = lexer.token()
                if t is None:
                    break
                raw.append((t.type, t.value))
            macro.tokens = raw
        return macro.tokens

    def _expand(self, t, macro):
        self.expansions += 1
        if self.expansions > self.MAX_EXPANSION:
            if self.expansions == self.MAX_EXPANSION + 1:
                self.report(t.pos, "macro expansion does not terminate (too many expansions)")
            return
        hide = (t.hide or frozenset()) | {macro.name}
        pos = t.pos
        body = self._body_tokens(macro)
        if macro.params is None:
            self._push([_make(ty, v, pos, hide) for ty, v in body])
            return
        # A function-like macro: only a name followed by '(' is an invocation.
        nxt = self._raw()
        if nxt is None or nxt.type != "(":
            if nxt is not None:
                self.pending.append(nxt)
            t.hide = hide  # deliver the name itself, unexpanded
            self.pending.append(t)
            return
        args, current, depth = [], [], 0
        while True:
            a = self._raw()
            if a is None:
                self.report(pos, f"unterminated call of macro '{macro.name}'")
                return
            if a.type == "(":
                depth += 1
            elif a.type == ")":
                if depth == 0:
                    break
                depth -= 1
            elif a.type == "," and depth == 0:
                args.append(current)
                current = []
                continue
            current.append(a)
        if current or args:
            args.append(current)
        if len(args) != len(macro.params):
            self.report(pos, f"macro '{macro.name}' takes {len(macro.params)} argument"
                             f"{'s' if len(macro.params) != 1 else ''}, but {len(args)} "
                             f"{'are' if len(args) != 1 else 'is'} given")
            self.pending.append(_make("NUMBER", "0", pos, hide))  # keep the syntax whole
            return
        index = {p: i for i, p in enumerate(macro.params)}
        out = []
        for ty, v in body:
            if ty == "ID" and v in index:
                for a in args[index[v]]:
                    out.append(_make(a.type, a.value, pos, (a.hide or frozenset()) | hide))
            else:
                out.append(_make(ty, v, pos, hide))
        self._push(out)

    # ---- the parser's interface ----------------------------------------------------

    def token(self):
        self.prev_pos = self.last_pos
        pending = self.pending
        lexer = self.lexer
        while True:
            if pending:
                t = pending.pop()
            else:
                t = lexer.token()
                if t is None:
                    if self._next_chunk():
                        continue
                    return None
                self._place(t)
            ty = t.type
            if ty == "ID":
                v = t.value
                kw = KEYWORDS.get(v)
                if kw is not None:
                    t.type = kw
                    self.last_pos = t.pos
                    return t
                macro = self.macros.get(v)
                if macro is not None and not (t.hide and v in t.hide):
                    self._expand(t, macro)
                    continue
                if v in self.typedefs:
                    t.type = "TYPE_NAME"
                self.last_pos = t.pos
                return t
            if ty == "NUMBER":
                kind, value = decode_number(t.value)
                if kind == "error":
                    self.report(t.pos, value)
                    value = 0
                    kind = "int"
                t.type = "INT_LIT" if kind == "int" else "TIME_LIT"
                t.value = (value, t.value)
            elif ty == "STRING":
                t.type = "STRING_LIT"
                t.value = decode_escapes(t.value[1:-1], t.pos, self.reporter)
            elif ty == "CHAR":
                text = decode_escapes(t.value[1:-1], t.pos, self.reporter)
                if len(text) != 1:
                    self.report(t.pos, "a character constant holds exactly one character" if text
                                else "empty character constant")
                t.type = "INT_LIT"
                t.value = (ord(text[0]) & 0xFF if text else 0, t.value)
            elif ty == "UNTERMINATED":
                self.report(t.pos, "unterminated string literal (strings end on the same line)")
                t.type = "STRING_LIT"
                t.value = decode_escapes(t.value[1:], t.pos, self.reporter)
            self.last_pos = t.pos
            return t


class _BodyErrors:
    """Lexical errors inside a macro body point at the #define."""

    def __init__(self, stream, macro):
        self.stream = stream
        self.macro = macro

    def lex_error(self, t, message):
        if self.macro.pos is not None:
            self.stream.report(self.macro.pos, f"in the definition of macro '{self.macro.name}': {message}")
        else:
            self.stream.report(self.stream.last_pos, f"in macro '{self.macro.name}': {message}")
