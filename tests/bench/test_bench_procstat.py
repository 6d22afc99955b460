"""bench.procstat: CPU time of process trees from /proc/<pid>/stat."""

import os
import subprocess
import sys

import pytest

from bench.procstat import (
    CLOCK_TICKS_PER_SEC,
    CoreTimes,
    ProcStat,
    cpu_delta,
    parse_core_times,
    parse_stat,
    read_core_times,
    sample_tree,
    tree_pids,
)

# Field layout per proc(5); comm may contain spaces and parentheses.
STAT = ("4242 (nginx: worker (x)) S 4241 4241 4241 0 -1 4194624 300 0 0 0 "
        "1234 567 8 9 20 0 1 0 100 10000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 "
        "17 0 0 0 0 0 0")


def test_parse_stat():
    stat = parse_stat(STAT)
    assert stat == ProcStat(pid=4242, comm="nginx: worker (x)", state="S", ppid=4241,
                            utime_ticks=1234, stime_ticks=567)
    assert stat.cpu_ticks == 1801


def test_tree_pids():
    def ps(pid: int, ppid: int) -> ProcStat:
        return ProcStat(pid, "p", "S", ppid, 0, 0)

    stats = [ps(1, 0), ps(10, 1), ps(11, 10), ps(12, 10), ps(13, 11), ps(20, 1)]
    assert tree_pids(10, stats) == [10, 11, 13, 12]
    assert tree_pids(20, stats) == [20]
    assert tree_pids(99, stats) == []


def test_cpu_delta_counts_new_processes_and_names_vanished_ones():
    delta = cpu_delta({10: 100, 11: 50, 12: 7}, {10: 100 + CLOCK_TICKS_PER_SEC, 11: 50, 13: 3})
    assert delta.seconds == pytest.approx(1 + 3 / CLOCK_TICKS_PER_SEC)
    assert delta.pids == (10, 11, 13)
    assert delta.vanished == (12,)


def test_sample_tree_sees_a_busy_child():
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.process_time() + 0.3\n"
         "while time.process_time() < end: pass\nimport sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        before = sample_tree(os.getpid())
        assert os.getpid() in before
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            after = sample_tree(os.getpid())
            if child.pid in after and after[child.pid] >= 0.25 * CLOCK_TICKS_PER_SEC:
                break
            time.sleep(0.05)
        assert child.pid in after
        assert cpu_delta(before, after).seconds >= 0.2
    finally:
        child.stdin.close()
        child.wait(10)


def test_parse_core_times():
    text = (
        "cpu  300 0 100 5000 10 0 5 7 0 0\n"
        "cpu0 100 1 50 2500 5 2 3 4 9 0\n"
        "cpu1 200 0 50 2500 5 0 2 3 0 0\n"
        "intr 12345 0 0\n"
        "ctxt 999\n"
    )
    cores = parse_core_times(text)
    assert cores == {0: CoreTimes(busy=156, idle=2505, steal=4),
                     1: CoreTimes(busy=252, idle=2505, steal=3)}


def test_read_core_times_has_every_allowed_cpu():
    cores = read_core_times()
    assert set(os.sched_getaffinity(0)) <= set(cores)
