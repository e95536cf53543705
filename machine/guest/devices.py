"""The PC's devices as every guest drives them: the local APIC page, an ATA disk, a NIC; and SMIs.

The devices are the machine's, the drivers' paths the guest kernel's
(`KernelPaths`): a disk request walks the block layer down to the
controller, programs the ATA task-file registers and the bus-master DMA
start by port I/O, and blocks its task until the completion interrupt; a
packet arrives at the NIC on a Poisson schedule and wakes a task waiting in
a receive.  The disk is emulated in the VMX process, so its probes run in
VMX context (VCPU 0's view).  The firmware takes a system-management
interrupt every few seconds on VCPU 0.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Callable

from ..events import NS_PER_SEC, NS_PER_US
from ..memory import PAGE
from .state import CpuState, Task

APIC_ID = 0x20  # register offsets in the local APIC's page
APIC_VERSION_REG = 0x30
ATA_TASK_FILE = (0x1F2, 0x1F3, 0x1F4, 0x1F5, 0x1F6, 0x1F7)  # sector count, LBA 0-7, 8-15, 16-23, drive/head, command
ATA_STATUS = 0x1F7
BUS_MASTER_COMMAND, BUS_MASTER_STATUS = 0xC000, 0xC002


def apic_page(machine, version: int) -> Callable[[int, int], bytes]:
    """Reads of the local APIC's page: each VCPU sees its own APIC ID (its index) and `version`."""
    def read(offset: int, size: int) -> bytes:
        regs = bytearray(PAGE)
        regs[APIC_ID:APIC_ID + 4] = struct.pack("<I", machine.current.index << 24)
        regs[APIC_VERSION_REG:APIC_VERSION_REG + 4] = struct.pack("<I", version)
        return bytes(regs[offset:offset + size])
    return read


class Disk:
    """An ATA disk with bus-master DMA, one request at a time per task."""

    def __init__(self, guest):
        self.g = guest
        self.next_io_id = 1
        paths = guest.paths
        self.submit = paths.disk_submit
        self.wait = paths.disk_wait
        self.done_path = list(paths.disk_done)
        self.vector, self.driver = paths.disk_vector, paths.disk_driver

    def request(self, cpu: CpuState, task: Task, path: list[str], write: bool) -> None:
        """`task` needs the disk: program the ATA controller, block until the interrupt.

        `path` is the kernel path so far; the block layer continues it.
        """
        g = self.g
        rng = g.rng
        sectors = rng.choice((8, 8, 8, 16, 32, 64, 128, 256))
        sector = rng.randrange(2048, 40_000_000) & ~7
        g.contexts.walk(cpu, task, [*path, *self.submit], start=len(path) + 1)
        for port in ATA_TASK_FILE:  # the count, the sector's LBA, then READ or WRITE DMA (probes see no values)
            g.port_io(cpu, port, 1, 1, is_in=False)
        g.port_io(cpu, BUS_MASTER_COMMAND, 1, 1, is_in=False)  # start DMA
        io_id = self.next_io_id
        self.next_io_id += 1
        sg = max(1, sectors // 8 // rng.choice((1, 2, 4)))
        args = (0, 0, 0, 0 if write else 1, io_id, sector, sectors, sg)
        g.probes.fire_static(g.cpus[0].vcpu, "Disk_IOStart", *args)
        latency_us = 30 + sectors * 0.4 + rng.lognormvariate(4.3, 0.9) + (400 if write else 0) * rng.random()
        g.at(g.events.now_ns + int(latency_us * NS_PER_US), lambda: self._done(task, args))
        if self.wait:
            g.contexts.walk(cpu, task, [*path, *self.wait], start=len(path) + 1)
        g.scheduler.block(cpu, task)

    def _done(self, task: Task, args: tuple) -> None:
        g = self.g
        cpu = g.cpus[0]
        g.probes.fire_static(cpu.vcpu, "Disk_IOFinish", *args)
        g.interrupts.device_irq(cpu, self.vector, self.driver)
        g.port_io(cpu, BUS_MASTER_STATUS, 1, 1, is_in=True)
        g.port_io(cpu, ATA_STATUS, 1, 1, is_in=True)
        g.contexts.walk(cpu, cpu.current, self.done_path)
        g.interrupts.resume_after_interrupt(cpu)
        g.scheduler.wake(task)


FRAME_PAYLOAD = 1460  # a TCP segment in a 1500-byte IP packet
FRAME_HEADERS = 54  # Ethernet (14), IP (20) and TCP (20) headers


class Nic:
    """A network card receiving packets at the workload's rate; a receive with no data waits here."""

    def __init__(self, guest, packets_per_s: float):
        self.g = guest
        self.rate = packets_per_s
        self.waiters: deque[Task] = deque()
        paths = guest.paths
        self.vector, self.driver = paths.net_vector, paths.net_driver
        self.receive = list(paths.net_receive)

    def transmit(self, length: int) -> None:
        """The guest's driver hands `length` bytes to the NIC: the VM sends them as Ethernet frames of
        at most `FRAME_PAYLOAD` bytes each behind `FRAME_HEADERS` of headers (MAC_SendPacket, once per
        frame, in VMX context)."""
        g = self.g
        vcpu = g.cpus[0].vcpu
        while length > 0:
            payload = min(length, FRAME_PAYLOAD)
            g.probes.fire_static(vcpu, "MAC_SendPacket", payload + FRAME_HEADERS)
            length -= payload

    def wait(self, cpu: CpuState, task: Task) -> None:
        """`task` blocks in a receive until a packet arrives."""
        self.waiters.append(task)
        self.g.scheduler.block(cpu, task)

    def packet(self) -> None:
        g = self.g
        cpu = g.cpus[-1] if g.cpus[-1].online else g.cpus[0]
        g.interrupts.device_irq(cpu, self.vector, self.driver)
        g.contexts.walk(cpu, cpu.current, self.receive)
        g.interrupts.resume_after_interrupt(cpu)
        if self.waiters:
            g.scheduler.wake(self.waiters.popleft())
        self.schedule_packet()

    def schedule_packet(self) -> None:
        g = self.g
        delay = g.rng.expovariate(self.rate)
        g.at(g.events.now_ns + int(delay * NS_PER_SEC) + 1000, self.packet)


class Smm:
    """The firmware's system-management interrupts: VCPU 0 spends 80 us in SMM every 3 to 5 s."""

    def __init__(self, guest):
        self.g = guest

    def smi(self) -> None:
        g = self.g
        self._switch("SMM_SMIPre", True, "SMM_SMIPost")
        g.at(g.events.now_ns + 80 * NS_PER_US, self._rsm)

    def _rsm(self) -> None:
        g = self.g
        self._switch("SMM_RSMPre", False, "SMM_RSMPost")
        g.at(g.events.now_ns + int(g.rng.uniform(3.0, 5.0) * NS_PER_SEC), self.smi)

    def _switch(self, before: str, smm: bool, after: str) -> None:
        """VCPU 0 enters (an SMI) or leaves (its RSM) SMM, between the static probes around it."""
        probes = self.g.probes
        vcpu = self.g.cpus[0].vcpu
        probes.fire_static(vcpu, before)
        vcpu.smm = smm
        probes.fire_static(vcpu, after)
