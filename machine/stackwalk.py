"""The frame-pointer walk behind `gueststack`, shared by every machine.

From RIP, RSP and RBP of the firing VCPU: RIP first; at a function's first
instruction (before its `push rbp`) the caller's return address is at [RSP];
then each frame's saved RBP and return address.  Frames move up the stack;
the one step down allowed is from the kernel stack to the user stack below a
system call or a fault from user mode.  An unmapped frame, a zero return
address, a step of more than 1 MiB or `max_frames` ends the walk.
"""

from __future__ import annotations

from typing import Callable

from vp_runtime import GuestMemoryFault

MAX_WALK = 64
MAX_FRAME_STEP = 1 << 20


def _next_frame_ok(rbp: int, saved: int) -> bool:
    if saved > rbp:
        return saved - rbp <= MAX_FRAME_STEP
    return bool(rbp >> 63) and not saved >> 63  # kernel stack -> user stack


def walk_frames(read_linear: Callable[[int, int], bytes], rip: int, rsp: int, rbp: int,
                at_function_entry: bool, max_frames: int) -> list[int]:
    """Return addresses of the stack, innermost first, starting with `rip`."""
    def u64(addr: int) -> int:
        return int.from_bytes(read_linear(addr, 8), "little")

    frames = [rip]
    try:
        if at_function_entry:
            frames.append(u64(rsp))
        for _ in range(MAX_WALK):
            if len(frames) >= max_frames or not rbp:
                break
            saved, ret = u64(rbp), u64(rbp + 8)
            if not ret:
                break
            frames.append(ret)
            if not _next_frame_ok(rbp, saved):
                break
            rbp = saved
    except GuestMemoryFault:
        pass
    return frames[:max_frames]
