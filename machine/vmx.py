"""VMware `.vmx` configuration files: what a simulated VM is made of.

A `.vmx` holds one `key = "value"` setting per line, as VMware writes them::

    .encoding = "UTF-8"
    displayName = "web01"
    numvcpus = "4"
    memsize = "4096"
    guestOS = "ubuntu-64"           # or windows7srv-64: the guest model follows (sim.guest)
    vprobe.enable = "TRUE"          # Table 3-2 of the reference
    vprobe.guestSyms = "kallsyms"   # relative paths are the VM directory's

The rules:

* Whitespace around `=` is optional.  Values are normally double-quoted;
  unquoted values are accepted too (they end at a `#`).  Inside a value,
  VMware's `|XX` escape (two hex digits) stands for one character, so `|22`
  is a `"` and `|7C` a `|`; backslashes are literal (Windows paths).
* Keys are case-insensitive; messages keep the spelling the file used.
* A line whose first non-blank character is `#` is a comment, and so is a
  trailing `# ...` after a quoted value.  Blank lines are ignored.
* Booleans are TRUE/FALSE, yes/no, on/off or 1/0, in any case.  Numbers are
  decimal or `0x` hexadecimal.
* A key given twice: the later value wins, with a warning.
* Malformed lines and bad values are errors located by line and column (the
  column of the key, or of the value's first character -- its opening quote
  when quoted).  Every error in the file is collected before `VmxError` is
  raised.  Unknown keys are warnings, except the ordinary keys VMware writes
  into every `.vmx` (`ACCEPTED_KEY_PATTERNS`), which are accepted silently.

`vprobe.allow` is not a VM setting: it belongs to the host-wide configuration
(`/etc/vmware/config`), which `host_allows_vprobes` reads in the same syntax.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vp_runtime.errors import Diagnostic, DiagnosticsError

from .guest.profile import GUEST_NAMES
from .guest.programs import WORKLOADS as GUEST_WORKLOADS
from vp_runtime.limits import (DEFAULT_BAG_BYTES, DEFAULT_MAX_CALLS_PER_FIRING, DEFAULT_MAX_CODE_BYTES,
                               DEFAULT_MAX_OPS_PER_FIRING, MAX_CODE_BYTES_LIMIT, LoadConfig)

__all__ = [
    "ACCEPTED_KEY_PATTERNS", "DEFAULT_HOST_CONFIG", "KNOWN_KEYS", "VMConfig", "VProbesDisabled", "VmxError",
    "WORKLOADS", "HV_VENDORS", "GUEST_NAMES", "CHARGES", "CHARGE_MODEL", "CHARGE_HOST", "CHARGE_OFF",
    "check_enabled", "default_config", "guest_os_supported", "host_allows_vprobes", "parse_vmx", "read_vmx",
    "VMSettings",
]

DEFAULT_HOST_CONFIG = Path("/etc/vmware/config")

WORKLOADS = tuple(GUEST_WORKLOADS)
HV_VENDORS = ("intel", "amd")
# How the time probes take reaches the guest's clocks (vprobe.chargeProbeTime, vprobe --charge):
# a modelled cost per VP operation executed (deterministic), the host time the runtime took, or nothing.
CHARGE_MODEL, CHARGE_HOST, CHARGE_OFF = "model", "host", "off"
CHARGES = (CHARGE_MODEL, CHARGE_HOST, CHARGE_OFF)
_USUAL_GUEST_OS = {"linux": "other26xlinux-64", "windows": "windows7srv-64"}  # a guest's guestOS if not given

# Guest OS identifiers of 64-bit Linux guests that do not contain "linux"
# (VMware's guestOS values for distributions).
_LINUX_DISTRIBUTIONS = (
    "ubuntu", "debian", "rhel", "centos", "fedora", "sles", "opensuse", "suse", "mandriva", "mandrake",
    "turbolinux", "asianux", "coreos", "vmware-photon", "photon", "amazonlinux", "almalinux", "rockylinux",
    "oraclelinux", "redhat",
)

# Ordinary VMware keys a .vmx may hold that the simulated machine has no use
# for: accepted without a warning.  Matched against the lower-cased key.
ACCEPTED_KEY_PATTERNS = (
    ".encoding", "config.version", "virtualhw.version", "virtualhw.productcompatibility",
    "ethernet*", "ide*", "scsi*", "sata*", "nvme*", "floppy*", "sound.*", "usb*", "ehci*",
    "pcibridge*", "vmci*", "uuid.*", "extendedconfigfile", "nvram", "tools.*", "toolsinstallmanager.*",
    "isolation.*", "svga.*", "cpuid.*", "monitor.*", "monitor_control.*", "mks.*", "checkpoint.*",
    "vc.uuid", "annotation", "serial*", "parallel*", "powertype.*", "firmware", "hpet*", "bios.*",
    "efi.*", "uefi.*", "acpi.*", "vhv.enable", "vpmc.enable", "vvtd.enable", "numa.*", "softpoweroff",
    "cleanshutdown", "replay.*", "msg.*", "vmotion.*", "migrate.*", "sched.*", "guestos.detailed.data",
    "guestinfo.*", "vmxstats.*", "gui.*", "pref.*", "remotedisplay.*", "sharedfolder*", "hgfs.*",
    "unity.*", "vm.genid", "vm.genidx", "mem.hotadd", "vcpu.hotadd", "snapshot.*", "suspend.*",
    "workingdir", "vtpm.*", "managedvm.*", "policy.*", "keyboardandmouseprofile", "sensor.*",
    "pcipassthru*", "featmask.*", "log.*", "logging", "answer.*", "vmx.*", "disk.*", "priority.*",
)

_INT = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)\Z")
_ESCAPE = re.compile(r"\|([0-9a-fA-F]{2})")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


# ---------------------------------------------------------------------------
# Errors.

class VmxError(DiagnosticsError):
    """A configuration file failed to parse; `diagnostics` says where and why (errors first)."""


class VProbesDisabled(Exception):
    """VProbes may not be used on this VM (or on this host)."""


# ---------------------------------------------------------------------------
# The configuration.

@dataclass(frozen=True, kw_only=True)
class VMSettings:
    """What the `.vmx` of any VM, simulated or under QEMU, says: where the VM is, its name and
    the vprobe.* settings (Table 3-2) with the script limits they set."""

    path: Path | None  # the .vmx file, None for the embedded default machine
    directory: Path  # the VM's directory: the .vmx's folder (cwd for the default machine)
    display_name: str
    vprobe_enable: bool = False
    vp_file: Path | None = None
    out_file: Path = None  # type: ignore[assignment]  # None means directory / "vprobe.out"
    guest_syms: Path | None = None
    syscalls: Path | None = None
    max_code_bytes: int = DEFAULT_MAX_CODE_BYTES
    bag_bytes: int = DEFAULT_BAG_BYTES
    max_ops_per_firing: int = DEFAULT_MAX_OPS_PER_FIRING
    max_calls_per_firing: int = DEFAULT_MAX_CALLS_PER_FIRING
    warnings: tuple[Diagnostic, ...] = ()

    def __post_init__(self):
        if self.out_file is None:
            object.__setattr__(self, "out_file", self.directory / "vprobe.out")

    def load_config(self) -> LoadConfig:
        """The settings a script loads under on this VM: its vprobe.* limits as the runtime takes them."""
        return LoadConfig(max_code_bytes=self.max_code_bytes, bag_bytes=self.bag_bytes,
                          max_ops_per_firing=self.max_ops_per_firing,
                          max_calls_per_firing=self.max_calls_per_firing, count_operations=self.charges_operations)

    @property
    def charges_operations(self) -> bool:
        """Whether the machine charges probes a modelled cost (per VP operation executed)."""
        return False


@dataclass(frozen=True, kw_only=True)
class VMConfig(VMSettings):
    """A simulated VM's settings, from its `.vmx` (or the embedded default machine's)."""

    numvcpus: int = 2
    memsize_mb: int = 1024
    guest_os: str = "other26xlinux-64"
    guest: str = "linux"  # the guest OS model the simulated machine boots (machine.simulated.GUEST_PROFILES)
    workload: str = "default"
    seed: int = 1
    tsc_hz: int = 2_593_119_000
    timer_hz: int = 250
    hv_vendor: str = "intel"
    charge_probe_time: str = CHARGE_MODEL  # one of CHARGES

    @property
    def charges_operations(self) -> bool:
        return self.charge_probe_time == CHARGE_MODEL


def default_config(directory: Path | None = None) -> VMConfig:
    """The embedded default machine: 2 VCPUs, 1 GB, 64-bit Linux, VProbes enabled."""
    directory = Path(directory) if directory is not None else Path.cwd()
    return VMConfig(path=None, directory=directory, display_name="default", vprobe_enable=True)


def guest_os_supported(name: str) -> bool:
    """Whether `name` (a guestOS value) is a 64-bit Linux or Windows guest the machine can model."""
    return guest_for_os(name) is not None


def guest_for_os(name: str) -> str | None:
    """The guest model (`sim.guest`) of a guestOS value: "linux" for a 64-bit Linux, "windows" for a
    64-bit Windows (windows7srv-64, winnetenterprise-64...); None for anything else."""
    name = name.lower()
    if "64" not in name:
        return None
    if "linux" in name or name.startswith(_LINUX_DISTRIBUTIONS):
        return "linux"
    return "windows" if name.startswith(("win", "longhorn")) else None


# ---------------------------------------------------------------------------
# The key = "value" syntax.

@dataclass
class _Entry:
    key: str  # as spelled in the file
    value: str  # unquoted, |XX escapes decoded
    line: int
    key_col: int
    value_col: int
    source: str


class _Problem(Exception):
    """A bad value; the caller locates it."""


class _Parser:
    def __init__(self, text: str, filename: str):
        self.filename = filename
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.entries: list[_Entry] = []
        self._scan(text)

    def error(self, line: int, col: int, message: str, source: str) -> None:
        self.errors.append(Diagnostic(self.filename, line, col, message, source))

    def warning(self, line: int, col: int, message: str, source: str) -> None:
        self.warnings.append(Diagnostic(self.filename, line, col, message, source, severity="warning"))

    def _scan(self, text: str) -> None:
        if text.startswith("\ufeff"):
            text = text[1:]
        for number, raw in enumerate(text.split("\n"), start=1):
            line = raw[:-1] if raw.endswith("\r") else raw
            entry = self._scan_line(line, number)
            if entry is not None:
                self.entries.append(entry)

    def _scan_line(self, line: str, number: int) -> _Entry | None:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            return None
        first = len(line) - len(line.lstrip())
        eq = line.find("=")
        if eq < 0:
            self.error(number, first + 1, f"expected 'key = \"value\"' but found no '=' in '{stripped}'", line)
            return None
        key = line[:eq].strip()
        if not key:
            self.error(number, eq + 1, "missing key before '='", line)
            return None
        key_col = first + 1
        if any(ch.isspace() or ch == '"' for ch in key):
            self.error(number, key_col, f"invalid key '{key}': a key cannot contain spaces or quotes", line)
            return None
        start = eq + 1
        while start < len(line) and line[start].isspace():
            start += 1
        if start < len(line) and line[start] == '"':
            close = line.find('"', start + 1)
            if close < 0:
                self.error(number, start + 1, f"unterminated string for {key}: missing the closing '\"'", line)
                return None
            value = line[start + 1:close]
            rest = line[close + 1:]
            extra = rest.lstrip()
            if extra and not extra.startswith("#"):
                col = close + 2 + (len(rest) - len(extra))
                self.error(number, col, f"unexpected text after the quoted value of {key}: '{extra.rstrip()}'", line)
                return None
        else:
            value = line[start:]
            hash_at = value.find("#")
            if hash_at >= 0:
                value = value[:hash_at]
            value = value.rstrip()
            quote = value.find('"')
            if quote >= 0:
                self.error(number, start + quote + 1, f"stray '\"' in the unquoted value of {key}", line)
                return None
        value = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)
        return _Entry(key, value, number, key_col, start + 1, line)

    def effective(self) -> dict[str, _Entry]:
        """The entries by lower-cased key, later ones overriding earlier ones (with a warning)."""
        seen: dict[str, _Entry] = {}
        for entry in self.entries:
            lower = entry.key.lower()
            earlier = seen.get(lower)
            if earlier is not None:
                self.warning(entry.line, entry.key_col,
                             f"{entry.key} is set again; this value overrides the one on line {earlier.line}",
                             entry.source)
            seen[lower] = entry
        return seen


# ---------------------------------------------------------------------------
# Values.

def _boolean(value: str, key: str) -> bool:
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise _Problem(f"invalid boolean '{value}' for {key} (expected TRUE or FALSE)")


def _integer(value: str, key: str) -> int:
    text = value.strip()
    if not _INT.match(text):
        raise _Problem(f"invalid number '{value}' for {key}")
    return int(text, 16) if "x" in text.lower() else int(text, 10)


def _ranged(low: int, high: int | None, unit: str = "") -> Callable[[str, str, "_Context"], int]:
    def convert(value: str, key: str, ctx: "_Context") -> int:
        number = _integer(value, key)
        if number < low or (high is not None and number > high):
            span = f"{low}..{high}" if high is not None else f"at least {low}"
            raise _Problem(f"{key} {number}{unit} is out of range ({span})")
        return number
    return convert


def _max_code_bytes(value: str, key: str, ctx: "_Context") -> int:
    number = _integer(value, key)
    if number > MAX_CODE_BYTES_LIMIT:
        raise _Problem(f"{key} {number} exceeds the 64 KiB maximum of the translation cache "
                       f"({MAX_CODE_BYTES_LIMIT} bytes)")
    if number < 1:
        raise _Problem(f"{key} {number} is out of range (1..{MAX_CODE_BYTES_LIMIT})")
    return number


def _bag_bytes(value: str, key: str, ctx: "_Context") -> int:
    number = _integer(value, key)
    if number < 0:
        raise _Problem(f"{key} must not be negative (got {number})")
    return number


def _flag(value: str, key: str, ctx: "_Context") -> bool:
    return _boolean(value, key)


def _charge(value: str, key: str, ctx: "_Context") -> str:
    """model, host, or a boolean: FALSE charges nothing, TRUE the default (model)."""
    word = value.strip().lower()
    if word in CHARGES:
        return word
    try:
        return CHARGE_MODEL if _boolean(value, key) else CHARGE_OFF
    except _Problem:
        raise _Problem(f"invalid {key} '{value}' (expected model, host or FALSE)") from None


def _choice(choices: tuple[str, ...]) -> Callable[[str, str, "_Context"], str]:
    def convert(value: str, key: str, ctx: "_Context") -> str:
        word = value.strip().lower()
        if word not in choices:
            raise _Problem(f"unknown {key} '{value}' (expected one of: {', '.join(choices)})")
        return word
    return convert


def _guest_os(value: str, key: str, ctx: "_Context") -> str:
    name = value.strip()
    if not guest_os_supported(name):
        raise _Problem(f"guest OS profile '{name}' is not supported (supported: 64-bit Linux guests, "
                       f"such as other26xlinux-64, other5xlinux-64, ubuntu-64, rhel9-64, debian12-64, and "
                       f"64-bit Windows guests, such as windows7srv-64, windows7-64, winnetenterprise-64)")
    return name.lower()


def _text(value: str, key: str, ctx: "_Context") -> str:
    return value


def _existing_file(value: str, key: str, ctx: "_Context") -> Path | None:
    if not value.strip():
        return None
    path = ctx.resolve(value.strip())
    if not path.exists():
        raise _Problem(f"{key}: file '{value.strip()}' does not exist (looked for {path})")
    if not path.is_file():
        raise _Problem(f"{key}: '{value.strip()}' is not a file ({path})")
    return path


def _syscalls_file(value: str, key: str, ctx: "_Context") -> Path | None:
    """An existing file of system call names (`syscall_names`), checked when the .vmx is read."""
    from .syscall_names import SyscallsFileError, read_syscalls_file

    path = _existing_file(value, key, ctx)
    if path is not None:
        try:
            read_syscalls_file(path)
        except SyscallsFileError as e:
            raise _Problem(f"{key}: {e}") from None
    return path


def _output_file(value: str, key: str, ctx: "_Context") -> Path | None:
    if not value.strip():
        return None
    path = ctx.resolve(value.strip())
    if path.is_dir():
        raise _Problem(f"{key}: '{value.strip()}' is a directory, not a file ({path})")
    return path


@dataclass
class _Context:
    directory: Path

    def resolve(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.directory / path


# lower-cased key -> (canonical spelling, VMConfig field, converter)
KNOWN_KEYS: dict[str, tuple[str, str, Callable[[str, str, _Context], object]]] = {
    key.lower(): (key, name, convert)
    for key, name, convert in (
        ("displayName", "display_name", _text),
        ("numvcpus", "numvcpus", _ranged(1, 64)),
        ("memsize", "memsize_mb", _ranged(16, 1_048_576, " MB")),
        ("guestOS", "guest_os", _guest_os),
        ("sim.guest", "guest", _choice(GUEST_NAMES)),
        ("sim.workload", "workload", _choice(WORKLOADS)),
        ("sim.seed", "seed", _ranged(0, 2**64 - 1)),
        ("sim.tscHz", "tsc_hz", _ranged(1_000_000, 100_000_000_000, " Hz")),
        ("sim.timerHz", "timer_hz", _ranged(1, 10_000, " Hz")),
        ("sim.hvVendor", "hv_vendor", _choice(HV_VENDORS)),
        ("vprobe.enable", "vprobe_enable", _flag),
        ("vprobe.vpFile", "vp_file", _existing_file),
        ("vprobe.outFile", "out_file", _output_file),
        ("vprobe.guestSyms", "guest_syms", _existing_file),
        # System call numbers' names for the tools (machine/syscall_names.py).
        ("vprobe.syscalls", "syscalls", _syscalls_file),
        ("vprobe.maxCodeBytes", "max_code_bytes", _max_code_bytes),
        ("vprobe.bagBytes", "bag_bytes", _bag_bytes),
        # The most VP operations one firing may execute by its bound at load (default 1,000,000).
        ("vprobe.maxOpsPerFiring", "max_ops_per_firing", _ranged(1, None)),
        # The most calls of recursive functions one firing may make (default 10,000).
        ("vprobe.maxCallsPerFiring", "max_calls_per_firing", _ranged(1, None)),
        # The time probes take, charged to the guest's clocks: model (default), host or FALSE.
        ("vprobe.chargeProbeTime", "charge_probe_time", _charge),
    )
}


def _accepted(lower: str) -> bool:
    return any(fnmatch.fnmatchcase(lower, pattern) for pattern in ACCEPTED_KEY_PATTERNS)


def _unknown_key_message(key: str, keys: dict) -> str:
    lower = key.lower()
    if lower == "vprobe.allow":
        return (f"{key} is a host-wide setting and has no effect in a VM's .vmx: "
                f"set it in the host configuration ({DEFAULT_HOST_CONFIG})")
    message = f"unknown key {key} (ignored)"
    close = difflib.get_close_matches(lower, list(keys), n=1, cutoff=0.8)
    if close:
        message += f"; did you mean {keys[close[0]][0]}?"
    return message


# ---------------------------------------------------------------------------
# Reading .vmx files.

def read_settings(text: str, path: Path | str, keys: dict, quiet: frozenset[str] = frozenset()):
    """Parse `text` against the key table `keys` (lower-case key -> (spelling, field, converter)).

    Returns (parser, values by field, absolute path).  Unknown keys warn unless
    they are ordinary VMware keys or in `quiet`; bad values are located errors,
    collected in `parser.errors`.
    """
    filename = str(path)
    path = Path(path).absolute()
    parser = _Parser(text, filename)
    ctx = _Context(path.parent)
    values: dict[str, object] = {}
    effective = parser.effective()
    for entry in parser.entries:
        lower = entry.key.lower()
        known = keys.get(lower)
        if known is None:
            if lower not in quiet and not _accepted(lower) and effective[lower] is entry:
                parser.warning(entry.line, entry.key_col, _unknown_key_message(entry.key, keys), entry.source)
            continue
        _, name, convert = known
        try:
            result = convert(entry.value, entry.key, ctx)
        except _Problem as problem:
            parser.error(entry.line, entry.value_col, str(problem), entry.source)
            continue
        if effective[lower] is entry:
            values[name] = result
    return parser, values, path


def build_config(config_class, parser: "_Parser", values: dict, path: Path):
    """`config_class` from parsed settings, or VmxError with every problem found."""
    if parser.errors:
        raise VmxError(_ordered(parser.errors) + _ordered(parser.warnings))
    display_name = values.pop("display_name", None) or path.stem
    return config_class(path=path, directory=path.parent, display_name=str(display_name),
                        warnings=tuple(_ordered(parser.warnings)), **values)


def parse_vmx(text: str, path: Path | str) -> VMConfig:
    """The VM `text` describes; `path` is the .vmx it came from (its folder is the VM's directory)."""
    parser, values, path = read_settings(text, path, KNOWN_KEYS)
    _choose_guest(parser, values)
    return build_config(VMConfig, parser, values, path)


def _choose_guest(parser: "_Parser", values: dict) -> None:
    """The guest model follows guestOS unless sim.guest names it; the two must agree.  A VM with
    sim.guest and no guestOS gets the guest's usual guestOS."""
    os_guest = guest_for_os(values["guest_os"]) if "guest_os" in values else None
    if "guest" not in values:
        if os_guest is not None:
            values["guest"] = os_guest
        return
    if "guest_os" not in values:
        values["guest_os"] = _USUAL_GUEST_OS[values["guest"]]
    elif os_guest != values["guest"]:
        entry = parser.effective()["sim.guest"]
        parser.error(entry.line, entry.value_col, f"sim.guest is '{values['guest']}' but guestOS "
                     f"'{values['guest_os']}' is a {os_guest.capitalize()} guest: make them agree", entry.source)


def read_vmx(path: Path | str) -> VMConfig:
    """Read and parse the .vmx at `path`."""
    return parse_vmx(_read_text(path), path)


def _read_text(path: Path | str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise VmxError([Diagnostic(str(path), 1, 1, f"cannot read {path}: {reason}")]) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise VmxError([Diagnostic(str(path), line, col,
                                   f"cannot read {path}: not UTF-8 text (byte {data[exc.start]:#04x})")]) from None


def _ordered(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(diagnostics, key=lambda d: (d.line, d.col))


# ---------------------------------------------------------------------------
# Whether VProbes may run.

def host_allows_vprobes(host_config: Path | str | None = None) -> tuple[bool, str]:
    """Whether the host-wide configuration allows VProbes, and why.

    `host_config` defaults to /etc/vmware/config.  A missing default file
    allows VProbes (no administrator has said otherwise), and so does a file
    without `vprobe.allow`; a missing file named explicitly is a `VmxError`,
    and so is a malformed file.  Only `vprobe.allow = "FALSE"` denies.
    """
    explicit = host_config is not None
    path = Path(host_config) if explicit else DEFAULT_HOST_CONFIG
    if not explicit and not os.path.lexists(path):
        return True, f"VProbes are allowed on this host: there is no host configuration at {path}"
    parser = _Parser(_read_text(path), str(path))
    entry = parser.effective().get("vprobe.allow")
    allowed = None
    if entry is not None:
        try:
            allowed = _boolean(entry.value, entry.key)
        except _Problem as problem:
            parser.error(entry.line, entry.value_col, str(problem), entry.source)
    if parser.errors:
        raise VmxError(_ordered(parser.errors) + _ordered(parser.warnings))
    if allowed is None:
        return True, f"VProbes are allowed on this host: {path} does not set vprobe.allow"
    if allowed:
        return True, f"VProbes are allowed on this host: vprobe.allow is TRUE in {path}"
    return False, f"VProbes are not allowed on this host: vprobe.allow is FALSE in {path}"


def check_enabled(config: VMConfig) -> None:
    """Raise `VProbesDisabled` unless the VM's configuration enables VProbes."""
    if config.vprobe_enable:
        return
    where = config.path if config.path is not None else "the VM's .vmx file"
    raise VProbesDisabled(f'VProbes are not enabled for this VM: add vprobe.enable = "TRUE" to {where}')
