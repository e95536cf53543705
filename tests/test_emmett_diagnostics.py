"""Emmett diagnostics: every lexical, syntax, type and lowering error is
`file:line:col: error: message` with the source line and a caret, located in
the file (and line) where the problem was written."""

from __future__ import annotations

import pytest

import emmett
from conftest import position_of


def diagnostics(source: str, filename: str = "t.emt", **options):
    result = emmett.compile(source, filename, emmett.CompileOptions(**options))
    assert result.vp is None and not result.ok
    assert not result.internal_error, result.format_diagnostics()
    errors = [d for d in result.diagnostics if d.severity == "error"]
    assert errors
    return errors


def only_error(source: str, **options):
    errors = diagnostics(source, **options)
    assert len(errors) == 1, "\n".join(d.format() for d in errors)
    return errors[0]


def at(d, source, needle, occurrence=1):
    return (d.line, d.col) == position_of(source, needle, occurrence)


def test_diagnostic_format_is_file_line_col_message_source_and_caret():
    d = only_error('VMM1Hz {\n    x = y + 1;\n}\n')
    assert d.format() == (
        "t.emt:2:9: error: unknown name 'y'\n"
        "    x = y + 1;\n"
        "        ^")
    assert (d.file, d.line, d.col, d.severity) == ("t.emt", 2, 9, "error")
    assert d.source_line == "    x = y + 1;"


@pytest.mark.parametrize("source, shown", [
    # a call's argument of the wrong type
    ('int f(int a) { return a; }\nstring s;\nVMM1Hz { f(s + "ab"); }\n',
     "t.emt:3:12: error: argument 'a' of 'f' must be an integer ('int'), but this is a string\n"
     'VMM1Hz { f(s + "ab"); }\n'
     "           ^~~~~~~~"),
    # an operand of the wrong type in a binary expression
    ('VMM1Hz {\n    x = (RAX * 2) + "a";\n}\n',
     "t.emt:2:10: error: cannot add an integer to a string (use sprintf to format numbers)\n"
     '    x = (RAX * 2) + "a";\n'
     "         ^~~~~~~"),
    ('int g() { return 1; }\nVMM1Hz {\n    x = g() - "abc";\n}\n',
     "t.emt:3:15: error: the operands of '-' must be integers, but this is a string\n"
     '    x = g() - "abc";\n'
     "              ^~~~~"),
    # a builtin's argument, a branch of ?:
    ('string s;\nVMM1Hz {\n    logint(s + "a");\n}\n',
     "t.emt:3:12: error: the argument of logint must be an integer, but this is a string\n"
     '    logint(s + "a");\n'
     "           ^~~~~~~"),
    ('string s;\nVMM1Hz {\n    x = VCPUID ? RAX + 1 : s;\n}\n',
     "t.emt:3:18: error: the first branch of '?:' must be a string, but this is an integer\n"
     "    x = VCPUID ? RAX + 1 : s;\n"
     "                 ^~~~~~~"),
    ('string s;\nVMM1Hz {\n    x = 2 * s;\n}\n',
     "t.emt:3:13: error: the operands of '*' must be integers, but this is a string\n"
     "    x = 2 * s;\n"
     "            ^"),
], ids=["call-argument", "operand-of-a-string-sum", "operand-of-a-difference", "builtin-argument",
        "conditional-branch", "one-token-operand"])
def test_a_type_error_about_an_expression_underlines_all_of_it(source, shown):
    assert only_error(source).format() == shown


def test_the_caret_keeps_tabs():
    d = only_error("VMM1Hz {\n\tx = y;\n}\n")
    assert d.format().endswith("\tx = y;\n\t    ^")


# ---- lexical errors ------------------------------------------------------------------------

@pytest.mark.parametrize("source, needle, message", [
    ("VMM1Hz { x = 1 $ 2; }", "$", "unexpected character '$'"),
    ('VMM1Hz { s = "abc; }\n', '"abc', "unterminated string literal"),
    ("VMM1Hz { x = 09; }", "09", "bad number '09'"),
    ("VMM1Hz { x = 0x; }", "0x", "bad number '0x'"),
    ("VMM1Hz { x = 0x1ffffffffffffffff; }", "0x1f", "does not fit in 64 bits"),
    ("VMM1Hz { x = 1; } /* never closed", "/*", "unterminated /* comment */"),
    ("VMM1Hz { x = ''; }", "''", "empty character constant"),
])
def test_lexical_errors(source, needle, message):
    errors = diagnostics(source)
    assert message in errors[0].message
    assert at(errors[0], source, needle)


def test_a_decimal_too_large_for_signed_64_bit_is_accepted_if_it_fits_unsigned():
    result = emmett.compile("VMM1Hz { x = 18446744073709551615; }", "t.emt")
    assert result.ok and result.diagnostics == []
    assert "(setint x -1)" in result.vp  # the same 64 bits


# ---- syntax errors ------------------------------------------------------------------------------

def test_several_syntax_errors_are_reported_in_one_run():
    source = ("int f(int a) {\n    return a\n}\n"
              "VMM1Hz {\n    x = 1 +;\n    y = (2;\n    z = 3;\n}\n"
              "VMM10Hz { q = ; }\n")
    errors = diagnostics(source)
    lines = [d.line for d in errors]
    assert lines == sorted(lines)
    assert {3, 5, 6, 9} <= set(lines)
    assert all(d.message.startswith("syntax error") for d in errors)


def test_a_missing_semicolon_is_named():
    source = "int f(int a) {\n    return a\n}\nVMM1Hz { printf(\"%d\\n\", f(1)); }\n"
    d = only_error(source)
    assert d.message == "syntax error: expected ';' before '}'"
    assert (d.line, d.col) == (3, 1)


def test_syntax_error_at_end_of_input():
    source = "VMM1Hz { x = 1;"
    d = only_error(source)
    assert "unexpected end of input" in d.message
    assert d.line == 1


@pytest.mark.parametrize("word, code", [
    ("switch", "switch (x) { case 1: x = 2; break; default: x = 3; }"),
    ("goto", "goto out;"),
])
def test_switch_and_goto_are_reserved_with_a_clear_message(word, code):
    source = f"VMM1Hz {{ x = 1; {code} }}"
    errors = diagnostics(source)
    assert errors[0].message.startswith(f"'{word}' is not supported: Emmett has only bounded loops")
    assert at(errors[0], source, word)


# ---- types ----------------------------------------------------------------------------------------------

def test_conflicting_implicit_types_name_both_places():
    source = "VMM1Hz { x = 1; }\nVMM10Hz { x = \"s\"; }\n"
    d = only_error(source)
    assert at(d, source, '"s"')
    assert "line 1, column 12" in d.message
    assert "string" in d.message and "integer" in d.message


def test_conflicting_implicit_types_are_order_independent():
    # The first assignment in the program decides; the other one is the error.
    source = 'void f() { x = "s"; }\nVMM1Hz { f(); x = 1; }\n'
    d = only_error(source)
    assert at(d, source, "1;")
    assert "line 1, column 14" in d.message


def test_variable_used_as_an_aggregate_names_both_places():
    source = "VMM1Hz { a = 1; }\nVMM10Hz { a[1]++; }\n"
    d = only_error(source)
    assert "aggregate" in d.message and "line 1" in d.message


def test_aggregate_key_counts_must_agree():
    source = "VMM1Hz { a[1]++; }\nVMM10Hz { a[1, \"x\"]++; }\n"
    d = only_error(source)
    assert at(d, source, '[1, "x"]')
    assert "1 integer key and 0 string keys" in d.message and "line 1" in d.message


def test_declared_aggregate_key_counts_are_checked():
    source = "aggr a[1][1];\nVMM1Hz { a[1, 2]++; }\n"
    d = only_error(source)
    assert "declared at line 1" in d.message


@pytest.mark.parametrize("source, needle, message", [
    ("VMM1Hz { x = nosuch + 1; }", "nosuch", "unknown name 'nosuch'"),
    ("VMM1Hz { x = vcpuid; }", "vcpuid", "did you mean the built-in 'VCPUID'?"),
    ("VMM1Hz { x = nosuch(1); }", "nosuch", "call to undefined function 'nosuch'"),
    ("VMM1Hz { logaggr(nosuch); }", "nosuch", "unknown aggregate 'nosuch'"),
    ("int f(int a) { return a; } VMM1Hz { x = f(1, 2); }", "f(1", "'f' takes 1 argument, but 2 are given"),
    ('int f(int a) { return a; } VMM1Hz { x = f("s"); }', '"s"', "argument 'a' of 'f' must be an integer"),
    ('VMM1Hz { x = 1 + "s"; }', '1 +', "cannot add an integer to a string"),
    ('VMM1Hz { if ("s") x = 1; }', '"s"', "a condition must be an integer or a pointer"),
    ('VMM1Hz { x = "a" < "b"; }', '<', "strings can only be compared with == and !="),
    ('VMM1Hz { x = RAX.b; }', '.', "'.' needs a struct or union"),
    ("VMM1Hz { x = 1 / 0; }", "0;", "division by zero"),
    ("VMM1Hz { RIP = 1; }", "RIP", "cannot assign to built-in 'RIP'"),
    ("VMM1Hz { 1 = 2; }", "1 =", "cannot be assigned"),
    ("VMM1Hz { x = TSC; x[1]; }", "[", "only arrays and pointers can be indexed"),
    ('void f() { } VMM1Hz { x = f(); }', 'f();', "a void function's result has no value"),
    ("int f() { x = 1; } VMM1Hz { f(); }", "= 1", "'f' must end with 'return VALUE;'"),
    ("VMM1Hz { printf(\"%d %d\\n\", 1); }", '"%d', "the printf format wants 2 arguments, but 1 is given"),
    ("VMM1Hz { printf(\"%s\\n\", 1); }", '1)', "printf argument 1 (for a %s directive) must be a string"),
    ("VMM1Hz { printf(\"%f\\n\", 1); }", '"%f', "VP has no floating point"),
    ("VMM1Hz { sprintf(RIP, \"x\"); }", "RIP", "the destination of sprintf must be a string variable"),
    ("int x; VMM1Hz { gueststack(x); }", "x)", "must be a string variable, but 'x' is an integer"),
    ("aggr a[1][0]; VMM1Hz { x = a[1]; }", "[1];", "aggregate 'a' cannot be read"),
    ("aggr a[1][0]; VMM1Hz { a[1]--; }", "--", "aggregates count up"),
    ("bag b[4]; VMM1Hz { b[1] = 2; }", "=", "a bag is updated with b[key] <- value"),
    ("VMM1Hz { x = 1; x <- 2; }", "x <-", "'x' is used here as an aggregate, but as a variable"),
    ("int y; VMM1Hz { y <- 2; }", "<-", "'<-' adds to an aggregate"),
    ("int printf(int a) { return a; } VMM1Hz { }", "printf", "'printf' is a built-in function"),
    ("int x; int x; VMM1Hz { }", "x; VMM1Hz", "'x' is already declared at line 1, column 5"),
    ('VMM1Hz { return 1; }', '1;', "a probe does not return a value"),
    ("Disk_IOStart(int a) { a = 1; }", "a = 1", "probe argument 'a' (ARG0) is read-only"),
    ("int f() { return 1; } VMM1Hz { f; }", "f;", "'f' is a function; call it: f()"),
])
def test_type_and_name_errors(source, needle, message):
    errors = diagnostics(source)
    assert message in errors[0].message, errors[0].format()
    assert at(errors[0], source, needle), errors[0].format()


def test_declaring_a_builtin_name_hides_it_with_a_warning():
    result = emmett.compile("int RIP;\nVMM1Hz { int ARG0 = 2; RIP = ARG0 + 1; printf(\"%d\\n\", RIP); }", "t.emt")
    assert result.ok
    assert [(d.severity, d.line) for d in result.diagnostics] == [("warning", 1), ("warning", 2)]
    assert "'RIP' hides the built-in VProbes variable" in result.diagnostics[0].message
    assert "(definteger _RIP)" in result.vp and "(setint _RIP (+ VMM1Hz.ARG0 1))" in result.vp


def test_return_must_end_its_path():
    source = "int f(int a) {\n  if (a) { return 1; a = 2; }\n  a = 3;\n  return a;\n}\nVMM1Hz { x = f(1); }\n"
    result = emmett.compile(source, "t.emt")
    # `return 1; a = 2;`: unreachable code is a warning; then the early return is restructured.
    assert result.ok
    assert any(d.severity == "warning" and "unreachable" in d.message for d in result.diagnostics)
    source = "int f(int a) {\n  if (a) { if (a > 1) return 1; a = 2; }\n  return a;\n}\nVMM1Hz { x = f(1); }\n"
    d = only_error(source)
    assert "'return' must be the last statement on its path" in d.message
    assert at(d, source, "return 1")


def test_too_long_string_literal():
    source = 'VMM1Hz { logstr("' + "x" * 256 + '"); }'
    d = only_error(source)
    assert "string literal of 256 bytes; strings are limited to 255 bytes" in d.message


def test_too_long_constant_concatenation():
    source = 'VMM1Hz { logstr("' + "x" * 200 + '" + "' + "y" * 100 + '"); }'
    d = only_error(source)
    assert "300 bytes" in d.message


# ---- memory ---------------------------------------------------------------------------------------------------

STRUCT = "struct s { int a; struct s *next; char name[8]; };\n"


@pytest.mark.parametrize("code, needle, message", [
    ("p->a = 1;", "= 1", "guest memory is read-only"),
    ("p->a++;", "++", "guest memory is read-only"),
    ("x = p->b;", "b;", "'struct s' has no field 'b'"),
    ("x = p.a;", ".a", "'.' on a pointer: use '->'"),
    ("x = *p;", "*p", "cannot read a whole struct"),
    ("x = *(void *)p;", "*(", "cannot read through a void pointer"),
    ("x = &RAX;", "RAX; }", "cannot take the address of 'RAX'"),
    ("x = &nosuchsym;", "nosuchsym", "needs a guest symbol file"),
])
def test_memory_errors(code, needle, message):
    source = STRUCT + f"VMM1Hz {{ p = (struct s *)RAX; {code} }}"
    errors = diagnostics(source)
    assert message in errors[0].message, errors[0].format()
    assert at(errors[0], source, needle), errors[0].format()


def test_host_memory_models_cannot_read_the_guest():
    source = "memmodel vmw64;\nVMM1Hz { x = *(int *)RAX; }"
    d = only_error(source)
    assert "memmodel vmw64 describes host memory" in d.message


def test_unknown_memory_model():
    d = only_error("memmodel guest128;\nVMM1Hz { }")
    assert "unknown memory model 'guest128'" in d.message
    d = only_error("VMM1Hz { }", memmodel="guest128")
    assert "unknown memory model 'guest128'" in d.message


def test_unknown_symbol_in_the_symbol_file(tmp_path):
    syms = tmp_path / "syms"
    syms.write_text("ffffffff81000000 T known\n")
    d = only_error("VMM1Hz { x = &unknown; }", symbols_file=str(syms))
    assert "unknown guest symbol 'unknown'" in d.message
    d = only_error("GUEST:unknown { }", symbols_file=str(syms))
    assert "unknown guest symbol 'unknown'" in d.message


def test_bad_symbol_file_lines_are_located(tmp_path):
    syms = tmp_path / "syms"
    syms.write_text("ffffffff81000000 T good\nnot-hex T bad\n")
    d = only_error("VMM1Hz { }", symbols_file=str(syms))
    assert (d.file, d.line) == (str(syms), 2)


# ---- probes -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source, message", [
    ("VMM2Hz { }", "unknown probe 'VMM2Hz'"),
    ("vmm1hz { }", "did you mean VMM1Hz?"),
    ("USEC:0 { }", "USEC: needs a positive number"),
    ("EXIT:sys_open(int a, int b) { }", "an EXIT probe has one parameter: the function's return value"),
    ("VMM:EXIT:sys_open { }", "EXIT probes are guest probes (GUEST:EXIT:symbol)"),
    ("VMX:TIMER:2sec { }", "VMX timers run once a second only"),
    ("OFFSET:sys_open:4 { }", "needs the address of 'sys_open'"),
    ("FOO:bar { }", "unknown probe point 'FOO:bar'"),
    ("VMM1Hz:3 { }", "takes no ':' parameter"),
])
def test_probe_name_errors(source, message):
    d = only_error(source)
    assert message in d.message
    assert d.line == 1


def test_a_program_needs_a_probe():
    d = only_error("int x;")
    assert "the program has no probe" in d.message


def test_a_program_of_functions_only_is_a_library_with_a_warning():
    r = emmett.compile("int twice(int x) { return 2 * x; }\nint unused() { return twice(1); }", "lib.emt")
    assert r.ok and "(defun twice (x)" in r.vp and "(defun unused ()" in r.vp
    [w] = r.diagnostics
    assert w.severity == "warning" and "compiled as a library" in w.message


def test_at_most_32_probes():
    source = "\n".join(f"USEC:{1000 + i} {{ }}" for i in range(33))
    d = only_error(source)
    assert d.line == 33 and "too many probes: 33" in d.message
    source = "\n".join(f"USEC:{1000 + i} {{ }}" for i in range(32))
    d = only_error(source, auto_aggr=True)
    assert "counting the one -a adds" in d.message


def test_too_many_probe_parameters():
    params = ", ".join(f"int a{i}" for i in range(11))
    d = only_error(f"Disk_IOStart({params}) {{ }}")
    assert "at most 10 arguments" in d.message


# ---- preprocessor -----------------------------------------------------------------------------------------------

def test_errors_in_an_included_file_point_into_it(tmp_path):
    (tmp_path / "lib.emt").write_text("int helper() {\n    return nosuch;\n}\n")
    main = tmp_path / "main.emt"
    source = '#include "lib.emt"\nVMM1Hz { x = helper(); y = other; }\n'
    main.write_text(source)
    errors = diagnostics(source, str(main))
    # In reading order: the included file's error first, where it is included.
    assert [(d.file, d.line, d.col) for d in errors] == [
        (str(tmp_path / "lib.emt"), 2, 12), (str(main), 2, 28)]
    assert errors[0].source_line == "    return nosuch;"


def test_line_numbers_survive_directives_and_skipped_sections():
    source = "#define A 1\n#ifdef NOPE\nint junk;\n#else\nint kept;\n#endif\n# a comment\nVMM1Hz { x = bad; }\n"
    d = only_error(source)
    assert (d.line, d.col) == (8, 14)


def test_an_error_in_a_macro_points_at_its_use():
    source = "#define BAD (nosuch + 1)\nVMM1Hz {\n    x = BAD;\n}\n"
    d = only_error(source)
    assert (d.line, d.col) == (3, 9)


def test_missing_include_file_points_at_the_directive(tmp_path):
    source = 'VMM1Hz { }\n#include "nowhere.emt"\n'
    d = only_error(source, include_dirs=[str(tmp_path)])
    assert (d.line, d.col) == (2, 1)
    assert "cannot find include file 'nowhere.emt'" in d.message


def test_conditional_sections_must_balance():
    d = only_error("#endif\nVMM1Hz { }\n")
    assert "#endif without a matching #if" in d.message
    d = only_error("VMM1Hz { }\n#ifdef X\n")
    assert "never closed" in d.message and d.line == 2


def test_error_directive():
    d = only_error('#error this guest is not supported\nVMM1Hz { }\n')
    assert d.message == "this guest is not supported"


def test_macro_arity_is_checked():
    d = only_error("#define SQ(x) ((x) * (x))\nVMM1Hz { y = SQ(1, 2); }\n")
    assert "macro 'SQ' takes 1 argument, but 2 are given" in d.message


def test_no_preload_says_where_curpid_would_come_from():
    d = only_error("VMM1Hz { x = curpid(); }", preload=False)
    assert "--no-preload" in d.message


def test_diagnostics_never_have_a_bad_location():
    for source in ["", "\n\n", "}", "VMM1Hz {", "@", '"', "int", "struct", "#include", "VMM1Hz { x = ; }"]:
        result = emmett.compile(source, "t.emt")
        assert not result.ok
        assert not result.internal_error
        assert result.errors, source
        for d in result.diagnostics:
            assert d.file == "t.emt" and d.line >= 1 and d.col >= 1
            assert d.format().startswith(f"t.emt:{d.line}:{d.col}: {d.severity}: ")
