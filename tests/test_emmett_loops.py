"""Bounded loops (`emmett/loops.py`): `for`, `while`, `do ... while`, `break`, `continue`,
unrolled into guarded copies of the body, with a run-time fault past the limit and a
compile-time refusal of nests that would copy a body more than the limit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import emmett
from conftest import FakeBackend, Loaded, run_vprobe
from vp_runtime import LoadConfig


def compile_ok(source: str, **options) -> str:
    result = emmett.compile(source, "t.emt", emmett.CompileOptions(preload=False, **options))
    assert result.ok, "\n".join(d.format() for d in result.diagnostics)
    return result.vp


def errors(source: str, **options) -> list[str]:
    result = emmett.compile(source, "t.emt", emmett.CompileOptions(preload=False, **options))
    assert not result.ok
    return [d.format() for d in result.diagnostics if d.severity == "error"]


def run(source: str, backend: FakeBackend | None = None, **options) -> str:
    return Loaded(compile_ok(source, **options), backend).fire("VMXLoad")


# A UCS-2 string converted the way the Windows preloads do it: one character per
# two-byte step, each read as a C string (its high byte is the terminator).
UCS2ASCII = """
struct ustr { unsigned short Length; unsigned short MaximumLength; @8 char *Buffer; };
string ucs2ascii(struct ustr *str) {
    int i;
    string ret;
    ret = "";
    for (i = 0; i < str->Length; i += 2) {
        ret = ret + (string)&((char *)str->Buffer)[i];
    }
    return ret;
}
VMXLoad { printf("[%s]\\n", ucs2ascii((struct ustr *)0x10000)); }
"""


def ustr_backend(text: str) -> FakeBackend:
    data = text.encode("utf-16-le")
    b = FakeBackend()
    b.poke(0x10000, len(data).to_bytes(2, "little") + (len(data) + 2).to_bytes(2, "little") + bytes(4))
    b.poke_u64(0x10008, 0x20000)
    b.poke(0x20000, data + b"\0\0")
    return b


def test_ucs2_string_in_guest_memory_is_converted():
    assert run(UCS2ASCII, ustr_backend("services.exe")) == "[services.exe]\n"


def test_ucs2_empty_string():
    assert run(UCS2ASCII, ustr_backend("")) == "[]\n"


def test_ucs2_string_longer_than_the_limit_faults_at_the_loop():
    vp = compile_ok(UCS2ASCII, max_loop=8)
    assert Loaded(vp, ustr_backend("a-much-longer-name.exe")).fire("VMXLoad") == (
        "vprobe error: probe VMXLoad aborted at t.emt:7:5: assertion failed: "
        "loop at t.emt:7:5 ran more than 8 iterations (the limit: emmettc --max-loop N)\n")
    # Exactly at the limit: no fault.
    assert Loaded(vp, ustr_backend("12345678")).fire("VMXLoad") == "[12345678]\n"


def test_for_while_do_and_jumps_compute_what_c_computes():
    out = run("""VMXLoad {
        int i; int s;
        s = 0;
        for (i = 0; i < 5; i++) s += i;
        printf("%d ", s);
        i = 0;
        while (i < 1000) { i++; if (i == 7) break; }
        printf("%d ", i);
        s = 0;
        for (int j = 0; j < 10; j++) { if (j % 2) continue; s += j; }
        printf("%d ", s);
        i = 0;
        do { i += 3; } while (i < 10);
        printf("%d ", i);
        do { printf("once "); } while (0);
        i = 0;
        while (i++ < 3) ;
        printf("%d\\n", i);
    }""")
    assert out == "10 7 20 12 once 4\n"


def test_break_skips_the_rest_of_the_body_and_the_step():
    out = run("""VMXLoad {
        int i; int after;
        after = 0;
        for (i = 0; i < 10; i++) { if (i == 3) { break; } after++; }
        printf("%d %d\\n", i, after);
    }""")
    assert out == "3 3\n"


def test_continue_in_do_while_goes_to_the_test():
    out = run("""VMXLoad {
        int i; int odd;
        i = 0; odd = 0;
        do { i++; if (i % 2 == 0) continue; odd++; } while (i < 9);
        printf("%d %d\\n", i, odd);
    }""")
    assert out == "9 5\n"


def test_nested_loops_with_constant_bounds():
    out = run("""VMXLoad {
        int i; int j; int n;
        n = 0;
        for (i = 0; i < 4; i++) for (j = 0; j < 3; j++) n += i * j;
        printf("%d\\n", n);
    }""")
    assert out == "18\n"


def test_loop_without_bound_past_the_limit_faults_with_its_location():
    vp = compile_ok("VMXLoad {\n  int i;\n  i = 0;\n  while (1) { i++; }\n}\n", max_loop=16)
    loaded = Loaded(vp)
    assert loaded.fire("VMXLoad") == ("vprobe error: probe VMXLoad aborted at t.emt:4:3: assertion failed: "
                                      "loop at t.emt:4:3 ran more than 16 iterations "
                                      "(the limit: emmettc --max-loop N)\n")
    assert loaded.var("VMXLoad.i") == 16


def test_nest_over_the_limit_is_refused_at_the_inner_loop():
    errs = errors("VMXLoad {\n  int i; int j;\n  for (i = 0; i < 8; i++) {\n"
                  "    for (j = 0; j < 16; j++) { }\n  }\n}\n")
    assert len(errs) == 1
    assert errs[0].startswith("t.emt:4:5: error: this loop and the loops around it unroll into 128 copies "
                              "of its body (8 × 16), more than the limit of 64")
    errs = errors("VMXLoad { while (ARG0) { while (ARG1) { } } }")
    assert len(errs) == 1
    assert errs[0].startswith("t.emt:1:26: error: this loop and the loops around it unroll into 4096 copies "
                              "of its body (64 × 64)")
    # Within the limit: 8 × 8.
    compile_ok("VMXLoad { int i; int j; for (i = 0; i < 8; i++) for (j = 0; j < 8; j++) { } }")


def test_jumps_outside_loops_and_return_inside_are_errors():
    assert errors("VMXLoad { break; }")[0].startswith("t.emt:1:11: error: 'break' outside a loop")
    assert errors("VMXLoad { if (1) continue; }")[0].startswith("t.emt:1:18: error: 'continue' outside a loop")
    errs = errors("int f(int n) { int i; for (i = 0; i < n; i++) { return i; } return 0; }\n"
                  "VMXLoad { f(1); }")
    assert errs[0].startswith("t.emt:1:49: error: 'return' inside a loop is not supported")


def test_loop_whose_header_exceeds_the_limit_is_refused():
    errs = errors("VMXLoad {\n  int i;\n  for (i = 0; i < 1000; i++) { }\n}\n")
    assert errs[0].startswith("t.emt:3:3: error: this loop runs 1000 times, more than the limit of 64")
    compile_ok("VMXLoad {\n  int i;\n  for (i = 0; i < 1000; i++) { }\n}\n", max_loop=1000)


def test_header_bound_is_not_trusted_when_the_body_assigns_the_counter():
    out = run("VMXLoad { int i; int n; n = 0; for (i = 0; i < 4; i++) { i += 0; n++; } printf(\"%d\\n\", n); }")
    assert out == "4\n"
    vp = compile_ok("VMXLoad { int i; for (i = 0; i < 4; i++) { i--; } }", max_loop=10)
    assert "ran more than 10 iterations" in Loaded(vp).fire("VMXLoad")


def test_a_pointer_counter_steps_by_its_element_size():
    out = run("VMXLoad { int *p; int n; n = 0; for (p = 0; p < 10; p++) n++; printf(\"%d\\n\", n); }")
    assert out == "3\n"


def test_switch_and_goto_still_refused():
    assert "'switch' is not supported" in errors("VMXLoad { switch (1) { } }")[0]
    assert "'goto' is not supported" in errors("VMXLoad { goto x; }")[0]


def test_small_loop_lowering(snapshot):
    vp = compile_ok("VMXLoad { int i; int s; for (i = 0; i < 3; i++) { if (i == 1) continue; s += i; } }")
    assert vp.split("\n(vprobe", 1)[1].split("\n;@", 1)[0] == snapshot


def test_small_unbounded_loop_lowering(snapshot):
    vp = compile_ok("VMXLoad { int i; i = 0; while (i != 2) { if (ARG0 == i) break; i++; } }", max_loop=2)
    assert vp.split("\n(vprobe", 1)[1].split("\n;@", 1)[0] == snapshot


def test_unrolled_loop_has_a_static_cost_bound():
    """The runtime reads the bound of a loop's probe off straight-line code: no recursion budget."""
    loaded = Loaded(compile_ok("VMXLoad { int i; for (i = 0; i < 4; i++) printf(\"%d\", i); }"))
    costs = loaded.script.costs
    assert len(costs) == 1 and costs[0].bounded and not costs[0].recursion


def test_loop_on_the_default_machine_reads_guest_memory():
    """The first word of the guest's banner, found by a loop over its bytes."""
    r = run_vprobe("-d", "1", "-c", 'VMM1Hz { int i; int n; char *p; p = (char *)&linux_banner; n = 0;'
                   ' for (i = 0; i < 64; i++) { if (p[i] == 32) break; n++; } printf("%d\\n", n); }')
    assert r.returncode == 0, r.stderr.decode()
    words = r.stdout.decode().split()
    assert words and set(words) == {"5"}


def test_emmettc_max_loop_option(tmp_path):
    emmettc = Path(sys.executable).parent / "emmettc"
    src = tmp_path / "l.emt"
    src.write_text("VMXLoad { int i; i = 0; while (i < 1000) i++; }\n")
    small = subprocess.run([str(emmettc), "--no-preload", "--max-loop", "3", str(src)], capture_output=True)
    assert small.returncode == 0
    assert b"ran more than 3 iterations" in small.stdout
    bad = subprocess.run([str(emmettc), "--max-loop", "0", str(src)], capture_output=True)
    assert bad.returncode != 0 and b"--max-loop" in bad.stderr


def test_loop_in_a_recursive_function_keeps_its_state_per_call():
    """A recursive function's locals, the loop's control among them, are per activation."""
    vp = compile_ok("int f(int n) { int i; int s; s = 0; for (i = 0; i < n; i++) { s += n > 1 ? f(n - 1) : 1; }"
                    " return s; }\nVMXLoad { printf(\"%d\\n\", f(4)); }", max_loop=8)
    assert Loaded(vp, config=LoadConfig(max_calls_per_firing=100)).fire("VMXLoad") == "24\n"


def test_vprobe_max_loop_option():
    code = 'VMM1Hz { int i; i = 0; while (i < 10) i++; printf("%d\\n", i); }'
    ok = run_vprobe("-d", "1", "-c", code)
    assert ok.returncode == 0 and set(ok.stdout.decode().split()) == {"10"}
    short = run_vprobe("-d", "1", "--max-loop", "4", "-c", code)
    assert b"ran more than 4 iterations" in short.stdout  # the fault line is in the log
