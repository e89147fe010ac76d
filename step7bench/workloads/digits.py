"""digits: scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download).

The classic home of active learning: labels are the costly part, so choosing which examples
to learn from matters. Pixels (0-16) are scaled to [0, 1]. Splits are stratified by class
and fixed by `data_seed`. There is no related source task in this dataset, so transfer
learning pretrains on a rotated copy: the same digits turned a quarter turn, a related
but different input distribution with the same labels.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from step7bench.workloads.base import Budget, ExampleDataset, Hyperparameters, Preset, Workload
from step7bench.workloads.models import MLPClassifier

_IMAGE_SIDE = 8
_NUM_CLASSES = 10


@functools.cache
def _load() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    return bunch.data.astype(np.float32) / 16.0, bunch.target.astype(np.int64)


def _rotated(images: np.ndarray) -> np.ndarray:
    squares = images.reshape(-1, _IMAGE_SIDE, _IMAGE_SIDE)
    return np.rot90(squares, k=1, axes=(1, 2)).reshape(len(images), -1).copy()


def _dataset(images: np.ndarray, labels: np.ndarray) -> ExampleDataset:
    return ExampleDataset(torch.from_numpy(images), torch.from_numpy(labels))


class Digits(Workload):
    name = "digits"
    task = "classification"
    description = "scikit-learn's 8x8 handwritten digits, MLP classifier"
    presets = {
        "micro": Preset(
            name="micro",
            budget=Budget(max_steps=300, max_seconds=30.0),
            hparams=Hyperparameters(lr=3e-3, batch_size=32, warmup_steps=20, weight_decay=0.01, eval_every=10),
            target_val_loss=0.35,
            model={"hidden": 64, "depth": 1},
            data={"val_fraction": 0.25},
        ),
        "small": Preset(
            name="small",
            budget=Budget(max_steps=1500, max_seconds=60.0),
            hparams=Hyperparameters(lr=2e-3, batch_size=32, warmup_steps=50, weight_decay=0.01, eval_every=25),
            target_val_loss=0.12,
            model={"hidden": 128, "depth": 2},
            data={"val_fraction": 0.25},
        ),
        "large": Preset(
            name="large",
            budget=Budget(max_steps=4000, max_seconds=300.0),
            hparams=Hyperparameters(lr=1e-3, batch_size=64, warmup_steps=100, weight_decay=0.01, eval_every=50),
            target_val_loss=0.10,
            model={"hidden": 512, "depth": 3},
            data={"val_fraction": 0.25},
        ),
    }

    @property
    def num_classes(self) -> int:
        return _NUM_CLASSES

    def _build_data(self) -> dict[str, ExampleDataset | None]:
        images, labels = _load()
        train_x, val_x, train_y, val_y = train_test_split(
            images, labels, test_size=self.preset.data["val_fraction"], stratify=labels,
            random_state=self.data_seed)
        return {
            "train": _dataset(train_x, train_y),
            "val": _dataset(val_x, val_y),
            "source_train": _dataset(_rotated(train_x), train_y),
            "source_val": _dataset(_rotated(val_x), val_y),
        }

    def build_model(self) -> MLPClassifier:
        return MLPClassifier(_IMAGE_SIDE * _IMAGE_SIDE, self.preset.model["hidden"], _NUM_CLASSES,
                             depth=self.preset.model["depth"])
