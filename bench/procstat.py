"""CPU time of a process tree, read from ``/proc/<pid>/stat``.

``utime`` + ``stime`` of a process cover all its threads.  A proxy under test is a tree
(nginx: master + worker; fastgate: one process, or a supervisor and its workers), so the
harness samples every live process of the tree before and after a wrk run and sums the
per-process differences.  Children that exit during a run would hide their CPU from a
live sample (it moves to the parent's ``cutime`` only once reaped); ``CpuDelta.vanished``
names them so the report can say the number is a lower bound.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS_PER_SEC = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    state: str
    ppid: int
    utime_ticks: int
    stime_ticks: int

    @property
    def cpu_ticks(self) -> int:
        return self.utime_ticks + self.stime_ticks


def parse_stat(text: str) -> ProcStat:
    """Parse one ``/proc/<pid>/stat`` line (proc(5)); ``comm`` may hold spaces and parens."""
    head, _, tail = text.rpartition(")")
    pid_text, _, comm = head.partition(" (")
    fields = tail.split()
    # tail starts at field 3 (state); utime and stime are fields 14 and 15.
    return ProcStat(
        pid=int(pid_text),
        comm=comm,
        state=fields[0],
        ppid=int(fields[1]),
        utime_ticks=int(fields[11]),
        stime_ticks=int(fields[12]),
    )


def read_stat(pid: int) -> ProcStat | None:
    """The process's stat, or None when it no longer exists."""
    try:
        return parse_stat((PROC / str(pid) / "stat").read_text())
    except (FileNotFoundError, ProcessLookupError):
        return None


def _all_stats() -> list[ProcStat]:
    stats = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None:
                stats.append(stat)
    return stats


def tree_pids(root: int, stats: list[ProcStat]) -> list[int]:
    """``root`` and all its descendants among ``stats``, root first."""
    children: dict[int, list[int]] = {}
    for stat in stats:
        children.setdefault(stat.ppid, []).append(stat.pid)
    present = {stat.pid for stat in stats}
    if root not in present:
        return []
    order, stack = [], [root]
    while stack:
        pid = stack.pop()
        order.append(pid)
        stack.extend(sorted(children.get(pid, ()), reverse=True))
    return order


def sample_tree(root: int) -> dict[int, int]:
    """CPU ticks of every live process in ``root``'s tree, by pid."""
    stats = _all_stats()
    by_pid = {stat.pid: stat for stat in stats}
    return {pid: by_pid[pid].cpu_ticks for pid in tree_pids(root, stats)}


@dataclass(frozen=True)
class CpuDelta:
    seconds: float
    pids: tuple[int, ...]
    vanished: tuple[int, ...]


def cpu_delta(before: dict[int, int], after: dict[int, int]) -> CpuDelta:
    """CPU spent between two samples; processes born in between count from zero."""
    ticks = sum(after[pid] - before.get(pid, 0) for pid in after)
    vanished = tuple(sorted(set(before) - set(after)))
    return CpuDelta(ticks / CLOCK_TICKS_PER_SEC, tuple(sorted(after)), vanished)


def cpus_allowed(pid: int) -> list[int]:
    """The CPUs the process may run on (its taskset affinity)."""
    return sorted(os.sched_getaffinity(pid))


@dataclass(frozen=True)
class CoreTimes:
    """One CPU's time since boot from ``/proc/stat``, in clock ticks."""

    busy: int  # user + nice + system + irq + softirq (guest time is inside user)
    idle: int  # idle + iowait
    steal: int  # taken by the hypervisor for other guests


def parse_core_times(text: str) -> dict[int, CoreTimes]:
    """The per-CPU lines (``cpuN ...``) of a ``/proc/stat`` text, by CPU number."""
    cores = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        values = [int(v) for v in rest.split()] + [0] * 8
        user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
        cores[int(name[3:])] = CoreTimes(user + nice + system + irq + softirq, idle + iowait,
                                         steal)
    return cores


def read_core_times() -> dict[int, CoreTimes]:
    return parse_core_times((PROC / "stat").read_text())


def parse_status_rss_kb(text: str) -> int | None:
    """``VmRSS`` in kB from a ``/proc/<pid>/status`` text (None for a kernel thread
    or a zombie, which have none)."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def tree_rss_kb(root: int) -> int | None:
    """The summed resident set of ``root``'s live process tree, in kB (pages shared
    by several processes, such as nginx's master and worker, count once each), or
    None when the tree is gone."""
    pids = tree_pids(root, _all_stats())
    if not pids:
        return None
    total = 0
    for pid in pids:
        try:
            rss = parse_status_rss_kb((PROC / str(pid) / "status").read_text())
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += rss or 0
    return total
