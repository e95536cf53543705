"""The machines scripts instrument: the embedded simulated VM and real VMs under QEMU.

A machine implements the runtime's `Backend` protocol and fires the probes of
the script attached to it; `machine.vms` opens the one a `.vmx` describes.
The names below load on first use, so that a tool needing only a small part
of the package (e.g. `machine.symbols`) does not build the machine first.
"""

__all__ = ["SimulatedMachine", "VMConfig", "default_config", "read_vmx"]


def __getattr__(name):
    if name == "SimulatedMachine":
        from .simulated import SimulatedMachine
        return SimulatedMachine
    if name in ("VMConfig", "default_config", "read_vmx"):
        from . import vmx
        return getattr(vmx, name)
    raise AttributeError(f"module 'machine' has no attribute {name!r}")
