"""The simulated 64-bit Windows guest: its images and symbols, its structures, its workload, its library."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import capstone
import pytest

from machine.guest import windows_layout as W
from machine.guest.windows import WINDOWS_PATHS
from machine.guest.windows_image import ACCESSORS, CALLS, INDIRECT
from machine.guest.windows_programs import SYSTEM_THREADS
from machine.guest.windows_syscalls import SERVICES, WINDOWS_SYSCALLS
from machine.symbols import parse_symbols
from vp_runtime.spec import symbol_files

from test_machine_support import kernel_read, machine_for, run_script

WINDBG_LINE = re.compile(r"fffff8[08]0`[0-9a-f]{8} [A-Za-z0-9]+!\w+ (\(<no parameter info>\)|= <no type information>)\Z")


def windows(**config):
    return machine_for(guest="windows", **config)


@pytest.fixture(scope="module")
def booted():
    m = windows()
    m.run(4)
    return m


def u64(m, address: int) -> int:
    return int.from_bytes(kernel_read(m, address, 8), "little")


def u32(m, address: int) -> int:
    return int.from_bytes(kernel_read(m, address, 4), "little")


# ---- images and symbols -------------------------------------------------------------------------

def test_symbols_are_windbg_x_output_of_nt_hal_and_the_drivers(booted):
    lines = booted.symbol_text.splitlines()
    assert all(WINDBG_LINE.fullmatch(line) for line in lines), [x for x in lines if not WINDBG_LINE.fullmatch(x)][:3]
    assert symbol_files.parse(booted.symbol_text).format == symbol_files.WINDBG
    symbols = parse_symbols(booted.symbol_text)
    for name in ("nt!KiSystemCall64", "nt!PsGetCurrentProcess", "nt!PsGetProcessImageFileName", "nt!NtReadFile",
                 "nt!KiSwapContext", "nt!PsActiveProcessHead", "nt!KeTickCount", "nt!KiInitialPCR",
                 "hal!HalProcessorIdle", "Ntfs!NtfsFsdRead", "tcpip!TcpSendData", "ndis!ndisMiniportIsr"):
        assert name in symbols, name
    assert all(booted.lookup_symbol(n) == a for n, a in symbols.items())
    # nt and hal where the loader maps the boot images, the drivers at system-PTE addresses.
    assert symbols["nt!KiSystemCall64"] >> 32 == symbols["hal!HalProcessorIdle"] >> 32 == 0xFFFFF800
    assert symbols["Ntfs!NtfsFsdRead"] >> 32 == 0xFFFFF880


def test_every_function_decodes_whole_and_calls_its_callees_in_order(booted):
    kernel = booted.guest.kernel
    decoder = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    decoder.detail = True
    for func in kernel.functions.values():
        code = kernel_read(booted, func.address, len(func.code))
        assert code == func.code, func.name
        insns = list(decoder.disasm(code, func.address))
        assert sum(i.size for i in insns) == len(code), func.name
        forms = [(i.mnemonic, i.op_str) for i in insns]
        if func.name not in kernel.frameless:
            assert forms[:2] == [("push", "rbp"), ("mov", "rbp, rsp")] and forms[-2:] == [("leave", ""), ("ret", "")]
        calls = [i for i in insns if i.mnemonic == "call"]
        if func.name in INDIRECT or func.name == "nt!KiSystemCall64":
            assert len(calls) == 1 and not calls[0].op_str.startswith("0x"), func.name
            continue
        targets = []
        for call in calls:
            if call.op_str.startswith("qword ptr [rip"):  # through the module's import address table
                slot = call.address + call.size + call.operands[0].mem.disp
                targets.append(u64(booted, slot))
            else:
                targets.append(int(call.op_str, 16))
        assert targets == [kernel.functions[c].address for c in CALLS.get(func.name, [])], func.name


def test_accessors_decode_to_the_structure_offsets():
    text = ('(vprobe VMX1Hz (printf "%x %x %x %x %x %x\\n" (offatseg "nt!PsGetCurrentThread") '
            '(offatret "nt!PsGetCurrentProcess") (offatret "nt!PsGetCurrentProcessId") '
            '(offatret "nt!PsGetCurrentThreadId") (offatret "nt!PsGetProcessImageFileName") '
            '(offatret "nt!PsGetProcessInheritedFromUniqueProcessId")))')
    run = run_script(text, 1, guest="windows", library=False)
    expected = (W.KPCR_PRCB + W.KPRCB_CURRENT_THREAD, W.KTHREAD_APC_STATE_PROCESS, W.ETHREAD_CID,
                W.ETHREAD_CID + W.CLIENT_ID_UNIQUE_THREAD, W.EPROCESS_IMAGE_FILE_NAME,
                W.EPROCESS_INHERITED_FROM_UNIQUE_PROCESS_ID)
    assert run.log == " ".join(f"{x:x}" for x in expected) + "\n"
    assert set(ACCESSORS) <= set(run.machine.guest.kernel.functions)


def test_every_kernel_path_the_guest_walks_follows_the_kernels_calls():
    p = WINDOWS_PATHS
    paths = [p.idle, p.reschedule_ipi, p.page_fault, p.disk_done, p.net_receive,
             p.timer + p.timekeeping, p.timer + p.tick_accounting,
             (*p.device_irq, p.disk_driver), (*p.device_irq, p.net_driver),
             ("nt!CcCopyRead", p.disk_read_miss, *p.disk_submit), (p.disk_read_miss, *p.disk_wait),
             ("Ntfs!NtfsFsdFlushBuffers", *p.disk_submit), ("Ntfs!NtfsFsdFlushBuffers", *p.disk_wait),
             (p.idle[0], *p.switch), (p.disk_wait[-1], *p.switch), (*p.preempted, p.switch[0])]
    paths += [("nt!KiStartSystemThread", "nt!PspSystemThreadStartup", body, CALLS[body][0], "nt!KiCommitThreadWait",
               *p.switch) for body in SYSTEM_THREADS.values()]
    paths += [(p.syscall_handler.format(name), *call.path) for name, call in WINDOWS_SYSCALLS.items()]
    paths += [(handler, *CALLS.get(handler, [])[:1]) for handler in p.exception_handlers.values()]
    for path in paths:
        for caller, callee in zip(path, path[1:]):
            assert callee in CALLS.get(caller, ()), (path, caller, callee)
    assert set(WINDOWS_SYSCALLS) <= set(SERVICES.values())


def test_the_service_table_dispatches_each_number_to_its_handler(booted):
    kernel = booted.guest.kernel
    table = kernel.symbols["nt!KiServiceTable"]
    for number, name in SERVICES.items():
        entry = struct.unpack("<i", kernel_read(booted, table + 4 * number, 4))[0]
        assert table + (entry >> 4) == kernel.symbols[f"nt!{name}"], name
    # The well-known numbers of Windows 7 x64.
    assert {SERVICES[n] for n in (0x3, 0x5, 0xC, 0x29, 0x31, 0x52, 0xAA)} == {
        "NtReadFile", "NtWriteFile", "NtClose", "NtTerminateProcess", "NtDelayExecution", "NtCreateFile",
        "NtCreateUserProcess"}


# ---- the kernel's structures ----------------------------------------------------------------------

def test_each_processors_kpcr_is_at_its_kernel_gs_base_and_knows_its_current_thread(booted):
    guest = booted.guest
    assert guest.cpus[0].percpu == guest.kernel.symbols["nt!KiInitialPCR"]
    for number, cpu in enumerate(guest.cpus):
        kpcr = cpu.percpu
        prcb = kpcr + W.KPCR_PRCB
        assert u64(booted, kpcr + W.KPCR_SELF) == kpcr
        assert u64(booted, kpcr + W.KPCR_CURRENT_PRCB) == prcb
        assert u64(booted, prcb + W.KPRCB_CURRENT_THREAD) == cpu.current.addr
        assert u64(booted, prcb + W.KPRCB_IDLE_THREAD) == cpu.idle.addr
        assert u32(booted, prcb + W.KPRCB_NUMBER) == number
        assert u64(booted, guest.kernel.symbols["nt!KiProcessorBlock"] + 8 * number) == prcb
        regs = cpu.vcpu.regs
        assert kpcr in (regs["GSBASE"], regs["KERNELGSBASE"])


def test_every_ethread_and_eprocess_holds_its_task(booted):
    guest = booted.guest
    tasks = list(guest.tasks.values()) + [cpu.idle for cpu in guest.cpus]
    assert len(tasks) > 30
    for task in tasks:
        thread = task.addr
        assert kernel_read(booted, thread, 1)[0] == W.THREAD_OBJECT
        process = u64(booted, thread + W.KTHREAD_PROCESS)
        assert u64(booted, thread + W.KTHREAD_APC_STATE_PROCESS) == process
        assert (u64(booted, thread + W.ETHREAD_CID), u64(booted, thread + W.ETHREAD_CID + 8)) == (task.tgid, task.pid)
        assert kernel_read(booted, process, 1)[0] == W.PROCESS_OBJECT
        assert u64(booted, process + W.EPROCESS_UNIQUE_PROCESS_ID) == task.tgid
        name = kernel_read(booted, process + W.EPROCESS_IMAGE_FILE_NAME, 15).split(b"\0")[0].decode()
        assert name == guest.image_name(task)
        parent = task.parent.tgid if task.parent else 0
        assert u64(booted, process + W.EPROCESS_INHERITED_FROM_UNIQUE_PROCESS_ID) == parent
        cr3 = task.mm.cr3 if task.mm else guest.kernel_tables.cr3
        assert u64(booted, process + W.KPROCESS_DIRECTORY_TABLE_BASE) == cr3
        assert task.pid % 4 == 0 and task.tgid % 4 == 0
        if task.mm is not None:
            assert task.pid != task.tgid  # a process's first thread has an id of its own
            teb = u64(booted, thread + W.KTHREAD_TEB)
            assert teb == task.user_gs_base and teb < 0x8000_0000_0000
            tables = task.mm.cr3
            assert booted.mmu.read(tables, teb + W.TEB_SELF, 8) == struct.pack("<Q", teb)
            assert booted.mmu.read(tables, teb + W.TEB_CLIENT_ID, 16) == struct.pack("<QQ", task.tgid, task.pid)
            path = u64(booted, u64(booted, process + W.EPROCESS_SE_AUDIT_PROCESS_CREATION_INFO) + 8)
            length = struct.unpack("<H", kernel_read(booted, u64(booted, process + W.EPROCESS_SE_AUDIT_PROCESS_CREATION_INFO), 2))[0]
            assert kernel_read(booted, path, length).decode("utf-16-le").endswith("\\System32\\" + task.comm)


def _walk(m, head: int, link: int) -> list[int]:
    """The structures on the LIST_ENTRY list at `head`, linked at offset `link`, forwards."""
    found, entry = [], u64(m, head)
    while entry != head:
        assert u64(m, u64(m, entry + 8)) == entry  # entry->Blink->Flink is the entry
        found.append(entry - link)
        entry = u64(m, entry)
    return found


def test_the_active_process_list_and_each_processs_thread_list(booted):
    guest = booted.guest
    processes = _walk(booted, guest.kernel.symbols["nt!PsActiveProcessHead"], W.EPROCESS_ACTIVE_PROCESS_LINKS)
    live = {t.mm.mm for t in guest.tasks.values() if t.mm is not None}
    assert processes[0] == guest.system_process == u64(booted, guest.kernel.symbols["nt!PsInitialSystemProcess"])
    assert set(processes[1:]) == live and len(processes) == len(live) + 1
    for process in processes:
        threads = _walk(booted, process + W.EPROCESS_THREAD_LIST_HEAD, W.ETHREAD_THREAD_LIST_ENTRY)
        pid = u64(booted, process + W.EPROCESS_UNIQUE_PROCESS_ID)
        assert sorted(threads) == sorted(t.addr for t in guest.tasks.values() if t.tgid == pid)
        assert u32(booted, process + W.EPROCESS_ACTIVE_THREADS) == len(threads)


def test_a_windows_servers_processes_run_and_the_shell_runs_programs():
    text = ('(defaggr started 0 2) (vprobe GUEST:nt!NtCreateUserProcess (aggr started () ((curprocname) "x") 1))'
            '(vprobe VMXUnload (logaggr started))')
    run = run_script(text, 14, guest="windows")
    guest = run.machine.guest
    images = [guest.image_name(t) for t in guest.tasks.values() if t.pid == min(
        u.pid for u in guest.tasks.values() if u.tgid == t.tgid)]
    for image in ("System", "smss.exe", "wininit.exe", "winlogon.exe", "services.exe", "lsass.exe", "lsm.exe",
                  "spoolsv.exe", "sqlservr.exe", "explorer.exe", "cmd.exe"):
        assert image in images, image
    assert images.count("csrss.exe") == 2 and images.count("svchost.exe") == 4
    parents = {m.group(1) for m in re.finditer(r'started\["([^"]+)", "x"\]', run.log)}
    assert "cmd.exe" in parents  # the shell starts programs (and nmake.exe starts the compiler)


# ---- registers and activity ----------------------------------------------------------------------

def test_system_calls_enter_kisystemcall64_with_the_service_number_in_rax():
    text = ('(defaggr calls 1 0) (vprobe GUEST:nt!KiSystemCall64 (aggr calls (RAX) () 1))'
            '(vprobe VMXUnload (logaggr calls))')
    run = run_script(text, 3, guest="windows", library=False)
    entry = run.machine.guest.kernel.symbols["nt!KiSystemCall64"]
    numbers = {int(n, 16) for n in re.findall(r"^calls\[0x([0-9a-f]+)\]", run.log, re.M)}
    assert numbers <= set(SERVICES)
    assert {"NtReadFile", "NtWaitForSingleObject", "NtRemoveIoCompletion", "NtDeviceIoControlFile"} <= {
        SERVICES[n] for n in numbers}
    for f in run.of("GUEST:nt!KiSystemCall64"):
        regs = f.state["regs"]
        assert regs["RIP"] == entry and regs["CS"] == W.KERNEL_CS
        # Before swapgs: GS is still the thread's TEB, the KPCR in KERNELGSBASE; the first argument in R10.
        assert regs["GSBASE"] < 0x8000_0000_0000 and regs["KERNELGSBASE"] == f.state["percpu"]
        assert regs["R10"] == 0x1A4 and regs["R8"] == 4096


def test_user_mode_has_the_teb_at_gs_and_the_kernel_the_kpcr():
    text = '(vprobe VMM10Hz (printf "%x %x %x\\n" CS GSBASE KERNELGSBASE))'
    run = run_script(text, 3, guest="windows", library=False)
    user = kernel = 0
    for f in run.firings:
        if not f.state["online"]:
            continue
        regs = f.state["regs"]
        if regs["CS"] == W.USER_CS:
            assert regs["GSBASE"] >> 40 == 0x7 and regs["KERNELGSBASE"] == f.state["percpu"]
            user += 1
        else:
            assert regs["GSBASE"] == f.state["percpu"]
            kernel += 1
    assert user > 5 and kernel > 5


def test_the_guest_library_agrees_with_the_model_in_every_context():
    text = """
(vprobe Guest_IRQ (printf "%d %d %d %s\\n" (curpid) (curtid) (curppid) (curprocname)))
(vprobe GUEST:nt!KiSystemCall64 (printf "%d %d %d %s\\n" (curpid) (curtid) (curppid) (curprocname)))
(vprobe GUEST:nt!NtReadFile (printf "%d %d %d %s\\n" (curpid) (curtid) (curppid) (curprocname)))
(vprobe VMM10Hz (printf "%d %d %d %s\\n" (curpid) (curtid) (curppid) (curprocname)))
"""
    run = run_script(text, 4, guest="windows")
    names, checked = set(), 0
    for f in run.firings:
        if not f.state["online"]:
            continue
        pid, tid, ppid, name = f.log.split()
        assert (int(pid), int(tid), int(ppid), name) == (
            f.state["tgid"], f.state["pid"], f.state["ppid"], f.state["image"]), f
        names.add(name)
        checked += 1
    assert checked > 1000
    assert {"Idle", "System", "sqlservr.exe", "svchost.exe"} <= names


def test_stacks_at_the_context_switch_go_through_the_wait_down_to_user_code():
    from vprobe_tools.views.symbolize import Symbolizer

    run = run_script('(defstring s) (vprobe GUEST:nt!KiSwapContext (gueststack s) (printf "%s\\n" s))', 3,
                     guest="windows", library=False)
    symbols = Symbolizer(run.machine.symbol_text)
    waits, from_user = set(), 0
    for f in run.firings:
        frames = [int(x, 16) for x in f.log.strip()[len("GUEST_"):].split("_")]
        names = [symbols.function(x) for x in frames]
        assert names[:2] == ["nt!KiSwapContext", "nt!KiSwapThread"], names
        kernel = [n for n in names if "!" in n]
        assert names[:len(kernel)] == kernel
        if "nt!KiCommitThreadWait" in kernel:
            waits.add(kernel[kernel.index("nt!KiCommitThreadWait") + 1])
        if kernel[-1] == "nt!KiSystemCall64":
            assert all(x < 0x8000_0000_0000 for x in frames[len(kernel):])
            from_user += 1
    assert {"nt!KeWaitForSingleObject", "nt!KeRemoveQueueEx", "nt!KeWaitForMultipleObjects"} <= waits
    assert from_user > 10


def test_the_tick_count_is_written_on_every_tick_of_the_clock_owner():
    text = ('(vprobe GUEST_WRITE:nt!KeTickCount (printf "w %d %d\\n" VCPUID (getguest "nt!KeTickCount")))'
            '(vprobe Guest_IRQ (cond ((&& (== ARG0 0xd1) (== VCPUID 0)) (printf "tick\\n"))))')
    run = run_script(text, 2, guest="windows", library=False)
    lines = run.lines
    writes = [line for line in lines if line.startswith("w ")]
    assert len(writes) == lines.count("tick") > 200
    assert all(line.startswith("w 0 ") for line in writes)
    values = [int(line.split()[2]) for line in writes]
    assert values == list(range(values[0], values[0] + len(values)))


def test_the_boot_loader_and_the_kernel_write_the_screen():
    run = run_script('(vprobe GUEST_WRITE:0xb8000 (printf "%x\\n" (& (getguest 0xb8000) 0xffff)))', 1,
                     guest="windows", library=False)
    assert run.lines == ["742", "742"]  # 'B' for the BIOS, then BOOTMGR's 'B'


def test_a_triple_fault_reboots_the_windows_guest():
    text = ('(vprobe Guest_TripleFault (printf "TF\\n")) (vprobe GUEST:0x7c00 (printf "boot\\n"))'
            '(vprobe GUEST:nt!KiSystemStartup (printf "nt\\n"))')
    run = run_script(text, 6, guest="windows", workload="triplefault", library=False)
    assert run.lines == ["boot", "nt", "nt", "TF", "boot", "nt", "nt"]  # (each processor starts in nt)


# ---- the probes of Table 3-3, determinism, the reference's samples ---------------------------------

def test_every_table_3_3_probe_fires_on_the_windows_guest():
    from vp_runtime.spec import STATIC_PROBES

    faults = [p for p in STATIC_PROBES if p.startswith("Guest_") and p not in ("Guest_IRQ", "Guest_CR3Write",
                                                                                "Guest_TripleFault")]
    others = [p for p in STATIC_PROBES if p not in faults]
    # (at most 32 probes a script: the faults under the faults workload, the rest under the default one,
    # the double and triple fault under the workload that ends in one)
    for workload, probes, seconds in (("faults", faults, 4), ("default", others, 4),
                                      ("triplefault", ["Guest_DF", "Guest_TripleFault"], 6)):
        text = "".join(f'(vprobe {p} (printf "%s\\n" PROBENAME))' for p in probes)
        run = run_script(text, seconds, guest="windows", workload=workload, library=False, hook=None)
        missing = set(probes) - set(run.lines)
        expected = {"faults": {"Guest_DF"}, "default": {"Guest_TripleFault"}, "triplefault": set()}[workload]
        assert missing == expected, (workload, missing)


DETERMINISM_SCRIPT = """
(vprobe Guest_IRQ (printf "%d %d %x %x %d %s\\n" VCPUID ARG0 TSC RIP (curpid) (curprocname)))
(vprobe Disk_IOStart (printf "disk %d %x\\n" TSC ARG0))
(vprobe Guest_CR3Write (printf "cr3 %d %x\\n" TSC CR3))
"""


@pytest.mark.parametrize("guest", ["linux", "windows"])
def test_the_same_vmx_and_seed_give_the_same_events(guest):
    runs = [run_script(DETERMINISM_SCRIPT, 2, guest=guest, seed=seed, hook=None).log for seed in (7, 7, 8)]
    assert runs[0] == runs[1] and len(runs[0].splitlines()) > 500
    assert runs[2] != runs[0]


def test_curprocname_names_the_running_image_on_both_guests_from_one_script():
    text = '(vprobe VMM10Hz (printf "%d %s\\n" (curpid) (curprocname)))'
    names = {}
    for guest in ("linux", "windows"):
        run = run_script(text, 4, guest=guest)
        names[guest] = set()
        for f in run.firings:
            if f.state["online"]:
                pid, name = f.log.split()
                assert (int(pid), name) == (f.state["tgid"], f.state["image"]), (guest, f)
                names[guest].add(name)
    assert {"swapper", "init"} <= names["linux"] and not any(n.endswith(".exe") for n in names["linux"])
    assert {"Idle", "System"} <= names["windows"] and any(n.endswith(".exe") for n in names["windows"])


def _samples():
    from test_machine_samples import FAULTS_EXPECTED, RUNNABLE
    return RUNNABLE, FAULTS_EXPECTED


# The reference's samples that read Linux's own symbols: on Windows they stop at that symbol.
LINUX_ONLY_SAMPLES = {"command_line.vp": "saved_command_line", "tsc_khz.vp": "tsc_enabled",
                      "system_call.vp": "system_call"}


@pytest.mark.parametrize("name", _samples()[0])
def test_every_sample_runs_unchanged_on_the_windows_guest(name):
    from test_machine_samples import sample
    from vp_runtime import VPLoadError

    runnable, faults_expected = _samples()
    if name == "system_call.vp":  # its probe point is Linux's system-call entry
        with pytest.raises(VPLoadError, match="unknown guest symbol 'system_call'"):
            run_script(sample(name), 1, filename=name, guest="windows")
        return
    run = run_script(sample(name), 1, filename=name, guest="windows")
    errors = [line for line in run.lines if line.startswith("vprobe error")]
    if name in LINUX_ONLY_SAMPLES:
        assert errors and all(f"unknown guest symbol '{LINUX_ONLY_SAMPLES[name]}'" in e for e in errors)
    elif name in faults_expected:
        assert errors
    else:
        assert errors == [], errors[:2]
    assert "internal" not in run.log


def test_system_call_names_are_the_kernels_service_table(booted):
    assert booted.syscall_names() == SERVICES
    assert booted.syscall_names()[0x3] == "NtReadFile"


COOKBOOK = sorted((Path(__file__).resolve().parent.parent / "cookbook").glob("*.emt"))
LINUX_ONLY = "Linux guests only:"


@pytest.fixture(scope="module")
def windows_compile(tmp_path_factory):
    """Compile Emmett as vprobe does for a Windows VM: its preload, its symbols."""
    import emmett

    m = windows()
    symbols = tmp_path_factory.mktemp("syms") / "windows.syms"
    symbols.write_text(m.symbol_text)
    options = emmett.CompileOptions(symbols_file=str(symbols), preload_text=m.guest_preload_emmett())
    return lambda path: emmett.compile(path.read_text(), str(path), options)


@pytest.mark.parametrize("path", COOKBOOK, ids=lambda p: p.name)
def test_each_cookbook_program_runs_on_the_windows_guest_or_says_it_is_for_linux(path, windows_compile):
    linux_only = LINUX_ONLY in " ".join(line[2:].strip() for line in path.read_text().splitlines()
                                         if line.startswith("//"))
    result = windows_compile(path)
    errors = [d.message for d in result.diagnostics if d.severity == "error"]
    if errors:
        assert linux_only and "unknown guest symbol" in errors[0], errors
        return
    run = run_script(result.vp, 1, guest="windows", library=False, hook=None, filename=path.name)
    faults = [line for line in run.lines if line.startswith("vprobe error")]
    assert bool(faults) == linux_only, faults[:2]
    assert "internal" not in run.log
