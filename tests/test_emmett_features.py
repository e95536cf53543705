"""One focused Emmett program per language feature: the VP each compiles to is
pinned by a syrupy snapshot, and every one of them must load in the VP runtime.

The programs also serve the other emmett tests (`FEATURES`, `compile_ok`).
"""

from __future__ import annotations

import pytest

import emmett
from vp_runtime import CatalogBackend, load

SYMBOLS = """\
ffffffff81000000 T _text
ffffffff81234560 T sys_open
ffffffff81245670 T system_call
ffffffff81600000 D init_task
ffffffff81700000 D jiffies
ffffffff81800000 D saved_command_line
"""


def compile_ok(source: str, filename: str = "t.emt", **options) -> str:
    """Compile `source` (which must compile cleanly) and return its VP."""
    result = emmett.compile(source, filename, emmett.CompileOptions(**options))
    assert result.ok, "\n".join(d.format() for d in result.diagnostics)
    assert not [d for d in result.diagnostics if d.severity == "error"]
    return result.vp


# name -> (source, options). Options may name "symbols" to get the symbol file above.
FEATURES: dict[str, tuple[str, dict]] = {
    "reference_example": ("""\
USEC:1001 { a[VCPUID, curprocname()]++; logaggr(a); }
""", {}),
    "globals_and_storage_classes": ("""\
int count = 3;
long big = 0xffffffffffffffff;
string greeting = "hi" " there";
perthread int pt;
pervm int pv;
pervmk int pk;
perhost int ph;
static unsigned short us = 7;
VMM1Hz { count = count + pt + pv + pk + ph + us + big; printf("%s %d\\n", greeting, count); }
""", {}),
    "implicit_types": ("""\
// Types come from assignments anywhere in the program, in any order.
void later() { copy = name; total = count * 2; }
VMM1Hz {
    count = count + 1;        // an integer starting at 0
    name = "probe " + PROBENAME;
    later();
    printf("%d %d %s\\n", count, total, copy);
}
""", {"preload": False}),
    "aggregates": ("""\
aggr declared[1][1];
aggr keyless;
Guest_IRQ(int vector) {
    declared[curprocname(), vector]++;  // keys split by type: integers first
    sized[ARG0 & 0xff] <- TSC % 100;
    keyless[]++;
    byname["irq"] <- 1;
}
VMM1Hz { logaggr(declared); logaggr(sized); logaggr(keyless); clearaggr(byname); }
""", {}),
    "bags": ("""\
bag starts[128];
Disk_IOStart { starts[ARG4] <- TSC; }
Disk_IOFinish {
    int start = starts[ARG4];
    ok = baginsert(starts, 1, 2);
    gone = bagremove(starts, 1);
    if (start) printf("%d ticks\\n", TSC - start);
}
""", {}),
    "functions": ("""\
int twice(int x) { return x * 2; }
string label(int n, string unit) { return n > 1 ? unit + "s" : unit; }
void report(string what) { printf("%s\\n", what); }
int unused(int x) { return x; }
VMM1Hz { report(label(twice(VCPUID) + 1, "tick")); }
""", {}),
    "recursion_locals": ("""\
// Locals of recursive functions are extra parameters: each activation has its own.
int depth_sum(int n)
{
    int here = n * 10;
    string tag = "level";
    if (n == 0)
        return 0;
    int below = depth_sum(n - 1);
    return here + below;
}
int even(int n) { if (n == 0) return 1; return odd(n - 1); }
int odd(int n) { if (n == 0) return 0; return even(n - 1); }
VMXLoad { printf("%d %d\\n", depth_sum(4), even(10)); }
""", {}),
    "locals_and_scopes": ("""\
int f(int a)
{
    int x = a + 1;
    {
        int x = 100;      // a different x
        a = a + x;
    }
    static int calls = 5;
    calls++;
    string s;
    return x + a + calls;
}
VMM1Hz {
    int x = f(1);
    string msg = "x is";
    printf("%s %d\\n", msg, x);
}
""", {}),
    "control_flow": ("""\
int classify(int n)
{
    if (n < 10)
        return 1;
    else if (n < 100)
        return 2;
    if (n < 1000) {
        n = n / 10;
        return 3 + n;
    }
    return 4;
}
VMM1Hz {
    if (VCPUID == 0) {
        printf("cpu 0\\n");
    } else if (VCPUID == 1) {
        printf("cpu 1\\n");
    } else {
        printf("other\\n");
    }
    if (1) printf("always\\n");
    if (0) printf("never\\n");
    v = VCPUID ? classify(RIP) : 0;
    ;
}
""", {}),
    "operators": ("""\
VMM1Hz {
    a = 1 + 2 * 3 - 4 / 2;            // folded
    b = RAX + RBX + RCX + 1 + 2;      // n-ary, constants gathered
    c = RAX - RBX - RCX;
    d = (RAX << 3) >> 1 | RBX & 0xff ^ ~RCX;
    e = RAX == 1 && RBX != 2 || !RCX;
    f = RAX < RBX && RBX <= RCX && RCX > RDX && RDX >= 0;
    g = -RAX + +RBX;
    h = RAX % 7;
    a += 2; a -= 1; a *= 3; a /= 2; a %= 5; a <<= 1; a >>= 1; a &= 0xf; a |= 0x10; a ^= 3;
    i = a++;
    j = ++a;
    k = a--;
    l = --a;
    a++;
    m = (b = 5) + 1;
    n = -5;
    o = 0x10 | 0x01;
    p = 010 + 'A';
}
""", {}),
    "strings": ("""\
string s = "tab\\tquote\\"backslash\\\\";
VMM1Hz {
    t = s + "-" + curprocname() + "%";
    s += "!";
    u = "con" "cat" + "enated";
    if (t == "x" || "a" != s) logstr(t);
    if (curprocname() == "bash") logstr("bash\\n");
    sprintf(s, "%s/%d", t, 5);
    printf("%s %s %d\\n", s, u, strcmp(s, t));
}
""", {}),
    "structs_and_pointers": ("""\
typedef unsigned long ulong;
enum state { RUNNING, SLEEPING = 5, STOPPED };
struct list_head { struct list_head *next, *prev; };
struct task_struct {
    @0x0 long state;
    @0x2b8 int pid;
    int tgid;
    @0x2c8 struct task_struct *real_parent;
    struct list_head tasks;
    @0x490 char comm[16];
    union { int a; short b; } u;
    unsigned char flags[4];
    ulong vruntime;
};
struct task_struct *cur;
VMM1Hz {
    cur = (struct task_struct *)getguest(GSBASE);
    printf("%d %d %s\\n", cur->pid, cur->real_parent->tgid, cur->comm);
    names[cur->comm]++;
    x = cur->flags[2] + sizeof(struct task_struct) + sizeof(ulong) + STOPPED;
    p = &cur->tasks;
    q = p + 1;
    d = q - p;
    c = (char)x;
    s = (string)cur->comm;
    b = cur->u.b;
    n = (*cur).pid;
    e = cur->tasks.next->prev;
    f = cur[1].state;
    g = *(int *)(GSBASE + 8);
    h = cur->vruntime;
}
""", {}),
    "memmodels": ("""\
struct s32 { int a; long b; char *name; };
memmodel guest32;
struct s32b { int a; long b; char *name; };
memmodel guestphys;
int phys(int addr) { return *(int *)addr; }
memmodel guest16;
struct s16 { int a; long b; };
memmodel guest64;
VMM1Hz {
    x = ((struct s32 *)RAX)->b;
    y = ((struct s32b *)RAX)->b + sizeof(struct s32b) + sizeof(struct s16);
    z = phys(APIC_BASEPA + 48);
}
""", {}),
    "guest_symbols": ("""\
struct task { @0x2bc int tgid; @0x490 char comm[16]; };
extern struct task init_task;
extern unsigned long jiffies;
VMMLoad {
    printf("%x %x %d %d %s\\n", &init_task, &jiffies, init_task.tgid, jiffies, init_task.comm);
    printf("%x\\n", &saved_command_line);
}
""", {"symbols": True}),
    "probe_names": ("""\
USEC:1000 { a = 1; }
GUEST:sys_open { a = 2; }
GUEST:0xffffffff81000010 { a = 3; }
GUEST_READ:0x1000 { a = 4; }
GUEST_WRITE:jiffies { a = 5; }
ENTER:sys_open { a = 6; }
GUEST:ENTER:system_call { a = 7; }
READ:0x2000 { a = 8; }
VMM:WRITE:0x3000 { a = 9; }
TIMER:10msec { a = 10; }
VMM:TIMER:500usec { a = 11; }
VMX:TIMER:1sec { a = 12; }
PROFILE:1ms { a = 13; }
OFFSET:sys_open:0x10 { a = 14; }
USEC: 2000 { a = 15; }
Disk_IOStart(int adapter, int ctrl, int drive) { printf("%d %d %d\\n", adapter, ctrl, drive); }
In(int port, int size) printf("in %x/%d\\n", port, size);
Guest_TripleFault ;
""", {"symbols": True}),
    "preprocessor": ("""\
#define SQUARE(x) ((x) * (x))
#define GREETING "hi"
#define EMPTY
#ifdef VERBOSE
#define LEVEL 2
#else
#define LEVEL 1
#endif
# a '#' line that is not a directive is a comment, as in the reference's appendix
#if LEVEL > 1 && defined(VERBOSE)
int verbose = 1;
#elif 0
int never;
#else
int verbose = 0;
#endif
/* block comments /* nest */ in Emmett */
VMM1Hz EMPTY { printf("%s %d %d\\n", GREETING, SQUARE(RAX + 1), verbose + LEVEL); }
""", {"defines": {"VERBOSE": "1"}}),
    "renaming": ("""\
int cond, add, MAX, X1, _cond, div;
string logint;
int setint(int do_it, int RIP2) { return do_it + RIP2; }
int a_name_that_is_far_too_long_for_vp_which_allows_sixty_three_bytes_at_most = 1;
int a_name_that_is_far_too_long_for_vp_which_allows_sixty_three_bytes_at_most_too = 2;
int printfx(int cond) { return cond + MAX; }
VMM1Hz {
    cond = setint(2, 3) + printfx(1);
    add = 1; MAX = 2; X1 = 3; _cond = 4; div = 5;
    logint = "renamed";
    add = a_name_that_is_far_too_long_for_vp_which_allows_sixty_three_bytes_at_most
        + a_name_that_is_far_too_long_for_vp_which_allows_sixty_three_bytes_at_most_too;
    printf("%s %d\\n", logint, cond + add + MAX + X1 + _cond + div);
    logint(add);
}
""", {}),
    "builtins": ("""\
string buf;
int t;
VMM1Hz {
    printf("%d %s\\n", 1, "a");
    sprintf(buf, "%08x", RIP);
    logstr(buf);
    logint(RAX);
    x = getguest(RSP) + getguest("jiffies") + getguestphys(APIC_BASEPA + 48);
    getgueststr(buf, RSI);
    getgueststr(buf, 16, RSI);
    getgueststr(buf, "linux_banner");
    getgueststr(buf, "linux_banner", 8);
    gueststack(buf);
    now = getsystemtime();
    getsystemtime(t);
    o = offatret("sys_getpid") + offatstrcpy("get_task_comm") + offatseg("sys_getpid");
    cmp = strcmp(buf, "x");
    assert(x != 0);
    assert(t > 0, "time %d is not positive", t);
    if (cmp == 12345) exit();
}
""", {}),
    "auto_aggregates": ("""\
Guest_PF { pf[CR2]++; }
Guest_IRQ { irqs[ARG0, curprocname()]++; }
""", {"auto_aggr": True}),
    "indent_4": ("""\
VMM1Hz {
    if (VCPUID == 0) {
        printf("a very long line that does not fit on one line of VP output %d %d\\n", RIP, RSP);
    }
}
""", {"indent": 4, "preload": False}),
    "no_preload": ("""\
int curpid() { return 42; }
VMM1Hz { printf("%d\\n", curpid()); }
""", {"preload": False}),
    "preload_helpers": ("""\
VMM1Hz { printf("%d %d %d %s %x\\n", curpid(), curtid(), curppid(), curprocname(), curthrptr()); }
""", {}),
    "preload_override": ("""\
// A program's own definition replaces the preload's; the rest of the preload still uses it.
int curthrptr() { return GSBASE; }
VMM1Hz { printf("%d\\n", curpid()); }
""", {}),
}


def feature_options(name: str, tmp_path) -> dict:
    options = dict(FEATURES[name][1])
    if options.pop("symbols", False):
        path = tmp_path / "kallsyms"
        path.write_text(SYMBOLS)
        options["symbols_file"] = str(path)
    return options


def compile_feature(name: str, tmp_path) -> str:
    return compile_ok(FEATURES[name][0], f"{name}.emt", **feature_options(name, tmp_path))


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_feature_vp_matches_snapshot(name, tmp_path, snapshot):
    assert compile_feature(name, tmp_path) == snapshot


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_feature_vp_loads_in_the_runtime(name, tmp_path):
    vp = compile_feature(name, tmp_path)
    script = load(vp, backend=CatalogBackend(), filename=f"{name}.vp")
    assert script.entries


def test_every_output_starts_with_a_version_directive(tmp_path):
    for name in FEATURES:
        assert compile_feature(name, tmp_path).startswith('(version "1.0")\n')
