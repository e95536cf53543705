"""What the guest kernel's own image says about itself: symbols and BTF.

A distribution kernel (`/boot/vmlinuz-*`) is a bzImage: a real-mode setup,
then a compressed payload that is the kernel ELF (`vmlinux`, symbols stripped
but sections kept).  From it this module recovers:

* the ELF sections, among them `.BTF` (the kernel's type information) and
  `.rodata`, which holds the kernel's own symbol table (`kallsyms`, what
  `/proc/kallsyms` prints) -- so a stub System.map (Debian ships one that only
  says "the real System.map is in the -dbg package") is no obstacle;
* the symbol table, as `address type name` lines in System.map form.

kallsyms is found from its structure, not from symbols: the token table
holds each character used in symbol names at its own index (the digits at
0x30..0x39, the letters at their codes) among multi-character tokens; the
token index (offsets of the 256 tokens) follows it; the markers (offsets of
every 256th name) and the compressed names precede it, the symbol count just
before the names; the addresses are base-relative offsets next to a base
that is the kernel's first text address.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from dataclasses import dataclass
from pathlib import Path

from vp_runtime.spec import MASK64

from ..errors import MachineError

__all__ = ["ElfSection", "KernelImage", "KernelImageError", "decompress_bzimage", "find_kallsyms"]


class KernelImageError(MachineError):
    """The file is not a kernel image this module can read."""


@dataclass(frozen=True)
class ElfSection:
    name: str
    address: int
    offset: int
    size: int
    type: int


_MAGICS = (
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x89LZO", "lzo"),
)


def decompress_bzimage(data: bytes) -> bytes:
    """The kernel ELF inside a bzImage (or `data` itself if it already is an ELF)."""
    if data[:4] == b"\x7fELF":
        return data
    if len(data) < 0x260 or data[0x202:0x206] != b"HdrS":
        raise KernelImageError("not a Linux kernel image (no bzImage header and not an ELF file)")
    version = struct.unpack_from("<H", data, 0x206)[0]
    if version < 0x208:
        raise KernelImageError(f"boot protocol {version >> 8}.{version & 0xff} is too old to locate the payload")
    setup_sects = data[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = data[start:start + payload_length]
    kind = next((name for magic, name in _MAGICS if payload.startswith(magic)), None)
    try:
        if kind == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
        if kind == "lzma":
            return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(payload)
        if kind == "gzip":
            return gzip.decompress(payload)
        if kind == "bzip2":
            return bz2.decompress(payload)
    except (lzma.LZMAError, OSError, EOFError) as e:
        raise KernelImageError(f"the kernel payload ({kind}) does not decompress: {e}") from None
    if kind == "zstd":
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            raise KernelImageError("the kernel payload is zstd-compressed: install the 'zstandard' module, "
                                   "or give the uncompressed vmlinux") from None
        return zstandard.ZstdDecompressor().decompressobj().decompress(payload)
    raise KernelImageError(f"the kernel payload is {kind or 'in an unknown format'}: give the uncompressed vmlinux")


def elf_sections(elf: bytes) -> dict[str, ElfSection]:
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise KernelImageError("the kernel is not a 64-bit little-endian ELF file")
    shoff = struct.unpack_from("<Q", elf, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    headers = []
    for i in range(shnum):
        name, type_, _flags, addr, offset, size = struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize)
        headers.append((name, type_, addr, offset, size))
    strtab = headers[shstrndx]
    names = elf[strtab[3]:strtab[3] + strtab[4]]
    sections = {}
    for name_off, type_, addr, offset, size in headers:
        end = names.find(b"\0", name_off)
        name = names[name_off:end].decode("latin-1")
        sections[name] = ElfSection(name, addr, offset, size, type_)
    return sections


# ---------------------------------------------------------------------------
# kallsyms

def _is_token_table(data: bytes, pos: int) -> list[bytes] | None:
    tokens = []
    p = pos
    for _ in range(256):
        end = data.find(b"\0", p, p + 64)
        if end < 0:
            return None
        tokens.append(data[p:end])
        p = end + 1
    for ch in b"0123456789_abcdefghijklmnopqrstuvwxyz":
        if tokens[ch] != bytes((ch,)):
            return None
    if sum(len(t) > 1 for t in tokens) < 32:
        return None
    if not all(t and all(0x20 < c < 0x7F for c in t) for t in tokens):
        return None
    return tokens


def _token_index_at(data: bytes, tokens: list[bytes], after: int) -> int | None:
    offsets = []
    total = 0
    for t in tokens:
        offsets.append(total)
        total += len(t) + 1
    packed = struct.pack("<256H", *offsets)
    found = data.find(packed, after, after + 64 + len(packed))
    return found if found >= 0 else None


def _name_spans(data: bytes, start: int, count: int) -> tuple[list[tuple[int, int]], int] | None:
    """(offset, length) of `count` length-prefixed compressed names from `start`, and where they end;
    None if they do not parse."""
    spans = []
    p = start
    n = len(data)
    for _ in range(count):
        if p >= n:
            return None
        length = data[p]
        p += 1
        if length & 0x80:  # "big symbol" encoding of newer kernels
            if p >= n:
                return None
            length = (length & 0x7F) | (data[p] << 7)
            p += 1
        if length == 0:
            return None
        spans.append((p, length))
        p += length
    return spans, p


def _decode_names(data: bytes, start: int, count: int, tokens: list[bytes]) -> tuple[list[bytes], int] | None:
    """The names expanded through the token table, and where they end."""
    parsed = _name_spans(data, start, count)
    if parsed is None:
        return None
    spans, end = parsed
    return [b"".join(tokens[c] for c in data[p:p + length]) for p, length in spans], end


def find_kallsyms(elf: bytes, text_start: int, rodata: ElfSection) -> list[tuple[int, str, str]]:
    """The kernel's symbol table as (address, type, name), from the kallsyms tables in .rodata."""
    lo, hi = rodata.offset, rodata.offset + rodata.size
    tokens = None
    table = -1
    digits = b"".join(bytes((c, 0)) for c in b"0123456789")
    search = lo
    while tokens is None:
        hit = elf.find(digits, search, hi)
        if hit < 0:
            raise KernelImageError("no kallsyms token table in the kernel's .rodata (is CONFIG_KALLSYMS set?)")
        search = hit + 1
        # Walk back over the 48 tokens before '0'.
        start = hit
        for _ in range(0x30):
            start = elf.rfind(b"\0", lo, start - 1) + 1
        candidate = _is_token_table(elf, start)
        if candidate is not None:
            tokens, table = candidate, start
    table_end = table + sum(len(t) + 1 for t in tokens)
    if _token_index_at(elf, tokens, table_end) is None:
        raise KernelImageError("the kallsyms token index does not follow the token table")
    markers_end, width, markers = _find_markers(elf, table, lo)
    count_low = (len(markers) - 1) * 256 + 1
    count_high = len(markers) * 256
    names_limit = markers_end - len(markers) * width
    # kallsyms_num_syms sits just before the names (aligned); try positions back from the names.
    last_block = markers[-1]
    for back in range(0, 256 * 260, 1):
        names_start = names_limit - last_block - back
        if names_start < lo:
            break
        for field in (4, 8):
            count_at = names_start - field
            if count_at % field:
                continue
            count = struct.unpack_from("<I", elf, count_at)[0] if field == 4 else \
                struct.unpack_from("<Q", elf, count_at)[0]
            if not count_low <= count <= count_high:
                continue
            first_block = _name_spans(elf, names_start, 256)
            if first_block is None or len(markers) > 1 and first_block[1] - names_start != markers[1]:
                continue
            decoded = _decode_names(elf, names_start, count, tokens)
            if decoded is None or decoded[1] > names_limit:
                continue
            names = decoded[0]
            addresses = _find_addresses(elf, count_at, count, text_start, names, lo, hi, table_end)
            return [(addr, chr(name[0]), name[1:].decode("latin-1")) for addr, name in zip(addresses, names)]
    raise KernelImageError("the kallsyms names could not be located before the token table")


def _find_markers(elf: bytes, table: int, lo: int) -> tuple[int, int, list[int]]:
    """kallsyms_markers: increasing offsets that end just before the token table (or the
    3-byte name sequence table some kernels put between them)."""
    for width in (4, 8):
        for gap_end in _marker_ends(elf, table, lo):
            end = gap_end - (gap_end % width)
            values = []
            p = end - width
            while p >= lo:
                value = int.from_bytes(elf[p:p + width], "little")
                if values and value >= values[-1]:
                    break
                values.append(value)
                if value == 0:
                    break
                p -= width
            if len(values) >= 8 and values[-1] == 0:
                values.reverse()
                steps = [b - a for a, b in zip(values, values[1:])]
                if all(256 * 2 <= s <= 256 * 300 for s in steps):
                    return end, width, values
    raise KernelImageError("no kallsyms markers before the token table")


def _marker_ends(elf: bytes, table: int, lo: int):
    """Where the markers may end: at the token table (skipping alignment padding), or before
    a kallsyms_seqs_of_names table (3 bytes a symbol) that sits between them."""
    p = table
    while p > lo and elf[p - 1] == 0 and table - p < 16:
        p -= 1
    yield table
    yield p
    # A seqs_of_names table: search back for the end of the markers by trying sizes.
    for back in range(3, 3 * 400_000, 3):
        q = table - back
        if q <= lo:
            return
        if q % 4 == 0 and elf[q - 4:q] != b"\0\0\0\0":
            # cheap filter: the last marker is a large offset, not zero
            last = int.from_bytes(elf[q - 4:q], "little")
            prev = int.from_bytes(elf[q - 8:q - 4], "little")
            if 512 <= last - prev <= 256 * 300 and last < 64 << 20:
                yield q


def _find_addresses(elf, count_at, count, text_start, names, lo, hi, table_end) -> list[int]:
    """kallsyms_offsets and kallsyms_relative_base, before the count (older kernels) or after
    the token index (newer ones); checked against the first text symbol's address."""
    base_bytes = struct.pack("<Q", text_start)
    candidates = []
    p = count_at - 8
    while p >= count_at - 32:
        if elf[p:p + 8] == base_bytes:
            candidates.append(("before", p))
        p -= 1
    hit = elf.find(base_bytes, table_end, min(hi, table_end + 8 * count + 4096))
    if hit >= 0:
        candidates.append(("after", hit))
    for where, base_at in candidates:
        if where == "before":
            starts = [base_at - 4 * count - pad for pad in range(0, 8)]
        else:
            starts = [base_at - 4 * count - pad for pad in range(0, 8)] + [base_at + 8 + pad for pad in range(0, 8)]
        for start in starts:
            if start < lo:
                continue
            offsets = struct.unpack_from(f"<{count}i", elf, start)
            addresses = [_kallsyms_address(o, text_start) for o in offsets]
            if _plausible(addresses, names, text_start):
                return addresses
    raise KernelImageError("the kallsyms addresses could not be located")


def _kallsyms_address(offset: int, base: int) -> int:
    # CONFIG_KALLSYMS_ABSOLUTE_PERCPU (x86-64 SMP): non-negative offsets are absolute
    # (per-CPU variables), negative ones count down from base - 1.
    if offset >= 0:
        return offset
    return (base - 1 - offset) & MASK64


def _plausible(addresses: list[int], names: list[bytes], text_start: int) -> bool:
    wanted = {b"T_text", b"t_text", b"Tstartup_64", b"tstartup_64"}
    hits = [a for a, n in zip(addresses, names) if n in wanted]
    if not hits or any(a != text_start for a in hits):
        return False
    text = [a for a, n in zip(addresses, names) if n[:1] in (b"T", b"t")]
    return sum(b >= a for a, b in zip(text, text[1:])) >= 0.99 * max(1, len(text) - 1)


# ---------------------------------------------------------------------------

class KernelImage:
    """A guest kernel image file: its ELF sections, its symbols and its BTF."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            raw = self.path.read_bytes()
        except OSError as e:
            raise KernelImageError(f"cannot read the kernel image {self.path}: {e.strerror}") from None
        self.elf = decompress_bzimage(raw)
        self.sections = elf_sections(self.elf)
        if ".text" not in self.sections:
            raise KernelImageError("the kernel ELF has no .text section")

    @property
    def text_start(self) -> int:
        return self.sections[".text"].address

    def section_bytes(self, name: str) -> bytes:
        sec = self.sections.get(name)
        if sec is None:
            raise KernelImageError(f"the kernel has no {name} section")
        return self.elf[sec.offset:sec.offset + sec.size]

    def btf(self) -> bytes:
        if ".BTF" not in self.sections:
            raise KernelImageError("the kernel has no BTF (.BTF section; CONFIG_DEBUG_INFO_BTF is off)")
        return self.section_bytes(".BTF")

    def symbols(self) -> list[tuple[int, str, str]]:
        rodata = self.sections.get(".rodata")
        if rodata is None:
            raise KernelImageError("the kernel has no .rodata section")
        return find_kallsyms(self.elf, self.text_start, rodata)

    def read(self, address: int, size: int) -> bytes | None:
        """Bytes at a kernel virtual address, as linked (None outside the file's sections)."""
        for sec in self.sections.values():
            if sec.type == 1 and sec.address and sec.address <= address and address + size <= sec.address + sec.size:
                start = sec.offset + address - sec.address
                return self.elf[start:start + size]
        return None


def system_map_text(symbols: list[tuple[int, str, str]]) -> str:
    """Symbols as System.map lines, sorted by address."""
    return "".join(f"{addr:016x} {kind} {name}\n" for addr, kind, name in sorted(symbols))
