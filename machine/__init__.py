"""The machines scripts instrument: the embedded simulated VM (and, later, real VMs).

A machine implements the runtime's `Backend` protocol and fires the probes of
the script attached to it.
"""

from .simulated import SimulatedMachine
from .vmx import VMConfig, default_config, read_vmx

__all__ = ["SimulatedMachine", "VMConfig", "default_config", "read_vmx"]
