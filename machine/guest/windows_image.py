"""The Windows guest kernel's images: nt, hal and the boot drivers, their code, data and symbols.

Laid out as every guest kernel is (`image.KernelImage`), one text section
per module at the module's base, every function named `module!function` as
WinDbg names it.  The simulated nt is built with frame pointers (a real x64
Windows kernel is not: its stacks are walked with unwind data), so that the
frame-pointer walk behind `gueststack` finds its frames.  The functions
whose code matters exactly are written from the structure layout
(`windows_layout`): `nt!KiSystemCall64`, the system-call entry (swapgs, the
switch to the kernel stack, the call through `nt!KiServiceTable` with the
service number from EAX), and the accessors `offatseg` / `offatret` decode
(`nt!PsGetCurrentProcess` is `mov rax, gs:[188h]; mov rax, [rax+70h]; ret`,
`nt!PsGetProcessImageFileName` `lea rax, [rcx+2E0h]; ret`...).
Dispatchers that call through pointers (`nt!IofCallDriver`, the interrupt
and DPC dispatchers, the system-thread start) make one indirect call.  A
call into another module goes through the caller's import address table,
`call qword ptr [rip+...]` to its `module!__imp_function` slot, as a PE
image's calls do (the modules are further apart than a direct call reaches).
"""

from __future__ import annotations

import struct

from vp_runtime.spec import symbol_files

from . import windows_layout as W
from . import x86asm as asm
from .image import DataSymbol, Function, KernelImage
from .windows_syscalls import SERVICE_TABLE_ENTRIES, SERVICES

# Direct (or, for `INDIRECT`, dispatched) calls: caller -> callees, in the order of the caller's code.
CALLS: dict[str, list[str]] = {
    # boot
    "nt!KiSystemStartup": ["nt!KiInitializeKernel"],
    "nt!KiInitializeKernel": ["hal!HalInitializeProcessor", "nt!KiInitializeBootStructures", "nt!InitBootProcessor",
                              "nt!KiIdleLoop"],
    "nt!InitBootProcessor": ["hal!HalInitSystem", "nt!InbvDisplayString"],
    "nt!Phase1Initialization": ["nt!Phase1InitializationDiscard"],
    "nt!Phase1InitializationDiscard": ["nt!IoInitSystem", "nt!ExpLoadInitialProcess"],
    "nt!ExpLoadInitialProcess": ["nt!PspAllocateProcess"],
    # system threads and their waits
    "nt!KiStartSystemThread": ["nt!PspSystemThreadStartup"],
    "nt!PspSystemThreadStartup": ["nt!Phase1Initialization", "nt!ExpWorkerThread", "nt!KeBalanceSetManager",
                                  "nt!KeSwapProcessOrStack", "nt!MmZeroPageThread", "nt!MiModifiedPageWriter",
                                  "nt!MiMappedPageWriter", "nt!ExpWorkerThreadBalanceManager"],
    "nt!ExpWorkerThread": ["nt!KeRemoveQueueEx"],
    "nt!KeBalanceSetManager": ["nt!KeWaitForMultipleObjects"],
    "nt!KeSwapProcessOrStack": ["nt!KeWaitForSingleObject"],
    "nt!MmZeroPageThread": ["nt!KeWaitForMultipleObjects"],
    "nt!MiModifiedPageWriter": ["nt!KeWaitForMultipleObjects"],
    "nt!MiMappedPageWriter": ["nt!KeWaitForMultipleObjects"],
    "nt!ExpWorkerThreadBalanceManager": ["nt!KeWaitForMultipleObjects"],
    "nt!KeWaitForSingleObject": ["nt!KiCommitThreadWait"],
    "nt!KeWaitForMultipleObjects": ["nt!KiCommitThreadWait"],
    "nt!KeDelayExecutionThread": ["nt!KiCommitThreadWait"],
    "nt!KeRemoveQueueEx": ["nt!KiCommitThreadWait"],
    "nt!KiCommitThreadWait": ["nt!KiSwapThread"],
    # scheduling and the idle loop
    "nt!KiSwapThread": ["nt!KiSwapContext"],
    "nt!KiSwapContext": ["nt!SwapContext"],
    "nt!KiIdleLoop": ["nt!PoIdle", "nt!KiRetireDpcList", "nt!KiSwapThread"],
    "nt!PoIdle": ["hal!HalProcessorIdle"],
    "nt!KiDpcInterrupt": ["nt!KiDispatchInterrupt"],
    "nt!KiDispatchInterrupt": ["nt!KiRetireDpcList", "nt!KiSwapThread"],
    "nt!KiRetireDpcList": ["nt!KiTimerExpiration", "ataport!IdePortCompletionDpc", "ndis!ndisInterruptDpc"],
    "nt!KiIpiInterrupt": ["nt!KiIpiProcessRequests"],
    # interrupts
    "hal!HalpTimerClockInterrupt": ["nt!KeUpdateSystemTime"],
    "nt!KeUpdateSystemTime": ["nt!KiCheckForTimerExpiration", "nt!KeUpdateRunTime"],
    "nt!KiInterruptDispatch": ["ataport!IdePortInterrupt", "ndis!ndisMiniportIsr"],
    # faults and exceptions
    "nt!KiPageFault": ["nt!MmAccessFault"],
    "nt!MmAccessFault": ["nt!MiDispatchFault"],
    "nt!MiDispatchFault": ["nt!MiResolveDemandZeroFault"],
    "nt!KiDivideErrorFault": ["nt!KiExceptionDispatch"],
    "nt!KiDebugTrapOrFault": ["nt!KiExceptionDispatch"],
    "nt!KiNmiInterrupt": ["nt!KiProcessNMI"],
    "nt!KiProcessNMI": ["hal!HalHandleNMI"],
    "nt!KiBreakpointTrap": ["nt!KiExceptionDispatch"],
    "nt!KiOverflowTrap": ["nt!KiExceptionDispatch"],
    "nt!KiBoundFault": ["nt!KiExceptionDispatch"],
    "nt!KiInvalidOpcodeFault": ["nt!KiExceptionDispatch"],
    "nt!KiDoubleFaultAbort": ["nt!KeBugCheckEx"],
    "nt!KiInvalidTssFault": ["nt!KiExceptionDispatch"],
    "nt!KiSegmentNotPresentFault": ["nt!KiExceptionDispatch"],
    "nt!KiStackFault": ["nt!KiExceptionDispatch"],
    "nt!KiGeneralProtectionFault": ["nt!KiExceptionDispatch"],
    "nt!KiNpxSegmentOverrunAbort": ["nt!KiExceptionDispatch"],
    "nt!KiFloatingErrorFault": ["nt!KiExceptionDispatch"],
    "nt!KiAlignmentFault": ["nt!KiExceptionDispatch"],
    "nt!KiMcheckAbort": ["hal!HalHandleMcheck"],
    "nt!KiXmmException": ["nt!KiExceptionDispatch"],
    "nt!KiExceptionDispatch": ["nt!KiDispatchException"],
    # I/O: files, the disk, the network
    "nt!IofCallDriver": ["Ntfs!NtfsFsdRead", "Ntfs!NtfsFsdWrite", "Ntfs!NtfsFsdFlushBuffers",
                         "Ntfs!NtfsFsdDirectoryControl", "CLASSPNP!ClassReadWrite", "afd!AfdDispatchDeviceControl"],
    "Ntfs!NtfsFsdRead": ["Ntfs!NtfsCommonRead"],
    "Ntfs!NtfsCommonRead": ["nt!CcCopyRead"],
    "nt!CcCopyRead": ["nt!MiIssueHardFault"],
    "nt!MiIssueHardFault": ["nt!IofCallDriver", "nt!KeWaitForSingleObject"],
    "Ntfs!NtfsFsdWrite": ["Ntfs!NtfsCommonWrite"],
    "Ntfs!NtfsCommonWrite": ["nt!CcCopyWrite"],
    "Ntfs!NtfsFsdFlushBuffers": ["nt!IofCallDriver", "nt!KeWaitForSingleObject"],
    "CLASSPNP!ClassReadWrite": ["ataport!IdePortDispatch"],
    "nt!IopCreateFile": ["nt!ObOpenObjectByName"],
    "nt!ObOpenObjectByName": ["nt!ObpLookupObjectName"],
    "nt!ObpLookupObjectName": ["nt!IopParseDevice", "nt!CmpParseKey"],
    "nt!IopXxxControlFile": ["nt!IofCallDriver"],
    "afd!AfdDispatchDeviceControl": ["afd!AfdSend"],
    "afd!AfdSend": ["tcpip!TcpSendData"],
    "tcpip!TcpSendData": ["ndis!NdisSendNetBufferLists"],
    "nt!IoRemoveIoCompletion": ["nt!KeRemoveQueueEx"],
    "ataport!IdePortCompletionDpc": ["nt!IopfCompleteRequest"],
    "nt!IopfCompleteRequest": ["nt!KeSetEvent", "nt!KeInsertQueue"],
    "ndis!ndisInterruptDpc": ["ndis!ndisMIndicateNetBufferListsToOpen"],
    "ndis!ndisMIndicateNetBufferListsToOpen": ["tcpip!FlReceiveNetBufferListChain"],
    "tcpip!FlReceiveNetBufferListChain": ["tcpip!IppReceiveHeaderBatch"],
    "tcpip!IppReceiveHeaderBatch": ["tcpip!TcpDeliverDataToClient"],
    "tcpip!TcpDeliverDataToClient": ["nt!IopfCompleteRequest"],
    # the system services' paths
    "nt!NtReadFile": ["nt!IofCallDriver"],
    "nt!NtWriteFile": ["nt!IofCallDriver"],
    "nt!NtFlushBuffersFile": ["nt!IofCallDriver"],
    "nt!NtQueryDirectoryFile": ["nt!IofCallDriver"],
    "nt!NtCreateFile": ["nt!IopCreateFile"],
    "nt!NtOpenFile": ["nt!IopCreateFile"],
    "nt!NtQueryAttributesFile": ["nt!ObOpenObjectByName"],
    "nt!NtOpenKey": ["nt!ObOpenObjectByName"],
    "nt!NtDeviceIoControlFile": ["nt!IopXxxControlFile"],
    "nt!NtFsControlFile": ["nt!IopXxxControlFile"],
    "nt!NtRemoveIoCompletion": ["nt!IoRemoveIoCompletion"],
    "nt!NtWaitForSingleObject": ["nt!KeWaitForSingleObject"],
    "nt!NtWaitForMultipleObjects": ["nt!ObpWaitForMultipleObjects"],
    "nt!ObpWaitForMultipleObjects": ["nt!KeWaitForMultipleObjects"],
    "nt!NtDelayExecution": ["nt!KeDelayExecutionThread"],
    "nt!NtReplyWaitReceivePortEx": ["nt!AlpcpReceiveMessage"],
    "nt!AlpcpReceiveMessage": ["nt!KeWaitForSingleObject"],
    "nt!NtRequestWaitReplyPort": ["nt!AlpcpSendMessage"],
    "nt!AlpcpSendMessage": ["nt!KeWaitForSingleObject"],
    "nt!NtSetEvent": ["nt!KeSetEvent"],
    "nt!NtReleaseSemaphore": ["nt!KeReleaseSemaphore"],
    "nt!NtClose": ["nt!ObpCloseHandle"],
    "nt!NtQueryValueKey": ["nt!CmQueryValueKey"],
    "nt!NtMapViewOfSection": ["nt!MmMapViewOfSection"],
    "nt!NtUnmapViewOfSection": ["nt!MiUnmapViewOfSection"],
    "nt!NtFreeVirtualMemory": ["nt!MiDeleteVirtualAddresses"],
    "nt!NtQueryPerformanceCounter": ["nt!KeQueryPerformanceCounter"],
    "nt!NtQuerySystemInformation": ["nt!ExpQuerySystemInformation"],
    "nt!NtOpenProcess": ["nt!PsOpenProcess"],
    "nt!NtCreateUserProcess": ["nt!PspAllocateProcess"],
    "nt!PspAllocateProcess": ["nt!MmCreateProcessAddressSpace"],
    "nt!NtTerminateProcess": ["nt!PspTerminateThreadByPointer"],
    "nt!PspTerminateThreadByPointer": ["nt!PspExitThread"],
    "nt!PspExitThread": ["nt!KeTerminateThread"],
    "nt!KeTerminateThread": ["nt!KiSwapThread"],
}

# Entry code written in assembly (no frame), and the leaf accessors (no frame either).
ASM_ENTRIES = frozenset({
    "nt!KiSystemStartup", "nt!KiSystemCall64", "nt!KiStartSystemThread", "nt!KiSwapContext", "nt!SwapContext",
    "nt!KiDpcInterrupt", "nt!KiIpiInterrupt", "hal!HalpTimerClockInterrupt", "nt!KiInterruptDispatch",
    "nt!KiPageFault", "nt!KiDivideErrorFault", "nt!KiDebugTrapOrFault", "nt!KiNmiInterrupt", "nt!KiBreakpointTrap",
    "nt!KiOverflowTrap", "nt!KiBoundFault", "nt!KiInvalidOpcodeFault", "nt!KiNpxNotAvailableFault",
    "nt!KiDoubleFaultAbort", "nt!KiNpxSegmentOverrunAbort", "nt!KiInvalidTssFault", "nt!KiSegmentNotPresentFault",
    "nt!KiStackFault", "nt!KiGeneralProtectionFault", "nt!KiFloatingErrorFault", "nt!KiAlignmentFault",
    "nt!KiMcheckAbort", "nt!KiXmmException", "nt!KiExceptionDispatch",
})
INDIRECT = frozenset({"nt!IofCallDriver", "nt!KiInterruptDispatch", "nt!KiRetireDpcList",
                      "nt!PspSystemThreadStartup"})


def _accessor(*loads: bytes) -> bytes:
    return b"".join(loads) + asm.RET


_CURRENT_THREAD = asm.mov_rax_gs(W.KPCR_PRCB + W.KPRCB_CURRENT_THREAD)
# The exported accessors of the current thread and process: what they return is where the offsets are.
ACCESSORS: dict[str, bytes] = {
    "nt!KeGetCurrentThread": _accessor(_CURRENT_THREAD),
    "nt!PsGetCurrentThread": _accessor(_CURRENT_THREAD),
    "nt!PsGetCurrentProcess": _accessor(_CURRENT_THREAD, asm.mov_rax_mem_rax(W.KTHREAD_APC_STATE_PROCESS)),
    "nt!PsGetCurrentThreadProcess": _accessor(_CURRENT_THREAD, asm.mov_rax_mem_rax(W.KTHREAD_PROCESS)),
    "nt!PsGetCurrentProcessId": _accessor(_CURRENT_THREAD, asm.mov_rax_mem_rax(
        W.ETHREAD_CID + W.CLIENT_ID_UNIQUE_PROCESS)),
    "nt!PsGetCurrentThreadId": _accessor(_CURRENT_THREAD, asm.mov_rax_mem_rax(
        W.ETHREAD_CID + W.CLIENT_ID_UNIQUE_THREAD)),
    "nt!PsGetProcessId": _accessor(asm.mov_rax_mem_rcx(W.EPROCESS_UNIQUE_PROCESS_ID)),
    "nt!PsGetProcessInheritedFromUniqueProcessId": _accessor(asm.mov_rax_mem_rcx(
        W.EPROCESS_INHERITED_FROM_UNIQUE_PROCESS_ID)),
    "nt!PsGetProcessImageFileName": _accessor(asm.lea_rax_rcx(W.EPROCESS_IMAGE_FILE_NAME)),
    "nt!PsGetProcessPeb": _accessor(asm.mov_rax_mem_rcx(W.EPROCESS_PEB)),
}
EXTRA_FUNCTIONS = ["nt!KeBugCheckEx", "nt!RtlCopyMemory", "nt!ExAllocatePoolWithTag", "nt!ExFreePoolWithTag",
                   "nt!KeQueryPerformanceCounter", "nt!IoCompleteRequest"]


def _module(name: str) -> str:
    return name.split("!", 1)[0]


def _import_name(module: str, function: str) -> str:
    return f"{module}!__imp_{function.split('!', 1)[1]}"


class WindowsKernelImage(KernelImage):
    """nt, hal and the drivers; nt's data (the processor block, the process list, the service
    table...); the symbols in WinDbg `x` format."""

    def __init__(self):
        names = list(dict.fromkeys(
            [n for caller, callees in CALLS.items() for n in [caller, *callees]]
            + ["nt!KiSystemCall64", "nt!KiNpxNotAvailableFault"] + [f"nt!{name}" for name in SERVICES.values()]
            + list(ACCESSORS) + EXTRA_FUNCTIONS))
        modules = list(W.MODULE_BASES)
        names.sort(key=lambda n: modules.index(_module(n)))  # one text section per module, in module order
        self._data_cursor = W.MODULE_BASES["nt"] + W.NT_DATA_OFFSET
        self._imports = {}  # (importing module, function) -> its slot in the module's import address table
        for caller, callees in CALLS.items():
            for callee in callees:
                module = _module(caller)
                if module != _module(callee) and caller not in INDIRECT and (module, callee) not in self._imports:
                    count = sum(1 for m, _ in self._imports if m == module)
                    self._imports[module, callee] = W.MODULE_BASES[module] + W.IMPORTS_OFFSET + 8 * count
        super().__init__(names, CALLS, ASM_ENTRIES | frozenset(ACCESSORS), INDIRECT)
        for (module, callee), slot in self._imports.items():
            self.data[_import_name(module, callee)].value = struct.pack("<Q", self.functions[callee].address)
        table = self.data["nt!KiServiceTable"].address
        # Each entry: the handler's offset from the table, shifted left 4 (its low bits count stack arguments).
        self.data["nt!KiServiceTable"].value = b"".join(
            struct.pack("<i", (self.functions[f"nt!{SERVICES[n]}"].address - table) << 4 if n in SERVICES else 0)
            for n in range(SERVICE_TABLE_ENTRIES))
        # HalProcessorIdle is `push rbp; mov rbp, rsp; sti; hlt; ...`: where an idle processor halts.
        self.idle_halt = self.functions["hal!HalProcessorIdle"].address + len(asm.PROLOGUE + asm.STI)

    def text_start(self, name: str) -> int:
        return W.MODULE_BASES[_module(name)] + W.TEXT_OFFSET

    def _call(self, at: int, caller: str, callee: str, addresses: dict[str, int]) -> bytes:
        slot = self._imports.get((_module(caller), callee))
        return asm.call_rip(at, slot) if slot is not None else super()._call(at, caller, callee, addresses)

    def module_pages(self) -> dict[str, int]:
        """How many pages of code each driver (not hal or nt, whose images the loader maps) has."""
        ends: dict[str, int] = {}
        for f in self.functions.values():
            module = _module(f.name)
            if module not in W.MODULE_SIZES:
                ends[module] = max(ends.get(module, 0), f.end)
        return {m: (end - W.MODULE_BASES[m] + 0xFFF) // 0x1000 for m, end in ends.items()}

    # ---- text -----------------------------------------------------------------

    def _code_for(self, func: Function, addresses: dict[str, int]) -> bytes:
        name = func.name
        at = func.address
        accessor = ACCESSORS.get(name)
        if accessor is not None:
            return accessor
        if name == "nt!KiSystemCall64":
            return self._system_call_entry(func)
        if name == "hal!HalProcessorIdle":
            return asm.PROLOGUE + asm.STI + asm.HLT + asm.EPILOGUE
        return super()._code_for(func, addresses)

    def _system_call_entry(self, func: Function) -> bytes:
        """swapgs; the user RSP into the KPCR and the kernel stack from the KPRCB; a trap frame; the
        handler from KiServiceTable by the service number in EAX, called; swapgs; sysretq."""
        user_rsp = W.KPCR_USER_RSP
        head = (asm.SWAPGS + asm.mov_gs_rsp(user_rsp) + asm.mov_rsp_gs(W.KPCR_PRCB + W.KPRCB_RSP_BASE)
                + asm.push_imm8(W.USER_SS) + asm.push_gs(user_rsp) + asm.PUSH_R11 + asm.push_imm8(W.USER_CS)
                + asm.PUSH_RCX + asm.MOV_RCX_R10 + asm.PUSH_RBP + asm.sub_rsp(W.KTRAP_FRAME_SIZE - 0x38)
                + asm.mov_rbx_gs(W.KPCR_PRCB + W.KPRCB_CURRENT_THREAD) + asm.and_eax(0xFFF))
        lea_at = func.address + len(head)
        lea = asm.lea_r10_rip(self.data["nt!KiServiceTable"].address - (lea_at + asm.LEA_R10_RIP_LENGTH))
        dispatch = head + lea + asm.MOVSXD_R11_R10_RAX4 + asm.SAR_R11_4 + asm.ADD_R10_R11 + asm.CALL_R10
        func.call_sites["*"] = func.address + len(dispatch)
        return dispatch + asm.POP_RBP + asm.SWAPGS + asm.SYSRETQ

    # ---- data -----------------------------------------------------------------

    def _lay_out_data(self) -> None:
        for (module, callee), slot in self._imports.items():
            self.data[_import_name(module, callee)] = DataSymbol(_import_name(module, callee), slot, "R", bytes(8))
        self._add_data("nt!NtBuildNumber", struct.pack("<I", W.NT_BUILD_NUMBER), "D", 4)
        self._add_data("nt!NtBuildLab", W.NT_BUILD_LAB.encode() + b"\0", "D")
        self._add_data("nt!KeNumberProcessors", struct.pack("<I", 0), "D", 4)
        self._add_data("nt!KeTickCount", struct.pack("<Q", 0), "D")
        self._add_data("nt!KeMaximumIncrement", struct.pack("<I", 0), "D", 4)
        self._add_data("nt!PsActiveProcessHead", bytes(16), "D")
        self._add_data("nt!PsInitialSystemProcess", bytes(8), "D")
        self._add_data("nt!PsIdleProcess", bytes(8), "D")
        self._add_data("nt!KiProcessorBlock", bytes(8 * 64), "D")
        self._add_data("nt!KiServiceTable", bytes(4 * SERVICE_TABLE_ENTRIES), "R", 16)
        self._add_data("nt!KeServiceDescriptorTable", bytes(32), "D", 16)
        self._add_data("nt!KiInitialProcess", bytes(W.EPROCESS_SIZE), "D", 64)
        self._add_data("nt!KiInitialThread", bytes(W.ETHREAD_SIZE), "D", 64)
        self._add_data("nt!KiInitialPCR", bytes(W.KPCR_SIZE), "D", 0x100)

    def set_processors(self, count: int, tick_100ns: int) -> None:
        """What the kernel records at boot: the number of processors and the clock's period."""
        self.data["nt!KeNumberProcessors"].value = struct.pack("<I", count)
        self.data["nt!KeMaximumIncrement"].value = struct.pack("<I", tick_100ns)
        table = self.data["nt!KiServiceTable"].address
        self.data["nt!KeServiceDescriptorTable"].value = struct.pack("<QQQQ", table, 0, SERVICE_TABLE_ENTRIES, 0)

    # ---- the symbols, as WinDbg's `x` lists them -------------------------------------------------

    def windbg_symbols(self) -> str:
        rows = [(f.address, f.name, True) for f in self._sorted]
        rows += [(d.address, d.name, False) for d in self.data.values()]
        return "".join(symbol_files.windbg_line(address, name, function) for address, name, function in sorted(rows))
