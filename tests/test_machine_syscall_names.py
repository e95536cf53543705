"""System call names from a guest kernel's own sys_call_table (machine/syscall_names.py): each entry
resolved through the kernel's symbols to its handler's name."""

from __future__ import annotations

import glob
import struct

import pytest

from machine.syscall_names import kernel_syscalls, parse_syscalls

KERNELS = sorted(glob.glob("/boot/vmlinuz-*"))
TABLE = 0xFFFFFFFF82000000


def memory_with(entries: list[int], relocation: int = 0):
    words = {TABLE + relocation + 8 * i: struct.pack("<Q", address) for i, address in enumerate(entries)}
    return lambda address, size: words.get(address)


def test_entries_are_named_by_their_handlers_and_the_table_ends_at_the_first_that_is_none():
    symbols = {"sys_call_table": TABLE, "__x64_sys_read": 0x1000, "sys_write": 0x2000, "sys_ni_syscall": 0x3000,
               "__do_sys_open": 0x4000, "memcpy": 0x5000}
    names = kernel_syscalls(memory_with([0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x1000]), symbols)
    assert names == {0: "read", 1: "write", 3: "open"}  # 2 has no call; memcpy ends the table


def test_a_table_read_from_the_image_holds_link_time_addresses():
    slide = 0x1600000
    symbols = {"sys_call_table": TABLE + slide, "sys_read": 0x1000 + slide, "sys_write": 0x2000 + slide}
    assert kernel_syscalls(memory_with([0x1000, 0x2000], slide), symbols, relocation=slide) == {0: "read", 1: "write"}
    assert kernel_syscalls(memory_with([0x1000, 0x2000], slide), {"sys_read": 0x1000}) == {}  # no table: none


def test_a_syscalls_file_takes_pairs_and_kernel_header_defines():
    assert parse_syscalls("# x86-64\n0 read\n0x1 write\n\n#define __NR_open 2\n") == {0: "read", 1: "write", 2: "open"}


@pytest.mark.skipif(not KERNELS, reason="no Linux kernel image in /boot")
def test_a_qemu_guests_names_are_its_kernel_images_table_in_x86_64_numbering():
    from machine.qemu.kernel import GuestKernel

    kernel = GuestKernel(KERNELS[-1], None)
    kernel.apply_slide(0x1400000)  # as KASLR moves it: the symbols move, the image's table does not
    names = kernel_syscalls(kernel.read_image, kernel.symbols, relocation=kernel.slide)
    assert [names.get(n) for n in (0, 1, 17, 60, 202, 231)] == ["read", "write", "pread64", "exit", "futex",
                                                                 "exit_group"]
