"""What compiled Emmett does when it runs: programs compiled to VP and fired on
the test suite's FakeBackend (a guest in a dict), or on the simulated machine."""

from __future__ import annotations

import pytest

import emmett
from conftest import COMM_OFFSET, PID_OFFSET, FakeBackend, Loaded
from vp_runtime.reader import Int, List, Source, Str, Sym, read

M64 = (1 << 64) - 1


def vp_of(source: str, **options) -> str:
    result = emmett.compile(source, "t.emt", emmett.CompileOptions(**options))
    assert result.ok, "\n".join(d.format() for d in result.diagnostics)
    return result.vp


def run(source: str, probe: str = "VMXLoad", backend: FakeBackend | None = None, times: int = 1, **options) -> str:
    return Loaded(vp_of(source, **options), backend).fire(probe, times)


# ---- the reference's example -----------------------------------------------------------

def _shape(node):
    if isinstance(node, List):
        return tuple(_shape(i) for i in node.items)
    if isinstance(node, Sym):
        return node.name
    if isinstance(node, Int):
        return node.value
    if isinstance(node, Str):
        return ("str", node.value)
    raise TypeError(node)


def _probe_body(form):
    """A vprobe's body forms, with a single (do ...) around them opened up."""
    body = list(form[2:])
    if len(body) == 1 and isinstance(body[0], tuple) and body[0] and body[0][0] == "do":
        body = list(body[0][1:])
    return body


def test_the_reference_example_compiles_to_the_reference_vp():
    vp = vp_of("USEC:1001 { a[VCPUID, curprocname()]++; logaggr(a); }")
    forms = [_shape(f) for f in read(Source(vp))]
    expected = [_shape(f) for f in read(Source(
        "(defaggr a 1 1)\n(vprobe USEC:1001 (do (aggr a (VCPUID) ((curprocname)) 1) (logaggr a)))"))]
    assert expected[0] in forms
    probes = [f for f in forms if f[0] == "vprobe"]
    assert len(probes) == 1
    assert probes[0][1] == "USEC:1001"
    assert _probe_body(probes[0]) == _probe_body(expected[1])
    # Plus the preload's functions: curprocname and what it calls, nothing else.
    functions = {f[1] for f in forms if f[0] == "defun"}
    assert "curprocname" in functions
    assert not functions & {"curpid", "curtid", "curppid"}
    assert forms[0] == ("version", ("str", "1.0"))


# ---- the guest preload library on a fake 64-bit Linux guest ----------------------------------------

TID_OFFSET = PID_OFFSET - 4
REAL_PARENT_OFFSET = 0x2C8


@pytest.fixture
def linux(linux_guest):
    b = linux_guest(name=b"bash", pid=1978)
    b.regs.update(CR0=0x80050033, EFER=0xD01)
    b.poke(b.task + TID_OFFSET, (1979).to_bytes(4, "little"))
    parent = 0xFFFF88001E000000
    b.poke_u64(b.task + REAL_PARENT_OFFSET, parent)
    b.poke(parent + PID_OFFSET, (1000).to_bytes(4, "little") + b"\xee" * 4)
    b.poke_str(parent + COMM_OFFSET, b"sshd")
    return b


def test_preload_helpers_read_the_current_task(linux):
    out = run('VMXLoad { printf("%d %d %d %s\\n", curpid(), curtid(), curppid(), curprocname()); }',
              backend=linux)
    assert out == "1978 1979 1000 bash\n"


def test_preload_helpers_follow_kernelgsbase_right_after_a_system_call(linux_guest):
    b = linux_guest(name=b"cat", pid=42, gsbase=0, kernel_gsbase=0xFFFF88003FC90000)
    b.regs.update(CR0=0x80050033, EFER=0xD01)
    out = run('VMXLoad { printf("%d %s\\n", curpid(), curprocname()); }', backend=b)
    assert out == "42 cat\n"


def test_preload_helpers_say_nothing_runs_while_the_guest_boots(linux):
    linux.regs.update(CR0=0x10, EFER=0)  # real mode: no kernel yet
    out = run('VMXLoad { printf("%d %d %s\\n", curpid(), curppid(), curprocname()); }', backend=linux)
    assert out == "0 0 <none>\n"


def test_the_appendix_program_runs_as_printed(linux_guest):
    # Its curprocname works; its curpid returns an address masked to 32 bits (the sample's bug).
    from test_emmett_cookbook import COOKBOOK
    b = linux_guest(name=b"bash", pid=1978)
    vp = vp_of((COOKBOOK / "appendix-curprocname.emt").read_text())
    out = Loaded(vp, b).fire("Guest_IRQ")
    assert out == f"Current process during IRQ: bash (pid {(b.task + PID_OFFSET) & 0xFFFFFFFF})\n"


# ---- guest memory ---------------------------------------------------------------------------------

STRUCTS = """
struct node {
    int value;            // 0
    short small;          // 4
    unsigned char tag;    // 6
    struct node *next;    // 8
    char name[8];         // 16
    long items[3];        // 24
    @0x40 int pinned;
};
"""


@pytest.fixture
def nodes():
    b = FakeBackend()
    first, second = 0x10000, 0x20000
    b.poke(first, (0xDEADBEEF).to_bytes(4, "little") + (0x1234).to_bytes(2, "little") + b"\x7f\xff")
    b.poke_u64(first + 8, second)
    b.poke(first + 16, b"alpha\0\xff\xff")
    for i, v in enumerate((10, 20, 30)):
        b.poke_u64(first + 24 + 8 * i, v)
    b.poke(first + 0x40, (77).to_bytes(4, "little") + b"\xff" * 4)
    b.poke(second, (5).to_bytes(4, "little") + b"\xff" * 4)
    b.poke_u64(second + 8, 0)
    b.poke(second + 16, b"beta\0")
    b.regs["RAX"] = first
    return b


def test_struct_fields_are_read_masked_to_their_width(nodes):
    out = run(STRUCTS + """VMXLoad {
        struct node *n = (struct node *)RAX;
        printf("%x %x %x %d %s\\n", n->value, n->small, n->tag, n->pinned, n->name);
    }""", backend=nodes)
    assert out == "deadbeef 1234 7f 77 alpha\n"


def test_pointers_arrays_and_arithmetic(nodes):
    out = run(STRUCTS + """VMXLoad {
        struct node *n = (struct node *)RAX;
        long *items = n->items;
        printf("%d %d %d %d %d\\n", n->next->value, n->items[2], *(items + 1), (&n->items[2] - items),
               sizeof(struct node));
        printf("%s %d\\n", n->next->name, n->next->next == 0);
    }""", backend=nodes)
    assert out == "5 30 20 2 72\nbeta 1\n"


def test_char_arrays_as_aggregate_keys_are_guest_strings(nodes):
    vp = vp_of(STRUCTS + """Guest_IRQ {
        struct node *n = (struct node *)RAX;
        byname[n->name, n->value & 0xff]++;
    }
    VMMUnload { logaggr(byname); }""")
    loaded = Loaded(vp, nodes)
    loaded.fire("Guest_IRQ", times=2)
    assert loaded.fire("VMMUnload") == ('aggr: byname (1 integer key) (1 string key)\n'
                                        'byname[0xef, "alpha"] == avg 1 count 2 min 1 max 1 latest 1\n')


def test_reading_unmapped_memory_aborts_the_firing(nodes):
    out = run(STRUCTS + 'VMXLoad { struct node *n = (struct node *)8; printf("%d\\n", n->value); }',
              backend=nodes)
    assert out.startswith("vprobe error: probe VMXLoad aborted")


def test_guest_symbols_resolve_through_the_symbol_file(tmp_path):
    syms = tmp_path / "kallsyms"
    syms.write_text("ffffffff81600000 D counter\n")
    b = FakeBackend().poke_u64(0xFFFFFFFF81600000, 99)
    out = run('extern long counter; VMXLoad { printf("%x %d\\n", &counter, counter); }', backend=b,
              symbols_file=str(syms))
    assert out == "ffffffff81600000 99\n"


# ---- values, strings and control flow ----------------------------------------------------------------------------

def test_recursion_gives_every_activation_its_own_locals():
    out = run("""
int depth_sum(int n)
{
    int here = n * 10;
    if (n == 0)
        return 0;
    int below = depth_sum(n - 1);
    return here + below;
}
VMXLoad { printf("%d\\n", depth_sum(4)); }
""")
    assert out == "100\n"


def test_mutual_recursion_and_early_returns():
    out = run("""
int even(int n) { if (n == 0) return 1; return odd(n - 1); }
int odd(int n) { if (n == 0) return 0; return even(n - 1); }
int classify(int n) {
    if (n < 10) return 1;
    else if (n < 100) return 2;
    if (n < 1000) { n = n / 10; return 3 + n; }
    return 4;
}
VMXLoad { printf("%d %d %d %d %d %d\\n", even(10), odd(7), classify(5), classify(50), classify(500), classify(5000)); }
""")
    assert out == "1 1 1 2 53 4\n"


def test_increment_and_decrement_values():
    out = run("""VMXLoad {
        a = 5;
        i = a++; j = ++a; k = a--; l = --a;
        p = (q = 3) + 1;
        a += 10; a -= 2; a *= 2; a /= 3; a %= 7; a <<= 4; a >>= 2; a &= 0xff; a |= 0x100; a ^= 1;
        printf("%d %d %d %d %d %d %d\\n", i, j, k, l, a, p, q);
    }""")
    a = 5 + 10 - 2
    a = (a * 2) // 3 % 7
    a = ((a << 4) >> 2 & 0xFF | 0x100) ^ 1
    assert out == f"5 7 7 5 {a} 4 3\n"


def test_integers_are_unsigned_64_bit():
    out = run("""VMXLoad {
        m = -1;
        printf("%u %d %d %d\\n", m, m / 2 > 0, 0 - 1 > 1, (m + 2));
    }""")
    assert out == f"{M64} 1 1 1\n"


def test_strings_concatenate_and_compare():
    out = run("""
string s = "a%b";
VMXLoad {
    t = s + "-" + PROBENAME + "%";
    s += "!";
    same = t == "a%b-VMXLoad%";
    differ = s != "a%b!";
    printf("%s|%s|%d|%d|%s\\n", t, s, same, differ, "x" + "y");
}""")
    assert out == "a%b-VMXLoad%|a%b!|1|0|xy\n"


def test_conditional_expressions_and_logic():
    out = run("""VMXLoad {
        x = 3;
        printf("%d %s %d %d %d\\n", x > 2 ? 10 : 20, x == 3 ? "three" : "other", !x, x && 0, 0 || x);
    }""")
    assert out == "10 three 0 0 1\n"


def test_implicit_variables_are_globals_that_start_at_zero():
    out = run('VMXLoad { count = count + 1; printf("%d\\n", count); }', times=3)
    assert out == "1\n2\n3\n"


def test_probe_locals_restart_where_they_are_declared():
    out = run('VMXLoad { int n; string s; n++; s = s + "x"; printf("%d %s\\n", n, s); }', times=2)
    assert out == "1 x\n1 x\n"


def test_static_locals_keep_their_value():
    out = run('int next() { static int n = 10; n++; return n; } VMXLoad { printf("%d\\n", next()); }', times=2)
    assert out == "11\n12\n"


def test_string_parameters_written_by_a_function_reach_the_caller():
    out = run("""
void fill(string dest, int n) { sprintf(dest, "<%d>", n); }
string buf;
VMXLoad { fill(buf, 7); printf("%s\\n", buf); }""")
    assert out == "<7>\n"


def test_aggregates_and_bags():
    vp = vp_of("""
aggr lat[0][1];
bag started[8];
Disk_IOStart { started[ARG4] <- ARG5; }
Disk_IOFinish {
    int start = started[ARG4];
    lat["io"] <- ARG5 - start;
    sizes[ARG6, ARG3 ? "read" : "write"]++;
}
VMMUnload { logaggr(lat); logaggr(sizes); }
""")
    loaded = Loaded(vp)
    loaded.fire("Disk_IOStart", ARG4=1, ARG5=100)
    loaded.fire("Disk_IOStart", ARG4=2, ARG5=200)
    loaded.fire("Disk_IOFinish", ARG4=2, ARG5=250, ARG6=8, ARG3=1)
    loaded.fire("Disk_IOFinish", ARG4=1, ARG5=130, ARG6=8, ARG3=0)
    assert loaded.fire("VMMUnload") == (
        "aggr: lat (0 integer keys) (1 string key)\n"
        'lat["io"] == avg 40 count 2 min 30 max 50 latest 30\n'
        "aggr: sizes (1 integer key) (1 string key)\n"
        'sizes[0x8, "read"] == avg 1 count 1 min 1 max 1 latest 1\n'
        'sizes[0x8, "write"] == avg 1 count 1 min 1 max 1 latest 1\n')


def test_probe_parameters_name_the_probe_arguments():
    vp = vp_of('Disk_IOFinish(int adapter, int ctrl, int drive) { printf("%d %d %d\\n", adapter, ctrl, drive); }')
    assert Loaded(vp).fire("Disk_IOFinish", ARG0=1, ARG1=2, ARG2=3) == "1 2 3\n"


def test_assert_aborts_the_firing_with_the_line_and_the_formatted_message():
    out = run('VMXLoad { x = 2; assert(x == 2); assert(x == 3, "x is %d", x); printf("not reached\\n"); }')
    assert out == "vprobe error: probe VMXLoad aborted at t.emt:1:34: assertion failed: line 1: x is 2\n"
    assert "not reached" not in out
    bare = run('VMXLoad {\n assert(0);\n}')
    assert bare.endswith(": assertion failed: line 2\n")


def test_exit_unloads_the_script_once_the_firing_returns():
    from conftest import run_machine
    out = run_machine(vp_of('VMMLoad { printf("before %d\\n", VCPUID); exit(); printf("after %d\\n", VCPUID); }\n'
                            'VMM1Hz { printf("tick\\n"); } VMXUnload { printf("unloaded\\n"); }'), 3)
    assert out == "before 0\nafter 0\nunloaded\n"


def test_getsystemtime_into_a_variable():
    out = run('int t; VMXLoad { getsystemtime(t); printf("%d %d\\n", t, getsystemtime()); }')
    assert out == "1000000 1000000\n"


def test_auto_aggregate_probe_logs_and_clears_on_vcpu_0_only():
    from test_emmett_cookbook import run_on_machine
    vp = vp_of("USEC:100000 { ticks[VCPUID]++; }", auto_aggr=True)
    out, m = run_on_machine(vp, 2)
    # Logged once a second (by VCPU 0 only), then cleared: each block counts about ten ticks a VCPU.
    assert out.count("aggr: ticks (1 integer key) (0 string keys)\n") == 2
    assert out.count("ticks[0x0] == ") == 2 and out.count("ticks[0x1] == ") == 2
    assert "ticks[0x0] == avg 1 count 10 min 1 max 1 latest 1\n" in out
