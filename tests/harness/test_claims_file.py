"""The seed's claims as data: the shipped file loads; mistakes are one line with the line."""

from __future__ import annotations

import pytest

from step7bench.errors import UserError
from step7bench.analysis.metrics import get_metric
from step7bench.harness.claims import load_claims
from step7bench.harness.suite import SUITES_DIR
from step7bench.metric_names import metric_keys


def test_the_seed_claims_load_with_their_factors():
    claims = {claim.name: claim for claim in load_claims(SUITES_DIR / "claims" / "step7.toml")}
    by_kind = {kind: {"+".join(c.techniques): c.claimed for c in claims.values() if c.kind == kind}
               for kind in ("technique", "cumulative", "target")}
    assert by_kind["technique"] == {"curriculum": 1.4, "active_learning": 2.0, "gradient_caching": 1.25,
                                    "transfer": 5.0, "difficulty_prediction": 1.2}
    assert by_kind["cumulative"] == {"curriculum": 1.4, "curriculum+active_learning": 2.8,
                                     "curriculum+active_learning+gradient_caching": 3.5,
                                     "curriculum+active_learning+gradient_caching+transfer": 17.5}
    assert by_kind["target"] == {"curriculum+active_learning+gradient_caching+transfer": 10.0}
    assert {claim.metric for claim in claims.values()} == {"device_s"}


GOOD = '[[claim]]\nname = "c"\ntechniques = ["curriculum"]\nclaimed = 1.4\nkind = "technique"\nmetric = "device_s"\n'


@pytest.mark.parametrize("text, fragment, line", [
    (GOOD.replace("1.4", "-1.4"), "claimed must be a positive finite number", 4),
    (GOOD.replace('"technique"', '"rumour"'), "unknown claim kind 'rumour'", 5),
    (GOOD.replace('"device_s"', '"vibes"'), "unknown metric 'vibes'", 6),
    (GOOD.replace('["curriculum"]', '["curriculum", "transfer"]'), "about one technique alone", 3),
    (GOOD.replace('["curriculum"]', "[]"), "non-empty list", 3),
    (GOOD + "colour = 1\n", "unknown key 'claim[0].colour'", 7),
    (GOOD.replace('metric = "device_s"\n', ""), "no metric", 1),
    (GOOD + GOOD, "appears twice", 8),
    ("metric = 3\n" + GOOD, "metric must be a string", 1),
])
def test_malformed_claims_name_the_line(tmp_path, text, fragment, line):
    path = tmp_path / "claims.toml"
    path.write_text(text)
    with pytest.raises(UserError) as caught:
        load_claims(path)
    assert fragment in str(caught.value) and f"{path}:{line}:" in str(caught.value)


def test_claim_metrics_are_the_metrics_the_analysis_measures():
    keys = metric_keys()
    assert {"device_s", "device_hours", "steps", "flops", "flops_total", "wall_s", "energy_j"} <= set(keys)
    assert "energy_method" not in keys
    for key in keys:  # every metric a claims file may name is one the analysis can judge
        get_metric(key)


@pytest.mark.parametrize("column", ["flops_overhead", "wall_eval_s", "peak_memory_bytes"])
def test_a_ledger_column_without_a_speedup_metric_is_refused_at_load(tmp_path, column):
    path = tmp_path / "claims.toml"
    path.write_text(GOOD.replace('"device_s"', f'"{column}"'))
    with pytest.raises(UserError, match=f"{path}:6: unknown metric '{column}'"):
        load_claims(path)
