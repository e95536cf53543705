"""The QEMU backend's parts that need no QEMU: the remote serial protocol, target
descriptions, stop replies, the .vmx keys, the initramfs writer and the BTF reader."""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import time

import pytest

from machine.qemu.btf import BTF
from machine.qemu.config import is_qemu_vmx, parse_qemu_vmx
from machine.qemu.gdbstub import parse_stop_reply, parse_target_description
from machine.qemu.guestlib import emmett_preload, layout_from_btf, vp_library
from machine.qemu.initramfs import CpioWriter
from machine.qemu.machine import _noop_length
from machine.qemu.rsp import RemoteSerial, RSPError, RSPTimeout, checksum, decode_payload, encode_binary
from machine.vmx import VmxError


def test_checksum_is_the_byte_sum_modulo_256():
    assert checksum(b"OK") == 0x9A
    assert checksum(b"") == 0


def test_run_length_encoding_and_escapes_are_decoded():
    assert decode_payload(b"0* ") == b"0" * 4  # ' ' is 32: three more copies
    assert decode_payload(b"ab}\x03c") == b"ab#c"
    assert decode_payload(encode_binary(b"$#}*x")) == b"$#}*x"


def test_stop_replies_name_the_thread_and_the_watched_address():
    stop = parse_stop_reply(b"T05thread:02;watch:ffffffff82a079c0;")
    assert (stop.signal, stop.thread, stop.watch) == (5, 2, ("watch", 0xFFFFFFFF82A079C0))
    assert parse_stop_reply(b"T02thread:p01.01;").thread == 1
    assert parse_stop_reply(b"W00").exited


def test_target_description_strips_comments_and_follows_includes():
    docs = {
        "target.xml": b'<?xml version="1.0"?><target><xi:include href="core.xml"/></target>',
        "core.xml": b'<feature><reg name="rax" bitsize="64" regnum="0"/><!-- <reg name="ghost" bitsize="64"/> -->'
                    b'<reg name="rip" bitsize="64"/><reg name="eflags" bitsize="32"/>'
                    b'<reg name="fs_base" bitsize="64" regnum="24"/></feature>',
    }
    regs = parse_target_description(lambda annex: docs[annex])
    assert [(r.name, r.regnum, r.size, r.offset) for r in regs] == [
        ("rax", 0, 8, 0), ("rip", 1, 8, 8), ("eflags", 2, 4, 16), ("fs_base", 24, 8, 20)]


def test_requests_are_acknowledged_and_checked_against_a_stub():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    seen = []

    def stub():
        conn, _ = server.accept()
        data = b""
        while b"#" not in data or len(data) < data.index(b"#") + 3:
            data += conn.recv(100)
        seen.append(data)
        conn.sendall(b"+$T02thread:01;#" + b"%02x" % checksum(b"T02thread:01;"))  # the pause on connect
        conn.sendall(b"$OK#9a")
        seen.append(conn.recv(100))  # our ack for it comes with the next packet (or the close)
        conn.close()

    thread = threading.Thread(target=stub)
    thread.start()
    rsp = RemoteSerial(("127.0.0.1", server.getsockname()[1]), timeout=2)
    assert rsp.request("qC") == b"OK"
    assert rsp.unsolicited == [b"T02thread:01;"]
    rsp.close()
    thread.join()
    server.close()
    assert seen[0] == b"$qC#b4"
    assert seen[1].startswith(b"++")


def test_a_silent_stub_times_out():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    rsp = RemoteSerial(("127.0.0.1", server.getsockname()[1]), timeout=0.3)
    with pytest.raises(RSPTimeout):
        rsp.request("g")
    rsp.close()
    server.close()


def _answer_one_qc(server: socket.socket, *, delay: float = 0.0, answer: bool = True) -> threading.Thread:
    """A stub on `server` that takes one `qC`, waits `delay` seconds, then answers OK (or closes)."""
    def stub():
        conn, _ = server.accept()
        data = b""
        while not data.endswith(b"#b4"):
            data += conn.recv(100)
        time.sleep(delay)
        if answer:
            conn.sendall(b"+$OK#9a")
            conn.recv(100)
        conn.close()

    thread = threading.Thread(target=stub)
    thread.start()
    return thread


def test_a_unix_socket_stub_is_reached_by_its_path(tmp_path):
    path = str(tmp_path / "gdb.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    thread = _answer_one_qc(server)
    rsp = RemoteSerial(path, timeout=2)
    assert rsp.request("qC") == b"OK"
    rsp.close()
    thread.join()
    server.close()
    with pytest.raises(RSPError, match="gdb.sock"):
        RemoteSerial(path, connect_timeout=0.2)  # nobody listens any more


@pytest.mark.parametrize("delay, closes", [(0.0, False), (0.02, False), (0.0, True), (0.02, True)])
def test_replies_are_read_whether_they_come_within_the_poll_or_after_it(delay, closes):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    thread = _answer_one_qc(server, delay=delay, answer=not closes)  # the client polls 0.5 ms, then selects
    rsp = RemoteSerial(("127.0.0.1", server.getsockname()[1]), timeout=2)
    try:
        if closes:
            with pytest.raises(RSPError, match="closed"):
                rsp.request("qC")
        else:
            assert rsp.request("qC") == b"OK"
    finally:
        rsp.close()
        thread.join()
        server.close()


def test_qemu_vmx_keys(tmp_path):
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"x")
    vmx = tmp_path / "vm.vmx"
    vmx.write_text('qemu.kernel = "vmlinuz"\nqemu.gdbPort = "1234"\nmemsize = "256"\nvprobe.enable = "TRUE"\n'
                   'guestOS = "other"\n')
    config = parse_qemu_vmx(vmx.read_text(), vmx)
    assert (config.kernel, config.gdb_port, config.memsize_mb, config.vprobe_enable) == (kernel, 1234, 256, True)
    assert config.out_file == tmp_path / "vprobe.out" and not config.warnings
    assert is_qemu_vmx(vmx)
    with pytest.raises(VmxError, match="HOST:PORT"):
        parse_qemu_vmx('qemu.attach = "nowhere"\n', vmx)
    with pytest.raises(VmxError, match="qemu.kernel"):
        parse_qemu_vmx('memsize = "256"\n', vmx)
    assert config.call_sites  # GUEST: probes patch ftrace sites unless told not to
    attach = 'qemu.attach = "127.0.0.1:1234"\n'
    assert not parse_qemu_vmx(attach + 'qemu.callSites = "FALSE"\n', vmx).call_sites
    with pytest.raises(VmxError, match="qemu.callSites"):
        parse_qemu_vmx(attach + 'qemu.callSites = "sometimes"\n', vmx)


def test_cpio_newc_archive():
    cpio = CpioWriter()
    cpio.file("init", b"#!/bin/sh\n", 0o755)
    data = cpio.finish()
    assert data.startswith(b"070701") and b"init\0" in data and data.endswith(b"\0" * (len(data) % 4 == 0))
    assert b"TRAILER!!!" in data and len(data) % 4 == 0
    assert gzip.decompress(gzip.compress(data)) == data


def test_noops_are_recognised():
    assert _noop_length(bytes.fromhex("0f1f440000")) == 5
    assert _noop_length(bytes.fromhex("f30f1efa")) == 4
    assert _noop_length(bytes.fromhex("55")) == 0  # push rbp


def _btf(types: list[bytes], strings: bytes) -> bytes:
    body = b"".join(types)
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(body), len(body), len(strings)) + body + strings


def _task_btf() -> BTF:
    """A BTF with a task_struct (pid, tgid, real_parent, comm) and the per-CPU current_task."""
    strings = b"\0int\0char\0task_struct\0pid\0tgid\0comm\0real_parent\0current_task\0.data..percpu\0"
    off = {name: strings.index(name.encode() + b"\0") for name in
           ("int", "char", "task_struct", "pid", "tgid", "comm", "real_parent", "current_task", ".data..percpu")}
    types = [
        struct.pack("<IIII", off["int"], 1 << 24, 4, (1 << 24) | 32),                 # 1 int
        struct.pack("<IIII", off["char"], 1 << 24, 1, 8),                             # 2 char
        struct.pack("<IIIIII", 0, 3 << 24, 0, 2, 1, 16),                              # 3 char[16]
        struct.pack("<III", off["task_struct"], (4 << 24) | 4, 0x800)                 # 4 struct
        + struct.pack("<III", off["pid"], 1, 0x100 * 8) + struct.pack("<III", off["tgid"], 1, 0x104 * 8)
        + struct.pack("<III", off["real_parent"], 5, 0x110 * 8) + struct.pack("<III", off["comm"], 3, 0x200 * 8),
        struct.pack("<III", 0, 2 << 24, 4),                                           # 5 task_struct *
        struct.pack("<IIII", off["current_task"], 14 << 24, 5, 1),                    # 6 var
        struct.pack("<III", off[".data..percpu"], (15 << 24) | 1, 0x100)
        + struct.pack("<III", 6, 0x80, 8),                                            # 7 datasec
    ]
    return BTF(_btf(types, strings))


def test_btf_task_struct_offsets_make_the_library():
    layout = layout_from_btf(_task_btf(), "test")
    assert (layout.current_task, layout.pid, layout.tgid, layout.real_parent, layout.comm, layout.comm_size) == \
        (0x80, 0x100, 0x104, 0x110, 0x200, 16)
    assert "(getgueststr linux.procName 16 (+ (linux.curtask) 0x200))" in vp_library(layout)


INFO_REGISTERS = """RIP=ffffffff81a592eb RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=1 HLT=1
ES =0000 0000000000000000 00000000 00000000
CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]
SS =0018 0000000000000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
DS =0000 0000000000000000 00000000 00000000
FS =0000 0000000000000000 00000000 00000000
GS =0000 ffff88801f400000 00000000 00000000
LDT=0000 0000000000000000 00000000 00008200 DPL=0 LDT
TR =0040 fffffe0000003000 00004087 00008900 DPL=0 TSS64-avl
GDT=     fffffe0000001000 0000007f
IDT=     fffffe0000000000 00000fff
CR0=80050033 CR2=00000000005794a9 CR3=00000000051ee000 CR4=000006f0
DR6=00000000ffff0ff0 DR7=0000000000000400
"""


def test_the_monitor_s_info_registers_gives_the_segments_tables_and_smm():
    from machine.qemu.reads import monitor_registers
    regs = monitor_registers(INFO_REGISTERS)
    assert (regs["CSAR"], regs["CSLIMIT"], regs["SSAR"], regs["DSAR"], regs["LDTRAR"]) == (
        0xA09B, 0xFFFFFFFF, 0xC093, 0x10000, 0x10000)
    assert (regs["TR"], regs["TRBASE"], regs["TRLIMIT"], regs["TRAR"]) == (0x40, 0xFFFFFE0000003000, 0x4087, 0x89)
    assert (regs["GDTRBASE"], regs["GDTRLIMIT"], regs["IDTRLIMIT"]) == (0xFFFFFE0000001000, 0x7F, 0xFFF)
    assert (regs["SMM"], regs["SELSTATE"], regs["DR7"]) == (1, 0x39, 0x400)
    assert "GSBASE" not in regs  # the gdbstub's gs_base is the base


def test_in_real_mode_null_selectors_are_usable_segments():
    from machine.qemu.reads import monitor_registers
    real = INFO_REGISTERS.replace("CR0=80050033", "CR0=00000010").replace(
        "DS =0000 0000000000000000 00000000 00000000", "DS =0000 0000000000000000 0000ffff 00009300")
    regs = monitor_registers(real)
    assert (regs["DSAR"], regs["DSLIMIT"], regs["SELSTATE"]) == (0x93, 0xFFFF, 0)


def test_the_generated_emmett_preload_compiles_and_reads_no_task_as_0():
    import emmett

    btf = _task_btf()
    preload = emmett_preload(layout_from_btf(btf, "test"), btf)
    result = emmett.compile('VMM1Hz { printf("%d %d %d %s\\n", curpid(), curtid(), curppid(), curprocname()); }',
                            "t.emt", emmett.CompileOptions(preload_text=preload))
    assert result.ok, result.format_diagnostics()
    # No current task (or no parent): 0, without reading guest memory at address 0.
    assert "(cond (curpid.task (& 0xffffffff (getguest (+ curpid.task 260)))) (1 0))" in result.vp
    assert "(cond (curtid.task (& 0xffffffff (getguest (+ curtid.task 256)))) (1 0))" in result.vp
    assert "(cond (curppid.task (getguest (+ curppid.task 272))) (1 0))" in result.vp
    assert "(curppid.parent (& 0xffffffff (getguest (+ curppid.parent 260))))\n    (1 0)" in result.vp
