"""The simulated 64-bit Linux guest: symbols, tasks, the helper library, system calls and devices."""

from __future__ import annotations

import re
import struct

import pytest

from machine.guest import layout as L
from machine.guest.kernel_image import CALLS, SYSCALLS
from machine.symbols import parse_symbols

from test_machine_support import Symbols, kernel_read, machine_for, run_script

KALLSYMS_LINE = re.compile(r"[0-9a-f]{16} [TtDdRrBb] [A-Za-z0-9_.$]+\Z")


@pytest.fixture(scope="module")
def booted():
    m = machine_for()
    m.run(3)
    return m


# ---- symbols ---------------------------------------------------------------------------

def test_kallsyms_format_and_order(booted):
    lines = booted.symbol_text.splitlines()
    assert all(KALLSYMS_LINE.fullmatch(line) for line in lines)
    addresses = [int(line[:16], 16) for line in lines]
    assert addresses == sorted(addresses)
    symbols = parse_symbols(booted.symbol_text)
    for name in ("system_call", "sys_getpid", "get_task_comm", "schedule", "default_idle", "cpu_idle",
                 "jiffies", "saved_command_line", "tsc_enabled", "current_tsc_khz", "init_task", "_text", "_etext"):
        assert name in symbols, name
    # The machine resolves names exactly as its kallsyms says.
    assert all(booted.lookup_symbol(n) == a for n, a in symbols.items())


def test_kernel_functions_are_their_code(booted):
    kernel = booted.guest.kernel
    for name in ("system_call", "sys_getpid", "get_task_comm", "default_idle"):
        func = kernel.functions[name]
        assert kernel_read(booted, func.address, len(func.code)) == func.code
    # system_call starts with swapgs; default_idle halts.
    assert kernel.functions["system_call"].code[:3] == b"\x0f\x01\xf8"
    assert b"\xfb\xf4" in kernel.functions["default_idle"].code


def test_every_kernel_function_decodes_whole_and_calls_its_callees_in_order(booted):
    import capstone

    kernel = booted.guest.kernel
    decoder = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    for func in kernel.functions.values():
        insns = list(decoder.disasm(func.code, func.address))
        assert sum(i.size for i in insns) == len(func.code), func.name  # no byte left undecoded
        forms = [(i.mnemonic, i.op_str) for i in insns]
        if func.name not in kernel.frameless:
            assert forms[:2] == [("push", "rbp"), ("mov", "rbp, rsp")], func.name
            assert forms[-2:] == [("leave", ""), ("ret", "")], func.name
        called = [int(i.op_str, 16) for i in insns if i.mnemonic == "call" and i.op_str.startswith("0x")]
        assert called == [kernel.functions[c].address for c in CALLS.get(func.name, [])], func.name
        for callee, ret in func.call_sites.items():  # return addresses are just after a call
            assert any(i.mnemonic == "call" and i.address + i.size == ret for i in insns), (func.name, callee)
    getpid = [(i.mnemonic, i.op_str) for i in decoder.disasm(kernel.functions["sys_getpid"].code, 0)]
    number = lambda n: f"{n:#x}" if n > 9 else str(n)  # as capstone writes displacements  # noqa: E731
    assert getpid[2:4] == [("mov", f"rax, qword ptr gs:[{number(L.PERCPU_CURRENT_TASK)}]"),
                           ("mov", f"eax, dword ptr [rax + {number(L.TASK_TGID)}]")]
    halt = kernel.idle_halt
    assert next(decoder.disasm(kernel_read(booted, halt, 1), halt)).mnemonic == "hlt"


def test_every_kernel_path_the_guest_walks_follows_the_kernels_calls():
    # So that every return address the model writes on a kernel stack is just after a real call.
    from machine.guest.linux import LINUX_PATHS
    from machine.guest.linux_syscalls import LINUX_SYSCALLS

    p = LINUX_PATHS
    paths = [p.idle, p.reschedule_ipi, p.page_fault, p.disk_done, p.net_receive,
             p.timer + p.timekeeping, p.timer + p.tick_accounting,
             (*p.device_irq, p.disk_driver), (*p.device_irq, p.net_driver),
             ("generic_file_aio_read", p.disk_read_miss, *p.disk_submit), ("vfs_fsync", *p.disk_submit),
             ("cpu_idle", *p.switch), ("do_wait", *p.switch), (*p.preempted, p.switch[0])]
    paths += [(p.syscall_handler.format(name), *call.path) for name, call in LINUX_SYSCALLS.items()]
    for path in paths:
        for caller, callee in zip(path, path[1:]):
            assert callee in CALLS.get(caller, ()), (path, caller, callee)
    assert set(LINUX_SYSCALLS) <= set(SYSCALLS.values())


def test_getguest_symbol_and_guest_probe_by_symbol_and_by_address():
    symbols = machine_for().guest.kernel.symbols
    text = (f'(vprobe GUEST:0x{symbols["sys_read"]:x} (printf "a %x\\n" RIP))'
            '(vprobe GUEST:sys_read (printf "s %x %x\\n" RIP (getguest "sys_read")))')
    run = run_script(text, 3)
    assert run.firings
    code = int.from_bytes(run.machine.guest.kernel.functions["sys_read"].code[:8], "little")
    assert run.log.count("a ") == run.log.count("s ") > 0
    for f in run.firings:
        assert int(f.lines[0].split()[1], 16) == symbols["sys_read"] == f.state["regs"]["RIP"]
        if f.lines[0].startswith("s"):
            assert int(f.lines[0].split()[2], 16) == code


def test_data_probes_on_jiffies():
    text = ('(vprobe GUEST_WRITE:jiffies (printf "w %d %d\\n" VCPUID (getguest "jiffies")))'
            '(vprobe GUEST_READ:jiffies (printf "r\\n"))'
            '(vprobe Guest_IRQ (cond ((&& (== ARG0 0xef) (== VCPUID 0)) (printf "tick\\n"))))')
    run = run_script(text, 3)
    lines = run.lines
    writes = [line for line in lines if line.startswith("w ")]
    # Each timer tick of VCPU 0 updates jiffies (do_timer), right after the interrupt.
    assert len(writes) == lines.count("tick") > 500
    for i, line in enumerate(lines):
        if line == "tick":
            assert lines[i + 1].startswith("w 0 ")
    values = [int(line.split()[2]) for line in writes]
    assert values == list(range(values[0], values[0] + len(values)))
    assert lines.count("r") > len(writes)  # read on every CPU's tick, and by sleeping system calls


def test_every_task_struct_holds_its_task(booted):
    guest = booted.guest
    init_task = guest.kernel.symbols["init_task"]
    tasks = list(guest.tasks.values()) + [cpu.idle for cpu in guest.cpus]
    assert len(tasks) > 10
    for task in tasks:
        raw = kernel_read(booted, task.addr, L.TASK_STRUCT_SIZE)
        pid, tgid = struct.unpack_from("<ii", raw, L.TASK_PID)
        assert (pid, tgid) == (task.pid, task.tgid)
        assert raw[L.TASK_COMM:L.TASK_COMM + 16].split(b"\0")[0] == task.comm.encode()[:15]
        parent = struct.unpack_from("<Q", raw, L.TASK_REAL_PARENT)[0]
        assert parent == (task.parent.addr if task.parent else init_task)
        mm = struct.unpack_from("<Q", raw, L.TASK_MM)[0]
        assert mm == (task.mm.mm if task.mm else 0)
        if task.mm:  # mm->pgd is the PML4 the task runs on
            pgd = int.from_bytes(kernel_read(booted, mm + L.MM_PGD, 8), "little")
            assert pgd - L.PAGE_OFFSET == task.mm.cr3
    assert guest.cpus[0].idle.addr == init_task  # CPU 0's idle task is init_task
    assert struct.unpack_from("<ii", kernel_read(booted, init_task + L.TASK_PID, 8)) == (0, 0)


def test_per_cpu_first_word_is_the_current_task(booted):
    assert len(booted.guest.cpus) == booted.config.numvcpus == 2
    for cpu in booted.guest.cpus:
        current = int.from_bytes(kernel_read(booted, cpu.percpu + L.PERCPU_CURRENT_TASK, 8), "little")
        assert current == cpu.current.addr


def test_offsets_recovered_from_the_kernels_code():
    run = run_script('(vprobe VMX1Hz (printf "%x %x\\n" (offatret "sys_getpid") (offatstrcpy "get_task_comm")))', 1)
    assert run.log == f"{L.TASK_TGID:x} {L.TASK_COMM:x}\n"


def test_guest_library_agrees_with_the_task_model():
    text = """
(vprobe Guest_IRQ (printf "%d %d %d %s\\n" (curpid) (curtid) (curppid) (curprocname)))
(vprobe GUEST:system_call (printf "%d %d %d %s\\n" (curpid) (curtid) (curppid) (curprocname)))
(vprobe VMM10Hz (printf "%d %d %d %s\\n" (curpid) (curtid) (curppid) (curprocname)))
"""
    run = run_script(text, 3)
    mysqld: dict[int, set[int]] = {}
    checked = 0
    for f in run.firings:
        if not f.state["online"]:
            continue  # before the kernel runs there is no task (and no kernel code to decode)
        pid, tid, ppid, name = f.log.split()
        assert (int(pid), int(tid), int(ppid), name) == (
            f.state["tgid"], f.state["pid"], f.state["ppid"], f.state["comm"]), f
        checked += 1
        if name == "mysqld":
            mysqld.setdefault(int(pid), set()).add(int(tid))
    assert checked > 1000
    # mysqld's threads share its process ID and each has its own thread ID.
    assert any(len(tids) > 1 for tids in mysqld.values())


def test_system_call_entry_has_the_call_number_in_rax():
    text = '(defaggr calls 1 0) (vprobe GUEST:system_call (aggr calls (RAX) () 1)) (vprobe VMXUnload (logaggr calls))'
    run = run_script(text, 3)
    address = run.machine.guest.kernel.symbols["system_call"]
    numbers = {int(n, 16) for n in re.findall(r"^calls\[0x([0-9a-f]+)\]", run.log, re.M)}
    assert numbers <= set(SYSCALLS)
    names = {SYSCALLS[n] for n in numbers}
    assert {"read", "write", "select", "futex"} <= names
    for f in run.of("GUEST:system_call"):
        assert f.state["regs"]["RIP"] == address and f.state["mode"] == "kernel"


@pytest.fixture(scope="module")
def io_run():
    args = " ".join(f"ARG{i}" for i in range(8))
    text = (f'(vprobe Disk_IOStart (printf "S {"%d " * 7}%d\\n" {args}))'
            f'(vprobe Disk_IOFinish (printf "F {"%d " * 7}%d\\n" {args}))'
            '(vprobe In (printf "I %x %d %d\\n" ARG0 ARG1 ARG2))'
            '(vprobe Out (printf "O %x %d %d\\n" ARG0 ARG1 ARG2))')
    return run_script(text, 4)


def test_disk_probes_carry_the_eight_documented_arguments(io_run):
    started: dict[int, tuple] = {}
    finished = 0
    last_id = 0
    reads = set()
    for line in io_run.lines:
        kind, *values = line.split()
        if kind not in "SF":
            continue
        adapter, controller, drive, read, io_id, sector, sectors, sg = map(int, values)
        assert (adapter, controller, drive) == (0, 0, 0)
        assert read in (0, 1) and sectors > 0 and sg >= 1 and sector >= 0
        if kind == "S":
            assert io_id > last_id  # unique and increasing
            last_id = io_id
            started[io_id] = tuple(values)
            reads.add(read)
        else:
            assert started.pop(io_id) == tuple(values)  # finishes an I/O that started, same arguments
            finished += 1
    assert finished > 10 and reads == {0, 1}
    assert len(started) <= 2  # only the I/Os still in flight at the end


def test_in_and_out_carry_port_size_and_rep_count(io_run):
    ports = {}
    for line in io_run.lines:
        kind, *values = line.split()
        if kind in "IO":
            port, size, count = int(values[0], 16), int(values[1]), int(values[2])
            assert size in (1, 2, 4) and count >= 1
            ports.setdefault((kind, port), set()).add(count)
    # The ATA controller's task file and bus master, and the BIOS's CMOS/PIC/PIT setup.
    for port in (0x1F2, 0x1F3, 0x1F4, 0x1F5, 0x1F6, 0x1F7, 0xC000, 0x70, 0x20, 0x43):
        assert ("O", port) in ports, hex(port)
    assert ("I", 0x1F7) in ports and ("I", 0x71) in ports
    # The kernel's banner goes out to the serial console with one rep outsb.
    assert ports[("O", 0x3F8)] == {len(L.BANNER)}


def test_boot_sector_is_loaded_at_0x7c00():
    text = '(vprobe GUEST:0x7c00 (printf "%x %x %x %x\\n" CS RIP (& RDX 0xff) (& (getguest 0x7dfe) 0xffff)))'
    run = run_script(text, 1)
    assert run.log == "0 7c00 80 aa55\n"  # booted from drive 0x80; the sector ends in the 55 AA signature


def test_vga_memory_holds_what_was_written():
    run = run_script('(vprobe GUEST_WRITE:0xb8000 (printf "%x\\n" (& (getguest 0xb8000) 0xffffffff)))', 1)
    # 'B' then 'G' with attribute 7: the BIOS banner, then the boot loader's.
    assert run.lines == ["7490742", "7520747"]


def test_stacks_at_schedule_lead_from_the_caller_down_to_user_code():
    run = run_script('(defstring s) (vprobe GUEST:schedule (gueststack s) (printf "%s\\n" s))', 3)
    symbols = Symbols(run.machine.symbol_text)
    callers_of_schedule = {caller for caller, callees in CALLS.items() if "schedule" in callees}
    callers, into_user = set(), 0
    for f in run.firings:
        frames = [int(x, 16) for x in f.log.strip()[len("GUEST_"):].split("_")]
        names = [symbols.function_at(x) for x in frames]
        assert names[0] == "schedule" and names[1] in callers_of_schedule, names
        callers.add(names[1])
        kernel = [n for n in names if n]
        assert names[:len(kernel)] == kernel  # kernel frames first, then (maybe) the user's
        if kernel[-1] in ("system_call", "retint_careful"):  # entered from user mode
            user = frames[len(kernel):]
            assert user and all(x < 0x8000_0000_0000 for x in user), names
            into_user += 1
        else:
            assert len(kernel) == len(names)
    assert {"cpu_idle", "schedule_hrtimeout_range", "generic_file_aio_read", "kthreadd"} <= callers
    assert into_user > 10
