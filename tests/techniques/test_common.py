"""What the techniques' Python APIs share: device resolution, count checks, the criterion on
classification and sequence logits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from step7bench.techniques._common import check_positive_int, flat_criterion, user_device


def test_criterion_on_sequence_logits_averages_over_every_unpadded_prediction():
    logits = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([[1, 2, -100], [0, -100, -100]])
    expected = nn.functional.cross_entropy(logits[targets != -100], targets[targets != -100])
    assert flat_criterion(nn.CrossEntropyLoss(), logits, targets) == pytest.approx(expected.item())


def test_criterion_on_classification_logits_is_applied_as_given():
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 2, 1, 1])
    per_example = flat_criterion(nn.CrossEntropyLoss(reduction="none"), logits, targets)
    assert torch.equal(per_example, nn.functional.cross_entropy(logits, targets, reduction="none"))


@pytest.mark.parametrize("value", [0, -1, 1.0, True, "2", None])
def test_a_count_that_is_not_a_positive_int_is_refused_by_name(value):
    with pytest.raises(ValueError, match="rounds must be an integer >= 1"):
        check_positive_int(value, "rounds")


def test_a_positive_int_passes():
    check_positive_int(3, "rounds")


def test_devices_resolve_like_the_engines_and_errors_name_the_argument():
    assert user_device("cpu") == torch.device("cpu")
    assert user_device("auto").type in {"cpu", "cuda"}
    with pytest.raises(ValueError, match="^device: unknown device 'tpu'"):
        user_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="^device: .*no CUDA device"):
            user_device("cuda")
