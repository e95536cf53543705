"""The machines scripts instrument: the embedded simulated VM (and, later, real VMs).

A machine implements the runtime's `Backend` protocol and fires the probes of
the script attached to it.
"""

from .simulated import MachineConfig, SimulatedMachine

__all__ = ["MachineConfig", "SimulatedMachine"]
