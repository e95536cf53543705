"""Real Linux VMs under QEMU, reached through QEMU's gdbstub (see machine.py for the probe mapping).

    from machine.qemu import QemuMachine, is_qemu_vmx, read_qemu_vmx
    machine = QemuMachine(read_qemu_vmx("vm.vmx"))   # boots the VM (or attaches: qemu.attach)
    machine.attach(script); machine.run(5.0); machine.detach(); machine.close()
"""

from .config import QemuConfig, is_qemu_vmx, parse_qemu_vmx, read_qemu_vmx
from .errors import QemuError
from .machine import QemuMachine

__all__ = ["QemuConfig", "QemuError", "QemuMachine", "is_qemu_vmx", "parse_qemu_vmx", "read_qemu_vmx"]
