"""VP's built-in functions, run on the FakeBackend: output, strings, guest memory and
symbols, stacks, time, structure offsets from guest code, and aggregates."""

from __future__ import annotations

import re

import pytest

from conftest import (COMM_OFFSET, CURRENT_TASK_SEG_OFFSET, GET_TASK_COMM, NO_PATTERN, PID_OFFSET, SYS_GETPID,
                      FakeBackend, Loaded, fire)

M = 1 << 64
U64 = M - 1
FAULT = re.compile(r"vprobe error: probe (\S+) aborted at t\.vp:(\d+):(\d+): (.+)")


def faults(out: str) -> list[re.Match]:
    return [FAULT.fullmatch(line) for line in out.splitlines() if line.startswith("vprobe error")]


def probe(*body: str, decls: str = "") -> str:
    return f"{decls}\n(vprobe VMXLoad {' '.join(body)})"


# ---- logstr / logint --------------------------------------------------------------------------

def test_logstr_and_logint_write_the_log_and_return_one():
    out = fire(probe('(logint (logstr "Hello world!\\n"))', "(logint (logint 160600064))", '(logstr "\\n")'))
    assert out == "Hello world!\n" + "1" + "160600064" + "1" + "\n"


def test_logint_prints_unsigned_decimal():
    assert fire(probe("(logint -1)", '(logstr " ")', "(logint 0x10)")) == f"{U64} 16"


def test_log_lines_reach_the_sink_when_they_end():
    loaded = Loaded('(vprobe VMXLoad (logstr "a"))\n(vprobe VMXUnload (logstr "b\\nc"))')
    loaded.script.handler("VMXLoad")()
    assert loaded.out == []
    loaded.script.handler("VMXUnload")()
    assert "".join(loaded.out) == "ab\n"
    loaded.script.flush()
    assert "".join(loaded.out) == "ab\nc"


# ---- printf / sprintf ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, args, expected", [
    ("%d", "-5", "-5"),
    ("%i", "0x8000000000000000", str(-(1 << 63))),
    ("%u", "-1", str(U64)),
    ("%x", "0xdeadBEEF", "deadbeef"),
    ("%X", "0xdeadbeef", "DEADBEEF"),
    ("%o", "8", "10"),
    ("%c", "65", "A"),
    ("%s", '"str"', "str"),
    ("%p", "0xc0106ae0", "0xc0106ae0"),
    ("%%", "", "%"),
    ("%5d|%-5d|%05d", "42 42 42", "   42|42   |00042"),
    ("%+d % d", "7 7", "+7  7"),
    ("%#x %#o %#X", "255 8 255", "0xff 010 0XFF"),
    ("%.3d %.0d|", "7 0", "007 |"),
    ("%8.3s|%-6s|", '"abcdef" "ab"', "     abc|ab    |"),
    ("%*d|%-*d|%.*s", '4 1 4 2 2 "xyz"', "   1|2   |xy"),
    ("%ld %lld %lu %llx %hd %hhx %zu %jd", "1 2 3 255 5 6 7 8", "1 2 3 ff 5 6 7 8"),
    ("%016x", "0x2c21", "0000000000002c21"),
    ("%#x", "0xc1402000", "0xc1402000"),
    ("%2d (%08x): %08x", "15 0xc7654f3c 0xc0100000", "15 (c7654f3c): c0100000"),
    ("%s and %s", '"a" PROBENAME', "a and VMXLoad"),
    ("no directives", "", "no directives"),
])
def test_printf_directives(fmt, args, expected):
    fmt_lit = fmt.replace("\\", "\\\\").replace('"', '\\"')
    assert fire(probe(f'(printf "{fmt_lit}" {args})')) == expected
    assert fire(probe(f'(sprintf s "{fmt_lit}" {args})', "(logstr s)", decls="(defstring s)")) == expected


def test_printf_and_sprintf_return_one():
    assert fire(probe('(logint (printf "x"))', '(logint (sprintf s "y"))', decls="(defstring s)")) == "x11"


def test_printf_output_is_not_truncated():
    out = fire(probe('(printf "%s%s%s|" s s s)', decls=f'(defstring s "{"a" * 200}")'))
    assert out == "a" * 600 + "|"


def test_sprintf_output_is_truncated_to_255_bytes():
    text = probe('(sprintf s "%s%s" long long)', "(logstr s)", '(logstr "|")',
                 '(sprintf s "%300d" 7)', "(logstr s)", '(logstr "|")',
                 decls=f'(defstring s)\n(defstring long "{"x" * 200}")')
    out = fire(text)
    first, second, _ = out.split("|")
    assert first == "x" * 255
    assert len(second) == 255 and second.endswith("7")


def test_sprintf_may_read_its_own_destination():
    assert fire(probe('(sprintf s "<%s>" s)', '(sprintf s "<%s>" s)', "(logstr s)",
                      decls='(defstring s "x")')) == "<<x>>"


def test_format_held_in_a_variable_is_checked_when_used():
    text = ('(defstring fmt "%d-%s")\n(defstring s)\n'
            '(vprobe VMXLoad (printf fmt 5 "a") (sprintf s fmt 6 "b") (logstr s))\n'
            '(vprobe VMXUnload (printf fmt "wrong" 1))\n'
            '(vprobe VMMLoad (setstr fmt "%f") (printf fmt 1))')
    loaded = Loaded(text)
    assert loaded.fire("VMXLoad") == "5-a6-b"
    out = loaded.fire("VMXUnload")
    (m,) = faults(out)
    assert m.group(1) == "VMXUnload" and m.group(2) == "4" and "wants an integer" in m.group(4)
    out = loaded.fire("VMMLoad")
    m = faults(out)[-1]
    assert m.group(1) == "VMMLoad" and "bad format" in m.group(4)


def test_printf_bytes_pass_through():
    text = probe('(printf "%s|%c" s 0xe9)', decls='(defstring s "\xe9\xff\x01")').encode("latin-1")
    assert fire(text) == "\xe9\xff\x01|\xe9"


# ---- strcmp -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b, sign", [
    ("abc", "abc", 0), ("", "", 0), ("abc", "abd", -1), ("abd", "abc", 1), ("ab", "abc", -1), ("abc", "ab", 1),
    ("B", "a", -1), ("\xff", "a", 1), ("a", "\xe9", -1),
])
def test_strcmp(a, b, sign):
    out = fire(probe(f'(printf "%d %d %d" (strcmp "{a}" "{b}") (== 0 (strcmp "{a}" "{b}")) (! (strcmp "{a}" "{b}")))'))
    value, eq, negated = (int(v) for v in out.split())
    assert (value > 0) - (value < 0) == sign
    assert eq == negated == int(sign == 0)


# ---- getguest / getguestphys ---------------------------------------------------------------------------

def guest() -> FakeBackend:
    b = FakeBackend()
    b.define("tsc_enabled", 0xFFFFFFFF81A00000, bytes(range(1, 9)))
    b.poke(0x7000, (0x1122334455667788).to_bytes(8, "little"))
    b.poke_phys(0xFEE00030, (0x40011).to_bytes(8, "little"))
    b.poke_phys(0x1000, b"\xff" * 8)
    return b


def test_getguest_reads_eight_little_endian_bytes_at_an_address():
    assert fire(probe('(printf "%x" (getguest 0x7000))'), backend=guest()) == "1122334455667788"
    assert fire(probe('(printf "%x" (getguest 0x7001))'), backend=guest()) == "11223344556677"


def test_getguest_reads_a_symbol():
    out = fire(probe('(printf "%x %x" (getguest "tsc_enabled") (& 0xffffffff (getguest "tsc_enabled")))'),
               backend=guest())
    assert out == "807060504030201 4030201"


def test_getguest_symbol_name_from_a_variable_or_parameter():
    text = ('(defstring name "tsc_enabled")\n(defun rd (sym) (getguest sym))\n'
            '(vprobe VMXLoad (printf "%x %x" (getguest name) (rd "tsc_enabled")))')
    assert fire(text, backend=guest()) == "807060504030201 807060504030201"


def test_getguest_address_from_an_expression():
    assert fire(probe('(printf "%x" (getguest (+ 0x6000 0x1000)))'), backend=guest()) == "1122334455667788"


def test_getguest_unmapped_and_partially_mapped_reads_fault():
    for addr in ("0", "0x6ffc", "0x7ffc", "0xffffffffffffffff"):
        out = fire(probe(f"(logint (getguest {addr}))", '(logstr "no")'), backend=guest())
        (m,) = faults(out)
        assert "not mapped" in m.group(4), out
        assert "no" not in out.replace(m.group(0), "")


def test_getguest_unknown_symbol_faults_naming_it():
    (m,) = faults(fire(probe('(logint (getguest "no_such_symbol"))'), backend=guest()))
    assert "no_such_symbol" in m.group(4) and (m.group(2), m.group(3)) == ("2", "25")


def test_getguestphys():
    out = fire('(vprobe VMMLoad (printf "VCPU %d: APIC version = %x\\n" VCPUID (getguestphys (+ APIC_BASEPA 48))))',
               "VMMLoad", backend=_apic_guest())
    assert out == "VCPU 0: APIC version = 40011\n"
    assert fire(probe('(printf "%u" (getguestphys 0x1000))'), backend=guest()) == str(U64)
    (m,) = faults(fire(probe("(logint (getguestphys 0x7000))"), backend=guest()))  # linear, not physical
    assert "0x7000" in m.group(4)


def _apic_guest() -> FakeBackend:
    b = guest()
    b.regs["APIC_BASEPA"] = 0xFEE00000
    return b


# ---- getgueststr -------------------------------------------------------------------------------------

def str_guest() -> FakeBackend:
    b = FakeBackend()
    b.poke_str(0x10000, b"BOOT_IMAGE=/casper/vmlinuz quiet splash")
    b.define("linux_banner", 0xFFFFFFFF81800000)
    b.poke_str(0xFFFFFFFF81800000, b"Linux version 2.6.24")
    b.poke_str(0x20FFA, b"crosses a page")  # 0x21000 is mapped by the same poke
    b.poke(0x30000 - 5, b"edge!")  # ends at a page end, no NUL; next page unmapped
    b.poke(0x40000, b"y" * 600 + b"\0")
    b.poke_str(0x50000, b"\xe9t\xe9\x01\x7f")
    return b


@pytest.mark.parametrize("args, expected", [
    ("0x10000", "BOOT_IMAGE=/casper/vmlinuz quiet splash"),
    ("0x10005", "IMAGE=/casper/vmlinuz quiet splash"),
    ('"linux_banner"', "Linux version 2.6.24"),
    ('"linux_banner" 6', "version 2.6.24"),
    ('"linux_banner" (+ 1 5)', "version 2.6.24"),
    ("10 0x10000", "BOOT_IMAGE"),
    ("0 0x10000", ""),
    ("1000 0x10000", "BOOT_IMAGE=/casper/vmlinuz quiet splash"),
    ("0x20ffa", "crosses a page"),
    ("0x50000", "\xe9t\xe9\x01\x7f"),
])
def test_getgueststr_forms(args, expected):
    out = fire(probe(f"(logint (getgueststr s {args}))", '(logstr "|")', "(logstr s)", decls="(defstring s)"),
               backend=str_guest())
    assert out == f"1|{expected}"


def test_getgueststr_is_limited_to_255_bytes():
    out = fire(probe("(getgueststr s 0x40000)", "(logstr s)", decls="(defstring s)"), backend=str_guest())
    assert out == "y" * 255
    out = fire(probe("(getgueststr s 1000 0x40000)", "(logstr s)", decls="(defstring s)"), backend=str_guest())
    assert out == "y" * 255


def test_getgueststr_does_not_read_past_its_limit_or_the_nul():
    b = str_guest()
    # 5 bytes left on the page, then unmapped: a 5-byte limit never touches the next page.
    assert fire(probe("(getgueststr s 5 0x2fffb)", "(logstr s)", decls="(defstring s)"), backend=b) == "edge!"
    (m,) = faults(fire(probe("(getgueststr s 0x2fffb)", "(logstr s)", decls="(defstring s)"), backend=b))
    assert "0x30000" in m.group(4)


@pytest.mark.parametrize("args, fragment", [("0x90000", "0x90000"), ('"nope"', "nope"), ('"nope" 4', "nope")])
def test_getgueststr_faults(args, fragment):
    out = fire(probe(f"(getgueststr s {args})", '(logstr "no")', decls='(defstring s "old")'),
               backend=str_guest())
    (m,) = faults(out)
    assert fragment in m.group(4)
    assert "no" not in out.replace(m.group(0), "")


def test_getgueststr_into_a_parameter_fills_the_callers_variable():
    text = ("(defstring name)\n(defun load-into (dst addr) (getgueststr dst addr))\n"
            '(vprobe VMXLoad (load-into name 0x10000) (printf "[%s]" name))')
    assert fire(text, backend=str_guest()) == "[BOOT_IMAGE=/casper/vmlinuz quiet splash]"


# ---- gueststack --------------------------------------------------------------------------------------

def test_gueststack_format():
    b = FakeBackend(frames=[0xFFFFFFFF8100B2A0, 0xFFFFFFFF81002C21, 0x400123])
    out = fire(probe("(logint (gueststack s))", '(printf " Stack: %s" s)', decls="(defstring s)"), backend=b)
    assert out == "1 Stack: GUEST_0xffffffff8100b2a0_0xffffffff81002c21_0x400123"


def test_gueststack_of_an_empty_walk():
    assert fire(probe("(gueststack s)", "(logstr s)", decls='(defstring s "old")'), backend=FakeBackend()) == "GUEST"


def test_gueststack_keeps_whole_frames_within_255_bytes():
    frames = [0xFFFFFFFFFB800000 + i for i in range(40)]
    b = FakeBackend(frames=frames)
    out = fire(probe("(gueststack s)", "(logstr s)", decls="(defstring s)"), backend=b)
    assert len(out) <= 255
    parts = out.split("_")
    assert parts[0] == "GUEST"
    assert parts[1:] == [f"0x{f:x}" for f in frames[:len(parts) - 1]]
    assert len(out) + len(f"_0x{frames[len(parts) - 1]:x}") > 255  # no room for one more frame


# ---- getsystemtime ------------------------------------------------------------------------------------

def test_getsystemtime_into_a_variable_or_as_a_value():
    b = FakeBackend(host_time_us=1_767_225_600_123_456)
    text = ("(definteger t)\n(definteger r)\n"
            '(vprobe VMXLoad (setint r (getsystemtime t)) (printf "%d %d %d" r t (getsystemtime)))')
    loaded = Loaded(text, b)
    assert loaded.fire() == "1 1767225600123456 1767225600123456"
    b.time_us += 1_000_000
    loaded.fire()
    assert loaded.var("t") == 1_767_225_601_123_456


def test_getsystemtime_into_a_parameter():
    b = FakeBackend(host_time_us=77)
    assert fire("(defun now (t) (getsystemtime t) t)\n(vprobe VMXLoad (logint (now 0)))", backend=b) == "77"


def test_getsystemtime_on_the_machine_advances_with_simulated_time():
    from conftest import run_machine
    out = run_machine('(definteger t0)\n(vprobe VMXLoad (getsystemtime t0))\n'
                      '(vprobe VMX1Hz (printf "%d\\n" (/ (+ (- (getsystemtime) t0) 500000) 1000000)))', 3)
    assert out == "1\n2\n3\n"


# ---- offatret / offatstrcpy / offatseg ----------------------------------------------------------------

def code_guest() -> FakeBackend:
    b = FakeBackend()
    b.define("sys_getpid", 0xFFFFFFFF81050000, SYS_GETPID)
    b.define("get_task_comm", 0xFFFFFFFF81060FF0, GET_TASK_COMM)  # crosses a page boundary
    b.define("no_pattern", 0xFFFFFFFF81070000, NO_PATTERN)
    b.define("unmapped_code", 0xFFFFFFFF81900000)
    b.define("short_code", 0xFFFFFFFF81A00FFE, b"\x8b\x80")  # the page ends mid-instruction
    return b


def test_offat_builtins_decode_guest_code():
    out = fire(probe('(printf "%x %x %x" (offatret "sys_getpid") (offatstrcpy "get_task_comm") '
                     '(offatseg "sys_getpid"))'), backend=code_guest())
    assert out == f"{PID_OFFSET:x} {COMM_OFFSET:x} {CURRENT_TASK_SEG_OFFSET:x}"


def test_offat_results_are_cached_per_function():
    b = code_guest()
    loaded = Loaded(probe('(printf "%x " (offatret "sys_getpid"))'), b)
    loaded.fire(times=3)
    reads = [r for r in b.linear_reads if r[0] >= 0xFFFFFFFF81050000]
    assert loaded.log() == "2a4 2a4 2a4 "
    assert len({r for r in reads}) == len(reads)  # the code was read once


@pytest.mark.parametrize("call, fragment", [
    ('(offatret "no_pattern")', "offatret"),
    ('(offatstrcpy "no_pattern")', "offatstrcpy"),
    ('(offatseg "no_pattern")', "offatseg"),
    ('(offatret "no_such_function")', "no_such_function"),
    ('(offatstrcpy "unmapped_code")', "not mapped"),
    ('(offatret "short_code")', "offatret"),
])
def test_offat_failures_are_faults(call, fragment):
    out = fire(probe(f"(logint {call})", '(logstr "no")'), backend=code_guest())
    (m,) = faults(out)
    assert fragment in m.group(4)
    assert (m.group(2), m.group(3)) == ("2", "25")


# ---- aggregates --------------------------------------------------------------------------------------

def test_aggregate_statistics():
    text = ("(defaggr a 0 0)\n"
            "(vprobe VMXLoad (aggr a () () ARG0))\n(vprobe VMXUnload (logaggr a))")
    loaded = Loaded(text)
    for v in (5, 3, 10, 4):
        loaded.fire(ARG0=v)
    assert loaded.fire("VMXUnload") == ("aggr: a (0 integer keys) (0 string keys)\n"
                                        "a[] == avg 5 count 4 min 3 max 10 latest 4\n")


def test_aggregate_avg_is_the_integer_quotient_and_values_are_unsigned():
    text = "(defaggr a 0 0)\n(vprobe VMXLoad (aggr a () () 1) (aggr a () () 2) (aggr a () () -1) (logaggr a))"
    assert fire(text).splitlines()[1] == f"a[] == avg {(3 + U64) // 3} count 3 min 1 max {U64} latest {U64}"
    text = "(defaggr a 0 0)\n(vprobe VMXLoad (aggr a () () 7) (aggr a () () 8) (logaggr a))"
    assert fire(text).splitlines()[1] == "a[] == avg 7 count 2 min 7 max 8 latest 8"


def test_aggregate_min_max_latest_in_any_order():
    values = [50, 20, 80, 10, 90, 30]
    text = "(defaggr a 0 0)\n" + "(vprobe VMXLoad " + " ".join(f"(aggr a () () {v})" for v in values) + \
           " (logaggr a))"
    assert fire(text).splitlines()[1] == "a[] == avg 46 count 6 min 10 max 90 latest 30"


def test_aggregate_keys_order_and_format():
    text = ("(defaggr running 1 1)\n(defaggr two 2 0)\n(defaggr strs 0 2)\n(defaggr c 2 3)\n"
            "(vprobe VMXLoad\n"
            ' (aggr running (0xef) ("swapper") 1) (aggr running (0xa9) ("ata/0") 1) (aggr running (0xef) ("swapper") 1)\n'
            ' (aggr running (0) ("") 2)\n'
            ' (aggr two (1 2) () 3) (aggr two (2 1) () 4)\n'
            ' (aggr strs () ("b" "a") 5)\n'
            ' (aggr c (0xfffff9800bf8e000 1) ("x" "y" "z") 6)\n'
            " (logaggr running) (logaggr two) (logaggr strs) (logaggr c))")
    assert fire(text) == (
        "aggr: running (1 integer key) (1 string key)\n"
        'running[0xef, "swapper"] == avg 1 count 2 min 1 max 1 latest 1\n'
        'running[0xa9, "ata/0"] == avg 1 count 1 min 1 max 1 latest 1\n'
        'running[0x0, ""] == avg 2 count 1 min 2 max 2 latest 2\n'
        "aggr: two (2 integer keys) (0 string keys)\n"
        "two[0x1, 0x2] == avg 3 count 1 min 3 max 3 latest 3\n"
        "two[0x2, 0x1] == avg 4 count 1 min 4 max 4 latest 4\n"
        "aggr: strs (0 integer keys) (2 string keys)\n"
        'strs["b", "a"] == avg 5 count 1 min 5 max 5 latest 5\n'
        "aggr: c (2 integer keys) (3 string keys)\n"
        'c[0xfffff9800bf8e000, 0x1, "x", "y", "z"] == avg 6 count 1 min 6 max 6 latest 6\n'
    )


def test_empty_aggregate_prints_its_header_only():
    text = "(defaggr a 1 0)\n(defaggr b 0 1)\n(defaggr k 0 0)\n(vprobe VMXLoad (logaggr a) (logaggr b) (logaggr k))"
    assert fire(text) == ("aggr: a (1 integer key) (0 string keys)\n"
                          "aggr: b (0 integer keys) (1 string key)\n"
                          "aggr: k (0 integer keys) (0 string keys)\n")


def test_clearaggr_empties_and_restarts_first_insertion_order():
    text = ("(defaggr a 1 0)\n"
            "(vprobe VMXLoad (aggr a (1) () 1) (aggr a (2) () 1) (logaggr a) (clearaggr a) (logaggr a)"
            " (aggr a (2) () 5) (aggr a (1) () 6) (logaggr a))")
    assert fire(text) == ("aggr: a (1 integer key) (0 string keys)\n"
                          "a[0x1] == avg 1 count 1 min 1 max 1 latest 1\n"
                          "a[0x2] == avg 1 count 1 min 1 max 1 latest 1\n"
                          "aggr: a (1 integer key) (0 string keys)\n"
                          "aggr: a (1 integer key) (0 string keys)\n"
                          "a[0x2] == avg 5 count 1 min 5 max 5 latest 5\n"
                          "a[0x1] == avg 6 count 1 min 6 max 6 latest 6\n")


def test_aggr_logaggr_clearaggr_return_one():
    text = "(defaggr a 0 0)\n(vprobe VMXLoad (logint (aggr a () () 1)) (logint (clearaggr a)) (logint (logaggr a)))"
    assert fire(text) == "11\naggr: a (0 integer keys) (0 string keys)\n1"


def test_aggregate_string_keys_are_bytes_as_given():
    text = '(defaggr a 0 1)\n(vprobe VMXLoad (aggr a () ("q\\"uote\\\\\\n") 1) (logaggr a))'
    assert fire(text).splitlines()[1:3] == ['a["q"uote\\', '"] == avg 1 count 1 min 1 max 1 latest 1']


def test_logaggr_block_starts_on_a_new_line():
    text = '(defaggr a 0 0)\n(vprobe VMXLoad (logstr "partial") (logaggr a))'
    assert fire(text) == "partial\naggr: a (0 integer keys) (0 string keys)\n"


def test_aggregates_are_shared_by_all_probes_and_persist():
    text = ("(defaggr a 1 0)\n(vprobe Guest_IRQ (aggr a (ARG0) () 1))\n(vprobe Guest_PF (aggr a (ARG0) () 2))\n"
            "(vprobe VMM1Hz (logaggr a))")
    loaded = Loaded(text)
    loaded.fire("Guest_IRQ", ARG0=0xEF)
    loaded.fire("Guest_PF", ARG0=0xEF)
    loaded.fire("Guest_IRQ", ARG0=0xA9)
    assert loaded.fire("VMM1Hz") == ("aggr: a (1 integer key) (0 string keys)\n"
                                     "a[0xef] == avg 1 count 2 min 1 max 2 latest 2\n"
                                     "a[0xa9] == avg 1 count 1 min 1 max 1 latest 1\n")
