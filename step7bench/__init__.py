"""step7bench: measures what training-efficiency techniques really save.

Layers, imports pointing down only:
workloads, measure -> engine -> techniques -> harness -> analysis -> report -> cli.
"""

__version__ = "0.1.0"
