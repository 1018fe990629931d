"""Lava processes are OS processes: they are stopped after every run, also when a process
fails and when the user presses Ctrl-C (SIGINT to the whole process group)."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from conftest import REPO
from tsslc.errors import TsslcError
from tsslc.ir.graph import Graph

from tsslc.backends.lava import runner
from tsslc.backends.lava.runner import lower

GRAPH = """
import numpy as np
from tsslc.ir.graph import Graph
from tsslc.ir import nodes as N
from tsslc.ir.neurons import Loihi2LIF
rng = np.random.default_rng(1)
g = Graph({"target": "loihi2", "n_steps": 5})
g.add("in", N.IntInput(shape=(64,), encoding="graded", scale=16.0, bits=8))
g.add("h.synapse", N.IntDense(weight=(rng.integers(-20, 20, (30, 64)) * 2).astype(np.int32), weight_exp=0), "in")
g.add("h", N.IntLIF(shape=(30,), params=Loihi2LIF(du=1364, dv=819, vth=40, bias_mant=0, bias_exp=0)), "h.synapse")
g.add("out", N.Output(shape=(30,)), "h")
"""


def _graph() -> Graph:
    scope: dict = {}
    exec(GRAPH, scope)
    return scope["g"]


def test_a_failing_lava_process_is_one_error_and_nothing_is_left_running(tmp_path):
    """A process model that raises (here the sink finds no record file) makes Lava's own
    stop() wait forever; execute() terminates the processes and names the failure."""
    g = _graph()
    lowered = lower(g, np.zeros((5, 2, 64), np.int64), 5, str(tmp_path))  # records not created
    t0 = time.perf_counter()
    with pytest.raises(TsslcError, match=r"a Lava process failed during the run \(FileNotFoundError"):
        runner.execute(lowered, 10, 5, 2)
    assert time.perf_counter() - t0 < 60
    assert not multiprocessing.active_children()


SCRIPT = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    from tqdm import tqdm
    for _ in tqdm(range(2)):  # a progress bar before Lava's import fixes the start method
        pass
    import tsslc.backends.lava as L
""") + GRAPH + textwrap.dedent("""
    x = rng.random((3000, 64)).astype(np.float32)
    try:
        L.run(g, x, progress=True)
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
""")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_stops_every_lava_process():
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    pgid = proc.pid
    err = bytearray()

    def read():
        for chunk in iter(lambda: os.read(proc.stderr.fileno(), 4096), b""):
            err.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        # wait until the run is under way: the bar has counted finished samples
        while not re.search(rb"lava fixed_pt:.*?\b[1-9]\d*/3000", bytes(err)):
            assert proc.poll() is None, bytes(err).decode(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the Lava run did not start"
            time.sleep(0.2)
        os.killpg(pgid, signal.SIGINT)  # what Ctrl-C in a terminal does
        out, _ = proc.communicate(timeout=60)
        assert out.decode().strip() == "interrupted", bytes(err).decode(errors="replace")[-2000:]
        assert proc.returncode == 0
        t0 = time.monotonic()
        while _group_alive(pgid) and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        assert not _group_alive(pgid), "Lava processes survived the interrupt"
        assert b"leaked shared_memory" not in bytes(err)
    finally:
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=10)


#: Ctrl-C while Lava starts its processes: a thread of the script presses it (SIGINT to the
#: whole process group, as a terminal does) the moment the first Lava process exists, which
#: is inside the start-up. It used to be swallowed there and the run went on to the end.
STARTUP = textwrap.dedent("""
    import os, signal, sys, threading, time
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    from tqdm import tqdm
    for _ in tqdm(range(2)):  # a progress bar before Lava's import fixes the start method
        pass
    import tsslc.backends.lava as L

    def children():
        out = []
        for tid in os.listdir("/proc/self/task"):
            try:
                out += open(f"/proc/self/task/{tid}/children").read().split()
            except OSError:
                pass
        return out

    def press_ctrl_c():
        while not children():
            time.sleep(0.001)
        print("pressed", flush=True)
        os.killpg(0, signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
""") + GRAPH + textwrap.dedent("""
    x = rng.random((3000, 64)).astype(np.float32)
    t0 = time.monotonic()
    try:
        L.run(g, x, progress=False)
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    print(f"{time.monotonic() - t0:.1f}", flush=True)
""")


def test_ctrl_c_during_lava_start_up_stops_the_run_and_every_process():
    proc = subprocess.Popen([sys.executable, "-c", STARTUP], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    pgid = proc.pid
    try:
        out, err = proc.communicate(timeout=300)
        lines = out.decode().split()
        assert lines[:2] == ["pressed", "interrupted"], (out, err.decode(errors="replace")[-2000:])
        assert proc.returncode == 0
        t0 = time.monotonic()
        while _group_alive(pgid) and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        assert not _group_alive(pgid), "Lava processes survived the interrupt"
        assert b"leaked shared_memory" not in err
    finally:
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=10)


def _children(pid: int) -> list[str]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                out += open(f"/proc/{pid}/task/{tid}/children").read().split()
            except OSError:
                pass
    except OSError:
        pass
    return out


def test_ctrl_c_in_tsslc_run_on_lava_is_exit_130_one_line_and_no_process_left():
    """The command line: Ctrl-C as the Lava processes start, 'tsslc run: interrupted', exit
    code 130, no traceback, nothing left running."""
    model = REPO / "tests" / "data" / "format1" / "digits_loihi2_v1.tsslc"
    proc = subprocess.Popen([sys.executable, "-m", "tsslc", "run", str(model), "--backend", "lava", "--no-progress"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    pgid = proc.pid
    try:
        deadline = time.monotonic() + 120
        while not _children(proc.pid):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no Lava process started"
            time.sleep(0.002)
        os.killpg(pgid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        err = err.decode(errors="replace")
        assert proc.returncode == 130, err[-2000:]
        assert "Traceback" not in err
        assert [l for l in err.splitlines() if l.strip()] == ["tsslc run: interrupted"], err[-2000:]
        t0 = time.monotonic()
        while _group_alive(pgid) and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        assert not _group_alive(pgid), "Lava processes survived the interrupt"
    finally:
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=10)
