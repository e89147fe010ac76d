"""digits: scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download).

The classic home of active learning: labels are the costly part, so choosing which examples
to learn from matters. Pixels (0-16) are scaled to [0, 1]. Splits are stratified by class
and fixed by `data_seed`. There is no related source task in this dataset, so transfer
learning pretrains on a rotated copy: the same digits turned a quarter turn, a related
but different input distribution with the same labels.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from step7bench.workloads.base import Budget, ExampleDataset, Hyperparameters, Preset, Workload
from step7bench.workloads.models import MLPClassifier

_IMAGE_SIDE = 8
# The learning-rate grids below ran through step7bench.engine.run_trial with target 0 (the
# whole budget), seeds 0-2, on a 2-core Intel Xeon CPU, torch 2.13 CPU, one intra-op thread.
_TUNING = "2-core Intel Xeon CPU, torch 2.13 CPU, 1 thread, run_trial, data_seed 0"
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
            hparams=Hyperparameters(lr=5e-2, batch_size=32, warmup_steps=20, weight_decay=0.01, eval_every=10,
                                    eval_every_fine=1, eval_fine_band=math.inf, confirm_steps=5),
            target_val_loss=0.2,
            model={"hidden": 64, "depth": 1},
            data={"val_fraction": 0.25},
            tuning=f"{_TUNING}, 300 steps. Best val loss over seeds 0/1/2: lr 1e-3 0.84/0.90; 2e-3 0.36/0.35; "
                   "3e-3 0.25/0.23; 5e-3 0.17/0.15; 1e-2 0.120/0.111/0.115; 2e-2 0.089/0.086/0.080; "
                   "3e-2 0.071/0.078/0.062; 5e-2 0.059/0.063/0.057. Chose 5e-2 (the grid's top: the test preset "
                   "needs only to be fast and stable).",
        ),
        # Checks on digits: every step (a check costs about one training step here), and the
        # target counts once the loss stays at or below it for `confirm_steps`. Dense curves of 26
        # baseline seeds of the small preset at the quick suite's 400-step budget (2-core AMD EPYC):
        # read at its first crossing, the time to target varied 15-19% between seeds (the loss
        # touches the target in a dip and rises again); a 12-step confirmation cut that to 10-11%.
        "small": Preset(
            name="small",
            budget=Budget(max_steps=1500, max_seconds=60.0),
            hparams=Hyperparameters(lr=1e-2, batch_size=32, warmup_steps=50, weight_decay=0.01, eval_every=25,
                                    eval_every_fine=1, eval_fine_band=math.inf, confirm_steps=12),
            target_val_loss=0.08,
            model={"hidden": 128, "depth": 2},
            data={"val_fraction": 0.25},
            tuning=f"{_TUNING}, 400 steps (the quick suite's budget). Best val loss over seeds 0/1/2: lr 1e-3 "
                   "0.19/0.20; 2e-3 0.124/0.133; 3e-3 0.107/0.116; 5e-3 0.088/0.082; 1e-2 0.061/0.052/0.057; "
                   "2e-2 0.097/0.036/0.067; 3e-2 0.081/0.077/0.076; 5e-2 0.133/0.068/0.141. Chose 1e-2: best "
                   "median and the steadiest across seeds. Re-checked for stability (2-core AMD EPYC, checks "
                   "every step, seeds 700-709): lr/batch 1e-2/32 median best 0.063, 1e-2/64 0.065, 2e-2/64 "
                   "0.059, 1e-2/128 0.070, 5e-3/64 0.083; per-step roughness of the validation loss after step "
                   "160 was 0.004-0.007 nats for all, larger batches did not make the time to target steadier "
                   "(its seed-to-seed spread 0.13-0.24 at a reachable target vs 0.13 at 1e-2/32), so 1e-2/32 "
                   "stays; the steadiness comes from the confirmed crossing. No validation spike above the "
                   "initial 2.3 nats occurred after step 50 in 26 seeds at this budget.",
        ),
        "large": Preset(
            name="large",
            budget=Budget(max_steps=4000, max_seconds=300.0),
            hparams=Hyperparameters(lr=1e-3, batch_size=64, warmup_steps=100, weight_decay=0.01, eval_every=50,
                                    eval_every_fine=5, eval_fine_band=0.05, confirm_steps=20),
            target_val_loss=0.10,
            model={"hidden": 512, "depth": 3},
            data={"val_fraction": 0.25},
            tuning="not tuned: sized for a GPU, which this project's CPU machines lack; lr and target are "
                   "provisional (the small preset's grid suggests a higher rate)",
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
