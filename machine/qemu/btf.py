"""A reader of BTF, the kernel's compact type information (`.BTF` in vmlinux).

The format (the kernel's Documentation/bpf/btf.rst): a header (magic 0xEB9F,
version, flags, header length, then the offsets and lengths of the type and
string sections), then one record per type: name offset, info (vlen in bits
0-15, kind in bits 24-28, kind_flag in bit 31), size-or-type, followed by
kind-specific data.  Type ids count from 1; 0 is void.

Only what the guest library generator needs is modelled: integers, pointers,
arrays, structs and unions with their members (bit offsets, bitfields),
enums, typedefs and the qualifiers, function prototypes (as opaque), and
variables and data sections (per-CPU variables' offsets).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..errors import MachineError

__all__ = ["BTF", "BTFError", "Member", "Type"]

MAGIC = 0xEB9F

KIND_NAMES = {
    0: "unknown", 1: "int", 2: "ptr", 3: "array", 4: "struct", 5: "union", 6: "enum", 7: "fwd",
    8: "typedef", 9: "volatile", 10: "const", 11: "restrict", 12: "func", 13: "func_proto",
    14: "var", 15: "datasec", 16: "float", 17: "decl_tag", 18: "type_tag", 19: "enum64",
}
QUALIFIERS = frozenset({"typedef", "volatile", "const", "restrict", "type_tag"})
# The kinds whose size-or-type word is a size in bytes; every other kind's is a type id.
SIZED_KINDS = frozenset({"int", "struct", "union", "enum", "enum64", "datasec", "float"})
# kind -> (bytes of data after the record, bytes per vlen entry after those); a kind not listed has none.
KIND_DATA = {
    "int": (4, 0), "array": (12, 0), "var": (4, 0), "decl_tag": (4, 0),
    "struct": (0, 12), "union": (0, 12), "enum": (0, 8), "enum64": (0, 12), "func_proto": (0, 8), "datasec": (0, 12),
}


class BTFError(MachineError):
    pass


@dataclass(frozen=True)
class Member:
    name: str
    type: int
    bit_offset: int
    bitfield_size: int  # 0 for an ordinary member


@dataclass
class Type:
    id: int
    kind: str
    name: str
    size: int = 0  # bytes, for int/struct/union/enum/float/datasec
    ref: int = 0  # the referenced type: ptr, typedef, qualifiers, array element, var, func
    nelems: int = 0  # arrays
    members: list[Member] = field(default_factory=list)
    signed: bool = False  # ints
    offset: int = 0  # datasec variables: filled in on `var` types from their section
    enumerators: dict[str, int] = field(default_factory=dict)  # enums: name -> value


class BTF:
    """Parsed BTF: `types[id]`, and lookups by name."""

    def __init__(self, data: bytes):
        if len(data) < 24:
            raise BTFError("the BTF data is too short")
        magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != MAGIC:
            raise BTFError(f"bad BTF magic {magic:#x} (expected {MAGIC:#x}; big-endian BTF is not read)")
        if version != 1:
            raise BTFError(f"BTF version {version} is not supported")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self._strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        self.types: list[Type | None] = [None]
        self._parse(data, hdr_len + type_off, hdr_len + type_off + type_len)
        self._by_name: dict[tuple[str, str], int] = {}
        for t in self.types[1:]:
            if t is not None and t.name:
                self._by_name.setdefault((t.kind, t.name), t.id)

    def _string(self, offset: int) -> str:
        end = self._strings.find(b"\0", offset)
        return self._strings[offset:end].decode("latin-1")

    def _parse(self, data: bytes, pos: int, end: int) -> None:
        unpack = struct.unpack_from
        string = self._string
        types = self.types
        next_id = 1
        while pos < end:
            name_off, info, size_or_type = unpack("<III", data, pos)
            pos += 12
            vlen = info & 0xFFFF
            kind_no = (info >> 24) & 0x1F
            kind_flag = info >> 31
            kind = KIND_NAMES.get(kind_no)
            if kind is None:
                raise BTFError(f"unknown BTF kind {kind_no} at type {next_id}")
            t = Type(next_id, kind, string(name_off) if name_off else "")
            if kind in SIZED_KINDS:
                t.size = size_or_type
            else:
                t.ref = size_or_type
            data_at = pos
            fixed, per_entry = KIND_DATA.get(kind, (0, 0))
            pos += fixed + per_entry * vlen
            if kind == "int":
                t.signed = bool((unpack("<I", data, data_at)[0] >> 24) & 1)
            elif kind in ("struct", "union"):
                for i in range(vlen):
                    m_name, m_type, m_off = unpack("<III", data, data_at + 12 * i)
                    if kind_flag:
                        t.members.append(Member(string(m_name) if m_name else "", m_type, m_off & 0xFFFFFF, m_off >> 24))
                    else:
                        t.members.append(Member(string(m_name) if m_name else "", m_type, m_off, 0))
            elif kind == "array":
                t.ref, _index, t.nelems = unpack("<III", data, data_at)
            elif kind == "enum":
                t.signed = bool(kind_flag)
                for i in range(vlen):
                    name_at, value = unpack("<Ii" if t.signed else "<II", data, data_at + 8 * i)
                    t.enumerators[string(name_at)] = value
            elif kind == "datasec":
                for i in range(vlen):
                    var_type, offset, _size = unpack("<III", data, data_at + 12 * i)
                    t.members.append(Member("", var_type, offset * 8, 0))
            types.append(t)
            next_id += 1

    # ---- queries --------------------------------------------------------------------

    def find(self, kind: str, name: str) -> Type | None:
        tid = self._by_name.get((kind, name))
        return self.types[tid] if tid else None

    def enumerator(self, name: str) -> int | None:
        """The value of enumeration constant `name` (SYSTEM_RUNNING, say), or None."""
        for t in self.types:
            if t is not None and t.kind == "enum" and name in t.enumerators:
                return t.enumerators[name]
        return None

    def struct(self, name: str) -> Type | None:
        return self.find("struct", name)

    def resolve(self, tid: int) -> Type | None:
        """`tid` with typedefs and qualifiers peeled off (None for void)."""
        seen = 0
        while tid:
            t = self.types[tid]
            if t.kind not in QUALIFIERS:
                return t
            tid = t.ref
            seen += 1
            if seen > 64:
                raise BTFError("a typedef loop in the BTF")
        return None

    def size_of(self, tid: int) -> int:
        t = self.resolve(tid)
        if t is None:
            return 0
        if t.kind == "ptr":
            return 8
        if t.kind == "array":
            return t.nelems * self.size_of(t.ref)
        return t.size

    def member_offset(self, struct_name: str, path: str) -> int | None:
        """Byte offset of `a.b.c` in struct `struct_name`, through anonymous members too."""
        t = self.struct(struct_name)
        if t is None:
            return None
        offset = 0
        for part in path.split("."):
            found = self._find_member(t, part)
            if found is None:
                return None
            bit_offset, member_type = found
            offset += bit_offset // 8
            t = self.resolve(member_type)
        return offset

    def member_type(self, struct_name: str, path: str) -> Type | None:
        t = self.struct(struct_name)
        for part in path.split("."):
            if t is None:
                return None
            found = self._find_member(t, part)
            if found is None:
                return None
            t = self.resolve(found[1])
        return t

    def _find_member(self, t: Type, name: str) -> tuple[int, int] | None:
        if t.kind not in ("struct", "union"):
            return None
        for m in t.members:
            if m.name == name:
                return m.bit_offset, m.type
        for m in t.members:  # anonymous structs and unions
            if not m.name:
                inner = self.resolve(m.type)
                if inner is not None:
                    found = self._find_member(inner, name)
                    if found is not None:
                        return m.bit_offset + found[0], found[1]
        return None

    def percpu_offset(self, var: str) -> int | None:
        """Offset of per-CPU variable `var` in the `.data..percpu` data section."""
        sec = self.find("datasec", ".data..percpu")
        if sec is None:
            return None
        for m in sec.members:
            v = self.types[m.type]
            if v is not None and v.kind == "var" and v.name == var:
                return m.bit_offset // 8
        return None
