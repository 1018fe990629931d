"""Samples chosen fairly: ``--samples`` / ``--calibration`` draw from every class with a seed,
never the first N of a set stored by label (N-MNIST is: its first items are all zeros)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from conftest import shared_data
from tsslc.data import dataset_labels, stratified_indices, stratified_subset
from tsslc.errors import TsslcError

#: a label-ordered set: 40 zeros, 30 ones, 20 twos, 7 threes, 3 fours (100 items)
ORDERED = np.repeat(np.arange(5), [40, 30, 20, 7, 3])


def test_stratified_indices_on_a_label_ordered_set():
    idx = stratified_indices(ORDERED, 10, seed=0)
    assert len(idx) == 10 and len(set(idx.tolist())) == 10 and (np.diff(idx) > 0).all()
    assert np.bincount(ORDERED[idx], minlength=5).tolist() == [2, 2, 2, 2, 2]  # the first 10 are all zeros
    # a class that runs out drops out; the others share what is left evenly
    counts = np.bincount(ORDERED[stratified_indices(ORDERED, 30, seed=1)], minlength=5)
    # (3 rounds of 5, then the fours are gone: rounds of 4 share the other 15)
    assert counts.sum() == 30 and counts[4] == 3 and sorted(counts[:4].tolist()) == [6, 7, 7, 7]
    # fewer samples than classes: distinct classes
    assert len(set(ORDERED[stratified_indices(ORDERED, 3, seed=2)].tolist())) == 3
    # seeded: the same seed draws the same items, another seed others
    assert (stratified_indices(ORDERED, 10, 5) == stratified_indices(ORDERED, 10, 5)).all()
    assert any((stratified_indices(ORDERED, 10, s) != stratified_indices(ORDERED, 10, 0)).any() for s in (1, 2, 3))
    # all of them when N is None or at least the size; a bad count is one clear error
    assert (stratified_indices(ORDERED, None) == np.arange(100)).all()
    assert (stratified_indices(ORDERED, 500) == np.arange(100)).all()
    with pytest.raises(TsslcError, match=">= 1"):
        stratified_indices(ORDERED, 0)


def test_labels_and_subsets_of_datasets():
    x = torch.arange(100, dtype=torch.float32)[:, None]
    ds = TensorDataset(x, torch.from_numpy(ORDERED))
    assert (dataset_labels(ds) == ORDERED).all()
    sub = stratified_subset(ds, 5, seed=0)
    assert isinstance(sub, Subset) and sorted(int(sub[i][1]) for i in range(5)) == [0, 1, 2, 3, 4]
    assert (dataset_labels(sub) == np.arange(5)).all()
    assert stratified_subset(ds, None) is ds


def test_evaluation_subset_in_train_run(tmp_path):
    """--eval-samples: the test set is cut to a fair subset, the same every epoch."""
    from conftest import EXAMPLES
    from tsslc.data.digits import load_digits_datasets
    from tsslc.training.run import train_run

    train, test = load_digits_datasets()
    order = torch.argsort(test.tensors[1], stable=True)  # the test set sorted by label
    test = TensorDataset(test.tensors[0][order], test.tensors[1][order])
    doc = train_run(EXAMPLES / "digits.yaml", tmp_path / "r", epochs=1, progress=False, eval_samples=20,
                    datasets=(train, test))
    row = doc["epochs"][0]
    assert row["eval_samples"] == 20
    # 20 of 360 drawn from every class: the accuracy is not the 0 % or 100 % of the first 20 zeros
    assert 0.5 < row["test_acc"] <= 1.0 and doc["final_test_acc"] == row["test_acc"]


def test_verify_samples_draws_every_nmnist_class(tmp_path):
    """`tsslc verify --samples 10` on N-MNIST (stored by label) runs one sample of each class."""
    data = shared_data("nmnist-subset")
    from tsslc.cli import main
    from tsslc.config import parse_config
    from tsslc.ir import io
    from tsslc.ir.export import graph_from_network
    from tsslc.network import Network

    cfg = parse_config({"Network": {"dataset": "NMNIST", "n_steps": 6, "tau_m": 8, "tau_s": 4, "loss": "count",
                                    "n_class": 10, "desired_count": 3, "undesired_count": 1},
                        "Layers": {"output": {"type": "linear", "n_inputs": 2312, "n_outputs": 10,
                                              "weight_scale": 3}}})
    torch.manual_seed(0)
    model = tmp_path / "nmnist.tsslc"
    io.save(graph_from_network(Network(cfg)), model)
    out = tmp_path / "verify.json"
    assert main(["verify", str(model), "--target", "loihi2", "--samples", "10", "--calibration", "20",
                 "--data-dir", str(data), "--json", str(out), "--no-progress"]) == 0
    doc = json.loads(out.read_text())
    assert doc["samples"] == 10 and doc["class_counts"] == [1] * 10
