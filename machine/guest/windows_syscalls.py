"""The Windows guest's system services: their numbers, and the kernel path below each one it calls.

The numbers are 64-bit Windows 7 SP1's (the system service numbers ntdll's
stubs load into EAX before `syscall`); `nt!KiServiceTable` holds an entry
for each, and a service the table lists but the workload does not call (or
that has no row here) goes no deeper than its `nt!Nt...` handler.  How a
row is run: `syscalls.SystemCalls`.
"""

from __future__ import annotations

from .syscalls import (SystemCall, contend, exit_task, read_clock, receive, send, sleep_as_programmed,
                       start_child, unmap, yield_cpu)

# Service number -> name: the table's first block (stable from Vista to 7), and process creation.
SERVICES: dict[int, str] = dict(enumerate((
    "NtMapUserPhysicalPagesScatter", "NtWaitForSingleObject", "NtCallbackReturn", "NtReadFile",
    "NtDeviceIoControlFile", "NtWriteFile", "NtRemoveIoCompletion", "NtReleaseSemaphore",
    "NtReplyWaitReceivePort", "NtReplyPort", "NtSetInformationThread", "NtSetEvent", "NtClose", "NtQueryObject",
    "NtQueryInformationFile", "NtOpenKey", "NtEnumerateValueKey", "NtFindAtom", "NtQueryDefaultLocale",
    "NtQueryKey", "NtQueryValueKey", "NtAllocateVirtualMemory", "NtQueryInformationProcess",
    "NtWaitForMultipleObjects32", "NtWriteFileGather", "NtSetInformationProcess", "NtCreateKey",
    "NtFreeVirtualMemory", "NtImpersonateClientOfPort", "NtReleaseMutant", "NtQueryInformationToken",
    "NtRequestWaitReplyPort", "NtQueryVirtualMemory", "NtOpenThreadToken", "NtQueryInformationThread",
    "NtOpenProcess", "NtSetInformationFile", "NtMapViewOfSection", "NtAccessCheckAndAuditAlarm",
    "NtUnmapViewOfSection", "NtReplyWaitReceivePortEx", "NtTerminateProcess", "NtSetEventBoostPriority",
    "NtReadFileScatter", "NtOpenThreadTokenEx", "NtOpenProcessTokenEx", "NtQueryPerformanceCounter",
    "NtEnumerateKey", "NtOpenFile", "NtDelayExecution", "NtQueryDirectoryFile", "NtQuerySystemInformation",
    "NtOpenSection", "NtQueryTimer", "NtFsControlFile", "NtWriteVirtualMemory", "NtCloseObjectAuditAlarm",
    "NtDuplicateObject", "NtQueryAttributesFile", "NtClearEvent", "NtReadVirtualMemory", "NtOpenEvent",
    "NtAdjustPrivilegesToken", "NtDuplicateToken", "NtContinue", "NtQueryDefaultUILanguage", "NtQueueApcThread",
    "NtYieldExecution", "NtAddAtom", "NtCreateEvent", "NtQueryVolumeInformationFile", "NtCreateSection",
    "NtFlushBuffersFile", "NtApphelpCacheControl", "NtCreateProcessEx", "NtCreateThread", "NtIsProcessInJob",
    "NtProtectVirtualMemory", "NtQuerySection", "NtResumeThread", "NtTerminateThread", "NtReadRequestData",
    "NtCreateFile", "NtQueryEvent", "NtWriteRequestData", "NtOpenDirectoryObject",
    "NtAccessCheckByTypeAndAuditAlarm", "NtQuerySystemTime", "NtWaitForMultipleObjects", "NtSetInformationObject",
    "NtCancelIoFile", "NtTraceEvent", "NtPowerInformation", "NtSetValueKey", "NtCancelTimer", "NtSetTimer",
)))
SERVICES[0xAA] = "NtCreateUserProcess"
SERVICE_TABLE_ENTRIES = max(SERVICES) + 1  # entries between the blocks are services the model lacks: empty

_WAIT = ("nt!KeWaitForSingleObject", "nt!KiCommitThreadWait")
_OPEN = ("nt!ObOpenObjectByName", "nt!ObpLookupObjectName", "nt!IopParseDevice")
_CONTROL = ("nt!IopXxxControlFile", "nt!IofCallDriver")

WINDOWS_SYSCALLS: dict[str, SystemCall] = {
    "NtReadFile": SystemCall(("nt!IofCallDriver", "Ntfs!NtfsFsdRead", "Ntfs!NtfsCommonRead", "nt!CcCopyRead"),
                             disk="read"),
    "NtWriteFile": SystemCall(("nt!IofCallDriver", "Ntfs!NtfsFsdWrite", "Ntfs!NtfsCommonWrite", "nt!CcCopyWrite")),
    "NtFlushBuffersFile": SystemCall(("nt!IofCallDriver", "Ntfs!NtfsFsdFlushBuffers"), disk="write"),
    "NtCreateFile": SystemCall(("nt!IopCreateFile", *_OPEN)),
    "NtOpenFile": SystemCall(("nt!IopCreateFile", *_OPEN)),
    "NtQueryAttributesFile": SystemCall(_OPEN),
    "NtQueryDirectoryFile": SystemCall(("nt!IofCallDriver", "Ntfs!NtfsFsdDirectoryControl")),
    "NtDeviceIoControlFile": SystemCall((*_CONTROL, "afd!AfdDispatchDeviceControl", "afd!AfdSend", "tcpip!TcpSendData",
                                         "ndis!NdisSendNetBufferLists"), effect=send),  # (AFD's send: the NIC sends)
    "NtFsControlFile": SystemCall(_CONTROL),
    "NtRemoveIoCompletion": SystemCall(("nt!IoRemoveIoCompletion", "nt!KeRemoveQueueEx", "nt!KiCommitThreadWait"),
                                       effect=receive),
    "NtWaitForSingleObject": SystemCall(_WAIT, effect=contend),
    "NtWaitForMultipleObjects": SystemCall(("nt!ObpWaitForMultipleObjects", "nt!KeWaitForMultipleObjects",
                                            "nt!KiCommitThreadWait"), timeout=True, effect=sleep_as_programmed),
    "NtDelayExecution": SystemCall(("nt!KeDelayExecutionThread", "nt!KiCommitThreadWait"), timeout=True,
                                   effect=sleep_as_programmed),
    "NtReplyWaitReceivePortEx": SystemCall(("nt!AlpcpReceiveMessage", *_WAIT), timeout=True,
                                           effect=sleep_as_programmed),
    "NtRequestWaitReplyPort": SystemCall(("nt!AlpcpSendMessage", *_WAIT), effect=contend),
    "NtSetEvent": SystemCall(("nt!KeSetEvent",)),
    "NtReleaseSemaphore": SystemCall(("nt!KeReleaseSemaphore",)),
    "NtClose": SystemCall(("nt!ObpCloseHandle",)),
    "NtOpenKey": SystemCall(("nt!ObOpenObjectByName", "nt!ObpLookupObjectName", "nt!CmpParseKey")),
    "NtQueryValueKey": SystemCall(("nt!CmQueryValueKey",)),
    "NtMapViewOfSection": SystemCall(("nt!MmMapViewOfSection",)),
    "NtUnmapViewOfSection": SystemCall(("nt!MiUnmapViewOfSection",), effect=unmap),
    "NtFreeVirtualMemory": SystemCall(("nt!MiDeleteVirtualAddresses",), effect=unmap),
    "NtQueryPerformanceCounter": SystemCall(("nt!KeQueryPerformanceCounter",), effect=read_clock),
    "NtQuerySystemInformation": SystemCall(("nt!ExpQuerySystemInformation",)),
    "NtOpenProcess": SystemCall(("nt!PsOpenProcess",)),
    "NtYieldExecution": SystemCall(effect=yield_cpu),
    "NtCreateUserProcess": SystemCall(("nt!PspAllocateProcess", "nt!MmCreateProcessAddressSpace"),
                                      effect=start_child),
    "NtTerminateProcess": SystemCall(("nt!PspTerminateThreadByPointer", "nt!PspExitThread", "nt!KeTerminateThread"),
                                     effect=exit_task),
}
