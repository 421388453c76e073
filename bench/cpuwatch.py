"""Who used the CPUs during a timed step: this benchmark, everybody else, or the hypervisor.

The benchmark shares its machine (other sessions run test suites, each with its own
PostgreSQL). A restore slowed down by them looks like drill overhead, so every timed step is
watched: a thread reads /proc every half second and splits the CPU time of all processes into
ours (descendants of this process, and PostgreSQL servers whose data directory is under our
marker directory, with their backends) and others'. /proc/stat adds the machine totals and the
steal time (CPU taken by other virtual machines). Both shares are lower bounds: a process's
last half second before it exits is not seen. Linux only; elsewhere the figures are zero.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

INTERVAL_SECONDS = 0.5
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
KTHREADD = 2


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:  # the process exited, or /proc is missing
        return None


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, CPU ticks user + system, command name)."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _read(f"/proc/{entry.name}/stat")
        if not stat:
            continue
        # The command name is in parentheses and may hold spaces or parentheses itself.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]), name)
    return table


def _machine() -> tuple[int, int]:
    """(busy ticks, steal ticks) over all CPUs since boot."""
    text = _read("/proc/stat") or "cpu 0 0 0 0 0 0 0 0"
    values = [int(v) for v in text.splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal


class CpuWatch:
    """Context manager: `figures()` afterwards gives CPU-seconds by ours / others / kernel."""

    def __init__(self, marker: str):
        self.marker = marker  # a directory only our clusters' command lines mention
        self.me = os.getpid()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._last: dict[int, int] = {}
        self._ours_roots: set[int] = set()
        self._not_ours: set[int] = set()
        self.cpu = {"ours": 0, "others": 0, "kernel": 0}
        self.others_by_name: dict[str, int] = defaultdict(int)
        self._started = 0.0
        self._elapsed = 0.0
        self._machine_start = (0, 0)
        self._machine_end = (0, 0)

    def __enter__(self) -> CpuWatch:
        if not Path("/proc/stat").exists():
            return self
        self._started = time.monotonic()
        self._machine_start = _machine()
        self._last = {pid: ticks for pid, (_, ticks, _) in _processes().items()}
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join()
        self._sample()
        self._elapsed = time.monotonic() - self._started
        self._machine_end = _machine()

    def _loop(self) -> None:
        while not self._stop.wait(INTERVAL_SECONDS):
            self._sample()

    def _is_ours(self, pid: int, table: dict[int, tuple[int, int, str]]) -> bool:
        seen = []
        while pid > 1 and pid in table:
            if pid == self.me or pid in self._ours_roots:
                self._ours_roots.update(seen)
                return True
            if pid in self._not_ours:
                break
            cmdline = _read(f"/proc/{pid}/cmdline") or ""
            if self.marker in cmdline:  # a postmaster of one of our clusters
                self._ours_roots.add(pid)
                self._ours_roots.update(seen)
                return True
            seen.append(pid)
            pid = table[pid][0]
        self._not_ours.update(seen)
        return False

    def _sample(self) -> None:
        table = _processes()
        self._not_ours.clear()  # a process can become ours later (reparenting, exec)
        for pid, (ppid, ticks, name) in table.items():
            delta = ticks - self._last.get(pid, 0)
            self._last[pid] = ticks
            if delta <= 0:
                continue
            if pid == KTHREADD or ppid == KTHREADD:
                self.cpu["kernel"] += delta
            elif self._is_ours(pid, table):
                self.cpu["ours"] += delta
            else:
                self.cpu["others"] += delta
                self.others_by_name[name] += delta
        for pid in set(self._last) - set(table):
            del self._last[pid]

    def figures(self) -> dict[str, Any]:
        busy = (self._machine_end[0] - self._machine_start[0]) / TICK
        steal = (self._machine_end[1] - self._machine_start[1]) / TICK
        top = sorted(self.others_by_name.items(), key=lambda item: item[1], reverse=True)[:3]
        return {
            "elapsed_seconds": round(self._elapsed, 3),
            "capacity_cpu_seconds": round(self._elapsed * (os.cpu_count() or 1), 1),
            "machine_busy_cpu_seconds": round(busy, 1),
            "steal_cpu_seconds": round(steal, 1),
            "ours_cpu_seconds": round(self.cpu["ours"] / TICK, 1),
            "others_cpu_seconds": round(self.cpu["others"] / TICK, 1),
            "kernel_threads_cpu_seconds": round(self.cpu["kernel"] / TICK, 1),
            # Processes sampled every half second lose their last half second when they exit,
            # so ours and others' are lower bounds; this is the machine's busy time left over.
            "unattributed_cpu_seconds": round(
                busy - sum(self.cpu.values()) / TICK, 1),
            "others_top": {name: round(ticks / TICK, 1) for name, ticks in top},
        }
