"""Lava 0.10.0 on Python 3.11: the one import problem is fixed inside tsslc, at import time."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

IMPORT = "import lava.magma.compiler.var_model as m; print('ok', m.__file__)"


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_raw_import_fails_on_this_python():
    """Without tsslc's fix the module does not import (dataclass field with a mutable
    default ByteEncoder()), which is why the fix exists; site-packages is untouched."""
    res = _python(IMPORT)
    assert res.returncode != 0
    assert "mutable default" in res.stderr and "ByteEncoder" in res.stderr


def test_import_through_tsslc_works_in_a_fresh_process():
    res = _python("from tsslc.lava_compat import import_lava; import_lava(); " + IMPORT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok ") and "site-packages/lava/magma/compiler/var_model.py" in res.stdout

