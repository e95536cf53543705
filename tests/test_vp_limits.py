"""The reference's limits at run time: bags and their storage, recursion depth,
string lengths, expression nesting, and the load configuration itself."""

from __future__ import annotations

import pytest

from vp_runtime import LoadConfig, load
from vp_runtime.limits import (BAG_PAIR_BYTES, DEFAULT_BAG_BYTES, DEFAULT_MAX_CALL_DEPTH, MAX_NAME_BYTES,
                               MAX_PROBES, MAX_STRING_BYTES)

from conftest import FakeBackend, Loaded, fire, load_error


def test_the_reference_numbers():
    assert MAX_PROBES == 32
    assert MAX_NAME_BYTES == 63  # 64 bytes with the terminating NUL
    assert MAX_STRING_BYTES == 255  # 256 bytes with the terminating NUL
    assert BAG_PAIR_BYTES == 16


# ---- bags -----------------------------------------------------------------------------------

def bag_script(body: str, decls: str = "(defbag b 4)") -> str:
    return f"{decls}\n(vprobe VMXLoad {body})"


def test_baginsert_returns_one_and_bagremove_the_value():
    out = fire(bag_script('(printf "%d %d " (baginsert b 10 100) (baginsert b 20 200)) '
                          '(printf "%d %d" (bagremove b 20) (bagremove b 10))'))
    assert out == "1 1 200 100"


def test_bagremove_deletes_the_pair():
    out = fire(bag_script('(baginsert b 1 11) (printf "%d %d" (bagremove b 1) (bagremove b 1))'))
    assert out == "11 0"


def test_bagremove_of_a_missing_key_returns_zero():
    assert fire(bag_script('(printf "%d" (bagremove b 5))')) == "0"


def test_duplicate_keys_are_allowed_and_each_insert_can_be_removed():
    out = fire(bag_script('(printf "%d%d%d " (baginsert b 7 1) (baginsert b 7 2) (baginsert b 7 3))'
                          '(printf "%d %d %d %d" (bagremove b 7) (bagremove b 7) (bagremove b 7) (bagremove b 7))'))
    inserted, removed = out.split(" ", 1)
    assert inserted == "111"
    values = [int(v) for v in removed.split()]
    assert sorted(values[:3]) == [1, 2, 3] and values[3] == 0


def test_a_bag_holds_its_declared_size():
    out = fire(bag_script('(printf "%d%d%d%d" (baginsert b 1 1) (baginsert b 2 2) (baginsert b 3 3) (baginsert b 4 4))',
                          decls="(defbag b 3)"))
    assert out == "1110"


def test_removing_makes_room_again():
    out = fire(bag_script('(baginsert b 1 1) (baginsert b 2 2) (printf "%d" (baginsert b 3 3)) (bagremove b 1) '
                          '(printf "%d %d" (baginsert b 3 3) (bagremove b 3))', decls="(defbag b 2)"))
    assert out == "01 3"


def test_each_bag_has_its_own_size():
    text = ("(defbag small 1)\n(defbag big 3)\n"
            '(vprobe VMXLoad (printf "%d%d %d%d%d%d" (baginsert small 1 1) (baginsert small 2 2) '
            "(baginsert big 1 1) (baginsert big 2 2) (baginsert big 3 3) (baginsert big 4 4)))")
    assert fire(text) == "10 1110"


def test_bags_are_separate_key_spaces():
    text = ("(defbag a 2)\n(defbag b 2)\n"
            '(vprobe VMXLoad (baginsert a 1 10) (baginsert b 1 20) (printf "%d %d %d" (bagremove b 1) '
            "(bagremove a 1) (bagremove b 1)))")
    assert fire(text) == "20 10 0"


@pytest.mark.parametrize("bag_bytes, pairs", [(0, 0), (15, 0), (16, 1), (47, 2), (48, 3), (80, 5)])
def test_total_bag_storage_is_bag_bytes_at_16_bytes_a_pair(bag_bytes, pairs):
    inserts = " ".join(f"(logint (baginsert {'a' if i % 2 else 'b'} {i} {i}))" for i in range(6))
    out = fire(bag_script(inserts, decls="(defbag a 10)\n(defbag b 10)"), config=LoadConfig(bag_bytes=bag_bytes))
    assert out == "1" * pairs + "0" * (6 - pairs)


def test_storage_freed_by_one_bag_serves_another():
    text = ("(defbag a 4)\n(defbag b 4)\n"
            "(vprobe VMXLoad (logint (baginsert a 1 1)) (logint (baginsert a 2 2)) (logint (baginsert b 3 3))"
            " (bagremove a 1) (logint (baginsert b 3 3)))")
    assert fire(text, config=LoadConfig(bag_bytes=2 * BAG_PAIR_BYTES)) == "1101"


def test_bags_persist_across_firings_and_probes():
    text = ("(defbag starts 16)\n"
            "(vprobe Disk_IOStart (baginsert starts ARG4 TSC))\n"
            '(vprobe Disk_IOFinish (printf "io %d took %d\\n" ARG4 (- TSC (bagremove starts ARG4))))')
    b = FakeBackend()
    loaded = Loaded(text, b)
    for io, t in ((1, 100), (2, 150)):
        b.regs["TSC"] = t
        loaded.fire("Disk_IOStart", ARG4=io)
    b.regs["TSC"] = 400
    loaded.fire("Disk_IOFinish", ARG4=2)
    b.regs["TSC"] = 1000
    loaded.fire("Disk_IOFinish", ARG4=1)
    assert loaded.log() == "io 2 took 250\nio 1 took 900\n"


def test_bag_keys_and_values_are_64_bit():
    out = fire(bag_script('(baginsert b -1 0xfedcba9876543210) (printf "%x %x" (bagremove b 0xffffffffffffffff) '
                          "(bagremove b -1))"))
    assert out == "fedcba9876543210 0"


def test_each_load_gets_fresh_bag_storage():
    config = LoadConfig(bag_bytes=BAG_PAIR_BYTES)
    text = bag_script("(logint (baginsert b 1 1))")
    assert fire(text, config=config) == "1"
    assert fire(text, config=config) == "1"


def test_default_bag_storage():
    assert LoadConfig().bag_bytes == DEFAULT_BAG_BYTES


# ---- recursion depth ---------------------------------------------------------------------------------

COUNT = "(defun count (n) (cond ((== n 0) 0) (1 (+ 1 (count (- n 1))))))\n"


def test_default_call_depth():
    assert LoadConfig().max_call_depth == DEFAULT_MAX_CALL_DEPTH
    d = DEFAULT_MAX_CALL_DEPTH
    assert fire(COUNT + f"(vprobe VMXLoad (logint (count {d - 1})))") == str(d - 1)
    assert "recursion" in fire(COUNT + f"(vprobe VMXLoad (logint (count {d})))")


@pytest.mark.parametrize("depth", [1, 5, 50])
def test_call_depth_is_configurable(depth):
    config = LoadConfig(max_call_depth=depth)
    assert fire(COUNT + f"(vprobe VMXLoad (logint (count {depth - 1})))", config=config) == str(depth - 1)
    out = fire(COUNT + f"(vprobe VMXLoad (logint (count {depth})))", config=config)
    assert out.startswith("vprobe error: probe VMXLoad aborted at t.vp:1:8: ") and "recursion" in out


def test_non_recursive_calls_do_not_count_against_the_depth():
    chain = "\n".join(f"(defun f{i} () (+ 1 (f{i + 1})))" for i in range(20)) + "\n(defun f20 () 0)\n"
    assert fire(chain + "(vprobe VMXLoad (logint (f0)))", config=LoadConfig(max_call_depth=1)) == "20"


def test_depth_is_per_firing():
    text = COUNT + "(vprobe VMXLoad (logint (count 9)))"
    loaded = Loaded(text, config=LoadConfig(max_call_depth=10))
    assert loaded.fire(times=50) == "9" * 50


@pytest.mark.parametrize("bad", [0, -1])
def test_load_config_validation(bad):
    with pytest.raises(ValueError):
        LoadConfig(max_call_depth=bad)
    with pytest.raises(ValueError):
        LoadConfig(bag_bytes=-1)


# ---- strings ---------------------------------------------------------------------------------------

def test_run_time_strings_never_exceed_255_bytes():
    b = FakeBackend(frames=[0xFFFFFFFFFFFF0000 + i for i in range(100)])
    b.poke(0x1000, b"z" * 1000 + b"\0")
    text = ("(defstring s)\n(defstring t)\n(defstring u)\n"
            f'(defstring lit "{"q" * 255}")\n'
            '(vprobe VMXLoad (sprintf s "%s%s" lit lit) (getgueststr t 0x1000) (gueststack u))')
    loaded = Loaded(text, b)
    loaded.fire()
    assert loaded.var("s") == "q" * 255
    assert loaded.var("t") == "z" * 255
    assert 255 - len("_0xffffffffffff0000") < len(loaded.var("u")) <= 255


def test_string_literal_of_255_bytes_is_kept_whole():
    assert fire(f'(vprobe VMXLoad (logstr "{"w" * 255}"))') == "w" * 255


def test_strings_may_hold_any_byte():
    text = b'(defstring s "\x00\x01\xff\\"\\\\")\n(vprobe VMXLoad (logstr s) (sprintf s "%c%s" 0 s) (logstr s))'
    assert fire(text) == '\x00\x01\xff"\\' + '\x00\x00\x01\xff"\\'


# ---- nesting ---------------------------------------------------------------------------------------

def test_expressions_nested_to_the_limit_load_and_run():
    depth = 60
    text = "(vprobe VMXLoad (logint " + "(+ 1 " * depth + "0" + ")" * depth + "))"
    assert fire(text) == str(depth)
    text = "(defstring s)\n(vprobe VMXLoad " + '(sprintf s "%d" ' * depth + "7" + ")" * depth + " (logstr s))"
    assert fire(text) == "1"


def test_too_deep_nesting_is_a_load_error_not_a_crash():
    depth = 5000
    diag = load_error("(vprobe VMXLoad " + "(logint " * depth + "1" + ")" * depth + ")")
    assert "nested" in diag.message


def test_many_forms_and_long_bodies_load():
    body = " ".join(f"(setint x (+ x {i}))" for i in range(300))
    script = load(f"(definteger x)\n(vprobe VMXLoad {body} (logint x))", LoadConfig(max_code_bytes=65536))
    assert script.code_bytes <= 65536
