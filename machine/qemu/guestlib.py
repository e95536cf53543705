"""Guest knowledge for one real kernel, from its own BTF: the helper library.

`vprobe` adds a guest helper library (curpid, curtid, curppid, curprocname)
to VP scripts that call them, and emmettc preloads one for Emmett programs.
The simulated guest's library (machine/guest/linux64.vp) recovers offsets by
decoding kernel code; a real 6.x kernel's getpid no longer reads a field
directly, so here every offset comes from the kernel's BTF instead:

* the per-CPU slot of the current task (`current_task`, or
  `pcpu_hot.current_task` on 6.2+), found in the `.data..percpu` section's
  BTF (or the symbol table);
* `task_struct`'s `pid`, `tgid`, `real_parent` and `comm`.

`emmett_preload` also emits Emmett struct definitions for a set of kernel
structures (task_struct, mm_struct, pt_regs, file, dentry ...) with every
member pinned at its real offset (`@OFFSET`), so strace- and top-style
Emmett programs can write `task->comm` or `regs->di` for this exact kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MachineError
from .btf import BTF, Type

__all__ = ["GuestLayout", "STRUCT_ROOTS", "emmett_preload", "emmett_structs", "layout_from_btf", "vp_library"]

# Kernel structures the Emmett preload defines (those embedded by value in them
# and not listed are left out; their space is kept by the pinned offsets).
STRUCT_ROOTS = (
    "list_head", "hlist_node", "hlist_head", "qstr", "path", "pt_regs", "filename", "upid", "pid",
    "cred", "dentry", "inode", "super_block", "file", "files_struct", "fdtable", "vm_area_struct",
    "mm_struct", "signal_struct", "nsproxy", "linux_binprm", "sock_common", "sock", "socket",
    "task_struct",
)

# Words an Emmett member may not be called; such members get a trailing underscore.
_RESERVED = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline int long
register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
string bag aggr memmodel perthread pervm pervmk perhost int8 int16 int32 int64 uint8 uint16 uint32 uint64 try catch
""".split())

KERNEL_HALF = 0xFFFF800000000000
NULL_PAGE = 4096


class GuestLayoutError(MachineError):
    pass


@dataclass(frozen=True)
class GuestLayout:
    """The offsets the helper library needs, for one kernel."""

    release: str
    current_task: int  # offset of the current task pointer in the per-CPU area
    pid: int
    tgid: int
    real_parent: int
    comm: int
    comm_size: int


def layout_from_btf(btf: BTF, release: str, symbols: dict[str, int] | None = None) -> GuestLayout:
    current = btf.percpu_offset("current_task")
    if current is None:
        hot = btf.percpu_offset("pcpu_hot")
        inner = btf.member_offset("pcpu_hot", "current_task")
        if hot is not None and inner is not None:
            current = hot + inner
    if current is None and symbols:
        current = symbols.get("current_task")
    if current is None:
        raise GuestLayoutError("the kernel's BTF has no per-CPU current_task (nor pcpu_hot.current_task)")
    offsets = {}
    for name in ("pid", "tgid", "real_parent", "comm"):
        value = btf.member_offset("task_struct", name)
        if value is None:
            raise GuestLayoutError(f"the kernel's BTF has no task_struct.{name}")
        offsets[name] = value
    comm_type = btf.member_type("task_struct", "comm")
    comm_size = comm_type.nelems if comm_type is not None and comm_type.kind == "array" else 16
    return GuestLayout(release, current, comm_size=comm_size, **offsets)


def vp_library(layout: GuestLayout) -> str:
    """curpid, curtid, curppid, curprocname in VP, for the kernel `layout` describes."""
    return f"""; Guest helpers for Linux {layout.release}, generated from the kernel's own BTF.
;
;   (curpid)       the current process ID (the thread group ID, what getpid returns)
;   (curtid)       the current thread ID (the task's own pid)
;   (curppid)      the parent process's ID
;   (curprocname)  the current process name (task->comm)
;
; The current task is the per-CPU current_task ({layout.current_task:#x} into the per-CPU
; area at GSBASE in the kernel, KERNELGSBASE in user mode and before swapgs);
; task_struct: pid {layout.pid:#x}, tgid {layout.tgid:#x}, real_parent {layout.real_parent:#x}, comm {layout.comm:#x}.

(defstring linux.procName)

(defun linux.load (addr)
  (cond ((< addr {NULL_PAGE}) 0)
        (1 (getguest addr))))

(defun linux.load32 (addr)
  (& 0xffffffff (linux.load addr)))

(defun linux.curtask ()
  (linux.load (+ (cond ((>= GSBASE {KERNEL_HALF:#x}) GSBASE)
                       (1 KERNELGSBASE))
                 {layout.current_task:#x})))

(defun curpid ()
  (linux.load32 (+ (linux.curtask) {layout.tgid:#x})))

(defun curtid ()
  (linux.load32 (+ (linux.curtask) {layout.pid:#x})))

(defun curppid ()
  (linux.load32 (+ (linux.load (+ (linux.curtask) {layout.real_parent:#x})) {layout.tgid:#x})))

(defun curprocname ()
  (cond ((< (linux.curtask) {NULL_PAGE}) (setstr linux.procName "<none>"))
        (1 (getgueststr linux.procName {layout.comm_size} (+ (linux.curtask) {layout.comm:#x}))))
  linux.procName)
"""


def emmett_preload(layout: GuestLayout, btf: BTF, roots: tuple[str, ...] = STRUCT_ROOTS) -> str:
    """The Emmett preload for this kernel: struct definitions, then the helper functions."""
    return f"""/*
 * Guest preload for Linux {layout.release}, generated from the kernel's own BTF.
 *
 * Struct definitions pin every member at its offset in this kernel; members
 * whose types have no Emmett form (bitfields, floats, structs not defined
 * here) are left out and their space kept.  Then curthrptr(), curpid(),
 * curtid(), curppid() and curprocname() as in the default preload.
 */

{emmett_structs(btf, roots)}
#define LINUX_NULL_PAGE {NULL_PAGE}
#define LINUX_CURRENT_TASK {layout.current_task:#x}

string linux_procName;

int linux_load(int addr)
{{
    if (addr < LINUX_NULL_PAGE) {{
        return 0;
    }}
    return getguest(addr);
}}

/* The kernel's per-CPU area of this VCPU. */
int curthrptr()
{{
    if (GSBASE >= {KERNEL_HALF:#x}) {{
        return GSBASE;
    }}
    return KERNELGSBASE;
}}

struct task_struct *linux_curtask()
{{
    return (struct task_struct *)linux_load(curthrptr() + LINUX_CURRENT_TASK);
}}

/* Each 0 when there is no current task (or parent) to read. */
int curpid()
{{
    struct task_struct *task = linux_curtask();
    return task ? task->tgid : 0;
}}

int curtid()
{{
    struct task_struct *task = linux_curtask();
    return task ? task->pid : 0;
}}

int curppid()
{{
    struct task_struct *task = linux_curtask();
    struct task_struct *parent = task ? task->real_parent : 0;
    return parent ? parent->tgid : 0;
}}

string curprocname()
{{
    struct task_struct *task = linux_curtask();
    if (task == 0) {{
        linux_procName = "<none>";
    }} else {{
        linux_procName = (string)task->comm;
    }}
    return linux_procName;
}}
"""


# ---------------------------------------------------------------------------
# Struct definitions.

class _StructWriter:
    def __init__(self, btf: BTF, roots: tuple[str, ...]):
        self.btf = btf
        self.defined: dict[str, Type] = {}
        for name in roots:
            for kind in ("struct",):
                t = btf.find(kind, name)
                if t is not None:
                    self.defined[name] = t

    def scalar(self, t: Type | None) -> str | None:
        if t is None:
            return None
        if t.kind == "int":
            if t.size == 1 and "char" in t.name:
                return "char"
            if t.size in (1, 2, 4, 8):
                return f"{'int' if t.signed else 'uint'}{t.size * 8}"
            return None
        if t.kind in ("enum", "enum64"):
            return f"{'int' if t.signed else 'uint'}{t.size * 8}" if t.size in (1, 2, 4, 8) else None
        return None

    def pointer(self, t: Type) -> str:
        target = self.btf.resolve(t.ref)
        if target is None:
            return "void *"
        if target.kind in ("struct", "fwd") and target.name:
            return f"struct {target.name} *"
        if target.kind == "int" and target.size == 1 and "char" in target.name:
            return "char *"
        scalar = self.scalar(target)
        if scalar is not None:
            return f"{scalar} *"
        return "void *"

    def declaration(self, tid: int, name: str) -> str | None:
        """`TYPE name[...]` for a member, or None when Emmett has no form for it."""
        t = self.btf.resolve(tid)
        if t is not None and t.kind == "array" and t.nelems > 0:
            return self._declared(self.btf.resolve(t.ref), f"{name}[{t.nelems}]")
        return self._declared(t, name)

    def _declared(self, t: Type | None, declarator: str) -> str | None:
        """`TYPE declarator` for a scalar, a pointer or a struct defined here; None for any other type."""
        if t is None:
            return None
        scalar = self.scalar(t)
        if scalar is not None:
            return f"{scalar} {declarator}"
        if t.kind == "ptr":
            return f"{self.pointer(t)}{declarator}"
        if t.kind == "struct" and t.name in self.defined:
            return f"struct {t.name} {declarator}"
        return None

    def fields(self, t: Type, base: int, out: list[tuple[int, int, str]], names: set[str]) -> None:
        """(byte offset, size, declaration) of `t`'s members, anonymous ones flattened."""
        for m in t.members:
            if m.bitfield_size or m.bit_offset % 8:
                continue
            offset = base + m.bit_offset // 8
            if not m.name:
                inner = self.btf.resolve(m.type)
                if inner is not None and inner.kind in ("struct", "union"):
                    self.fields(inner, offset, out, names)
                continue
            name = m.name + "_" if m.name in _RESERVED else m.name
            if name in names:
                continue
            decl = self.declaration(m.type, name)
            if decl is None:
                continue
            names.add(name)
            out.append((offset, self.btf.size_of(m.type), decl))

    def struct_text(self, t: Type) -> str:
        raw: list[tuple[int, int, str]] = []
        self.fields(t, 0, raw, set())
        raw.sort(key=lambda f: f[0])
        lines = [f"struct {t.name} {{"]
        end = 0
        for offset, size, decl in raw:
            if offset < end:
                continue  # another member of a union already covers it
            lines.append(f"    @{offset:#x} {decl};")
            end = offset + max(size, 1)
        if end < t.size:
            lines.append(f"    @{end:#x} uint8 linux_pad_[{t.size - end}];")
        lines.append("};")
        return "\n".join(lines)

    def embedded(self, t: Type) -> list[str]:
        """Names of defined structs that `t` holds by value (they must be defined first)."""
        found = []
        for m in t.members:
            inner = self.btf.resolve(m.type)
            while inner is not None and inner.kind == "array":
                inner = self.btf.resolve(inner.ref)
            if inner is None:
                continue
            if inner.kind == "struct" and inner.name in self.defined:
                found.append(inner.name)
            elif inner.kind in ("struct", "union") and not inner.name:
                found.extend(self.embedded(inner))
        return found

    def text(self) -> str:
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                return  # impossible by value; guard anyway
            state[name] = 1
            for dep in self.embedded(self.defined[name]):
                if dep != name:
                    visit(dep)
            state[name] = 2
            order.append(name)

        for name in self.defined:
            visit(name)
        forward = "\n".join(f"struct {name};" for name in order)
        return forward + "\n\n" + "\n\n".join(self.struct_text(self.defined[name]) for name in order) + "\n"


def emmett_structs(btf: BTF, roots: tuple[str, ...] = STRUCT_ROOTS) -> str:
    return _StructWriter(btf, roots).text()
