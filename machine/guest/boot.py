"""A PC's boot up to the guest kernel, shared by every guest profile.

Power-on puts every VCPU in the RESET state; the BIOS runs its POST (CPUID,
CMOS, PIC and PIT programming by port I/O, the logo in VGA memory), loads
the boot sector at 0x7c00 and jumps to it; then the profile's kernel takes
over (`kernel_entry`).  The switch to 64-bit long mode, which each CPU's
kernel code makes as the architecture prescribes, is here too.
"""

from __future__ import annotations

from .. import x86
from .hv import Exit
from .state import CpuState

BIOS_STACK = 0x7000
BOOT_SECTOR = 0x7C00
BOOT_DRIVE = 0x80  # DL at the jump to the boot sector: the first hard disk
VGA_GRAPHICS = 0xA0000
VGA_TEXT = 0xB8000
# The BIOS's POST: CMOS, the PICs, the PIT (port, is an IN)
_POST_PORTS = ((0x80, False), (0x70, False), (0x71, True), (0x20, False), (0x21, False),
               (0xA0, False), (0xA1, False), (0x43, False), (0x40, False), (0x40, False))
# What a 64-bit kernel enables on the way to long mode, and the flags it arrives with.
LONG_MODE_CR4 = x86.CR4_PSE | x86.CR4_PAE | x86.CR4_MCE | x86.CR4_PGE | x86.CR4_OSFXSR | x86.CR4_OSXMMEXCPT
LONG_MODE_CR0 = x86.CR0_PG | x86.CR0_AM | x86.CR0_WP | x86.CR0_NE | x86.CR0_ET | x86.CR0_MP | x86.CR0_PE
EFER_BEFORE_PAGING = x86.EFER_SCE | x86.EFER_LME | x86.EFER_NXE
EFER_LONG_MODE = EFER_BEFORE_PAGING | x86.EFER_LMA
LONG_MODE_RFLAGS = x86.RFLAGS_FIXED | x86.RFLAGS_PF | x86.RFLAGS_ZF


def boot_sector_image() -> bytes:
    """The boot sector on the disk: a short jump over the BPB, then the 0x55AA signature."""
    sector = bytearray(512)
    sector[0:3] = b"\xeb\x3c\x90"
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


class Boot:
    def __init__(self, guest):
        self.g = guest

    def power_on(self) -> None:
        """Start the boot sequence at the current time: BIOS, boot sector, then the kernel."""
        g = self.g
        for cpu in g.cpus:
            cpu.vcpu.reset()  # the APs wait in this state for their SIPI
        g.cpus[0].vcpu.regs["RSP"] = BIOS_STACK
        now = g.events.now_ns
        g.at(now + 1_000_000, self._bios_post)
        g.at(now + 250_000_000, self._boot_sector)
        g.at(now + 500_000_000, g.kernel_entry)

    def _bios_post(self) -> None:
        g = self.g
        cpu = g.cpus[0]
        for _ in range(2):
            g.hv_exit(cpu, Exit("cpuid", instr_len=2))
        for port, is_in in _POST_PORTS:
            g.port_io(cpu, port, 1, 1, is_in)
        self.vga_write(cpu, VGA_GRAPHICS, b"\x00\x3f" * 8)  # the BIOS logo
        self.vga_write(cpu, VGA_TEXT, b"B\x07I\x07O\x07S\x07")  # text mode: character, attribute

    def vga_write(self, cpu: CpuState, address: int, data: bytes) -> None:
        g = self.g
        g.memory.write(address, data)
        if g.probes.watch_writes:
            g.probes.guest_write(cpu.vcpu, address, len(data))

    def _boot_sector(self) -> None:
        g = self.g
        cpu = g.cpus[0]
        regs = cpu.vcpu.regs
        regs.update(RIP=BOOT_SECTOR, CS=0, RDX=BOOT_DRIVE, RSP=BOOT_SECTOR)
        g.probes.execute(cpu.vcpu, BOOT_SECTOR)
        self.vga_write(cpu, VGA_GRAPHICS, b"\x01" * 16)  # the boot loader's splash, then its name
        self.vga_write(cpu, VGA_TEXT, b"".join(bytes([c, 7]) for c in g.boot_loader.encode()))

    def enter_long_mode(self, cpu: CpuState, cr3: int, cs: int, ss: int) -> None:
        """PAE on, CR3 loaded, EFER.LME set, then paging on (which activates long mode, EFER.LMA),
        then the 64-bit code segment and the kernel GS base (the CPU's `percpu`)."""
        g = self.g
        r = cpu.vcpu.regs
        r["CR4"] = LONG_MODE_CR4
        g.probes.fire_static(cpu.vcpu, "Guest_CR3Write")
        r["CR3"] = cr3
        r["EFER"] = EFER_BEFORE_PAGING
        g.hv_exit(cpu, Exit("cr", cr=0, cr_access=0))
        r.update(CR0=LONG_MODE_CR0, EFER=EFER_LONG_MODE, CS=cs, SS=ss, DS=0, ES=0,
                 GSBASE=cpu.percpu, KERNELGSBASE=0, RFLAGS=LONG_MODE_RFLAGS)
