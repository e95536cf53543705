"""The QEMU machine's failure: the VM cannot be reached, or QEMU went away (a `MachineError`)."""

from __future__ import annotations

from ..errors import MachineError


class QemuError(MachineError):
    """The VM cannot be reached, or QEMU went away."""
