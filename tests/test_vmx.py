"""Tests for machine.vmx: VMware .vmx files and the host configuration -> VMConfig."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from machine import vmx
from machine.vmx import (
    VMConfig, VmxError, VProbesDisabled, check_enabled, default_config, host_allows_vprobes, parse_vmx, read_vmx,
)
from vp_runtime import LoadConfig
from vp_runtime.errors import Diagnostic
from vp_runtime.limits import DEFAULT_BAG_BYTES, DEFAULT_MAX_CODE_BYTES


def write(tmp_path: Path, text: str, name: str = "vm.vmx") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, name: str = "vm.vmx") -> VMConfig:
    return read_vmx(write(tmp_path, text, name))


def errors(tmp_path: Path, text: str) -> list[Diagnostic]:
    with pytest.raises(VmxError) as info:
        load(tmp_path, text)
    return [d for d in info.value.diagnostics if d.severity == "error"]


def one_error(tmp_path: Path, text: str) -> Diagnostic:
    found = errors(tmp_path, text)
    assert len(found) == 1, found
    return found[0]


def where(d: Diagnostic) -> tuple[int, int]:
    return d.line, d.col


# ---------------------------------------------------------------------------
# Defaults.

def test_an_empty_vmx_gives_every_default(tmp_path):
    path = write(tmp_path, "")
    c = read_vmx(path)
    assert c.path == path.absolute()
    assert c.directory == tmp_path
    assert c.display_name == "vm"  # the .vmx's name when displayName is absent
    assert (c.numvcpus, c.memsize_mb, c.guest_os) == (2, 1024, "other26xlinux-64")
    assert (c.workload, c.seed, c.tsc_hz, c.timer_hz, c.hv_vendor) == ("default", 1, 2_593_119_000, 250, "intel")
    assert c.vprobe_enable is False  # VMware's default is off
    assert (c.vp_file, c.guest_syms, c.syscalls) == (None, None, None)
    assert c.out_file == tmp_path / "vprobe.out"
    assert (c.max_code_bytes, c.bag_bytes) == (DEFAULT_MAX_CODE_BYTES, DEFAULT_BAG_BYTES)
    assert c.charge_probe_time == "model"  # probes are charged a modelled cost per VP operation
    assert c.warnings == ()


def test_comments_and_blank_lines_only_give_defaults(tmp_path):
    c = load(tmp_path, "# a comment\n\n   \n\t# indented comment\n")
    assert c == dataclasses.replace(load(tmp_path, "", "other.vmx"), path=c.path, display_name="vm")


def test_a_relative_path_is_made_absolute(tmp_path, monkeypatch):
    write(tmp_path, 'numvcpus = "1"\n')
    monkeypatch.chdir(tmp_path)
    c = read_vmx("vm.vmx")
    assert c.path == tmp_path / "vm.vmx"
    assert c.directory == tmp_path
    assert c.out_file == tmp_path / "vprobe.out"


def test_vmconfig_is_frozen(tmp_path):
    c = load(tmp_path, "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.numvcpus = 4  # type: ignore[misc]


# ---------------------------------------------------------------------------
# Every key.

@pytest.mark.parametrize("line, field, expected", [
    ('displayName = "web server 01"', "display_name", "web server 01"),
    ('numvcpus = "4"', "numvcpus", 4),
    ('numvcpus = "1"', "numvcpus", 1),
    ('numvcpus = "64"', "numvcpus", 64),
    ('memsize = "4096"', "memsize_mb", 4096),
    ('memsize = "16"', "memsize_mb", 16),
    ('memsize = "1048576"', "memsize_mb", 1048576),
    ('guestOS = "other5xlinux-64"', "guest_os", "other5xlinux-64"),
    ('guestOS = "ubuntu-64"', "guest_os", "ubuntu-64"),
    ('guestOS = "RHEL9-64"', "guest_os", "rhel9-64"),
    ('sim.workload = "idle"', "workload", "idle"),
    ('sim.workload = "io"', "workload", "io"),
    ('sim.workload = "triplefault"', "workload", "triplefault"),
    ('sim.workload = "IO"', "workload", "io"),
    ('sim.seed = "42"', "seed", 42),
    ('sim.seed = "0"', "seed", 0),
    ('sim.tscHz = "3000000000"', "tsc_hz", 3_000_000_000),
    ('sim.timerHz = "1000"', "timer_hz", 1000),
    ('sim.hvVendor = "amd"', "hv_vendor", "amd"),
    ('sim.hvVendor = "Intel"', "hv_vendor", "intel"),
    ('vprobe.enable = "TRUE"', "vprobe_enable", True),
    ('vprobe.enable = "FALSE"', "vprobe_enable", False),
    ('vprobe.maxCodeBytes = "65536"', "max_code_bytes", 65536),
    ('vprobe.maxCodeBytes = "1"', "max_code_bytes", 1),
    ('vprobe.bagBytes = "0"', "bag_bytes", 0),
    ('vprobe.bagBytes = "1048576"', "bag_bytes", 1048576),
    ('vprobe.chargeProbeTime = "FALSE"', "charge_probe_time", "off"),
    ('vprobe.chargeProbeTime = "model"', "charge_probe_time", "model"),
    ('vprobe.chargeProbeTime = "Host"', "charge_probe_time", "host"),
    ('vprobe.chargeProbeTime = "off"', "charge_probe_time", "off"),
    ('vprobe.chargeProbeTime = "TRUE"', "charge_probe_time", "model"),
])
def test_each_key_sets_its_field(tmp_path, line, field, expected):
    c = load(tmp_path, line + "\n")
    assert getattr(c, field) == expected
    assert c.warnings == ()


def test_referenced_files_resolve_against_the_vm_directory(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "trace.vp").write_text("(vprobe VMM1Hz (printf \"hi\\n\"))\n")
    (tmp_path / "kallsyms").write_text("ffffffff81000000 T _text\n")
    (tmp_path / "syscalls.txt").write_text("0 read\n")
    c = load(tmp_path, 'vprobe.vpFile = "scripts/trace.vp"\n'
                       'vprobe.guestSyms = "kallsyms"\n'
                       'vprobe.syscalls = "syscalls.txt"\n'
                       'vprobe.outFile = "logs/probe.log"\n')
    assert c.vp_file == tmp_path / "scripts" / "trace.vp"
    assert c.guest_syms == tmp_path / "kallsyms"
    assert c.syscalls == tmp_path / "syscalls.txt"
    assert c.out_file == tmp_path / "logs" / "probe.log"


def test_absolute_referenced_paths_are_kept(tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    syms = other / "System.map"
    syms.write_text("")
    vm_dir = tmp_path / "vm"
    vm_dir.mkdir()
    c = load(vm_dir, f'vprobe.guestSyms = "{syms}"\nvprobe.outFile = "{other / "out.txt"}"\n')
    assert c.guest_syms == syms
    assert c.out_file == other / "out.txt"


def test_empty_path_values_mean_unset(tmp_path):
    c = load(tmp_path, 'vprobe.vpFile = ""\nvprobe.guestSyms = ""\nvprobe.syscalls = ""\nvprobe.outFile = ""\n')
    assert (c.vp_file, c.guest_syms, c.syscalls) == (None, None, None)
    assert c.out_file == tmp_path / "vprobe.out"


@pytest.mark.parametrize("key", ["vprobe.vpFile", "vprobe.guestSyms", "vprobe.syscalls"])
def test_a_missing_referenced_file_is_a_located_error(tmp_path, key):
    d = one_error(tmp_path, f'numvcpus = "2"\n{key} = "nope.txt"\n')
    assert where(d) == (2, len(key) + 4)
    assert d.message.startswith(f"{key}: file 'nope.txt' does not exist")
    assert str(tmp_path / "nope.txt") in d.message


def test_a_referenced_directory_is_not_a_file(tmp_path):
    (tmp_path / "syms").mkdir()
    d = one_error(tmp_path, 'vprobe.guestSyms = "syms"\n')
    assert where(d) == (1, 20)
    assert "is not a file" in d.message


def test_out_file_may_not_be_a_directory(tmp_path):
    (tmp_path / "logs").mkdir()
    d = one_error(tmp_path, 'vprobe.outFile = "logs"\n')
    assert where(d) == (1, 18)
    assert "is a directory" in d.message


def test_load_config_carries_the_vprobe_limits(tmp_path):
    c = load(tmp_path, 'vprobe.maxCodeBytes = "65536"\nvprobe.bagBytes = "4096"\n')
    # The modelled charge (the default) has the script count the operations it executes.
    assert c.load_config() == LoadConfig(max_code_bytes=65536, bag_bytes=4096, count_operations=True)
    assert load(tmp_path, "", "b.vmx").load_config() == LoadConfig(count_operations=True)
    off = load(tmp_path, 'vprobe.chargeProbeTime = "FALSE"\n', "c.vmx")
    assert off.load_config() == LoadConfig()


def test_the_work_limits_of_a_firing(tmp_path):
    c = load(tmp_path, 'vprobe.maxOpsPerFiring = "5000"\nvprobe.maxCallsPerFiring = "0x100"\n')
    assert c.load_config() == LoadConfig(max_ops_per_firing=5000, max_calls_per_firing=256, count_operations=True)
    d = one_error(tmp_path, 'vprobe.maxCallsPerFiring = "0"\n')
    assert where(d) == (1, 28) and "vprobe.maxCallsPerFiring 0 is out of range (at least 1)" in d.message
    d = one_error(tmp_path, 'vprobe.maxOpsPerFiring = "lots"\n')
    assert "invalid number 'lots' for vprobe.maxOpsPerFiring" in d.message


# ---------------------------------------------------------------------------
# Syntax: case, comments, quoting.

def test_keys_are_case_insensitive(tmp_path):
    c = load(tmp_path, 'NUMVCPUS = "8"\nMemSize = "2048"\nGUESTOS = "otherlinux-64"\n'
                       'VProbe.Enable = "true"\nSIM.HVVENDOR = "AMD"\nDISPLAYNAME = "x"\n')
    assert (c.numvcpus, c.memsize_mb, c.guest_os, c.vprobe_enable, c.hv_vendor, c.display_name) == \
        (8, 2048, "otherlinux-64", True, "amd", "x")
    assert c.warnings == ()


def test_messages_keep_the_files_spelling_of_a_key(tmp_path):
    d = one_error(tmp_path, 'NumVCPUs = "many"\n')
    assert d.message == "invalid number 'many' for NumVCPUs"
    c = load(tmp_path, 'Foo.BarBaz = "1"\n', "w.vmx")
    assert c.warnings[0].message == "unknown key Foo.BarBaz (ignored)"


def test_trailing_comments(tmp_path):
    c = load(tmp_path, 'numvcpus = "4" # four of them\nmemsize = 512   # unquoted, then a comment\n'
                       'displayName = "vm #1"#tight\n')
    assert (c.numvcpus, c.memsize_mb) == (4, 512)
    assert c.display_name == "vm #1"  # a '#' inside quotes is part of the value


def test_whitespace_around_equals_is_optional(tmp_path):
    c = load(tmp_path, 'numvcpus="4"\nmemsize   =   "512"\n\tsim.seed\t=\t"7"\t\n  sim.timerHz= "100"\n')
    assert (c.numvcpus, c.memsize_mb, c.seed, c.timer_hz) == (4, 512, 7, 100)


def test_unquoted_values_are_accepted(tmp_path):
    c = load(tmp_path, "numvcpus = 4\nvprobe.enable = TRUE\ndisplayName = my vm\nsim.workload = io\n")
    assert (c.numvcpus, c.vprobe_enable, c.display_name, c.workload) == (4, True, "my vm", "io")


def test_quoted_values_keep_inner_spaces_and_backslashes(tmp_path):
    c = load(tmp_path, 'displayName = "  C:\\VMs\\web  "\n')
    assert c.display_name == "  C:\\VMs\\web  "


def test_vmware_bar_escapes_are_decoded(tmp_path):
    c = load(tmp_path, 'displayName = "say |22hi|22 |7C a|23b |zz"\n')
    assert c.display_name == 'say "hi" | a#b |zz'


def test_an_empty_display_name_falls_back_to_the_file_name(tmp_path):
    assert load(tmp_path, 'displayName = ""\n', "web01.vmx").display_name == "web01"


def test_crlf_line_endings_and_a_bom(tmp_path):
    path = tmp_path / "win.vmx"
    path.write_bytes('\ufeff.encoding = "windows-1252"\r\nnumvcpus = "3"\r\nmemsize = "768"\r\n'.encode("utf-8"))
    c = read_vmx(path)
    assert (c.numvcpus, c.memsize_mb, c.warnings) == (3, 768, ())


def test_numbers_may_be_hexadecimal_or_zero_padded(tmp_path):
    c = load(tmp_path, 'memsize = "0x800"\nnumvcpus = "08"\nsim.seed = " 12 "\n')
    assert (c.memsize_mb, c.numvcpus, c.seed) == (2048, 8, 12)


# ---------------------------------------------------------------------------
# Booleans.

@pytest.mark.parametrize("word, value", [
    ("TRUE", True), ("true", True), ("True", True), ("yes", True), ("YES", True), ("1", True),
    ("on", True), ("On", True),
    ("FALSE", False), ("false", False), ("no", False), ("No", False), ("0", False), ("off", False), ("OFF", False),
])
def test_booleans(tmp_path, word, value):
    c = load(tmp_path, f'vprobe.enable = "{word}"\n')
    assert c.vprobe_enable is value


@pytest.mark.parametrize("word", ["maybe", "", "2", "ture", "T"])
def test_a_bad_boolean_is_a_located_error(tmp_path, word):
    d = one_error(tmp_path, f'numvcpus = "2"\n  vprobe.enable = "{word}"\n')
    assert where(d) == (2, 19)
    assert d.message == f"invalid boolean '{word}' for vprobe.enable (expected TRUE or FALSE)"
    assert d.source_line == f'  vprobe.enable = "{word}"'


@pytest.mark.parametrize("word, value", [("FALSE", "off"), ("no", "off"), ("0", "off"), ("TRUE", "model"),
                                         ("yes", "model"), ("MODEL", "model"), ("host", "host")])
def test_the_probe_time_charge_is_a_mode_or_a_boolean(tmp_path, word, value):
    assert load(tmp_path, f'vprobe.chargeProbeTime = "{word}"\n').charge_probe_time == value


def test_a_bad_probe_time_charge_is_a_located_error(tmp_path):
    d = one_error(tmp_path, 'vprobe.chargeProbeTime = "guest"\n')
    assert where(d) == (1, 26)
    assert d.message == "invalid vprobe.chargeProbeTime 'guest' (expected model, host or FALSE)"


# ---------------------------------------------------------------------------
# Duplicates.

def test_a_later_duplicate_overrides_with_a_warning(tmp_path):
    c = load(tmp_path, 'numvcpus = "2"\nmemsize = "512"\nNumVCPUs = "6"\n')
    assert c.numvcpus == 6
    [w] = c.warnings
    assert (w.severity, w.line, w.col) == ("warning", 3, 1)
    assert w.message == "NumVCPUs is set again; this value overrides the one on line 1"


def test_the_last_of_several_duplicates_wins(tmp_path):
    c = load(tmp_path, 'vprobe.enable = "TRUE"\nvprobe.enable = "FALSE"\nvprobe.enable = "TRUE"\n'
                       'vprobe.outFile = "a.out"\nvprobe.outFile = ""\n')
    assert c.vprobe_enable is True
    assert c.out_file == tmp_path / "vprobe.out"  # the later empty value restores the default
    assert [(w.line, w.message[-9:]) for w in c.warnings] == [(2, "on line 1"), (3, "on line 2"), (5, "on line 4")]


def test_duplicate_ordinary_vmware_keys_also_warn(tmp_path):
    c = load(tmp_path, 'ethernet0.present = "TRUE"\nethernet0.present = "FALSE"\n')
    assert [(w.line, w.severity) for w in c.warnings] == [(2, "warning")]


# ---------------------------------------------------------------------------
# Unknown keys.

def test_an_unknown_key_is_a_located_warning(tmp_path):
    c = load(tmp_path, 'numvcpus = "2"\n   frobnicate.level = "11"\n')
    [w] = c.warnings
    assert (w.severity, w.file, w.line, w.col) == ("warning", str(tmp_path / "vm.vmx"), 2, 4)
    assert w.message == "unknown key frobnicate.level (ignored)"
    assert w.format().startswith(f"{tmp_path / 'vm.vmx'}:2:4: warning: unknown key")


def test_a_misspelt_key_suggests_the_known_one(tmp_path):
    c = load(tmp_path, 'vprobe.enabel = "TRUE"\nsim.workloads = "io"\n')
    assert [w.message for w in c.warnings] == [
        "unknown key vprobe.enabel (ignored); did you mean vprobe.enable?",
        "unknown key sim.workloads (ignored); did you mean sim.workload?",
    ]
    assert c.vprobe_enable is False and c.workload == "default"


def test_vprobe_allow_in_a_vmx_points_at_the_host_configuration(tmp_path):
    c = load(tmp_path, 'vprobe.allow = "TRUE"\n')
    [w] = c.warnings
    assert "host-wide setting" in w.message and "/etc/vmware/config" in w.message


@pytest.mark.parametrize("key", [
    ".encoding", "config.version", "virtualHW.version", "virtualHW.productCompatibility", "ethernet0.virtualDev",
    "ethernet1.addressType", "ide1:0.deviceType", "scsi0:0.fileName", "sata0.present", "nvme0:0.fileName",
    "floppy0.present", "sound.autoDetect", "usb.present", "usb_xhci.present", "ehci.present", "pciBridge4.functions",
    "vmci0.id", "uuid.bios", "extendedConfigFile", "nvram", "tools.syncTime", "tools.upgrade.policy",
    "isolation.tools.hgfs.disable", "svga.vramSize", "cpuid.coresPerSocket", "monitor.phys_bits_used",
    "mks.enable3d", "checkpoint.vmState", "vc.uuid", "annotation", "serial0.fileType", "parallel0.present",
    "powerType.powerOff", "firmware", "hpet0.present", "bios.bootOrder", "vhv.enable", "vpmc.enable",
    "numa.autosize.vcpu.maxPerVirtualNode", "softPowerOff", "cleanShutdown", "replay.supported", "msg.autoAnswer",
    "vmotion.checkpointFBSize", "migrate.hostLog", "sched.cpu.min", "guestInfo.foo", "guestOS.detailed.data",
])
def test_ordinary_vmware_keys_are_accepted_silently(tmp_path, key):
    assert load(tmp_path, f'{key} = "x"\n').warnings == ()


# ---------------------------------------------------------------------------
# Malformed lines, each located.

def test_a_line_without_equals(tmp_path):
    d = one_error(tmp_path, 'numvcpus = "2"\n\n    memsize "512"\n')
    assert where(d) == (3, 5)
    assert d.message == "expected 'key = \"value\"' but found no '=' in 'memsize \"512\"'"
    assert d.source_line == '    memsize "512"'


def test_an_empty_key(tmp_path):
    d = one_error(tmp_path, '  = "512"\n')
    assert where(d) == (1, 3)
    assert d.message == "missing key before '='"


def test_an_unterminated_quote(tmp_path):
    d = one_error(tmp_path, '# header\ndisplayName = "web01\n')
    assert where(d) == (2, 15)
    assert d.message == "unterminated string for displayName: missing the closing '\"'"


def test_text_after_a_quoted_value(tmp_path):
    d = one_error(tmp_path, 'numvcpus = "2"  extra\n')
    assert where(d) == (1, 17)
    assert d.message == "unexpected text after the quoted value of numvcpus: 'extra'"


def test_a_key_with_a_space(tmp_path):
    d = one_error(tmp_path, ' num vcpus = "2"\n')
    assert where(d) == (1, 2)
    assert d.message == "invalid key 'num vcpus': a key cannot contain spaces or quotes"


def test_a_stray_quote_in_an_unquoted_value(tmp_path):
    d = one_error(tmp_path, 'displayName = web"01\n')
    assert where(d) == (1, 18)


@pytest.mark.parametrize("value", ["four", "4.0", "", "0x", "1e3", "4 4", "--4"])
def test_a_bad_number(tmp_path, value):
    d = one_error(tmp_path, f'memsize="{value}"\n')
    assert where(d) == (1, 9)
    assert d.message == f"invalid number '{value}' for memsize"


@pytest.mark.parametrize("line, message", [
    ('numvcpus = "0"', "numvcpus 0 is out of range (1..64)"),
    ('numvcpus = "65"', "numvcpus 65 is out of range (1..64)"),
    ('memsize = "8"', "memsize 8 MB is out of range (16..1048576)"),
    ('memsize = "2097152"', "memsize 2097152 MB is out of range (16..1048576)"),
    ('sim.seed = "-1"', "sim.seed -1 is out of range (0..18446744073709551615)"),
    ('sim.tscHz = "1000"', "sim.tscHz 1000 Hz is out of range (1000000..100000000000)"),
    ('sim.timerHz = "0"', "sim.timerHz 0 Hz is out of range (1..10000)"),
    ('sim.workload = "busy"', "unknown sim.workload 'busy' (expected one of: default, idle, io, faults, triplefault)"),
    ('sim.hvVendor = "via"', "unknown sim.hvVendor 'via' (expected one of: intel, amd)"),
    ('vprobe.bagBytes = "-16"', "vprobe.bagBytes must not be negative (got -16)"),
    ('vprobe.maxCodeBytes = "0"', "vprobe.maxCodeBytes 0 is out of range (1..65536)"),
])
def test_out_of_range_values_are_located_errors(tmp_path, line, message):
    d = one_error(tmp_path, line + "\n")
    assert where(d) == (1, line.index('"') + 1)
    assert d.message == message


def test_max_code_bytes_over_64_kib_names_the_maximum(tmp_path):
    d = one_error(tmp_path, 'vprobe.enable = "TRUE"\nvprobe.maxCodeBytes = "65537"\n')
    assert where(d) == (2, 23)
    assert "64 KiB maximum" in d.message and "65536" in d.message


@pytest.mark.parametrize("guest", ["winxppro", "windows9", "other26xlinux", "darwin19-64", "freebsd-64", "ubuntu"])
def test_an_unsupported_guest_os_is_a_located_error(tmp_path, guest):
    d = one_error(tmp_path, f'guestOS = "{guest}"\n')
    assert where(d) == (1, 11)
    assert d.message.startswith(f"guest OS profile '{guest}' is not supported (supported: ")
    assert "64-bit Linux" in d.message and "64-bit Windows" in d.message


@pytest.mark.parametrize(("guest_os", "guest"), [("windows7srv-64", "windows"), ("windows9-64", "windows"),
                                                 ("winnetenterprise-64", "windows"), ("ubuntu-64", "linux"),
                                                 ("other26xlinux-64", "linux")])
def test_the_guest_model_follows_guestos(tmp_path, guest_os, guest):
    path = tmp_path / "vm.vmx"
    path.write_text(f'guestOS = "{guest_os}"\n')
    assert vmx.read_vmx(path).guest == guest


def test_all_errors_are_collected_in_line_order_before_raising(tmp_path):
    text = ('.encoding = "UTF-8"\n'
            'numvcpus = "many"\n'          # 2: bad number
            'mystery.key = "1"\n'          # 3: unknown key (a warning)
            'no equals sign here\n'        # 4: no '='
            '= "x"\n'                      # 5: empty key
            'displayName = "oops\n'        # 6: unterminated quote
            'vprobe.enable = "perhaps"\n'  # 7: bad boolean
            'vprobe.maxCodeBytes = "99999"\n')  # 8: over 64 KiB
    path = write(tmp_path, text)
    with pytest.raises(VmxError) as info:
        read_vmx(path)
    ds = info.value.diagnostics
    assert [(d.severity, d.line, d.col) for d in ds] == [
        ("error", 2, 12), ("error", 4, 1), ("error", 5, 1), ("error", 6, 15), ("error", 7, 17), ("error", 8, 23),
        ("warning", 3, 1),  # errors first, then warnings
    ]
    assert all(d.file == str(path) for d in ds)
    report = info.value.format()
    assert str(info.value) == report
    assert report.splitlines()[:3] == [f"{path}:2:12: error: invalid number 'many' for numvcpus",
                                       'numvcpus = "many"', "           ^"]


def test_a_bad_value_on_an_overridden_line_is_still_an_error(tmp_path):
    d = one_error(tmp_path, 'numvcpus = "x"\nnumvcpus = "2"\n')
    assert where(d) == (1, 12)


def test_vmx_error_is_an_exception_with_diagnostics():
    d = Diagnostic("a.vmx", 1, 1, "boom")
    warning = Diagnostic("a.vmx", 2, 5, "odd", 'x = "1"', "warning")
    err = VmxError([d, warning])
    assert err.diagnostics == [d, warning]
    assert err.format() == 'a.vmx:1:1: error: boom\na.vmx:2:5: warning: odd\nx = "1"\n    ^'
    assert str(err) == err.format()  # what it says when nothing catches it


# ---------------------------------------------------------------------------
# Reading files.

def test_parse_vmx_takes_text_and_a_path(tmp_path):
    c = parse_vmx('numvcpus = "3"\n', tmp_path / "nowhere" / "x.vmx")
    assert c.numvcpus == 3
    assert c.directory == tmp_path / "nowhere"
    assert c.display_name == "x"


def test_a_missing_vmx_is_an_error_at_line_1(tmp_path):
    path = tmp_path / "absent.vmx"
    with pytest.raises(VmxError) as info:
        read_vmx(path)
    [d] = info.value.diagnostics
    assert (d.file, d.line, d.col, d.severity) == (str(path), 1, 1, "error")
    assert d.message == f"cannot read {path}: No such file or directory"


def test_a_directory_is_not_a_readable_vmx(tmp_path):
    with pytest.raises(VmxError) as info:
        read_vmx(tmp_path)
    assert info.value.diagnostics[0].message.startswith(f"cannot read {tmp_path}: ")


def test_a_vmx_that_is_not_utf8_is_a_located_error(tmp_path):
    path = tmp_path / "bad.vmx"
    path.write_bytes(b'numvcpus = "2"\ndisplayName = "caf\xe9"\n')
    with pytest.raises(VmxError) as info:
        read_vmx(path)
    [d] = info.value.diagnostics
    assert (d.line, d.col) == (2, 19)
    assert "not UTF-8" in d.message


# ---------------------------------------------------------------------------
# The embedded default machine.

def test_default_config_is_the_embedded_machine(tmp_path):
    c = default_config(tmp_path)
    assert c.path is None
    assert c.directory == tmp_path
    assert (c.numvcpus, c.memsize_mb, c.workload, c.hv_vendor) == (2, 1024, "default", "intel")
    assert vmx.guest_os_supported(c.guest_os)
    assert c.vprobe_enable is True
    assert c.out_file == tmp_path / "vprobe.out"
    assert c.load_config() == LoadConfig(count_operations=True)  # the modelled charge counts
    assert c.warnings == ()
    check_enabled(c)


def test_default_config_defaults_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = default_config()
    assert c.directory == tmp_path
    assert c.out_file == tmp_path / "vprobe.out"


# ---------------------------------------------------------------------------
# Enabling VProbes: the host and the VM.

def test_host_config_allows(tmp_path):
    host = write(tmp_path, 'installerDefaults.autoSoftwareUpdateEnabled = "yes"\nvprobe.allow = "TRUE"\n', "config")
    assert host_allows_vprobes(host) == (True, f"VProbes are allowed on this host: vprobe.allow is TRUE in {host}")


@pytest.mark.parametrize("word", ["FALSE", "false", "no", "0", "Off"])
def test_host_config_denies(tmp_path, word):
    host = write(tmp_path, f'# site policy\nVPROBE.ALLOW = "{word}"\n', "config")
    assert host_allows_vprobes(host) == (False, f"VProbes are not allowed on this host: vprobe.allow is FALSE in {host}")


def test_host_config_without_the_key_allows(tmp_path):
    host = write(tmp_path, 'libdir = "/usr/lib/vmware"\n', "config")
    allowed, reason = host_allows_vprobes(host)
    assert allowed is True
    assert "does not set vprobe.allow" in reason


def test_a_missing_default_host_config_allows(tmp_path, monkeypatch):
    monkeypatch.setattr(vmx, "DEFAULT_HOST_CONFIG", tmp_path / "etc" / "vmware" / "config")
    allowed, reason = host_allows_vprobes()
    assert allowed is True
    assert "no host configuration" in reason


def test_the_default_host_config_is_read_when_present(tmp_path, monkeypatch):
    host = write(tmp_path, 'vprobe.allow = "FALSE"\n', "config")
    monkeypatch.setattr(vmx, "DEFAULT_HOST_CONFIG", host)
    assert host_allows_vprobes(None)[0] is False


def test_the_real_default_host_config_path():
    assert vmx.DEFAULT_HOST_CONFIG == Path("/etc/vmware/config")


def test_a_missing_named_host_config_is_an_error(tmp_path):
    host = tmp_path / "config"
    with pytest.raises(VmxError) as info:
        host_allows_vprobes(host)
    [d] = info.value.diagnostics
    assert (d.line, d.col) == (1, 1)
    assert d.message == f"cannot read {host}: No such file or directory"


def test_a_bad_boolean_in_the_host_config_is_a_located_error(tmp_path):
    host = write(tmp_path, '\nvprobe.allow = "sometimes"\n', "config")
    with pytest.raises(VmxError) as info:
        host_allows_vprobes(host)
    [d] = info.value.diagnostics
    assert (d.file, d.line, d.col) == (str(host), 2, 16)


def test_the_host_config_does_not_warn_about_its_own_keys(tmp_path):
    host = write(tmp_path, 'prefvmx.minVmMemPct = "100"\nvprobe.allow = "TRUE"\nvprobe.allow = "FALSE"\n', "config")
    assert host_allows_vprobes(host)[0] is False  # the later value wins


def test_check_enabled_refuses_a_vm_without_vprobe_enable(tmp_path):
    path = write(tmp_path, 'numvcpus = "2"\n')
    with pytest.raises(VProbesDisabled) as info:
        check_enabled(read_vmx(path))
    assert str(info.value) == f'VProbes are not enabled for this VM: add vprobe.enable = "TRUE" to {path}'


def test_check_enabled_refuses_vprobe_enable_false(tmp_path):
    with pytest.raises(VProbesDisabled):
        check_enabled(load(tmp_path, 'vprobe.enable = "FALSE"\n'))


def test_check_enabled_accepts_an_enabled_vm(tmp_path):
    assert check_enabled(load(tmp_path, 'vprobe.enable = "TRUE"\n')) is None


# ---------------------------------------------------------------------------
# A realistic .vmx, as VMware Workstation writes it, plus the VProbes keys.

WORKSTATION_VMX = r""".encoding = "UTF-8"
config.version = "8"
virtualHW.version = "19"
pciBridge0.present = "TRUE"
pciBridge4.present = "TRUE"
pciBridge4.virtualDev = "pcieRootPort"
pciBridge4.functions = "8"
pciBridge5.present = "TRUE"
pciBridge5.virtualDev = "pcieRootPort"
pciBridge5.functions = "8"
vmci0.present = "TRUE"
hpet0.present = "TRUE"
nvram = "Ubuntu 64-bit.nvram"
virtualHW.productCompatibility = "hosted"
powerType.powerOff = "soft"
powerType.powerOn = "soft"
powerType.suspend = "soft"
powerType.reset = "soft"
displayName = "Ubuntu 64-bit"
usb.vbluetooth.startConnected = "TRUE"
firmware = "efi"
guestOS = "ubuntu-64"
tools.syncTime = "FALSE"
sound.autoDetect = "TRUE"
sound.virtualDev = "hdaudio"
sound.fileName = "-1"
sound.present = "TRUE"
numvcpus = "4"
cpuid.coresPerSocket = "2"
vcpu.hotadd = "TRUE"
memsize = "4096"
mem.hotadd = "TRUE"
scsi0.virtualDev = "lsilogic"
scsi0.present = "TRUE"
scsi0:0.fileName = "Ubuntu 64-bit.vmdk"
scsi0:0.present = "TRUE"
sata0.present = "TRUE"
sata0:1.deviceType = "cdrom-image"
sata0:1.fileName = "C:\Users\dev\Downloads\ubuntu-22.04.3-desktop-amd64.iso"
sata0:1.present = "TRUE"
usb.present = "TRUE"
ehci.present = "TRUE"
usb_xhci.present = "TRUE"
svga.graphicsMemoryKB = "8388608"
ethernet0.connectionType = "nat"
ethernet0.addressType = "generated"
ethernet0.virtualDev = "e1000"
ethernet0.present = "TRUE"
ethernet0.generatedAddress = "00:0c:29:3f:1a:2b"
ethernet0.generatedAddressOffset = "0"
extendedConfigFile = "Ubuntu 64-bit.vmxf"
floppy0.present = "FALSE"
uuid.bios = "56 4d 2a 6f 0b 9e 1c 3d-8e 4f 51 62 73 84 95 a6"
uuid.location = "56 4d 2a 6f 0b 9e 1c 3d-8e 4f 51 62 73 84 95 a6"
vm.genid = "-3894712950172638427"
vm.genidX = "6384903217745219847"
scsi0:0.redo = ""
pciBridge0.pciSlotNumber = "17"
pciBridge4.pciSlotNumber = "21"
scsi0.pciSlotNumber = "16"
ethernet0.pciSlotNumber = "32"
monitor.phys_bits_used = "45"
vmotion.checkpointFBSize = "4194304"
vmotion.checkpointSVGAPrimarySize = "268435456"
vmotion.svga.mobMaxSize = "268435456"
cleanShutdown = "TRUE"
softPowerOff = "FALSE"
tools.remindInstall = "FALSE"
toolsInstallManager.updateCounter = "3"
checkpoint.vmState = ""
annotation = "Build box|0D|0Afor the kernel team"
guestInfo.detailed.data = "architecture='X86' bitness='64' distroName='Ubuntu'"
serial0.present = "FALSE"
isolation.tools.hgfs.disable = "FALSE"
sched.cpu.min = "0"
numa.autosize.vcpu.maxPerVirtualNode = "4"
vhv.enable = "FALSE"
vpmc.enable = "FALSE"

# VProbes (Table 3-2) and the simulation
vprobe.enable = "TRUE"
vprobe.guestSyms = "kallsyms"
vprobe.outFile = "probes/vprobe.out"
vprobe.maxCodeBytes = "65536"
vprobe.bagBytes = "131072"
sim.workload = "io"
sim.seed = "20240611"
sim.timerHz = "1000"
sim.hvVendor = "intel"
"""


def test_a_realistic_workstation_vmx_parses_without_warnings(tmp_path):
    vm_dir = tmp_path / "Virtual Machines" / "Ubuntu 64-bit"
    vm_dir.mkdir(parents=True)
    (vm_dir / "kallsyms").write_text("ffffffff81000000 T _text\n")
    path = write(vm_dir, WORKSTATION_VMX, "Ubuntu 64-bit.vmx")
    assert WORKSTATION_VMX.count("\n") > 80
    c = read_vmx(path)
    assert c.warnings == ()
    assert c.path == path
    assert c.directory == vm_dir
    assert c.display_name == "Ubuntu 64-bit"
    assert (c.numvcpus, c.memsize_mb, c.guest_os) == (4, 4096, "ubuntu-64")
    assert (c.workload, c.seed, c.timer_hz, c.hv_vendor) == ("io", 20240611, 1000, "intel")
    assert c.tsc_hz == 2_593_119_000
    assert c.vprobe_enable is True
    assert c.guest_syms == vm_dir / "kallsyms"
    assert c.out_file == vm_dir / "probes" / "vprobe.out"
    assert c.load_config() == LoadConfig(max_code_bytes=65536, bag_bytes=131072, count_operations=True)
    check_enabled(c)
