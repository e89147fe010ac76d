"""The report renders for every shape of suite (report_suites.SHAPES: each arm group alone and
together, one and two workloads, misses and failures, a partial matrix, a claims file of one's
own, no claims at all, nothing reached), and each page says what that shape calls for."""

from __future__ import annotations

import json
import re

import pytest

from page_text import in_order, visible_text
from report_suites import SHAPES, planted_arms

ORDER = ("Verdicts on the claims", "Can this instrument see a real speed-up?", "A/A check", "Technique by technique",
         "Every arm: speedups and learning curves", "Where the cost went", "Provenance", "How each number is measured")
UNTRUSTED = "Do not trust this instrument"


def _page(suite_reports, name):
    index = suite_reports[name]
    html = index.read_text()
    return html, visible_text(html), json.loads((index.parent / "summary.json").read_text())


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_shape_renders_a_whole_self_contained_page(suite_reports, name):
    html, text, summary = _page(suite_reports, name)
    assert summary["schema_version"] == 2
    techniques = any(arm.kind != "positive_control" for arm in planted_arms(SHAPES[name]))
    assert in_order(html, [h for h in ORDER if techniques or h != "Technique by technique"])
    assert "<script" not in html
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(source.startswith("data:image/png;base64,") for source in sources)
    ids = re.findall(r'id="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    assert all(href[1:] in ids for href in re.findall(r'href="([^"]*)"', html))  # every link is in the page
    # Misses are censored, never a speedup of 0; nothing undefined shows as a number.
    for wrong in ("0.00×", "∞ [", "[∞", "∞×", "inf×"):
        assert wrong not in text, wrong
    assert not re.search(r"\b(nan|NaN|None|inf)\b", text)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_an_untrusted_instrument_is_said_at_the_top(suite_reports, name):
    _, text, summary = _page(suite_reports, name)
    if summary["instrument_trusted"]:
        assert UNTRUSTED not in text
    else:
        assert UNTRUSTED in text and text.index(UNTRUSTED) < text.index("Verdicts on the claims")


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_technique_has_its_section(suite_reports, name):
    html, _, _ = _page(suite_reports, name)
    techniques = {t for arm in planted_arms(SHAPES[name]) if arm.kind not in ("control", "positive_control")
                  for t in arm.technique_names} | {arm.control_of for arm in planted_arms(SHAPES[name])
                                                   if arm.control_of}
    found = set(re.findall(r'<section id="technique-([a-z0-9-]+)"', html))
    assert found == {t.replace("_", "-") for t in techniques}


def test_the_instrument_checks_show_what_they_found(suite_reports):
    _, text, summary = _page(suite_reports, "positive-controls")
    assert "warm start" in text and "weakened reference" in text and "exact on every seed" in text
    assert summary["instrument_trusted"] and UNTRUSTED not in text
    assert "median sustained best validation loss of the baseline" in text  # how the target was set, as recorded
    _, text, summary = _page(suite_reports, "positive-control-fails")
    assert not summary["instrument_trusted"]
    assert "Positive control “weakened reference” on synthetic failed" in text
    # Each verdict on that workload says it is untrusted, with its reason and the FLOPs verdict beside it.
    assert text.count("untrusted the A/A check") + text.count("untrusted the weakened reference positive control") \
        >= 1 and "on FLOPs:" in text
    _, text, _ = _page(suite_reports, "baseline-only")
    assert "No A/A arm ran" in text and "No positive control ran" in text


def test_a_claim_whose_arm_missed_everywhere_reads_as_censored(suite_reports):
    html, text, summary = _page(suite_reports, "misses-and-failures")
    claim = next(c for c in summary["claims"] if c["name"] == "curriculum learning 1.4x")
    assert claim["n_missed"] == claim["n_seeds"] == 3
    assert re.search(r"missed 3/3 \(< \d+\.\d+×\)", text)
    assert "0/3" in text  # seeds reached
    assert "1 trial(s) failed" in text and "gradient_caching (1)" in text


def test_the_claim_row_carries_as_specified_metrics_activity_and_accounting(suite_reports):
    _, text, _ = _page(suite_reports, "everything")
    assert "inactive 0% of steps reused a gradient" in text  # gradient caching never fired
    assert "finetune only (the seed's counting):" in text  # transfer: all-in judged, finetune-only beside
    assert "device time, all-in" in text
    assert re.search(r"steps: \d\.\d\d× FLOPs: \d\.\d\d× device time: \d\.\d\d×", text)
    verdicts = re.findall(r"(SUPPORTED|REFUTED|INCONCLUSIVE)", text)
    assert verdicts  # and the as-specified arm is judged too:
    assert re.search(r"\d\.\d\d× \[\d\.\d\d, \d\.\d\d\] (SUPPORTED|REFUTED|INCONCLUSIVE) steps:", text)


def test_each_technique_section_has_its_parts(suite_reports):
    html, text, _ = _page(suite_reports, "everything")
    section = html[html.index('<section id="technique-transfer"'):]
    section = visible_text(section[:section.index("</section>")])
    for part in ("What its mechanism did", "pretrained 300 steps", "Settings: tuned vs as specified",
                 "pretrain_fraction", "Tuning grid on synthetic/micro", "Cost to the target",
                 "Transfer learning: finetune only, all-in, amortized", "amortized over 10"):
        assert part in section, part
    curriculum = html[html.index('<section id="technique-curriculum"'):]
    curriculum = visible_text(curriculum[:curriculum.index("</section>")])
    assert "Against its random control" in curriculum and "log-rank p" in curriculum
    assert "random control" in curriculum and "as specified" in curriculum
    assert "figures/technique_transfer.png" not in html  # inlined, not linked
    assert "(tuning_transfer.png)" in html and "(technique_curriculum_synthetic.png)" in html


def test_a_partial_matrix_is_said_near_the_top_with_the_claims_that_lack_arms(suite_reports):
    _, text, summary = _page(suite_reports, "partial")
    assert summary["partial"]["is_partial"]
    start = text.index("The matrix is partial")
    assert start < text.index("Verdicts on the claims")
    for claim in summary["partial"]["claims_without_arms"]:
        assert claim in text[start:text.index("Verdicts on the claims")]


def test_a_claims_file_of_ones_own_and_no_claims_at_all(suite_reports):
    _, text, summary = _page(suite_reports, "own-claims")
    assert [c["name"] for c in summary["claims"]][:2] == ["my curriculum 1.2x", "augmentation 1.1x (not in the suite)"]
    assert "steps, all-in" in text and "the suite ran no arm with exactly these techniques" in text
    assert "curriculum and caching 1.5x" in text  # its one cumulative row, in the cumulative table
    _, text, _ = _page(suite_reports, "no-claims")
    assert "No claims were given" in text and "Every arm" in text


def test_nothing_reached_says_why_nothing_is_measured(suite_reports):
    _, text, _ = _page(suite_reports, "nothing-reached")
    assert "no trial of this workload reached the target" in text


def test_two_workloads_each_get_their_rows(suite_reports):
    _, text, summary = _page(suite_reports, "two-workloads")
    assert {c["workload"] for c in summary["claims"]} == {"digits", "grammar-lm"}
    assert text.count("curriculum learning 1.4x") >= 4  # the headline row and the technique's line, per workload
