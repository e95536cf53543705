"""Histograms in Emmett (`hist`, `lhist`): the plain VP they lower to, the buckets a run
fills (on the simulated machine, with a known distribution), the annotations that tell
the printers, and the errors of a misuse."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import emmett
from conftest import Loaded, run_machine
from vp_runtime import annotations_of
from vprobe_tools.log.parse import AggrBlock, parse_log

M64 = (1 << 64) - 1


def compile_vp(source: str, **options) -> str:
    options.setdefault("preload", False)
    result = emmett.compile(source, "h.emt", emmett.CompileOptions(**options))
    assert result.ok, result.format_diagnostics()
    return result.vp


def errors(source: str) -> list[str]:
    result = emmett.compile(source, "h.emt", emmett.CompileOptions(preload=False))
    assert not result.ok
    return [f"{d.line}:{d.col}: {d.message}" for d in result.errors]


def program(vp: str) -> str:
    """The VP without its annotations."""
    return vp[:vp.index(";@emmett")]


def blocks(log: str) -> dict[str, AggrBlock]:
    return {e.name: e for e in parse_log(log) if isinstance(e, AggrBlock)}


def buckets(block: AggrBlock) -> dict:
    """key -> (count, min, max) of each entry."""
    return {e.keys: (e.count, e.min, e.max) for e in block.entries}


# ---- the VP -------------------------------------------------------------------------------------------

def test_hist_lowers_to_an_aggregate_with_a_bucket_key_and_the_sample_as_value():
    vp = compile_vp('VMM1Hz { lat[curprocname_()] <- hist(ARG0); }\nstring curprocname_() { return "p"; }\n')
    assert program(vp) == '''\
(version "1.0")

(defaggr lat 1 1)

(defun curprocname_ ()
  "p")

(defun hist.pow2 (v)
  (setint v (| v (>> v 1)))
  (setint v (| v (>> v 2)))
  (setint v (| v (>> v 4)))
  (setint v (| v (>> v 8)))
  (setint v (| v (>> v 16)))
  (setint v (| v (>> v 32)))
  (^ v (>> v 1)))

(defun lat.hist (key0 value)
  (aggr lat ((hist.pow2 value)) (key0) value))

(vprobe VMM1Hz
  (lat.hist (curprocname_) ARG0))
'''


def test_lhist_lowers_to_linear_buckets_with_underflow_and_overflow():
    vp = compile_vp("VMM1Hz { d[VCPUID] <- lhist(ARG0, 10, 50, 10); e <- lhist(ARG1, 0, 8, 1); }\n")
    assert '''\
(defun d.hist (key0 value)
  (aggr d
    (key0
      (cond
        ((< value 10) 0)
        ((>= value 50) 50)
        (1 (- value (% (- value 10) 10)))))
    ()
    value))

(defun e.hist (value)
  (aggr e ((cond ((>= value 8) 8) (1 value))) () value))

(vprobe VMM1Hz
  (d.hist VCPUID ARG0)
  (e.hist ARG1))
''' in program(vp)
    assert "hist.pow2" not in vp  # only power-of-two histograms need it


def test_the_keys_and_the_sample_are_each_evaluated_once_keys_first():
    source = ("int n;\nint next() { n = n + 1; return n; }\n"
              "VMXLoad { h[next()] <- hist(next()); printf(\"n=%d\\n\", n); logaggr(h); }\n")
    lines = Loaded(compile_vp(source)).fire().splitlines()
    # The key is 1, the sample 2 (its bucket 2), as `h[next()] <- next()` would evaluate them.
    assert lines == ["n=2", "aggr: h (2 integer keys) (0 string keys)",
                     "h[0x1, 0x2] == avg 2 count 1 min 2 max 2 latest 2"]


# ---- what a run fills ---------------------------------------------------------------------------------

KNOWN = """\
int n;
VMM10Hz {
    if (VCPUID == 0) {
        n = n + 1;
        pow2 <- hist(n);
        linear["n"] <- lhist(n, 5, 15, 5);
    }
}
VMXUnload { logaggr(pow2); logaggr(linear); }
"""


def test_a_run_on_the_machine_fills_the_buckets_of_a_known_distribution():
    log = run_machine(compile_vp(KNOWN), 2)  # VMM10Hz on VCPU 0: n = 1 .. 20
    found = blocks(log)
    assert buckets(found["pow2"]) == {(1,): (1, 1, 1), (2,): (2, 2, 3), (4,): (4, 4, 7), (8,): (8, 8, 15),
                                      (16,): (5, 16, 20)}
    assert buckets(found["linear"]) == {(0, "n"): (4, 1, 4), (5, "n"): (5, 5, 9), (10, "n"): (5, 10, 14),
                                        (15, "n"): (6, 15, 20)}
    assert sum(e.count for e in found["pow2"].entries) == 20
    assert [e.avg for e in found["pow2"].entries if e.keys == (16,)] == [18]  # (16 + ... + 20) / 5, exact


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=M64))
def test_power_of_two_buckets_are_the_largest_power_of_two_not_above_the_value(value):
    loaded = Loaded(compile_vp("VMXLoad { h <- hist(ARG0); logaggr(h); clearaggr(h); }\n"))
    line = loaded.fire(ARG0=value).splitlines()[1]
    key = int(line[line.index("[") + 1:line.index("]")], 16)
    assert key == (0 if value == 0 else 1 << (value.bit_length() - 1))
    assert line.endswith(f"count 1 min {value} max {value} latest {value}")


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=200))
def test_linear_buckets_hold_their_lower_bound(value):
    loaded = Loaded(compile_vp("VMXLoad { h <- lhist(ARG0, 30, 130, 20); logaggr(h); clearaggr(h); }\n"))
    line = loaded.fire(ARG0=value).splitlines()[1]
    key = int(line[line.index("[") + 1:line.index("]")], 16)
    expected = 0 if value < 30 else 130 if value >= 130 else 30 + (value - 30) // 20 * 20
    assert key == expected


# ---- the annotations ----------------------------------------------------------------------------------

def test_the_record_says_kind_bucket_unit_and_header():
    vp = compile_vp("""\
Disk_IOFinish(int adapter, int ctrl, int drive, int is_read) {
    int lat_us = ARG5;
    a[ARG6, is_read ? "read" : "write"] <- hist(lat_us);
    b <- lhist(ARG5, 0, 1000, 100, "sectors");
    c[VCPUID] <- hist(ARG5);
}
""")
    records = annotations_of(vp).aggregates
    assert records["a"] == {
        "name": "a", "counted": False, "value": "lat_us",
        "keys": [{"header": "ARG6", "kind": "integer"}, {"header": "lat_us", "kind": "bucket"},
                 {"header": 'is_read ? "read" : "write"', "kind": "string"}],
        "hist": {"kind": "pow2", "unit": "us", "bucket": 1}}
    assert records["b"]["hist"] == {"kind": "linear", "min": 0, "max": 1000, "step": 100, "unit": "sectors",
                                    "bucket": 0}
    assert records["c"]["hist"] == {"kind": "pow2", "bucket": 1}  # ARG5 says no unit


@pytest.mark.parametrize("sample, unit", [
    ("usec", "us"), ("lat_us", "us"), ("elapsed_nsecs", "ns"), ("wait_ms", "ms"), ("secs", "s"),
    ("io_bytes", "bytes"), ("usec(ARG0)", "us"), ("ticks", None), ("busy", None), ("ARG0 / 1000", None)])
def test_the_unit_is_read_from_the_sampled_name(sample, unit):
    name = sample.split("(")[0]
    func = f"int {name}(int x) {{ return x; }}\n" if "(" in sample else ""
    decl = "" if "(" in sample or sample.startswith("ARG") else f"int {name} = 3;\n"
    vp = compile_vp(f"{func}{decl}VMM1Hz {{ h <- hist({sample}); }}\n")
    assert annotations_of(vp).aggregates["h"]["hist"].get("unit") == unit


# ---- misuse -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source, message", [
    ("VMM1Hz { x = hist(3); }", '1:14: hist() makes a histogram of an aggregate: use it as '
                                'AGGREGATE[keys] <- hist(value [, "unit"])'),
    ("bag b[4];\nVMM1Hz { b[1] <- hist(2); }", "2:18: hist() makes a histogram of an aggregate; 'b' is a bag"),
    ("VMM1Hz { a[1]++; }\nVMXLoad { a <- hist(3); }",
     "2:16: aggregate 'a' is updated with ++ or <- value at line 1, column 14: a histogram needs an aggregate "
     "of its own"),
    ("VMM1Hz { a <- hist(3); }\nVMXLoad { a <- 4; }",
     "2:13: aggregate 'a' is a histogram (line 1, column 15): it is updated only with hist(...)"),
    ("VMM1Hz { a <- hist(1); a <- lhist(2, 0, 10, 1); }",
     "1:29: aggregate 'a' has other buckets at line 1, column 15: every update of a histogram uses the same "
     "buckets"),
    ("VMM1Hz { a <- lhist(2, 10, 0, 1); }",
     "1:15: lhist's buckets need min < max and a step that divides max - min (here min 10, max 0, step 1)"),
    ("VMM1Hz { a <- lhist(2, 0, 10, 3); }",
     "1:15: lhist's buckets need min < max and a step that divides max - min (here min 0, max 10, step 3)"),
    ("VMM1Hz { a <- lhist(2, 0, VCPUID, 1); }", "1:27: lhist's min, max and step must be non-negative integer "
                                                 "constants"),
    ("VMM1Hz { a <- lhist(2, -10, 10, 1); }", "1:24: lhist's min, max and step must be non-negative integer "
                                               "constants"),
    ("VMM1Hz { a <- lhist(2, 0, 1000000, 1); }", "1:15: lhist would have 1,000,000 buckets; at most 10,000 "
                                                  "(use a larger step, or hist)"),
    ("VMM1Hz { a <- hist(); }", '1:15: hist() takes 1 or 2 arguments: AGGREGATE[keys] <- hist(value [, "unit"])'),
    ('VMM1Hz { a <- hist("x"); }', "1:20: the value hist() counts must be an integer, but this is a string"),
    ("VMM1Hz { a <- hist(3, 4); }", '1:23: the last argument of hist() is its unit: a short string such as "us" '
                                    '(at most 32 bytes)'),
    ("aggr a[1][0];\nVMM1Hz { a[3] <- hist(3); }",
     "2:11: aggregate 'a' has 1 integer key and 0 string keys (declared at line 1, column 6), but this use gives "
     "2 integer keys and 0 string keys (counting the bucket key)"),
])
def test_misuses_are_located_errors(source, message):
    assert errors(source)[0] == message


def test_a_function_of_the_programs_named_hist_is_called_as_usual():
    vp = compile_vp("int hist(int x) { return x * 2; }\nVMXLoad { a[1] <- hist(3); logaggr(a); }\n")
    assert "a[0x1] == avg 6 count 1" in Loaded(vp).fire()


@pytest.mark.parametrize("name, aggregate, bucket", [("disk-latency.emt", "latency_us", 0),
                                                      ("disk-latency-histogram.emt", "latency", 1)])
def test_the_cookbooks_latency_histograms_hold_each_latency_in_its_bucket(name, aggregate, bucket):
    from pathlib import Path
    source = (Path(__file__).resolve().parent.parent / "cookbook" / name).read_text()
    result = emmett.compile(source, f"cookbook/{name}", emmett.CompileOptions())
    assert result.ok, result.format_diagnostics()
    assert result.annotations.aggregates[aggregate]["hist"]["unit"] == "us"
    entries = [e for b in parse_log(run_machine(result.vp, 3)) if isinstance(b, AggrBlock) and b.name == aggregate
               for e in b.entries]
    assert sum(e.count for e in entries) > 20
    for e in entries:
        low = e.keys[bucket]
        assert low & (low - 1) == 0 and low <= e.min <= e.max < 2 * low, e
