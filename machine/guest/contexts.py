"""Register contexts of a CPU running user code or down a kernel path, and the frames behind them.

Shared by every guest profile.  A CPU in the kernel is "executing the last
function of a path, called from the ones before": its RIP, RSP and RBP are
those a frame-pointer kernel would have there, and the return addresses and
saved frame pointers those registers imply are computed at once but written
into the task's kernel stack only when a probe fires (`materialize`), since
only a probe could look.  `walk` runs down a path and fires any dynamic probe
on the entry of a function along it, with that function's context.

Returns: a function with a return probe (`Probes.returns`) that `walk` enters
is noted on the task with the value it will return; it returns when the
task leaves it, which the model says where a CPU comes to rest: back in user
mode (`user`), in a kernel thread's loop or the idle loop (`unwind` with
that path).  Its probe then fires, innermost function first, as at the
return: RIP at the return address in the caller, RAX and ARG0 the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .image import KernelImage
from .state import CpuState, Task


@dataclass(frozen=True)
class ContextLayout:
    """The selectors, GS/FS bases and kernel-stack geometry of a guest's contexts."""

    kernel_cs: int
    kernel_ss: int
    user_cs: int
    user_ss: int
    user_fs_base: int  # FS base in user mode (GS's is the task's, `Task.user_gs_base`; the kernel's the CPU's `percpu`)
    thread_size: int  # a task's kernel stack
    regs_frame_size: int  # the saved user registers at the top of the kernel stack (Linux: pt_regs)


class FixedPath:
    """A kernel path the guest walks again and again (an interrupt's handler: the timer's on every
    tick, a device's, the reschedule IPI's), from depth `start`: `Contexts.walk_fixed` keeps here what it fires for the probe set
    (`Probes.generation`) it was found for: its plan (`Contexts._plan`), or instead, where that
    is one probe's firing and nothing else (no return probe entered, no registers of the probed
    function to set), the firing itself, which the walk calls directly."""

    __slots__ = ("path", "start", "generation", "plan", "fire")

    def __init__(self, path: list[str] | tuple[str, ...], start: int = 1):
        self.path = tuple(path)
        self.start = start
        self.generation = -1
        self.plan: tuple[tuple, tuple[int, ...], bool] | None = None
        self.fire: Callable[[], None] | None = None


class Contexts:
    """Sets a CPU's registers for what it executes; writes the implied frames when a probe looks."""

    def __init__(self, kernel: KernelImage, unswapped_entry: str, layout: ContextLayout, probes,
                 kwrite_u64: Callable[[int, int], None]):
        self.kernel = kernel
        self.frameless = kernel.frameless  # entry code written in assembly: no frame-pointer prologue
        self.unswapped_entry = unswapped_entry  # at its first instruction the kernel GS base is not loaded yet
        self.layout = layout
        self.probes = probes
        self.kwrite_u64 = kwrite_u64
        self._shapes: dict[tuple[tuple[str, ...], bool], tuple[int, int | None, int]] = {}
        # The probe set (`Probes.generation`) `_probed` and `_plans` were found for: found once per
        # set, so that a walk past no probed function costs next to nothing, and one along a
        # probed function only what it fires.
        self._probed_generation = -1
        self._probed: frozenset[str] = frozenset()
        self._plans: dict[tuple[tuple[str, ...], int], tuple[tuple, tuple[int, ...], bool]] = {}

    def user(self, cpu: CpuState, task: Task) -> None:
        """`task` running its own code on `cpu` (every kernel function it was in has returned)."""
        if task.returns:
            self.unwind(cpu, task, ())
        lay = self.layout
        r = cpu.vcpu.regs
        r["CS"], r["SS"] = lay.user_cs, lay.user_ss
        r["RIP"], r["RSP"], r["RBP"] = task.user_rip, task.user_rsp, task.user_rbp
        r["GSBASE"], r["KERNELGSBASE"], r["FSBASE"] = task.user_gs_base, cpu.percpu, lay.user_fs_base
        r["CR3"] = task.mm.cr3
        cpu.mode = "user"
        cpu.pending = None
        cpu.path = ()

    def kernel_path(self, cpu: CpuState, task: Task, path: list[str], at_entry: bool = False,
                    swapped: bool = True, outer_rbp: int | None = None) -> None:
        """Registers for `task` executing the last function of `path` (called from the ones before).

        The frames are only computed here; `materialize` writes them if a probe looks.
        `outer_rbp` continues the frame chain below the kernel entry (the user's, after a
        system call or a fault from user mode).
        """
        path = tuple(path)
        shape = self._shapes.get((path, at_entry))
        if shape is None:
            shape = self._shapes[(path, at_entry)] = self._shape(path, at_entry)
        sp, rbp, rip = shape
        if outer_rbp is None:
            outer_rbp = task.user_rbp if cpu.mode == "user" else 0
        lay = self.layout
        r = cpu.vcpu.regs
        r["RIP"] = rip
        r["RSP"] = task.stack + sp
        r["RBP"] = outer_rbp if rbp is None else task.stack + rbp
        r["CS"], r["SS"] = lay.kernel_cs, lay.kernel_ss
        if swapped:
            r["GSBASE"], r["KERNELGSBASE"] = cpu.percpu, task.user_gs_base
        else:  # the first instructions of an entry point, before swapgs
            r["GSBASE"], r["KERNELGSBASE"] = task.user_gs_base, cpu.percpu
        cpu.mode = "kernel"
        cpu.path, cpu.path_outer_rbp = path, outer_rbp
        cpu.pending = (task, path, at_entry, outer_rbp)

    def _shape(self, path: tuple[str, ...], at_entry: bool) -> tuple[int, int | None, int]:
        """Where `path` leaves RSP and RBP (offsets into the task's kernel stack; RBP None: no frame
        pushed, so the frame below the path) and RIP: the same for every task, so computed once."""
        lay = self.layout
        sp = lay.thread_size - lay.regs_frame_size
        rbp = None
        for i in range(1, len(path)):
            sp -= 8  # the return address
            if i == len(path) - 1 and at_entry:
                break
            if path[i] not in self.frameless:
                sp -= 8  # the saved frame pointer
                rbp = sp
        target = self.kernel.functions[path[-1]]
        if at_entry:
            return sp, rbp, target.address
        return sp - 0x28, rbp, target.address + min(len(target.code) - 2, 8)

    def materialize(self, cpu: CpuState) -> None:
        """Write the pending kernel frames of `cpu` into its task's kernel stack."""
        pending = cpu.pending
        if pending is None:
            return
        cpu.pending = None
        task, path, at_entry, rbp = pending
        lay = self.layout
        sp = task.stack + lay.thread_size - lay.regs_frame_size
        return_address = self.kernel.return_address
        for i in range(1, len(path)):
            sp -= 8
            self.kwrite_u64(sp, return_address(path[i - 1], path[i]))
            if i == len(path) - 1 and at_entry:
                break
            if path[i] not in self.frameless:
                sp -= 8
                self.kwrite_u64(sp, rbp)
                rbp = sp

    def walk(self, cpu: CpuState, task: Task, path: list[str], start: int = 1, outer_rbp: int | None = None,
             result: int = 0) -> None:
        """Execute down `path`: a dynamic probe on any function entry fires with that function's context.

        `outer_rbp` is the frame pointer below the path (default: the user's if the CPU is in user
        mode; the same as before if the CPU goes on deeper from the same kernel entry).  `result`
        is what the functions entered return (a system call's value; 0 for the others).
        """
        if outer_rbp is None:
            outer_rbp = self._outer_rbp(cpu, task, path)
        probes = self.probes
        if probes.breakpoints or probes.returns:
            plan = self._plan_along(path, start)
            if plan is not None:  # past a probed function: fire what it reaches
                self._fire(cpu, task, path, plan, outer_rbp, result)
        self.kernel_path(cpu, task, path, outer_rbp=outer_rbp)

    def walk_fixed(self, cpu: CpuState, task: Task, fixed: FixedPath) -> None:
        """`walk` down a path the guest takes again and again (`FixedPath`): what it fires is kept
        on `fixed` for the probe set, so that the walk neither looks the path up nor compares it
        with the probed functions."""
        path = fixed.path
        outer_rbp = self._outer_rbp(cpu, task, path)
        if fixed.generation != self.probes.generation:
            self._plan_fixed(fixed)
        if fixed.fire is not None:
            self.probes.machine.current = cpu.vcpu
            fixed.fire()
        elif fixed.plan is not None:
            self._fire(cpu, task, path, fixed.plan, outer_rbp, 0)
        self.kernel_path(cpu, task, path, outer_rbp=outer_rbp)

    def _outer_rbp(self, cpu: CpuState, task: Task, path) -> int:
        """The frame pointer below a path walked from where `cpu` is: the user's from user mode,
        the one before if the CPU goes deeper from the same kernel entry, else none."""
        if cpu.mode == "user":
            return task.user_rbp
        if cpu.mode == "kernel" and cpu.path and cpu.path[0] == path[0]:
            return cpu.path_outer_rbp
        return 0

    def _fire(self, cpu: CpuState, task: Task, path, plan: tuple[tuple, tuple[int, ...], bool], outer_rbp: int,
              result: int) -> None:
        """Fire what `plan` (`_plan`) says a walk down `path` reaches, and note the returns it enters."""
        fires, returning, place = plan
        probes = self.probes
        breakpoints = probes.breakpoints
        for depth, address, at_entry in fires:
            fire = breakpoints.get(address)
            if fire is None:  # an earlier firing of this walk called exit()
                continue
            if place:  # else the script reads nothing the function's registers would change
                if at_entry:
                    swapped = depth > 1 or path[0] != self.unswapped_entry
                    self.kernel_path(cpu, task, path[:depth], True, swapped, outer_rbp)
                else:
                    self.kernel_path(cpu, task, path[:depth], outer_rbp=outer_rbp)
                    cpu.vcpu.regs["RIP"] = address
            probes.machine.current = cpu.vcpu
            fire()
        if returning and probes.returns:  # (none once a firing of this walk called exit())
            for depth in returning:
                task.returns.append((tuple(path[:depth]), result, outer_rbp))

    def unwind(self, cpu: CpuState, task: Task, resting: tuple[str, ...] | list[str]) -> None:
        """`task` comes to rest in `resting` (a kernel loop's path, or () for user mode): the probed
        functions it was in that are not on that path return, innermost first."""
        resting = tuple(resting)
        pending = task.returns
        functions = self.kernel.functions
        while pending:
            path, value, outer_rbp = pending[-1]
            if resting[:len(path)] == path:
                break
            pending.pop()
            fire = self.probes.returns.get(functions[path[-1]].address)
            if fire is None:  # the probe went with the script that set it
                continue
            r = cpu.vcpu.regs
            if len(path) > 1:
                self.kernel_path(cpu, task, list(path[:-1]), outer_rbp=outer_rbp)
                r["RIP"] = self.kernel.return_address(path[-2], path[-1])
            else:  # the entry point itself returns to user mode
                r["RIP"] = task.user_rip
            r["RAX"] = value
            self.probes.args[:] = [value] + [0] * (len(self.probes.args) - 1)
            self.probes.machine.current = cpu.vcpu
            fire()

    def _find_probed(self) -> None:
        """Note the names of the kernel functions with a dynamic probe at their entry or in their
        body, or a return probe, for the probe set now installed (`Probes.generation`), and
        forget the walks' plans of the one before."""
        probes = self.probes
        self._probed_generation = probes.generation
        self._plans = {}
        probed_at = set(probes.breakpoints) | set(probes.returns)
        self._probed = frozenset(f.name for f in self.kernel.functions.values()
                                 if any(f.address <= a < f.address + len(f.code) for a in probed_at))

    def _plan_along(self, path, start: int) -> tuple[tuple, tuple[int, ...], bool] | None:
        """The `_plan` of a walk down `path` from depth `start` for the probe set installed, or
        None where the path passes no probed function."""
        if self.probes.generation != self._probed_generation:
            self._find_probed()
        if self._probed.isdisjoint(path):
            return None
        key = (tuple(path), start)
        plan = self._plans.get(key)
        return self._plan(key) if plan is None else plan

    def _plan(self, key: tuple[tuple[str, ...], int]) -> tuple[tuple, tuple[int, ...], bool]:
        """What a walk down a path from a depth (`key`) fires, kept until the probe set changes:
        each probe on a function entered, as (depth, address, whether at the entry), the entry's
        first, then those in its body in address order, before the path goes deeper; the depths
        of the functions with a return probe; and whether a firing needs the registers of where
        it is (`Probes.needs_place`)."""
        path, start = key
        probes = self.probes
        breakpoints, returns = probes.breakpoints, probes.returns
        fires, returning = [], []
        for depth in range(start, len(path) + 1):
            func = self.kernel.functions[path[depth - 1]]
            if func.address in breakpoints:
                fires.append((depth, func.address, True))
            fires += [(depth, a, False) for a in sorted(breakpoints) if func.address < a < func.address + len(func.code)]
            if func.address in returns:
                returning.append(depth)
        plan = self._plans[key] = (tuple(fires), tuple(returning), probes.needs_place)
        return plan

    def _plan_fixed(self, fixed: FixedPath) -> None:
        """Find what `fixed` fires for the probe set now installed: the one firing the walk calls
        directly where that is all its `_plan` does, else the plan, or neither where it fires
        nothing and enters no return probe."""
        probes = self.probes
        fixed.generation = probes.generation
        plan = self._plan_along(fixed.path, fixed.start) if probes.breakpoints or probes.returns else None
        fires, returning, place = plan if plan is not None else ((), (), False)
        if len(fires) == 1 and not returning and not place:
            fixed.fire, fixed.plan = probes.breakpoints[fires[0][1]], None
        else:
            fixed.fire, fixed.plan = None, plan if fires or returning else None
