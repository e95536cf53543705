"""The simulated machine's hardware, as probes see it: registers, clocks, paging, the local APIC."""

from __future__ import annotations

import pytest

from machine.guest import layout as L
from machine.memory import MMU, PTE_LARGE, PTE_PRESENT, PTE_WRITABLE, FrameAllocator, PageTables, PhysicalMemory
from vp_runtime import GuestMemoryFault

from test_machine_support import (ERROR_LINE, USER_TOP, Symbols, faults, machine_for, per_cpu_area,
                                  run_script, sample)

EFER_LME, EFER_LMA = 1 << 8, 1 << 10
NS = 1_000_000_000


@pytest.fixture(scope="module")
def regs_run():
    """RIP and friends ten times a second on both VCPUs, through the VP runtime."""
    text = ('(vprobe VMM10Hz (printf "%d %x %x %x %x %x %x %x %x\\n" VCPUID RIP CS SS EFER CR0 GSBASE '
            'KERNELGSBASE CR3))')
    return run_script(text, 4)


def parse_regs(f):
    fields = f.log.split()
    vcpu = int(fields[0])
    rip, cs, ss, efer, cr0, gsbase, kgsbase, cr3 = (int(x, 16) for x in fields[1:])
    return dict(VCPUID=vcpu, RIP=rip, CS=cs, SS=ss, EFER=efer, CR0=cr0, GSBASE=gsbase, KERNELGSBASE=kgsbase,
                CR3=cr3)


def test_registers_read_by_scripts_are_the_vcpus(regs_run):
    # VMM10Hz: every 100 ms on each of the two VCPUs, for 4 seconds.
    assert sorted((f.time_ns, f.vcpu) for f in regs_run.firings) == [
        (k * NS // 10, vcpu) for k in range(1, 41) for vcpu in (0, 1)]
    for f in regs_run.firings:
        got = parse_regs(f)
        assert got["VCPUID"] == f.vcpu
        for name, value in got.items():
            if name != "VCPUID":
                assert value == f.state["regs"][name], name


def test_real_mode_before_the_kernel_then_long_mode(regs_run):
    for f in regs_run.firings:
        r = parse_regs(f)
        if not f.state["online"]:  # BIOS, boot sector, or an AP waiting for its SIPI
            assert r["CR0"] & 1 == 0 and r["EFER"] == 0 and r["GSBASE"] == 0 == r["KERNELGSBASE"]
            assert (r["CS"], r["RIP"]) in {(0xF000, 0xFFF0), (0, 0x7C00)}
        else:
            assert r["EFER"] & (EFER_LME | EFER_LMA) == EFER_LME | EFER_LMA
            assert r["CR0"] & 0x80000001 == 0x80000001  # PG and PE
    onlines = [f.time_ns for f in regs_run.firings if f.state["online"]]
    assert onlines and min(onlines) <= NS


def test_rip_and_selectors_match_the_privilege_level(regs_run):
    symbols = Symbols(regs_run.machine.symbol_text)
    modes = set()
    for f in regs_run.firings:
        r = parse_regs(f)
        if not f.state["online"]:
            continue
        modes.add(f.state["mode"])
        if f.state["mode"] == "user":
            assert (r["CS"], r["SS"]) == (0x33, 0x2B)
            assert r["RIP"] < USER_TOP
        else:
            assert (r["CS"], r["SS"]) == (0x10, 0x18)
            assert symbols.function_at(r["RIP"]), hex(r["RIP"])
    assert {"user", "idle"} <= modes


def test_gs_bases_are_swapped_between_kernel_and_user_mode(regs_run):
    m = regs_run.machine
    percpu = [per_cpu_area(m, i) for i in range(2)]
    assert percpu[0] != percpu[1] and min(percpu) >= L.PAGE_OFFSET
    modes = set()
    for f in regs_run.firings:
        if not f.state["online"]:
            continue
        r = parse_regs(f)
        modes.add(f.state["mode"])
        if f.state["mode"] == "user":
            assert r["GSBASE"] == 0 and r["KERNELGSBASE"] == percpu[r["VCPUID"]]
        else:
            assert r["GSBASE"] == percpu[r["VCPUID"]]
    assert {"user", "idle"} <= modes


def test_user_rip_is_mapped_code_of_the_process():
    def rip_readable(m):
        state = {"mode": m.guest.cpus[m.current.index].mode, "rip": m.current.regs["RIP"]}
        state["mapped"] = not faults(m, state["rip"])
        return state

    run = run_script('(vprobe Guest_IRQ (getguest RIP))', 3, hook=rip_readable)
    user = [f for f in run.firings if f.state["mode"] == "user"]
    assert len(user) > 20
    for f in run.firings:  # the code the VCPU runs can be read there, in user and kernel mode
        assert f.state["mapped"] and f.log == "", (hex(f.state["rip"]), f.log)


def test_curthrptr_at_system_call_entry_and_inside_sys_functions():
    # Appendix A's curthrptr: GSBASE if it holds a kernel address, else KERNELGSBASE.
    # At system_call's first instruction swapgs has not run; inside sys_* it has.
    text = sample("curprocname.vp") + (
        '(vprobe GUEST:system_call (printf "entry %x %x %s %d\\n" GSBASE KERNELGSBASE (curprocname) (curpid)))'
        '(vprobe GUEST:sys_read (printf "read %x %x %s %d\\n" GSBASE KERNELGSBASE (curprocname) (curpid)))')
    run = run_script(text, 3, library=False)
    seen = set()
    for f in run.firings:
        where, gsbase, kgsbase, name, pid = f.log.split()
        percpu = f.state["percpu"]
        if where == "entry":
            assert int(gsbase, 16) < 0x100000000 and int(kgsbase, 16) == percpu
        else:
            assert int(gsbase, 16) == percpu
        assert (name, int(pid)) == (f.state["comm"], f.state["tgid"])
        seen.add(where)
    assert seen == {"entry", "read"}


def test_cr2_holds_the_faulting_address_not_yet_mapped():
    def fault_state(m):
        regs = m.current.regs
        return {"cr2": regs["CR2"], "mapped": not faults(m, regs["CR2"]), "cs": regs["CS"]}

    run = run_script('(vprobe Guest_PF (printf "%x %x\\n" CR2 ARG0))', 3, hook=fault_state)
    assert len(run.firings) > 5
    for f in run.firings:
        cr2, error = (int(x, 16) for x in f.log.split())
        assert cr2 == f.state["cr2"] and not f.state["mapped"]  # before delivery: still not present
        assert error & 0x5 == 0x4  # a user-mode access to a page that is not present
        assert f.state["cs"] == 0x33
    # The kernel maps the page: afterwards the address reads.
    m = run.machine
    last = run.firings[-1]
    task = next((t for t in m.guest.tasks.values() if t.mm is not None and t.mm.heap_next > last.state["cr2"]))
    assert task.mm.tables.cr3 and m.mmu.translate(task.mm.cr3, last.state["cr2"]) is not None


def test_tsc_per_physical_cpu_at_tsc_hz_and_ptsc():
    text = '(vprobe VMM1Hz (printf "%d %d %d %d %d\\n" PCPUID TSC PTSC TSC_HZ VCPUID))'
    run = run_script(text, 3)
    offsets = {}
    for f in run.firings:
        pcpu, tsc, ptsc, hz, vcpu = map(int, f.log.split())
        assert hz == run.machine.config.tsc_hz
        assert ptsc == f.time_ns * hz // NS  # the PTSC counts simulated time at TSC_HZ
        assert pcpu == vcpu  # each VCPU runs on its own physical CPU
        offsets.setdefault(pcpu, set()).add(tsc - ptsc)
    assert all(len(o) == 1 for o in offsets.values())  # each TSC runs at TSC_HZ ...
    assert len({o.pop() for o in offsets.values()}) == 2  # ... but the two started apart


@pytest.mark.parametrize("charge", ["off", "host", "model"])
def test_ptsc_is_monotonic(charge):
    text = '(definteger last 0) (vprobe Guest_IRQ (cond ((< PTSC last) (printf "back %d %d\\n" last PTSC))) (setint last PTSC))'
    run = run_script(text, 2, charge_probe_time=charge)
    assert len(run.firings) > 300 and run.log == ""


def test_vcpuid_pcpuid_numvcpus():
    run = run_script('(vprobe VMMLoad (printf "%d %d %d\\n" VCPUID PCPUID NUMVCPUS))', 0.01, numvcpus=4)
    assert run.lines == [f"{i} {i} 4" for i in range(4)]
    assert run_script('(vprobe VMXLoad (logint NUMVCPUS))', 0.01, numvcpus=3).log == "3\n"


def test_local_apic_page():
    text = ('(vprobe VMMLoad (printf "%x %x %x\\n" APIC_BASEPA (& 0xffffffff (getguestphys (+ APIC_BASEPA 0x20))) '
            '(& 0xffffffff (getguestphys (+ APIC_BASEPA 0x30)))))')
    run = run_script(text, 0.01, numvcpus=3)
    assert run.lines == [f"fee00000 {i << 24:x} 40011" for i in range(3)]  # base, APIC ID, version


# ---- paging ----------------------------------------------------------------------------

def small_mmu():
    mem = PhysicalMemory(64 << 20)
    mmu = MMU(mem)
    frames = FrameAllocator(mem, 0x1000000, mem.size)  # page tables above 16 MiB
    return mem, mmu, PageTables(mem, frames, mmu)


def test_four_level_walk_with_4k_2m_and_1g_pages():
    mem, mmu, tables = small_mmu()
    tables.map(0x7F00_0000_1000, 0x200000, 0x2000, user=True)
    tables.map(0xFFFF_8800_0000_0000, 0x0, 0x400000, large=True)
    mem.write(0x200234, b"4kpage")
    mem.write(0x3ABCDE, b"2Mpage")
    assert mmu.read(tables.cr3, 0x7F00_0000_1234, 6) == b"4kpage"
    assert mmu.translate(tables.cr3, 0x7F00_0000_2FFF) == 0x201FFF
    assert mmu.read(tables.cr3, 0xFFFF_8800_003A_BCDE, 6) == b"2Mpage"
    # A 1 GiB page: a PDPT entry with PS set.
    pml4 = mem.read_u64(tables.cr3 + 8 * 0x110) & ~0xFFF  # PML4 index of 0xffff8800...
    mem.write_u64(pml4 + 8 * 1, 0x4000_0000 | PTE_PRESENT | PTE_WRITABLE | PTE_LARGE)
    assert mmu.translate(tables.cr3, 0xFFFF_8800_4123_4567) == 0x4123_4567


@pytest.mark.parametrize("address, why", [
    (0x7F00_0000_3000, "not mapped"), (0x0, "not mapped"), (0x0000_8000_0000_0000, "not canonical"),
    (0xFFFF_7FFF_FFFF_F000, "not canonical"),
])
def test_unmapped_and_non_canonical_addresses_fault(address, why):
    mem, mmu, tables = small_mmu()
    tables.map(0x7F00_0000_1000, 0x200000, 0x2000, user=True)
    with pytest.raises(GuestMemoryFault, match=why):
        mmu.read(tables.cr3, address, 8)


def test_a_read_across_into_an_unmapped_page_faults():
    mem, mmu, tables = small_mmu()
    tables.map(0x7F00_0000_1000, 0x200000, 0x1000, user=True)
    with pytest.raises(GuestMemoryFault):
        mmu.read(tables.cr3, 0x7F00_0000_1FFC, 8)


def test_unmap_is_seen_at_once():
    mem, mmu, tables = small_mmu()
    tables.map(0x7F00_0000_1000, 0x200000, 0x1000, user=True)
    assert mmu.translate(tables.cr3, 0x7F00_0000_1000) == 0x200000  # now in the TLB
    tables.unmap(0x7F00_0000_1000)
    with pytest.raises(GuestMemoryFault):
        mmu.translate(tables.cr3, 0x7F00_0000_1000)


def test_guest_kernel_uses_2m_pages_and_processes_4k_pages():
    m = machine_for()
    m.run(1.5)
    guest = m.guest
    root = guest.kernel_tables.cr3

    def leaf_size(cr3, va):
        table = cr3
        for shift in (39, 30, 21, 12):
            entry = m.memory.read_u64(table + ((va >> shift) & 0x1FF) * 8)
            assert entry & PTE_PRESENT
            if shift in (30, 21) and entry & PTE_LARGE:
                return 1 << shift
            table = entry & 0x000F_FFFF_FFFF_F000
        return 4096

    assert leaf_size(root, guest.kernel.symbols["system_call"]) == 2 << 20
    assert leaf_size(root, L.PAGE_OFFSET + 0x123000) == 2 << 20
    task = next(t for t in guest.tasks.values() if t.mm is not None)
    assert leaf_size(task.mm.cr3, L.USER_TEXT) == 4096
    assert leaf_size(task.mm.cr3, guest.kernel.symbols["jiffies"]) == 2 << 20  # the kernel half is shared


def test_kernel_code_reads_through_the_page_tables():
    run = run_script('(vprobe VMX1Hz (printf "%x\\n" (getguest "sys_getpid")))', 1)
    code = run.machine.guest.kernel.functions["sys_getpid"].code
    assert int(run.log, 16) == int.from_bytes(code[:8], "little")


def test_a_read_of_unmapped_memory_aborts_only_that_firing():
    text = ('(vprobe VMM1Hz (printf "before\\n") (getguest 0xffffc90000000000) (printf "after\\n"))'
            '(vprobe VMM10Hz (printf "tick\\n"))')
    run = run_script(text, 3)
    assert len(run.of("VMM1Hz")) == 6
    for f in run.of("VMM1Hz"):
        assert f.lines[0] == "before" and len(f.lines) == 2
        match = ERROR_LINE.fullmatch(f.lines[1])
        assert match and match.group(1) == "VMM1Hz" and "0xffffc90000000000" in match.group(5)
    assert run.log.count("tick\n") == 60  # the machine went on


def test_memsize_bounds_physical_memory():
    text = ('(vprobe VMXLoad (logint (getguestphys 0x1fff0000)) (logstr "\\n") '
            '(logint (getguestphys 0x20000000)))')
    run = run_script(text, 0.01, memsize_mb=512)
    first, second = run.lines
    assert first == "0"
    assert ERROR_LINE.fullmatch(second) and "beyond the VM's memory" in second
    assert run.machine.memory.size == 512 << 20
