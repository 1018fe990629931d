"""The embedded default data set: scikit-learn's 8×8 digits (ships inside scikit-learn).

1,797 images, 10 classes; a fixed, seeded, stratified 80/20 train/test split (1,437 / 360).
Pixels (0..16) are scaled to [0, 1] by /16, shape (1, 8, 8).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

SPLIT_SEED = 0
TEST_FRACTION = 0.2


def digits_arrays():
    """(x_train, y_train, x_test, y_test) as numpy: float32 (N, 1, 8, 8) in [0, 1], int64."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    xtr, xte, ytr, yte = train_test_split(X, y.astype(np.int64), test_size=TEST_FRACTION,
                                          random_state=SPLIT_SEED, stratify=y)
    return xtr, ytr, xte, yte


def load_digits_datasets():
    """(train, test) TensorDatasets."""
    xtr, ytr, xte, yte = digits_arrays()
    return (TensorDataset(torch.from_numpy(xtr), torch.from_numpy(ytr)),
            TensorDataset(torch.from_numpy(xte), torch.from_numpy(yte)))
