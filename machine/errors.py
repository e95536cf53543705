"""The one exception type for a VM that failed, whatever the machine.

A real VM can go away, its debugger stub fall silent, its kernel image lack
symbols or BTF; the tools report every such failure plainly (`vprobe: ...`,
exit 1) by catching this base class, without importing any backend.
"""


class MachineError(Exception):
    """The VM, or what runs it, failed; the message says what the user must know."""
