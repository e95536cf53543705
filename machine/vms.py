"""Which machine a `.vmx` describes, and opening it.

A `.vmx` that sets any `qemu.` key describes a real VM under QEMU; any other
describes a simulated VM; no `.vmx` means the embedded default machine.  Both
kinds of machine offer the same interface to the tools (the runtime's Backend
plus `attach`, `detach`, `run`, `close`, `probe_points`, `symbol_text`,
`guest_library_vp`, `guest_library_name`, `guest_preload_emmett` and
`realtime`, true when `run(seconds)` takes real seconds).
"""

from __future__ import annotations

from .qemu import QemuConfig, QemuMachine, is_qemu_vmx, read_qemu_vmx
from .simulated import SimulatedMachine
from .vmx import VMConfig, default_config, read_vmx


def read_vm_config(vmx: str | None) -> VMConfig | QemuConfig:
    """The configuration of the VM `vmx` describes (VmxError if it is broken)."""
    if vmx is None:
        return default_config()
    if is_qemu_vmx(vmx):
        return read_qemu_vmx(vmx)
    return read_vmx(vmx)


def open_machine(config: VMConfig | QemuConfig) -> SimulatedMachine | QemuMachine:
    """Power on (or, for `qemu.attach`, attach to) the machine `config` describes."""
    if isinstance(config, QemuConfig):
        return QemuMachine(config)
    return SimulatedMachine(config)
