"""Hostile and clumsy use of files and processes (issue 12, items 2-4): every case is the real
command line; it must exit non-zero with exactly one error line naming the file, print no
traceback, and leave every input byte-identical.

- outputs that are inputs (same path, another spelling, a symlink, a hard link, two outputs
  naming one file, a file inside the data folder), for every command that writes;
- run folders: a folder holding a run, a run of another config, a live writer's lock, a
  stale lock of a killed writer;
- writes that cannot happen: a read-only folder, a file where a folder should be, a full
  disk (``RLIMIT_FSIZE`` in a subprocess: the old output survives, no temp is left);
- temps of dead writers cleaned, Ctrl-C during training.
Ctrl-C during Lava's start-up is in test_lava_stop.py.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import EXAMPLES, REPO
from tsslc.cli import main

FORMAT1 = REPO / "tests" / "data" / "format1"
ENV = dict(os.environ, OMP_NUM_THREADS="1")


# --- the inputs: built once, copied for every case ------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """float.tsslc, loihi2.tsslc, netx.tsslc (loihi2, --variant netx), x20.npy, model.nir, digits.yaml, run/ (one trained epoch:
    checkpoint.pt, config.yaml, metrics.json, figures/curve.png)."""
    d = tmp_path_factory.mktemp("base")
    shutil.copy(FORMAT1 / "digits_float_v1.tsslc", d / "float.tsslc")
    shutil.copy(FORMAT1 / "digits_loihi2_v1.tsslc", d / "loihi2.tsslc")
    shutil.copy(FORMAT1 / "x20.npy", d / "x20.npy")
    shutil.copy(EXAMPLES / "digits.yaml", d / "digits.yaml")
    assert main(["nir", "export", str(d / "float.tsslc"), "-o", str(d / "model.nir")]) == 0
    assert main(["compile", str(d / "float.tsslc"), "--target", "loihi2", "--variant", "netx", "--calibration-data",
                 str(d / "x20.npy"), "-o", str(d / "netx.tsslc")]) == 0
    assert main(["train", str(d / "digits.yaml"), "-o", str(d / "run"), "--epochs", "1", "--eval-samples", "20",
                 "--no-progress", "--device", "cpu", "--threads", "1"]) == 0
    (d / "run" / "figures").mkdir()
    (d / "run" / "figures" / "curve.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a figure")
    return d


@pytest.fixture
def work(base, tmp_path):
    w = tmp_path / "w"
    shutil.copytree(base, w, symlinks=True)
    return w


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error(err: str, command: str, *names: str) -> str:
    """The single error line of ``err`` (asserted), naming every one of ``names``."""
    assert "Traceback" not in err, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"tsslc {command}: error: "), lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def run_cli(argv, capsys) -> tuple[int, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


# --- outputs that are inputs ----------------------------------------------------------------


def _link(w: Path, target: str, name: str, hard: bool = False) -> str:
    (os.link if hard else os.symlink)(w / target if hard else target, w / name)
    return name


#: (case id, argv builder (work folder -> argv, relative to it), names the error must hold)
CLOBBER = [
    ("compile -o the model", lambda w: ["compile", "float.tsslc", "--target", "loihi2", "-o", "float.tsslc"],
     ["float.tsslc"]),
    ("compile -o the model, other spelling", lambda w: ["compile", "float.tsslc", "--target", "loihi2", "-o",
                                                          "./sub/../float.tsslc"], ["float.tsslc"]),
    ("compile -o the model's symlink", lambda w: ["compile", _link(w, "float.tsslc", "l.tsslc"), "--target", "loihi2",
                                                   "-o", "float.tsslc"], ["l.tsslc", "float.tsslc", "same file"]),
    ("compile -o a hard link of the model", lambda w: ["compile", "float.tsslc", "--target", "loihi2", "-o",
                                                        _link(w, "float.tsslc", "h.tsslc", hard=True)],
     ["h.tsslc", "float.tsslc"]),
    ("compile --json the model", lambda w: ["compile", "float.tsslc", "--target", "loihi2", "-o", "c.tsslc",
                                            "--json", "float.tsslc"], ["--json", "float.tsslc"]),
    ("compile -o and --json one file", lambda w: ["compile", "float.tsslc", "--target", "loihi2", "-o", "c.tsslc",
                                                  "--json", "c.tsslc"], ["-o", "--json", "c.tsslc"]),
    ("compile -o the calibration data", lambda w: ["compile", "float.tsslc", "--target", "loihi2",
                                                   "--calibration-data", "x20.npy", "-o", "x20.npy"], ["x20.npy"]),
    ("compile --json the calibration data", lambda w: ["compile", "float.tsslc", "--target", "loihi2",
                                                       "--calibration-data", "x20.npy", "-o", "c.tsslc",
                                                       "--json", "x20.npy"], ["x20.npy"]),
    ("compile -o a file of --data-dir", lambda w: ["compile", "float.tsslc", "--target", "loihi2", "--data-dir", "run",
                                                   "-o", "run/metrics.json"], ["run/metrics.json", "--data-dir"]),
    ("export -o the checkpoint", lambda w: ["export", "run/checkpoint.pt", "-o", "run/checkpoint.pt"],
     ["run/checkpoint.pt"]),
    ("export RUN -o its checkpoint", lambda w: ["export", "run", "-o", "run/checkpoint.pt"], ["run/checkpoint.pt"]),
    ("export -o the checkpoint's symlink", lambda w: ["export", "run", "-o", _link(w, "run/checkpoint.pt", "c.pt")],
     ["c.pt", "checkpoint.pt"]),
    ("nir export -o the model", lambda w: ["nir", "export", "float.tsslc", "-o", "float.tsslc"], ["float.tsslc"]),
    ("nir export -o a hard link of the model", lambda w: ["nir", "export", "float.tsslc", "-o",
                                                          _link(w, "float.tsslc", "h.nir", hard=True)], ["h.nir"]),
    ("nir import -o the NIR file", lambda w: ["nir", "import", "model.nir", "-o", "model.nir"], ["model.nir"]),
    ("nir import -o the NIR file's symlink", lambda w: ["nir", "import", _link(w, "model.nir", "l.nir"), "-o",
                                                        "model.nir"], ["l.nir", "model.nir"]),
    ("netx export -o the model", lambda w: ["netx", "export", "loihi2.tsslc", "-o", "loihi2.tsslc"], ["loihi2.tsslc"]),
    ("netx export whose .json is the model", lambda w: ["netx", "export", _link(w, "loihi2.tsslc", "c.net.json",
                                                                                hard=True), "-o", "c.net"],
     ["c.net.json"]),
    ("run --json the model", lambda w: ["run", "loihi2.tsslc", "--json", "loihi2.tsslc", "--no-progress"],
     ["loihi2.tsslc"]),
    ("run --json a file of --data-dir", lambda w: ["run", "loihi2.tsslc", "--data-dir", "run", "--json",
                                                   "run/metrics.json", "--no-progress"], ["run/metrics.json"]),
    ("verify --json the float model", lambda w: ["verify", "loihi2.tsslc", "--against", "float.tsslc", "--json",
                                                 "float.tsslc", "--no-progress"], ["float.tsslc", "--json"]),
    ("verify --json the compiled model", lambda w: ["verify", "loihi2.tsslc", "--against", "float.tsslc", "--json",
                                                    "./loihi2.tsslc", "--no-progress"], ["loihi2.tsslc"]),
    ("inspect --png the model", lambda w: ["inspect", "float.tsslc", "--png", "float.tsslc"], ["float.tsslc"]),
    ("report -o the run's metrics", lambda w: ["report", "run", "-o", "run/metrics.json"], ["run/metrics.json"]),
    ("report -o the run's figure", lambda w: ["report", "run", "-o", "run/figures/curve.png"], ["curve.png"]),
    ("report --compare -o B's metrics", lambda w: ["report", "--compare", "run", _link(w, "run", "runb"), "-o",
                                                   "runb/metrics.json"], ["runb/metrics.json"]),
    ("finetune -o the run itself", lambda w: ["finetune", "run", "--target", "loihi2", "-o", "run"],
     ["run/checkpoint.pt"]),
    ("finetune CHECKPOINT -o its folder", lambda w: ["finetune", "run/checkpoint.pt", "--target", "loihi2", "-o",
                                                     "./run"], ["checkpoint.pt"]),
    ("finetune into a folder holding a run", lambda w: ["finetune", "run", "--target", "loihi2", "-o",
                                                        _copy(w, "run", "ft")], ["ft", "--overwrite"]),
    ("train --overwrite with the run's own config", lambda w: ["train", "run/config.yaml", "-o", "run", "--overwrite",
                                                               "--no-progress"], ["run/config.yaml"]),
    ("train into a finished run", lambda w: ["train", "digits.yaml", "-o", "run", "--no-progress"],
     ["run", "--resume", "--overwrite", "test accuracy"]),
    ("train the run's own config into it", lambda w: ["train", "run/config.yaml", "-o", "run", "--no-progress"],
     ["run", "--resume"]),
    ("train --resume with another config", lambda w: ["train", _other_config(w), "-o", "run", "--resume",
                                                      "--no-progress"], ["other.yaml", "run/config.yaml"]),
    ("train into another config's run", lambda w: ["train", _other_config(w), "-o", "run", "--no-progress"],
     ["run", "another config"]),
    ("train --resume --overwrite", lambda w: ["train", "digits.yaml", "-o", "run", "--resume", "--overwrite"],
     ["--resume", "--overwrite"]),
    ("train -o a file", lambda w: ["train", "digits.yaml", "-o", "float.tsslc"], ["float.tsslc"]),
    ("demo -o a training run", lambda w: ["demo", "-o", "run", "--no-progress"], ["run", "training run"]),
]


def _copy(w: Path, src: str, dst: str) -> str:
    shutil.copytree(w / src, w / dst)
    return dst


def _other_config(w: Path) -> str:
    text = (w / "digits.yaml").read_text()
    other = re.sub(r"batch_size:\s*\d+", "batch_size: 7", text)
    assert other != text
    (w / "other.yaml").write_text(other)
    return "other.yaml"


@pytest.mark.parametrize("build, names", [c[1:] for c in CLOBBER], ids=[c[0] for c in CLOBBER])
def test_an_output_that_is_an_input_is_refused(work, monkeypatch, capsys, build, names):
    monkeypatch.chdir(work)
    (work / "sub").mkdir()
    argv = build(work)
    before = snapshot(work)
    rc, err = run_cli(argv, capsys)
    assert rc == 1
    one_error(err, argv[0], *names)
    assert snapshot(work) == before  # nothing written, nothing replaced


# --- writes that cannot happen --------------------------------------------------------------


@pytest.fixture(scope="module")
def unwritable(tmp_path_factory) -> Path:
    """A folder this process cannot create files in: a chmod 555 folder, or, as root (who
    ignores permissions), a read-only system folder."""
    d = tmp_path_factory.mktemp("ro") / "ro"
    d.mkdir()
    d.chmod(0o555)
    for cand in (d, Path("/sys"), Path("/proc/self")):
        probe = cand / ".tsslc-probe"
        try:
            probe.write_bytes(b"")
        except OSError:
            return cand
        probe.unlink()
    pytest.skip("no unwritable folder here (running as root with every file system writable)")


#: (case id, argv builder (work folder, unwritable folder) -> argv, what the error names)
NO_WRITE = [
    ("compile into a read-only folder", lambda w, ro: ["compile", "float.tsslc", "--target", "loihi2",
                                                       "--calibration-data", "x20.npy", "-o", ro / "c.tsslc"],
     lambda ro: [str(ro / "c.tsslc"), "model file"]),
    ("nir export into a read-only folder", lambda w, ro: ["nir", "export", "float.tsslc", "-o", ro / "m.nir"],
     lambda ro: [str(ro / "m.nir"), "NIR file"]),
    ("nir import into a read-only folder", lambda w, ro: ["nir", "import", "model.nir", "-o", ro / "m.tsslc"],
     lambda ro: [str(ro / "m.tsslc")]),
    ("export into a read-only folder", lambda w, ro: ["export", "run", "-o", ro / "m.tsslc"],
     lambda ro: [str(ro / "m.tsslc")]),
    ("netx export into a read-only folder", lambda w, ro: ["netx", "export", "netx.tsslc", "-o", ro / "m.net"],
     lambda ro: [str(ro / "m.net")]),
    ("report into a read-only folder", lambda w, ro: ["report", "run", "-o", ro / "r.html"],
     lambda ro: [str(ro / "r.html")]),
    ("inspect --png into a read-only folder", lambda w, ro: ["inspect", "float.tsslc", "--png", ro / "g.png"],
     lambda ro: [str(ro / "g.png")]),
    ("run --json into a read-only folder", lambda w, ro: ["run", "loihi2.tsslc", "--samples", "10", "--json",
                                                          ro / "r.json", "--no-progress"],
     lambda ro: [str(ro / "r.json")]),
    ("train into a read-only folder", lambda w, ro: ["train", "digits.yaml", "-o", ro / "run", "--no-progress"],
     lambda ro: [str(ro / "run")]),
    ("train into an existing read-only folder", lambda w, ro: ["train", "digits.yaml", "-o", ro, "--no-progress"],
     lambda ro: [str(ro), "lock"]),
    ("finetune into a read-only folder", lambda w, ro: ["finetune", "run", "--target", "loihi2", "-o", ro / "ft"],
     lambda ro: [str(ro / "ft")]),
    ("compile -o under a file", lambda w, ro: ["compile", "float.tsslc", "--target", "loihi2", "--calibration-data",
                                               "x20.npy", "-o", "x20.npy/c.tsslc"],
     lambda ro: ["x20.npy/c.tsslc", "not a folder"]),
    ("nir export -o under a file", lambda w, ro: ["nir", "export", "float.tsslc", "-o", "float.tsslc/m.nir"],
     lambda ro: ["float.tsslc/m.nir"]),
    ("export -o under a file", lambda w, ro: ["export", "run", "-o", "digits.yaml/m.tsslc"],
     lambda ro: ["digits.yaml/m.tsslc"]),
    ("compile --json under a file", lambda w, ro: ["compile", "float.tsslc", "--target", "loihi2",
                                                   "--calibration-data", "x20.npy", "-o", "c.tsslc", "--json",
                                                   "x20.npy/c.json"], lambda ro: ["x20.npy/c.json"]),
    ("train -o under a file", lambda w, ro: ["train", "digits.yaml", "-o", "x20.npy/run", "--no-progress"],
     lambda ro: ["x20.npy/run"]),
    ("finetune -o under a file", lambda w, ro: ["finetune", "run", "--target", "loihi2", "-o", "x20.npy/ft"],
     lambda ro: ["x20.npy/ft"]),
    ("compile -o an existing folder", lambda w, ro: ["compile", "float.tsslc", "--target", "loihi2",
                                                     "--calibration-data", "x20.npy", "-o", "run"],
     lambda ro: ["run"]),
]


@pytest.mark.parametrize("build, names", [c[1:] for c in NO_WRITE], ids=[c[0] for c in NO_WRITE])
def test_a_write_that_cannot_happen_is_one_error(work, unwritable, monkeypatch, capsys, build, names):
    monkeypatch.chdir(work)
    argv = build(work, unwritable)
    before = snapshot(work)
    rc, err = run_cli(argv, capsys)
    assert rc == 1
    line = one_error(err, argv[0], *names(unwritable))
    assert "Errno" not in line
    after = snapshot(work)
    for name, data in before.items():
        assert after.get(name) == data, name
    assert not [n for n in after if n.endswith(".tmp")]


# --- a full disk: a file-size limit in a subprocess -----------------------------------------


def _limited(limit_bytes: int):
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return preexec


#: (case id, argv (relative to the work folder), the output, file-size limit in bytes); an old
#: output is put in place first, except for train (a folder holding a run is refused)
FULL = [
    ("compile", ["compile", "float.tsslc", "--target", "loihi2", "--calibration-data", "x20.npy", "-o", "out.bin"],
     "out.bin", 8_000),
    ("nir export", ["nir", "export", "float.tsslc", "-o", "out.bin"], "out.bin", 8_000),
    ("nir import", ["nir", "import", "model.nir", "-o", "out.bin"], "out.bin", 8_000),
    ("export", ["export", "run", "-o", "out.bin"], "out.bin", 8_000),
    ("netx export", ["netx", "export", "netx.tsslc", "-o", "out.bin"], "out.bin", 8_000),
    ("inspect --png", ["inspect", "float.tsslc", "--png", "out.bin"], "out.bin", 4_000),
    ("report", ["report", "run", "-o", "out.bin"], "out.bin", 4_000),
    ("run --json", ["run", "loihi2.tsslc", "--samples", "20", "--no-progress", "--json", "out.bin"], "out.bin", 300),
    ("train: the checkpoint", ["train", "digits.yaml", "-o", "run2", "--epochs", "1", "--eval-samples", "20",
                               "--no-progress", "--device", "cpu"], "run2/checkpoint.pt", 20_000),
]


@pytest.mark.parametrize("argv, output, limit", [c[1:] for c in FULL], ids=[c[0] for c in FULL])
def test_a_full_disk_is_one_error_and_the_old_file_survives(work, argv, output, limit):
    if argv[0] != "train":
        (work / output).write_bytes(b"the previous output, which must survive")
    before = snapshot(work)
    p = subprocess.run([sys.executable, "-m", "tsslc", *argv], cwd=work, env=ENV, capture_output=True, text=True,
                       timeout=300, preexec_fn=_limited(limit))
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])  # not killed by a signal (SIGXFSZ, SIGSEGV)
    line = one_error(p.stderr, argv[0], output)
    assert "File too large" in line or "No space left" in line
    after = snapshot(work)
    for name, data in before.items():
        assert after.get(name) == data, name
    assert not [n for n in after if n.endswith(".tmp")]


# --- temps of dead writers ------------------------------------------------------------------

KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from tsslc.atomic import atomic_write
    def write(tmp):
        open(tmp, "wb").write(b"half a fi")
        os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write
    atomic_write(sys.argv[1], write)
""")


def test_a_killed_writer_leaves_the_old_file_and_its_temp_is_cleaned_by_the_next_write(work, capsys):
    out = work / "c.tsslc"
    out.write_bytes(b"old")
    p = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(out)], cwd=REPO, env=ENV, capture_output=True)
    assert p.returncode == -signal.SIGKILL
    temps = [t.name for t in work.glob(".c.tsslc.*.tmp")]
    assert len(temps) == 1 and out.read_bytes() == b"old"
    pid = int(re.match(r"\.c\.tsslc\.(\d+)-", temps[0]).group(1))
    assert pid != os.getpid()
    # a temp of a live writer (this process's parent stands in) and a recent unnamed one stay
    from tsslc.atomic import host_tag

    live = work / f".x.tsslc.{os.getppid()}-{host_tag()}.abcdefgh.tmp"
    live.write_bytes(b"")
    young, aged = work / ".y.tsslc.abcdefgh.tmp", work / ".z.tsslc.abcdefgh.tmp"
    young.write_bytes(b"")
    aged.write_bytes(b"")
    os.utime(aged, (time.time() - 3 * 86400,) * 2)
    rc, err = run_cli(["nir", "export", work / "float.tsslc", "-o", work / "c.nir"], capsys)
    assert rc == 0, err
    left = sorted(t.name for t in work.glob(".*.tmp"))
    assert left == sorted([live.name, young.name])
    assert out.read_bytes() == b"old"


def test_ctrl_c_inside_an_atomic_write_comes_after_it_and_leaves_no_temp(work, monkeypatch):
    """A SIGINT landing anywhere between the temp file's creation and its replace (here:
    just after mkstemp made the file, before its name reached atomic_write, where a
    training run's checkpoint write left its temp behind; and during the write itself) is
    raised once the new file is in place, with no temp left; a KeyboardInterrupt raised by
    the writer itself removes the temp and keeps the old file."""
    import tempfile

    from tsslc import atomic

    out = work / "c.bin"
    real_mkstemp = tempfile.mkstemp

    def mkstemp_then_ctrl_c(*a, **kw):
        got = real_mkstemp(*a, **kw)
        os.kill(os.getpid(), signal.SIGINT)  # handled at the next bytecode, before the return
        return got

    def write(data, ctrl_c=False):
        def w(tmp):
            if ctrl_c:
                os.kill(os.getpid(), signal.SIGINT)
            Path(tmp).write_bytes(data)
        return w

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write(out, write(b"one"))
    assert out.read_bytes() == b"one" and not list(work.glob(".*.tmp"))
    monkeypatch.setattr(tempfile, "mkstemp", real_mkstemp)
    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write(out, write(b"two", ctrl_c=True))
    assert out.read_bytes() == b"two" and not list(work.glob(".*.tmp"))

    def interrupted(tmp):
        Path(tmp).write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write(out, interrupted)
    assert out.read_bytes() == b"two" and not list(work.glob(".*.tmp"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- run folders: one writer at a time ------------------------------------------------------


def _train(work, out, *extra, **kw):
    return subprocess.Popen([sys.executable, "-m", "tsslc", "train", "digits.yaml", "-o", out, "--no-progress",
                             "--device", "cpu", "--eval-samples", "20", *extra], cwd=work, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _wait_for(path: Path, proc, timeout=120):
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout
        time.sleep(0.05)


def test_a_second_train_into_a_run_in_progress_is_refused_and_a_killed_runs_lock_is_taken_over(work, capsys):
    first = _train(work, "r", "--epochs", "30")
    try:
        _wait_for(work / "r" / ".tsslc.lock", first)
        # a second writer, in this process: refused, naming the first
        rc, err = run_cli(["train", work / "digits.yaml", "-o", work / "r", "--no-progress", "--epochs", "1"], capsys)
        assert rc == 1
        one_error(err, "train", str(work / "r"), f"process {first.pid}", ".tsslc.lock")
        rc, err = run_cli(["finetune", work / "run", "--target", "loihi2", "-o", work / "r"], capsys)
        assert rc == 1
        one_error(err, "finetune", f"process {first.pid}")
        rc, err = run_cli(["train", work / "digits.yaml", "-o", work / "r", "--resume", "--no-progress"], capsys)
        assert rc == 1 and f"process {first.pid}" in err
        _wait_for(work / "r" / "checkpoint.pt", first)
    finally:
        first.kill()
        first.wait(timeout=30)
    # killed: its lock file is stale, the next run takes it over and continues
    assert (work / "r" / ".tsslc.lock").exists()
    rc, err = run_cli(["train", work / "digits.yaml", "-o", work / "r", "--resume", "--epochs", "1",
                       "--no-progress", "--eval-samples", "20"], capsys)
    assert rc == 0, err
    assert f"taking over the stale lock of tsslc train (process {first.pid})" in err
    assert sorted(p.name for p in (work / "r").iterdir()) == ["checkpoint.pt", "config.yaml", "metrics.json"]


def test_two_trains_at_once_one_wins_and_what_it_printed_is_on_disk(work):
    procs = [_train(work, "r", "--epochs", "1", "--seed", str(s)) for s in (1, 2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    winner = next(i for i, p in enumerate(procs) if p.returncode == 0)
    loser = 1 - winner
    line = one_error(outs[loser][1], "train", "r")
    # refused while the winner runs (or, on a very slow start, as a folder holding a run)
    assert f"in use by tsslc train (process {procs[winner].pid}" in line or "already holds a run" in line, line
    doc = json.loads((work / "r" / "metrics.json").read_text())
    assert doc["seed"] == winner + 1
    assert f"{100 * doc['final_test_acc']:.2f} %" in outs[winner][0]


def test_ctrl_c_during_training_releases_the_folder_and_resume_continues(work, capsys):
    p = _train(work, "r", "--epochs", "30", start_new_session=True)
    try:
        _wait_for(work / "r" / "checkpoint.pt", p)
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert "Traceback" not in err and "tsslc train: interrupted" in err
    assert not (work / "r" / ".tsslc.lock").exists()
    assert not list((work / "r").glob(".*.tmp"))
    rc, err = run_cli(["train", work / "digits.yaml", "-o", work / "r", "--resume", "--epochs", "1",
                       "--no-progress"], capsys)
    assert rc == 0 and "taking over" not in err


def test_overwrite_replaces_the_run_and_resume_continues_it(work, capsys):
    rc, err = run_cli(["train", work / "digits.yaml", "-o", work / "run", "--epochs", "1", "--seed", "5",
                       "--eval-samples", "20", "--no-progress", "--overwrite"], capsys)
    assert rc == 0, err
    assert json.loads((work / "run" / "metrics.json").read_text())["seed"] == 5
    assert (work / "run" / "figures" / "curve.png").exists()  # not a run file: left alone
    rc, err = run_cli(["train", work / "digits.yaml", "-o", work / "run", "--epochs", "2", "--eval-samples", "20",
                       "--no-progress", "--resume"], capsys)
    assert rc == 0, err
    assert len(json.loads((work / "run" / "metrics.json").read_text())["epochs"]) == 2


def test_a_failed_train_leaves_no_empty_folder(work, capsys):
    (work / "bad.yaml").write_text("Network: {}\n")
    rc, err = run_cli(["train", work / "bad.yaml", "-o", work / "fresh", "--no-progress"], capsys)
    assert rc == 1 and "Traceback" not in err
    assert not (work / "fresh").exists()


def test_a_full_temp_folder_under_a_lava_run_is_one_error(work):
    """Lava's spike records are memory maps in the temp folder, allocated before the run: a
    full disk there is one error, not a SIGBUS in a Lava process."""
    (work / "tmp").mkdir()
    p = subprocess.run([sys.executable, "-m", "tsslc", "run", "loihi2.tsslc", "--backend", "lava", "--samples", "50",
                        "--no-progress"], cwd=work, env=dict(ENV, TMPDIR=str(work / "tmp")), capture_output=True,
                       text=True, timeout=300, preexec_fn=_limited(4_000))
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    line = one_error(p.stderr, "run", "spike record", str(work / "tmp"))
    assert "File too large" in line
    assert not any((work / "tmp").iterdir())  # the records' folder is removed
