"""The claims a suite's results are judged against, read from a TOML file (suites/claims/).

Each claim names the arm it is about (its techniques, in the suite's canonical order), the
factor claimed, the cost metric it is judged on, and its kind: `technique` (one technique
alone), `cumulative` (a row of the seed's cumulative table, measured on the stack it refers
to) or `target` (the overall goal). The metric is one the analysis measures speedups on
(`step7bench.metric_names`, by name or ledger column): cost(baseline) / cost(arm).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from step7bench.harness.checking import Document
from step7bench.metric_names import metric_keys

CLAIM_KINDS = ("technique", "cumulative", "target")
CLAIM_KEYS = ("name", "techniques", "claimed", "metric", "kind", "source")


@dataclass(frozen=True)
class Claim:
    name: str
    techniques: list[str]
    claimed: float  # the claimed speedup factor, > 0
    metric: str
    kind: str
    source: str = ""  # where the claim is made (section of the seed document)


def load_claims(path: Path | str) -> list[Claim]:
    """Read and validate a claims file; errors are one line, `FILE:LINE: what is wrong`."""
    doc = Document(Path(path))
    doc.check_keys(doc.values, (), ("metric", "claim"), required=("claim",))
    default_metric = doc.get(doc.values, (), "metric", "str")
    metrics = metric_keys()
    if default_metric is not None and default_metric not in metrics:
        raise doc.fail(("metric",), f"unknown metric {default_metric!r} (choose from {', '.join(metrics)})")
    claims = [_claim(doc, i, entry, default_metric, metrics)
              for i, entry in enumerate(doc.get(doc.values, (), "claim", "table_list"))]
    if not claims:
        raise doc.fail(("claim",), "a claims file needs at least one [[claim]]")
    names = [claim.name for claim in claims]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise doc.fail(("claim", i, "name"), f"claim {name!r} appears twice")
    return claims


def _claim(doc: Document, index: int, entry: dict, default_metric: str | None, metrics: list[str]) -> Claim:
    here = ("claim", index)
    doc.check_keys(entry, here, CLAIM_KEYS, required=("name", "techniques", "claimed", "kind"))
    techniques = doc.get(entry, here, "techniques", "str_list")
    if not techniques or len(set(techniques)) != len(techniques):
        raise doc.fail((*here, "techniques"), "claim techniques must be a non-empty list without repeats")
    kind = doc.get(entry, here, "kind", "str")
    if kind not in CLAIM_KINDS:
        raise doc.fail((*here, "kind"), f"unknown claim kind {kind!r} (choose from {', '.join(CLAIM_KINDS)})")
    if kind == "technique" and len(techniques) != 1:
        raise doc.fail((*here, "techniques"), "a 'technique' claim is about one technique alone")
    metric = doc.get(entry, here, "metric", "str", default_metric)
    if metric is None:
        raise doc.fail(here, "claim has no metric and the file sets no default 'metric'")
    if metric not in metrics:
        raise doc.fail((*here, "metric"), f"unknown metric {metric!r} (choose from {', '.join(metrics)})")
    return Claim(name=doc.get(entry, here, "name", "str"), techniques=list(techniques),
                 claimed=float(doc.get(entry, here, "claimed", "positive_number")), metric=metric, kind=kind,
                 source=doc.get(entry, here, "source", "str", ""))
