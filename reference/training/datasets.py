"""Real classification data from scikit-learn (shipped with the package, no download).

``digits`` (1797 8x8 images, 10 classes), ``iris`` (150, 3 classes), ``wine`` (178,
3 classes), ``breast_cancer`` (569, 2 classes) and generated two-``moons``. Each is split
into training and held-out rows with a fixed seed (stratified, a quarter held out) and
standardised with the training rows' mean and standard deviation (a constant feature,
such as a digits pixel that is always 0, is only centred). Features come in the
requested dtype; labels are int64 class indices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

HELD_OUT = 0.25
MOONS_SAMPLES = 400
MOONS_NOISE = 0.2


def _bunch(loader: str) -> Callable[[int], tuple[NDArray[Any], NDArray[Any]]]:
    def load(seed: int) -> tuple[NDArray[Any], NDArray[Any]]:
        from sklearn import datasets

        bunch = getattr(datasets, loader)()
        return bunch.data, bunch.target

    return load


def _moons(seed: int) -> tuple[NDArray[Any], NDArray[Any]]:
    from sklearn.datasets import make_moons

    return make_moons(n_samples=MOONS_SAMPLES, noise=MOONS_NOISE, random_state=seed)


LOADERS: dict[str, Callable[[int], tuple[NDArray[Any], NDArray[Any]]]] = {
    "digits": _bunch("load_digits"), "iris": _bunch("load_iris"), "wine": _bunch("load_wine"),
    "breast_cancer": _bunch("load_breast_cancer"), "moons": _moons,
}


@dataclass(frozen=True)
class Dataset:
    """Training and held-out rows, standardised by the training rows' statistics."""

    name: str
    x_train: NDArray[Any]
    y_train: NDArray[np.int64]
    x_test: NDArray[Any]
    y_test: NDArray[np.int64]

    @property
    def features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max(initial=0)) + 1)

    def astype(self, dtype: str) -> Dataset:
        return Dataset(self.name, self.x_train.astype(dtype), self.y_train,
                       self.x_test.astype(dtype), self.y_test)


def split(name: str, x: NDArray[Any], y: NDArray[Any], seed: int = 0,
          dtype: str = "float64", held_out: float = HELD_OUT) -> Dataset:
    """Stratified split (``seed`` fixes it), then standardise with the training rows."""
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64), test_size=held_out,
        random_state=seed, stratify=y)
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return Dataset(name, ((x_train - mean) / std).astype(dtype), y_train,
                   ((x_test - mean) / std).astype(dtype), y_test)


def load_dataset(name: str, seed: int = 0, dtype: str = "float64") -> Dataset:
    """One of :data:`LOADERS`, split with ``seed`` (which also draws the moons)."""
    if name not in LOADERS:
        raise ValueError(f"--dataset: unknown dataset {name!r} (known: {', '.join(LOADERS)})")
    x, y = LOADERS[name](seed)
    return split(name, x, y, seed, dtype)
