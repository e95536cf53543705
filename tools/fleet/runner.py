"""Running a fleet on Dask: one task per VM, merges as a tree on the workers, failures by name.

The client submits tasks that each run a few VMs (`worker.run_members`, see
`batch_size`) with the program scattered to every worker once, then merges
results as they come, as a
balanced tree: when two results of the same height in the tree are ready
(two VMs, two merges of two VMs ...) it submits a merge of the two
(`merge.merge`), which runs on a worker; at the end what is left is merged
smallest first.  The root is the fleet's result, and it is the only result
the client fetches (of the other tasks it sees only their status).  The
tree's shape follows the order in which VMs finish, which does not matter:
the merge is commutative and associative.

A task that fails (every worker that ran it died: Dask runs a task again
elsewhere when its worker dies, up to `distributed.scheduler.allowed-failures`
times, or what it needed, such as the script scattered to the workers, died
with every worker that held it) is reported by the names of the VMs it
covered, as is a finished result lost with its worker before it was fetched,
and the rest of the fleet's result still comes back, marked incomplete.  Workers that died
during the run are reported too, with the VMs they were running.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterator

from ..errors import ToolError
from .members import Member
from .merge import DEFAULT_MAX_LINES, Partial, failed_vm, merge
from .result import FleetResult, WorkerLoss
from .worker import Program, run_members

CONNECT_TIMEOUT_S = 10

Progress = Callable[[int, int], None]  # (VMs done, VMs in the fleet)


@contextlib.contextmanager
def local_client(workers: int | None = None, *, processes: bool = True) -> Iterator:
    """A Dask client of a cluster started on this machine (one single-threaded worker per core)."""
    from dask.distributed import Client, LocalCluster

    count = workers or os.cpu_count() or 1
    # The scheduler always serves HTTP (its dashboard, when bokeh is there): on a free local port.
    cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=processes, dashboard_address="127.0.0.1:0",
                           silence_logs=logging.ERROR)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


@contextlib.contextmanager
def remote_client(address: str, timeout: float = CONNECT_TIMEOUT_S) -> Iterator:
    """A Dask client of the existing cluster whose scheduler is at `address`."""
    from dask.distributed import Client

    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as e:
        raise ToolError(f"cannot reach the Dask scheduler at {address}: {e}") from None
    with client:
        yield client


MAX_BATCH = 16  # VMs one task runs, at most
TASKS_PER_WORKER = 8  # at least, while there are VMs enough: the load stays balanced


def batch_size(vms: int, workers: int) -> int:
    """How many VMs one task runs: a few tasks per worker, each not too long.

    Short VMs (a simulated second takes tens of milliseconds) would spend as
    much time in Dask's per-task overhead and in moving results between
    workers as in running; a task that runs several and merges them where it
    ran costs one task and one result.
    """
    return max(1, min(MAX_BATCH, vms // (TASKS_PER_WORKER * max(1, workers))))


def batched(members: list[Member], size: int) -> list[list[Member]]:
    return [members[i:i + size] for i in range(0, len(members), size)]


@dataclass
class _Task:
    future: object
    orders: list[int]  # the VMs whose results it holds
    is_vm: bool  # it runs VMs (else it merges)
    level: int = 0  # its height in the merge tree (a VM's result: 0)


def run_fleet(client, members: list[Member], program: Program, duration: float, *,
              max_lines: int = DEFAULT_MAX_LINES, by_vm: bool = False,
              progress: Progress | None = None) -> FleetResult:
    """Run `program` on every member for `duration` simulated seconds; the merged result."""
    from dask.distributed import as_completed

    if not members:
        raise ToolError("the fleet has no VM")
    names = {m.order: m.name for m in members}
    token = uuid.uuid4().hex[:12]
    started = time.time()
    workers = set(client.scheduler_info()["workers"])  # whose deaths to look for at the end
    if not workers:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise ToolError(f"the Dask cluster has no worker (none came in {CONNECT_TIMEOUT_S} s)") from None
        workers = set(client.scheduler_info()["workers"])
    shared = client.scatter(program, broadcast=True, hash=False)
    tasks: dict[str, _Task] = {}
    batches: dict[str, list[int]] = {}  # a VM task's key -> the VMs it runs
    for i, batch in enumerate(batched(members, batch_size(len(members), len(workers)))):
        future = client.submit(run_members, batch, shared, duration, max_lines, by_vm, key=f"fleet-vms-{i}-{token}")
        tasks[future.key] = _Task(future, [m.order for m in batch], True)
        batches[future.key] = tasks[future.key].orders
    pending = as_completed([t.future for t in tasks.values()])
    ready: dict[int, _Task] = {}  # a finished result waiting for a partner, by its level in the tree
    failed: list[Partial] = []
    done = 0
    merge_keys = itertools.count(1)

    def join(a: _Task, b: _Task) -> None:  # `pending` takes the merge: the loop goes on until none is left
        joined = client.submit(merge, a.future, b.future, key=f"fleet-merge-{next(merge_keys)}-{token}")
        tasks[joined.key] = _Task(joined, a.orders + b.orders, False, max(a.level, b.level) + 1)
        pending.add(joined)

    while True:
        for future in pending:
            task = tasks.pop(future.key)
            if task.is_vm:
                done += len(task.orders)
                if progress is not None:
                    progress(done, len(members))
            if future.status != "finished":
                why, worker = _task_failure(future, task)
                if worker:
                    workers.add(worker)
                failed.extend(failed_vm(order, names[order], why, max_lines) for order in task.orders)
            elif task.level in ready:  # two results of one level: merge them, one level up
                join(ready.pop(task.level), task)
            else:
                ready[task.level] = task
        if len(ready) <= 1:
            break
        low, high = sorted(ready)[:2]  # what is left at the end: the smallest two, until one remains
        join(ready.pop(low), ready.pop(high))
    result = None
    for root in ready.values():  # the one result left: fetched, unless it died with its worker
        try:
            result = root.future.result()
        except Exception:
            why, _ = _task_failure(root.future, root)
            failed.extend(failed_vm(order, names[order], why, max_lines) for order in root.orders)
    for part in failed:
        result = part if result is None else merge(result, part)
    workers.update(client.scheduler_info()["workers"])
    lost = _lost_workers(client, sorted(workers), started, batches, names)
    return FleetResult.from_partial(result, duration, lost)


def _task_failure(future, task: _Task) -> tuple[str, str | None]:
    """Why a task came back without a result, as said of each VM it covered; the worker it died on."""
    try:  # a cancelled task has no exception(); its result() raises why it was cancelled
        error = future.result() if future.status == "cancelled" else future.exception()
    except Exception as e:
        error = e
    kind = type(error).__name__
    worker = None
    if future.status == "cancelled" and getattr(error, "reason", None) == "already forgotten":
        # what it needs (the script, scattered to every worker, or a result) died with every worker holding it
        why = "the workers holding what it needed died"
    elif kind == "KilledWorker":
        worker = getattr(error, "last_worker", None)
        worker = getattr(worker, "address", worker)
        why = "every worker that ran it died" + (f" (the last: {worker})" if worker else "")
    else:
        why = f"{kind}: {error}" if str(error) else kind
    return (why if task.is_vm else f"merging its result failed: {why}"), worker


def _lost_workers(client, workers: list[str], since: float, batches: dict[str, list[int]],
                  names: dict[int, str]) -> tuple[WorkerLoss, ...]:
    """The workers that died (were not closed on purpose) during the run, with the VMs they ran.

    Each worker's own event topic says when it was removed and what it was running."""
    lost = []
    for address in workers:
        try:
            events = client.get_events(address)
        except Exception:  # the scheduler cannot say: the failed VMs are still reported by name
            continue
        for stamp, event in events:
            if stamp < since or not isinstance(event, dict) or event.get("action") != "remove-worker":
                continue
            if event.get("expected"):
                continue
            orders = sorted(o for key in event.get("processing-tasks", ()) for o in batches.get(str(key), ()))
            lost.append(WorkerLoss(address, tuple(names[o] for o in orders)))
    return tuple(lost)

