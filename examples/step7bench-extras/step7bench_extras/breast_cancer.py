"""breast-cancer: scikit-learn's bundled Wisconsin diagnostic breast cancer data (569 tumours, 30
features of cell nuclei, malignant or benign; no download), an MLP classifier.

Features are standardised with the training split's mean and standard deviation (the validation
split never informs them). Splits are stratified by class and fixed by `data_seed`. There is no
related source task, so transfer learning does not apply (`source_train` is None).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from step7bench.api import Budget, ExampleDataset, Hyperparameters, MLPClassifier, Preset, Workload

_FEATURES, _CLASSES = 30, 2
_TUNING = "learning-rate grid through run_trial with target 0 (whole budget), seeds 0-2, 2-core AMD EPYC CPU, torch 2.13 CPU"


@functools.cache
def _load() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_breast_cancer()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


class BreastCancer(Workload):
    name = "breast-cancer"
    task = "classification"
    description = "scikit-learn's Wisconsin breast cancer data (569 x 30), MLP classifier"
    presets = {
        "micro": Preset(
            name="micro", budget=Budget(max_steps=150, max_seconds=30.0),
            hparams=Hyperparameters(lr=3e-3, batch_size=32, warmup_steps=10, weight_decay=0.01, eval_every=10),
            target_val_loss=0.12, model={"hidden": 32, "depth": 1}, data={"val_fraction": 0.3},
            tuning=f"{_TUNING}, 150 steps. Best val loss over seeds 0/1/2: lr 1e-3 0.189/0.184/0.171; "
                   "3e-3 0.106/0.103/0.111; 1e-2 0.125/0.116/0.124; 3e-2 0.180/0.180/0.162. Chose 3e-3."),
        "small": Preset(
            name="small", budget=Budget(max_steps=400, max_seconds=60.0),
            hparams=Hyperparameters(lr=1e-3, batch_size=32, warmup_steps=20, weight_decay=0.01, eval_every=10),
            target_val_loss=0.115, model={"hidden": 64, "depth": 2}, data={"val_fraction": 0.3},
            tuning=f"{_TUNING}, 400 steps. Best val loss over seeds 0/1/2: lr 1e-3 0.104/0.101/0.107; "
                   "3e-3 0.112/0.116/0.124; 1e-2 0.146/0.149/0.161; 3e-2 0.110/0.154/0.122. Chose 1e-3; the "
                   "validation loss rises after its minimum (569 examples), so the target sits 10% above it."),
        "large": Preset(
            name="large", budget=Budget(max_steps=1000, max_seconds=120.0),
            hparams=Hyperparameters(lr=1e-3, batch_size=64, warmup_steps=50, weight_decay=0.01, eval_every=20),
            target_val_loss=0.115, model={"hidden": 256, "depth": 3}, data={"val_fraction": 0.3},
            tuning="not tuned: sized for a GPU; provisional"),
    }

    @property
    def num_classes(self) -> int:
        return _CLASSES

    def _build_data(self) -> dict[str, ExampleDataset | None]:
        features, labels = _load()
        train_x, val_x, train_y, val_y = train_test_split(
            features, labels, test_size=self.preset.data["val_fraction"], stratify=labels, random_state=self.data_seed)
        mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
        return {"train": _dataset((train_x - mean) / std, train_y), "val": _dataset((val_x - mean) / std, val_y),
                "source_train": None, "source_val": None}

    def build_model(self) -> MLPClassifier:
        return MLPClassifier(_FEATURES, self.preset.model["hidden"], _CLASSES, depth=self.preset.model["depth"])


def _dataset(features: np.ndarray, labels: np.ndarray) -> ExampleDataset:
    return ExampleDataset(torch.from_numpy(features.astype(np.float32)), torch.from_numpy(labels))
