"""step7bench-extras: a technique and a workload that are not among step7bench's own, written
against `step7bench.api` only. Installed, they register through entry points; uninstalled, a
suite can name this package in `plugins = ["step7bench_extras"]` (importable on the path)."""

from step7bench_extras.breast_cancer import BreastCancer
from step7bench_extras.selective_backprop import TECHNIQUES

WORKLOADS = (BreastCancer,)

__all__ = ["TECHNIQUES", "WORKLOADS", "BreastCancer"]
