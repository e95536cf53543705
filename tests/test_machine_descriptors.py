"""machine.descriptors: descriptor encodings and the hidden segment state loaded from them."""

from __future__ import annotations

from machine import descriptors as D

# Linux x86-64's flat kernel and user segments (arch/x86/kernel/cpu/common.c, gdt_page).
KERNEL_CS = 0x00AF9B000000FFFF
KERNEL_DS = 0x00CF93000000FFFF
USER_CS = 0x00AFFB000000FFFF


def test_linux_flat_descriptors_decode_to_the_vmcs_access_rights():
    assert D.decode(KERNEL_CS) == (0, 0xFFFFFFFF, 0xA09B)
    assert D.decode(KERNEL_DS) == (0, 0xFFFFFFFF, 0xC093)
    assert D.decode(USER_CS) == (0, 0xFFFFFFFF, 0xA0FB)


def test_encoding_a_code_descriptor_gives_linux_s_bytes_back():
    ar = D.access_rights(D.TYPE_CODE_RX, long=True, g=True)
    assert ar == 0xA09B
    assert D.segment_descriptor(0, 0xFFFFF, ar) == KERNEL_CS
    ar3 = D.access_rights(D.TYPE_CODE_RX, dpl=3, long=True, g=True)
    assert D.segment_descriptor(0, 0xFFFFF, ar3) == USER_CS


def test_a_tss_descriptor_carries_a_64_bit_base():
    base = 0xFFFF88003FC84000
    raw = D.system_descriptor(base, 0x206F, D.access_rights(D.TYPE_TSS_BUSY, s=False))
    assert len(raw) == 16
    low, high = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")
    assert D.decode(low, high) == (base, 0x206F, 0x8B)


def test_load_reads_the_gdt_entry_the_selector_names():
    gdt = {0x1000 + 0x10: KERNEL_CS, 0x1000 + 0x18: KERNEL_DS}
    tss = D.system_descriptor(0xFFFF880000123000, 0x206F, D.access_rights(D.TYPE_TSS_BUSY, s=False))
    gdt[0x1040], gdt[0x1048] = int.from_bytes(tss[:8], "little"), int.from_bytes(tss[8:], "little")

    def read(addr):
        return gdt.get(addr, 0)

    assert D.load(0x10, 0x1000, 0x7F, read) == (0, 0xFFFFFFFF, 0xA09B)
    assert D.load(0x1B, 0x1000, 0x7F, read) == (0, 0xFFFFFFFF, 0xC093)  # RPL bits are not the index
    assert D.load(0x40, 0x1000, 0x7F, read, system=True) == (0xFFFF880000123000, 0x206F, 0x8B)
    assert D.load(0, 0x1000, 0x7F, read) == D.UNUSABLE
    assert D.load(0x80, 0x1000, 0x7F, read) == D.UNUSABLE  # beyond the limit


def test_an_interrupt_gate_points_at_its_handler():
    handler = 0xFFFFFFFF81234567
    raw = D.interrupt_gate(handler, 0x10, dpl=3, ist=1)
    low, high = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")
    assert low & 0xFFFF | ((low >> 48) & 0xFFFF) << 16 | high << 32 == handler
    assert (low >> 16) & 0xFFFF == 0x10
    assert (low >> 32) & 7 == 1
    assert (low >> 40) & 0xFF == 0xEE  # present, DPL 3, 64-bit interrupt gate


def test_real_mode_segments_are_selector_times_sixteen():
    assert D.real_mode(0x07C0) == (0x7C00, 0xFFFF, 0x93)
    assert D.real_mode(0xF000, code=True) == (0xF0000, 0xFFFF, 0x9B)
