"""Guest physical memory and x86-64 4-level paging.

Physical memory is sparse (pages materialise on first write and read as zeros
before that) but bounded by the VM's `memsize`; reads beyond it fault.  Linear
addresses are translated by walking the page tables the guest keeps in that
memory, from CR3, exactly as the MMU does (4 KiB, 2 MiB and 1 GiB pages); a
non-present entry or a non-canonical address faults.  A small TLB caches walks
per (CR3, page) and is flushed whenever the page tables are written through
`PageTables`.
"""

from __future__ import annotations

from typing import Callable

from vp_runtime import GuestMemoryFault
from vp_runtime.spec import MASK64

from .errors import MachineError

PAGE = 4096
PAGE_SHIFT = 12
PTE_PRESENT = 0x1
PTE_WRITABLE = 0x2
PTE_USER = 0x4
PTE_ACCESSED = 0x20
PTE_LARGE = 0x80  # PS: a 2 MiB page in a PD entry, 1 GiB in a PDPT entry
ADDR_MASK = 0x000F_FFFF_FFFF_F000


class PhysicalMemory:
    """`size` bytes of guest RAM, plus memory-mapped devices by page."""

    def __init__(self, size: int):
        self.size = size
        self.pages: dict[int, bytearray] = {}
        self.mmio: dict[int, Callable[[int, int], bytes]] = {}

    def map_device(self, base: int, read: Callable[[int, int], bytes]) -> None:
        """Serve reads of the page at `base` with `read(offset, size)` (e.g. the local APIC)."""
        self.mmio[base >> PAGE_SHIFT] = read

    def _page(self, pfn: int, create: bool) -> bytearray | None:
        page = self.pages.get(pfn)
        if page is None and create:
            page = self.pages[pfn] = bytearray(PAGE)
        return page

    def read(self, addr: int, size: int) -> bytes:
        out = bytearray()
        while size > 0:
            pfn, offset = addr >> PAGE_SHIFT, addr & (PAGE - 1)
            step = min(size, PAGE - offset)
            device = self.mmio.get(pfn)
            if device is not None:
                out += device(offset, step)
            elif addr + step > self.size:
                raise GuestMemoryFault(f"guest physical address {addr:#x} is beyond the VM's memory")
            else:
                page = self.pages.get(pfn)
                out += page[offset:offset + step] if page is not None else bytes(step)
            addr += step
            size -= step
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        if addr + len(data) > self.size:
            raise ValueError(f"write at {addr:#x} beyond the VM's memory")
        pos = 0
        while pos < len(data):
            pfn, offset = (addr + pos) >> PAGE_SHIFT, (addr + pos) & (PAGE - 1)
            step = min(len(data) - pos, PAGE - offset)
            self._page(pfn, True)[offset:offset + step] = data[pos:pos + step]
            pos += step

    def read_u64(self, addr: int) -> int:
        page = self.pages.get(addr >> PAGE_SHIFT)
        offset = addr & (PAGE - 1)
        if page is None or offset > PAGE - 8:
            return int.from_bytes(self.read(addr, 8), "little")
        return int.from_bytes(page[offset:offset + 8], "little")

    def write_u64(self, addr: int, value: int) -> None:
        offset = addr & (PAGE - 1)
        if offset > PAGE - 8 or addr + 8 > self.size:  # across two pages, or beyond memory: `write` says
            self.write(addr, (value & MASK64).to_bytes(8, "little"))
            return
        self._page(addr >> PAGE_SHIFT, True)[offset:offset + 8] = (value & MASK64).to_bytes(8, "little")


class FrameAllocator:
    """Hands out zeroed physical pages from a range, for page tables and guest data.

    Freed blocks are reused for allocations of the same size; their contents
    are dropped, so a reused page reads as zeros again.
    """

    def __init__(self, memory: PhysicalMemory, start: int, end: int):
        self.memory = memory
        self.next = start
        self.end = end
        self.free_blocks: dict[int, list[int]] = {}

    def alloc(self, pages: int = 1) -> int:
        reusable = self.free_blocks.get(pages)
        if reusable:
            return reusable.pop()
        addr = self.next
        if addr + pages * PAGE > self.end:
            raise MachineError(f"the guest ran out of physical memory ({self.memory.size >> 20} MB); "
                               f"raise memsize in the .vmx")
        self.next += pages * PAGE
        return addr

    def free(self, addr: int, pages: int = 1) -> None:
        for i in range(pages):
            self.memory.pages.pop((addr >> PAGE_SHIFT) + i, None)
        self.free_blocks.setdefault(pages, []).append(addr)


class MMU:
    """Linear-to-physical translation through the guest's page tables, with a TLB."""

    def __init__(self, memory: PhysicalMemory):
        self.memory = memory
        self.tlb: dict[tuple[int, int], tuple[int, int]] = {}  # (cr3, vpn) -> (pfn base address, page size)

    def flush(self) -> None:
        self.tlb.clear()

    def translate(self, cr3: int, linear: int) -> int:
        vpn = linear >> PAGE_SHIFT
        hit = self.tlb.get((cr3, vpn))
        if hit is not None:
            base, size = hit
            return base + (linear & (size - 1))
        base, size = self._walk(cr3, linear)
        self.tlb[(cr3, vpn)] = (base, size)
        return base + (linear & (size - 1))

    def _walk(self, cr3: int, linear: int) -> tuple[int, int]:
        top = linear >> 47
        if top not in (0, (1 << 17) - 1):
            raise GuestMemoryFault(f"guest linear address {linear:#x} is not canonical")
        table = cr3 & ADDR_MASK
        read = self.memory.read_u64
        for level, shift in enumerate((39, 30, 21, 12)):
            entry = read(table + ((linear >> shift) & 0x1FF) * 8)
            if not entry & PTE_PRESENT:
                raise GuestMemoryFault(f"guest linear address {linear:#x} is not mapped")
            if shift in (30, 21) and entry & PTE_LARGE:
                size = 1 << shift
                return (entry & ADDR_MASK) & ~(size - 1), size
            table = entry & ADDR_MASK
        return table, PAGE

    def read(self, cr3: int, linear: int, size: int) -> bytes:
        """`size` bytes at `linear`; faults if any page of the range is unmapped."""
        out = b""
        while size > 0:
            step = min(size, PAGE - (linear & (PAGE - 1)))
            out += self.memory.read(self.translate(cr3, linear), step)
            linear = (linear + step) & MASK64
            size -= step
        return out


class PageTables:
    """Builds one address space's page tables in guest memory (the guest kernel's job)."""

    def __init__(self, memory: PhysicalMemory, frames: FrameAllocator, mmu: MMU, share_kernel_from: "PageTables | None" = None):
        self.memory = memory
        self.frames = frames
        self.mmu = mmu
        self.cr3 = frames.alloc()
        self.owned = [self.cr3]  # page-table pages of this address space
        if share_kernel_from is not None:
            # The upper half (kernel) PML4 entries are shared by every address space.
            for index in range(256, 512):
                entry = memory.read_u64(share_kernel_from.cr3 + index * 8)
                if entry:
                    memory.write_u64(self.cr3 + index * 8, entry)

    def _next_table(self, table: int, index: int, user: bool) -> int:
        slot = table + index * 8
        entry = self.memory.read_u64(slot)
        if entry & PTE_PRESENT:
            if user and not entry & PTE_USER:
                self.memory.write_u64(slot, entry | PTE_USER)
            return entry & ADDR_MASK
        new = self.frames.alloc()
        self.owned.append(new)
        self.memory.write_u64(slot, new | PTE_PRESENT | PTE_WRITABLE | (PTE_USER if user else 0))
        return new

    def map(self, linear: int, physical: int, size: int, *, user: bool = False, writable: bool = True,
            large: bool = False) -> None:
        """Map [linear, linear+size) to [physical, ...) with 4 KiB (or 2 MiB when `large`) pages.

        A process's address space maps hundreds of pages at its start: the tables above a leaf
        table are walked once for all the pages it maps, and its entries written in one go."""
        step = 1 << 21 if large else PAGE
        flags = PTE_PRESENT | PTE_ACCESSED | (PTE_WRITABLE if writable else 0) | (PTE_USER if user else 0)
        flags |= PTE_LARGE if large else 0
        levels = (39, 30) if large else (39, 30, 21)
        leaf_shift = 21 if large else 12
        off = 0
        while off < size:  # a leaf table at a time
            va = linear + off
            table = self.cr3
            for shift in levels:
                table = self._next_table(table, (va >> shift) & 0x1FF, user)
            first = (va >> leaf_shift) & 0x1FF
            count = min(512 - first, -(-(size - off) // step))  # the pages left, as far as this table goes
            self.memory.write(table + first * 8, b"".join(
                ((physical + off + i * step) | flags).to_bytes(8, "little") for i in range(count)))
            off += count * step
        self.mmu.flush()

    def release(self) -> None:
        """Free this address space's page-table pages (the kernel half is shared, not owned)."""
        for frame in self.owned:
            self.frames.free(frame)
        self.owned = []
        self.mmu.flush()

    def unmap(self, linear: int) -> None:
        """Clear the 4 KiB leaf entry for `linear` (so that a touch of it page-faults)."""
        table = self.cr3
        for shift in (39, 30, 21):
            entry = self.memory.read_u64(table + ((linear >> shift) & 0x1FF) * 8)
            if not entry & PTE_PRESENT or entry & PTE_LARGE:
                return
            table = entry & ADDR_MASK
        self.memory.write_u64(table + ((linear >> 12) & 0x1FF) * 8, 0)
        self.mmu.flush()
