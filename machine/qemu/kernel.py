"""The guest kernel as the QEMU machine knows it: symbols, entry points, the helper library.

Symbols come from `vprobe.guestSyms` (a System.map or a /proc/kallsyms dump)
when it is a real one, else from the kernel image's own kallsyms tables.
Debian installs a placeholder System.map (one line: "The real System.map is
in the linux-image-<version>-dbg package"); it is recognised and skipped.
The BTF (for the helper library) is read only when a library is asked for.
"""

from __future__ import annotations

import bisect
import re
from functools import cached_property
from pathlib import Path

from vp_runtime.spec import MASK64

from ..symbols import parse_symbols
from .btf import BTF, BTFError
from .guestlib import GuestLayout, emmett_preload, layout_from_btf, vp_library
from .kimage import KernelImage, KernelImageError, system_map_text

__all__ = ["FAULT_ENTRIES", "GuestKernel", "LEGACY_NAMES", "LEGACY_WITHOUT_COUNTERPART", "SYSVEC_VECTORS"]

# The reference's Linux 2.6 names (its samples and the cookbook use them) -> today's x86-64 kernel's
# name for the same thing, used when the running kernel has no symbol of the old name.
LEGACY_NAMES = {
    "system_call": "entry_SYSCALL_64",   # the 64-bit system-call entry, renamed in 4.2 (RAX = the number)
    "sys_getpid": "__x64_sys_getpid",    # system calls have per-ABI wrappers since 4.17
    "get_task_comm": "__get_task_comm",  # a macro around __get_task_comm since 2.6.38
    "current_tsc_khz": "tsc_khz",        # the TSC's calibrated rate in kHz
}
# Old names with no counterpart: a script naming one is refused at load, with the reason.
LEGACY_WITHOUT_COUNTERPART = {
    "tsc_enabled": "Linux 2.6's flag that the TSC is in use; today's kernels keep no such variable "
                   "(the TSC's state is a CPU feature bit and tsc_unstable)",
}

# The kernel's IDT entry point for each of the spec's guest faults (vector and error code: spec.GUEST_FAULTS).
FAULT_ENTRIES = {
    "DE": "asm_exc_divide_error", "DB": "asm_exc_debug", "NMI": "asm_exc_nmi", "BP": "asm_exc_int3",
    "OF": "asm_exc_overflow", "BR": "asm_exc_bounds", "UD": "asm_exc_invalid_op",
    "NM": "asm_exc_device_not_available", "DF": "asm_exc_double_fault", "TS": "asm_exc_invalid_tss",
    "NP": "asm_exc_segment_not_present", "SS": "asm_exc_stack_segment", "GP": "asm_exc_general_protection",
    "PF": "asm_exc_page_fault", "RESERVED_FAULT": "asm_exc_spurious_interrupt_bug",
    "MF": "asm_exc_coprocessor_error", "AC": "asm_exc_alignment_check", "MC": "asm_exc_machine_check",
    "XF": "asm_exc_simd_coprocessor_error",
}

# System-vector entry points and their vectors (arch/x86/include/asm/irq_vectors.h, 5.x-6.x);
# the IDT read from a booted guest overrides these.
SYSVEC_VECTORS = {
    "asm_sysvec_spurious_apic_interrupt": 0xFF, "asm_sysvec_error_interrupt": 0xFE,
    "asm_sysvec_reschedule_ipi": 0xFD, "asm_sysvec_call_function": 0xFC,
    "asm_sysvec_call_function_single": 0xFB, "asm_sysvec_thermal": 0xFA, "asm_sysvec_threshold": 0xF9,
    "asm_sysvec_reboot": 0xF8, "asm_sysvec_x86_platform_ipi": 0xF7, "asm_sysvec_irq_work": 0xF6,
    "asm_sysvec_deferred_error": 0xF4, "asm_sysvec_apic_timer_interrupt": 0xEC,
    "asm_sysvec_irq_move_cleanup": 0x20,
}
COMMON_IRQ_ENTRY = "asm_common_interrupt"
# Functions whose code may write CR3 (scanned for `mov cr3, reg`).
CR3_CANDIDATES = re.compile(r"(switch_mm|flush_tlb|cr3|tlb|load_mm|use_temporary_mm|efi_enter|efi_leave)")
KERNEL_SPACE = 0xFFFF800000000000


def _is_placeholder_map(symbols: dict[str, int]) -> bool:
    return len(symbols) < 100


class GuestKernel:
    """Symbols, code layout and the generated helper library of the guest's kernel."""

    def __init__(self, image: Path | None, system_map: Path | None = None):
        self.image_path = Path(image) if image else None
        self.warnings: list[str] = []
        symbols: list[tuple[int, str, str]] | None = None
        if system_map is not None:
            text = Path(system_map).read_text(encoding="utf-8", errors="replace")
            parsed = parse_symbols(text)
            if not _is_placeholder_map(parsed):
                symbols = []
                for line in text.splitlines():
                    parts = line.split()
                    if len(parts) >= 3:
                        try:
                            symbols.append((int(parts[0], 16), parts[1], parts[2]))
                        except ValueError:
                            continue
            else:
                self.warnings.append(f"{system_map} is a placeholder, not a symbol table: "
                                     f"reading the symbols from the kernel image instead")
        if symbols is None:
            if self.image is None:
                raise KernelImageError("no guest symbols: give vprobe.guestSyms (a System.map) or the kernel "
                                       "image (qemu.kernel or qemu.image)")
            symbols = self.image.symbols()
        self._table = symbols
        self.slide = 0
        self._index()

    def _index(self) -> None:
        self.symbols: dict[str, int] = {}
        for addr, _kind, name in self._table:
            self.symbols.setdefault(name, addr)
        text = sorted((addr, name) for addr, kind, name in self._table if kind in "tTwW" and addr >= KERNEL_SPACE)
        self._text_addrs = [a for a, _ in text]
        self._text_names = [n for _, n in text]

    def apply_slide(self, slide: int) -> None:
        """Relocate kernel-space symbols by `slide` (KASLR); per-CPU offsets stay."""
        if not slide:
            return
        self.slide += slide
        self._table = [((a + slide) & MASK64 if a >= KERNEL_SPACE else a, k, n) for a, k, n in self._table]
        self._index()

    @cached_property
    def image(self) -> KernelImage | None:
        return KernelImage(self.image_path) if self.image_path else None

    def read_image(self, address: int, size: int) -> bytes | None:
        """The kernel image's bytes at a (slid) kernel address: the code as built, before boot patches it.
        None without an image or outside its sections."""
        if self.image is None or address < KERNEL_SPACE:
            return None
        return self.image.read(address - self.slide, size)

    @property
    def kallsyms_text(self) -> str:
        return system_map_text(self._table)

    def address_of(self, name: str) -> int | None:
        """The address of symbol `name`, or of today's name for a Linux 2.6 name (`LEGACY_NAMES`)."""
        address = self.symbols.get(name)
        if address is None and name in LEGACY_NAMES:
            address = self.symbols.get(LEGACY_NAMES[name])
        return address

    def legacy_symbols_text(self) -> str:
        """kallsyms lines naming, at today's symbol, each Linux 2.6 name this kernel lacks (`LEGACY_NAMES`):
        what the Emmett compiler checks probe points against."""
        lines = []
        for old, new in LEGACY_NAMES.items():
            address = self.symbols.get(new)
            if old not in self.symbols and address is not None:
                kind = next((k for a, k, n in self._table if n == new), "T")
                lines.append(f"{address:016x} {kind} {old}\n")
        return "".join(lines)

    def symbol_refusal(self, name: str) -> str | None:
        """Why a script may not name symbol `name` on this kernel, or None."""
        if name in self.symbols or name not in LEGACY_WITHOUT_COUNTERPART:
            return None
        return f"'{name}' is not a symbol of Linux {self.release}: {LEGACY_WITHOUT_COUNTERPART[name]}"

    def function_at(self, addr: int) -> tuple[str, int, int] | None:
        """(name, start, end) of the text symbol holding `addr`."""
        i = bisect.bisect_right(self._text_addrs, addr) - 1
        if i < 0:
            return None
        end = self._text_addrs[i + 1] if i + 1 < len(self._text_addrs) else self._text_addrs[i] + 4096
        if addr >= end and end > self._text_addrs[i]:
            return None
        return self._text_names[i], self._text_addrs[i], end

    def functions(self) -> list[tuple[str, int]]:
        return list(zip(self._text_names, self._text_addrs))

    def data_symbols(self) -> list[tuple[int, str]]:
        """(address, name) of the kernel's data symbols, by address."""
        return sorted((addr, name) for addr, kind, name in self._table if kind in "dDbBrR" and addr >= KERNEL_SPACE)

    def function_end(self, name: str) -> int | None:
        start = self.symbols.get(name)
        if start is None:
            return None
        i = bisect.bisect_right(self._text_addrs, start)
        return self._text_addrs[i] if i < len(self._text_addrs) else start + 4096

    # ---- the helper library ---------------------------------------------------------

    @cached_property
    def release(self) -> str:
        banner = self.banner or ""
        parts = banner.split()
        return parts[2] if len(parts) > 2 and parts[0] == "Linux" else "(unknown release)"

    @cached_property
    def banner(self) -> str | None:
        addr = self.symbols.get("linux_banner")
        data = self.read_image(addr, 256) if addr is not None else None
        if not data:
            return None
        return data.split(b"\0", 1)[0].decode("latin-1").strip()

    @cached_property
    def btf(self) -> BTF:
        if self.image is None:
            raise KernelImageError("the guest library needs the kernel image (qemu.kernel or qemu.image) for its BTF")
        return BTF(self.image.btf())

    @cached_property
    def layout(self) -> GuestLayout:
        return layout_from_btf(self.btf, self.release, self.symbols)

    def vp_library(self) -> str:
        return vp_library(self.layout)

    @cached_property
    def system_running(self) -> int | None:
        """The value of SYSTEM_RUNNING (enum system_states) in this kernel, from its BTF; None unknown."""
        try:
            return self.btf.enumerator("SYSTEM_RUNNING")
        except (KernelImageError, BTFError):
            return None

    def emmett_preload(self) -> str:
        return emmett_preload(self.layout, self.btf)
