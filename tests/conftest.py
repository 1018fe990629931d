"""Shared fixtures: one digits network trained once per test session (≈5 s on 2 CPUs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
#: ../shared/data beside the checkout; TSSLC_SHARED_DATA names it for a checkout elsewhere
#: (a git worktree whose parent folder holds no shared/)
SHARED_DATA = Path(os.environ.get("TSSLC_SHARED_DATA") or REPO.parent / "shared" / "data")
#: set by .ci/run: the shared data must be there (a missing folder fails instead of skipping)
REQUIRE_SHARED = os.environ.get("TSSLC_REQUIRE_SHARED") == "1"


def shared_data(*parts: str) -> Path:
    """A path under ``../shared/data`` beside the checkout (the real MNIST and N-MNIST files).
    A user's clone has no ``../shared``: the test is skipped with the reason; in CI
    (``TSSLC_REQUIRE_SHARED=1``, set by .ci/run) the absence fails the test."""
    path = SHARED_DATA.joinpath(*parts)
    if path.exists():
        return path
    reason = f"{path} is absent (the real data sets live in ../shared/data beside the checkout)"
    if REQUIRE_SHARED:
        pytest.fail(reason + "; CI requires them (TSSLC_REQUIRE_SHARED=1)")
    pytest.skip(reason)


def pytest_sessionstart(session):
    if REQUIRE_SHARED and not SHARED_DATA.is_dir():
        raise pytest.UsageError(f"TSSLC_REQUIRE_SHARED=1 but {SHARED_DATA} does not exist")


@pytest.fixture(scope="session")
def digits_fit():
    """FitResult of examples/digits.yaml, seed 0 (network in eval mode, history)."""
    from tsslc.config import load_config
    from tsslc.data.digits import load_digits_datasets
    from tsslc.training.trainer import fit

    train_set, test_set = load_digits_datasets()
    return fit(load_config(EXAMPLES / "digits.yaml"), train_set, test_set, seed=0)


@pytest.fixture(scope="session")
def digits_graph(digits_fit):
    """The trained digits network as a float IR graph."""
    from tsslc.ir.export import graph_from_network

    return graph_from_network(digits_fit.network)


@pytest.fixture(scope="session")
def digits_test_arrays():
    """(x_test float32 (360, 1, 8, 8), y_test int64) of the fixed split."""
    from tsslc.data.digits import digits_arrays

    _, _, xte, yte = digits_arrays()
    return xte, yte


@pytest.fixture(scope="session")
def digits_loihi2(digits_graph):
    """The trained digits graph compiled for loihi2 (calibrated on 256 training images)."""
    import tsslc
    from tsslc.data.digits import digits_arrays

    return tsslc.compile(digits_graph, "loihi2", digits_arrays()[0][:256])


@pytest.fixture(scope="session")
def digits_cnn_graph():
    """examples/digits_cnn.yaml trained 2 epochs (seed 0, one thread) as a float IR graph."""
    import torch

    from tsslc.config import load_config
    from tsslc.data.digits import load_digits_datasets
    from tsslc.ir.export import graph_from_network
    from tsslc.training.trainer import fit

    train_set, test_set = load_digits_datasets()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a net this small trains fastest on one thread
    try:
        result = fit(load_config(EXAMPLES / "digits_cnn.yaml"), train_set, test_set, epochs=2, seed=0)
    finally:
        torch.set_num_threads(threads)
    return graph_from_network(result.network)
