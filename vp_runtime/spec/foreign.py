"""Names VP scripts use that a hosted VM does not have: ESX's, and the VMware monitor's own.

The toolkit's compiler declares builtins and globals of every VProbes
environment (an ESX host's VMkernel and POSIX processes as well as a VM), and
its output for a multi-VM ESX script starts each VM's part with a target line
(`@VMK`, `@VM1 = NAME`).  A script that uses one of these here is refused at
load with the reason, not with "unknown name".
"""

# Builtins -> why a hosted VM has none.
ESX_ONLY_BUILTINS = {
    "worldtovmid": "it maps a VMkernel world to its VM",
    "schedtrace": "it traces the VMkernel's CPU scheduler",
    "suspendvm": "it suspends a VM from the ESX host",
    "delayus": "it delays a VMkernel CPU (a destructive ESX builtin)",
    "livecore": "it writes a live core dump of an ESX VM",
    "fatalPSOD": "it stops the ESX host with a purple screen (a destructive ESX builtin)",
}
MONITOR_BUILTINS = {
    "getvmw": "it reads the VMware monitor's own memory",
    "getvmwstr": "it reads a string from the VMware monitor's own memory",
    "vmwstack": "it walks the VMware monitor's own stack",
}

# Globals -> what they are.
ESX_ONLY_GLOBALS = {
    "WORLDID": "the VMkernel world that runs the probe",
    "PCPU": "the VMkernel's physical CPU number",
    "PRDA_ADDR": "the address of the VMkernel's per-CPU data",
}
MONITOR_GLOBALS = {
    "MEMSCHED_ADDR": "the address of the monitor's memory-scheduler state",
    "APICREGS": "the address of the monitor's copy of the virtual APIC's registers",
}

# Probe-name domains of other environments: the VMkernel, the host's POSIX processes, and
# the numbered VMs of a multi-VM script (VMM1:, VMX1:, GUEST1:...).
ESX_DOMAIN_PATTERN = r"(VMK|POSIX|(?:VMM|VMX|GUEST)[0-9]+)\Z"
ESX_DOMAINS = {
    "VMK": "the VMkernel",
    "POSIX": "a POSIX process of the ESX host",
}
NUMBERED_DOMAIN = "one VM of a script that probes several VMs"

# The target lines of a multi-domain script, which start with this.
TARGET_LINE_PREFIX = "@"
