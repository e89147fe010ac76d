"""Device fingerprint and git provenance."""

from __future__ import annotations

import subprocess
import types

import pytest
import torch

from step7bench.measure import fingerprint
from step7bench.measure.fingerprint import device_fingerprint, git_provenance

TYPES = {
    "device": str,
    "hardware_class": str,
    "cpu_model": str,
    "logical_cores": int,
    "usable_cores": int,
    "torch_threads": int,
    "torch_version": str,
    "python_version": str,
    "platform": str,
}
GPU_TYPES = {"gpu_name": str, "gpu_driver_version": str, "gpu_memory_bytes": int, "gpu_facts_from": str}


def test_cpu_fingerprint_fields_are_present_and_typed():
    facts = device_fingerprint("cpu")
    for key, kind in TYPES.items():
        assert isinstance(facts[key], kind), key
    assert all(facts[key] is None for key in GPU_TYPES)
    assert facts["torch_version"] == torch.__version__
    assert facts["torch_threads"] == torch.get_num_threads()
    assert facts["hardware_class"].startswith("cpu-")
    assert facts["hardware_class"].endswith(f"-{facts['usable_cores']}c")


def test_hardware_class_is_stable_across_calls():
    assert device_fingerprint("cpu")["hardware_class"] == device_fingerprint(torch.device("cpu"))["hardware_class"]


@pytest.mark.parametrize(
    ("model", "slug"),
    [
        ("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", "intel-xeon-platinum-8380-cpu-2-30ghz"),
        ("AMD EPYC 7763 64-Core Processor", "amd-epyc-7763-64-core-processor"),
        ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3"),
        ("", "unknown"),
    ],
)
def test_slug_keeps_the_model_and_drops_the_marks(model, slug):
    assert fingerprint._slug(model) == slug


def test_cuda_fingerprint_takes_gpu_facts_from_nvml(fake_nvml):
    facts = device_fingerprint("cuda:0")
    assert {key: facts[key] for key in GPU_TYPES} == {
        "gpu_name": "NVIDIA Fake H100 80GB HBM3",
        "gpu_driver_version": "550.54.15",
        "gpu_memory_bytes": 80 * 2**30,
        "gpu_facts_from": "nvml",
    }
    assert facts["hardware_class"] == "cuda-nvidia-fake-h100-80gb-hbm3"
    assert fake_nvml.references == 0


def test_cuda_fingerprint_without_nvml_takes_what_torch_knows(no_nvml, monkeypatch):
    properties = types.SimpleNamespace(name="NVIDIA Fake V100", total_memory=16 * 2**30)
    monkeypatch.setattr(fingerprint.torch.cuda, "get_device_properties", lambda index: properties)
    facts = device_fingerprint("cuda:0")
    assert facts["gpu_name"] == "NVIDIA Fake V100"
    assert facts["gpu_memory_bytes"] == 16 * 2**30
    assert facts["gpu_driver_version"] is None
    assert facts["gpu_facts_from"] == "torch"
    assert facts["hardware_class"] == "cuda-nvidia-fake-v100"


# -- git ----------------------------------------------------------------------------------


def git(repo, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
        capture_output=True, text=True, check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # never find a repo above
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "train.py").write_text("print('v1')\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    return repo


def test_git_provenance_of_a_clean_then_dirty_checkout(repo):
    clean = git_provenance(repo)
    assert clean == {"commit": git(repo, "rev-parse", "HEAD"), "dirty": False, "reason": None}
    (repo / "results.csv").write_text("untracked output does not make a checkout dirty\n")
    assert git_provenance(repo)["dirty"] is False
    (repo / "train.py").write_text("print('v2')\n")
    dirty = git_provenance(repo / ".")
    assert dirty == {"commit": clean["commit"], "dirty": True, "reason": None}


def test_git_provenance_outside_a_checkout_gives_a_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    outside = tmp_path / "plain"
    outside.mkdir()
    provenance = git_provenance(outside)
    assert provenance["commit"] is None and provenance["dirty"] is None
    assert "not a git repository" in provenance["reason"]


def test_git_provenance_without_git_gives_a_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on it
    provenance = git_provenance(tmp_path)
    assert provenance == {"commit": None, "dirty": None, "reason": "git is not installed"}


def test_git_provenance_defaults_to_the_package_checkout():
    provenance = git_provenance()
    assert set(provenance) == {"commit", "dirty", "reason"}
    assert (provenance["commit"] is None) == (provenance["reason"] is not None)
