"""Paired comparisons checked against deltas computed by hand on the r1/r2 fixture (conftest.py).

Per prompt 0..3 of run r1 (4 pairs; prompt 4 has no rules row, prompt 5's rules row failed):

=============  ==================  ==================  ==============================
metric         none                rules               hand-computed
=============  ==================  ==================  ==============================
eos            F F F T             T T T T             0.25 -> 1.00, +0.75, b01=3 b10=0, p=2/8
output_tokens  10 10 10 4          4 6 2 4             8.5 -> 4.0, -4.5
echo           T T T(tag) F        F F F T             0.75 -> 0.25, -0.5, b01=1 b10=3, p=2*5/16
role_tag       F F T F             F F F F             -0.25, b01=0 b10=1, p=1
distinct_2     7/10 1 1 1          1 1 1 7/8           (0.3 + 0 + 0 - 0.125) / 4 = +0.04375
ifeval (rows)  0 1 0 0             1 1 0 1             +0.5, b01=2 b10=0, p=2/4
=============  ==================  ==================  ==============================
"""

from __future__ import annotations

import pytest

import harness.results
from harness.errors import HarnessError
from harness.metrics.stats import paired_bootstrap_delta
from harness.results import compare_runs, compare_variants


@pytest.fixture
def r1_cmp(store_root):
    return compare_variants(harness.results.open(store_root), "r1", "none", "rules")


HAND = {  # metric: (baseline mean, treatment mean, delta, b01, b10, p)
    "eos": (0.25, 1.0, 0.75, 3, 0, 0.25),
    "output_tokens": (8.5, 4.0, -4.5, None, None, None),
    "echo": (0.75, 0.25, -0.5, 1, 3, 0.625),
    "role_tag": (0.25, 0.0, -0.25, 0, 1, 1.0),
    "distinct_2": (0.925, 0.96875, 0.04375, None, None, None),
    "prompt_level_strict_acc": (0.25, 0.75, 0.5, 2, 0, 0.5),
    "refusal": (0.0, 0.0, 0.0, 0, 0, 1.0),
}


@pytest.mark.parametrize("metric", sorted(HAND))
def test_deltas_match_hand_computation(r1_cmp, metric):
    d = r1_cmp.delta(metric)
    base, treat, delta, b01, b10, p = HAND[metric]
    assert d.n == 4
    assert d.baseline == pytest.approx(base) and d.treatment == pytest.approx(treat)
    assert d.delta == pytest.approx(delta)
    assert (d.b01, d.b10) == (b01, b10)
    assert d.p_value == (None if p is None else pytest.approx(p))
    assert d.ci_low <= d.delta <= d.ci_high


def test_pairing_counts_and_kinds(r1_cmp):
    assert r1_cmp.n_pairs == 4
    assert (r1_cmp.unpaired_baseline, r1_cmp.unpaired_treatment) == (2, 0)
    kinds = {d.metric: d.kind for d in r1_cmp.deltas}
    assert kinds["eos"] == "bool" and kinds["output_tokens"] == "number" and kinds["prompt_level_strict_acc"] == "bool"
    # built-in metrics first, stored per-sample rows after
    assert [d.metric for d in r1_cmp.deltas][:2] == ["eos", "output_tokens"]


def test_interval_is_the_stats_module_paired_bootstrap(r1_cmp):
    d = r1_cmp.delta("output_tokens")
    assert (d.delta, d.ci_low, d.ci_high) == paired_bootstrap_delta([10, 10, 10, 4], [4, 6, 2, 4], iters=2000, seed=0)


def test_flips_list_prompts_whose_adherence_changed(r1_cmp):
    flips = {(f.sample_id, f.metric): (f.before, f.after, f.improved) for f in r1_cmp.flips}
    assert flips == {
        ("0", "eos"): ("length", "eos", True), ("1", "eos"): ("length", "eos", True),
        ("2", "eos"): ("length", "eos", True),
        ("0", "echo"): ("echo", "no echo", True), ("1", "echo"): ("echo", "no echo", True),
        ("2", "echo"): ("echo", "no echo", True), ("3", "echo"): ("no echo", "echo", False),
        ("2", "role_tag"): ("role tag", "no tag", True),
        ("0", "prompt_level_strict_acc"): ("fail", "pass", True), ("3", "prompt_level_strict_acc"): ("fail", "pass", True),
    }
    assert [f.sample_id for f in r1_cmp.flips] == sorted(f.sample_id for f in r1_cmp.flips)


def test_metric_selection_and_unknown_metric(store_root):
    res = harness.results.open(store_root)
    cmp = compare_variants(res, "r1", "none", "rules", metrics=["echo", "eos"])
    assert [d.metric for d in cmp.deltas] == ["echo", "eos"]
    with pytest.raises(HarnessError, match="unknown per-sample metric 'eso'.*did you mean 'eos'"):
        compare_variants(res, "r1", "none", "rules", metrics=["eso"])


def test_same_variant_across_two_runs(store_root):
    cmp = compare_runs(harness.results.open(store_root), "r1", "r2", "rules", metrics=["output_tokens", "eos"])
    assert cmp.n_pairs == 4
    assert cmp.delta("output_tokens").delta == pytest.approx((1 + 0 + 0 + 4) / 4)  # [4,6,2,4] -> [5,6,2,8]
    assert cmp.delta("eos").delta == 0 and cmp.delta("eos").p_value == 1.0
    assert cmp.flips == []


def test_bad_sides(store_root):
    res = harness.results.open(store_root)
    with pytest.raises(HarnessError, match="no variant 'rulez'.*did you mean 'rules'"):
        compare_variants(res, "r1", "none", "rulez")
    with pytest.raises(HarnessError, match="both r1/none"):
        compare_variants(res, "r1", "none", "none")
    with pytest.raises(HarnessError, match="run 'r3'"):
        compare_runs(res, "r1", "r3", "rules")


def test_constant_differences_collapse_the_interval(store_root):
    cmp = compare_variants(harness.results.open(store_root), "abl", "none", "rules", metrics=["eos"])
    d = cmp.delta("eos")
    assert (d.delta, d.ci_low, d.ci_high) == (1.0, 1.0, 1.0)
    assert (d.b01, d.b10) == (12, 0) and d.p_value == pytest.approx(2 / 2**12)


def test_comparison_tables(r1_cmp):
    t = r1_cmp.to_table()
    assert t.num_rows == len(HAND) and "ci_low" in t.column_names
    assert r1_cmp.flips_table().num_rows == 10
    assert r1_cmp.to_dict()["n_pairs"] == 4


def test_opt_in_style_leak_and_plugged_in_providers(tmp_path):
    import pyarrow as pa
    import pyarrow.compute as pc

    from harness.results.persample import PROVIDERS, MetricInfo, register_provider
    from harness.store import Store

    rows = [{"run_id": "s", "key": f"{v}{i}", "task": "t", "sample_id": str(i), "variant": v, "model": "m",
             "instruction": "How many apples?", "output": out, "finish_reason": "eos", "status": "ok"}
            for i, (a, b) in enumerate([("Seven.", "She has 7.\n#### 7"), ("Two.", "Two.")])
            for v, out in (("none", a), ("rules", b))]
    Store(tmp_path).write_samples("s", 0, rows)
    res = harness.results.open(tmp_path)
    assert "style_leak_gsm" not in [d.metric for d in compare_variants(res, "s", "none", "rules").deltas]
    d = compare_variants(res, "s", "none", "rules", metrics=["style_leak_gsm"]).delta("style_leak_gsm")
    assert (d.delta, d.b01, d.b10) == (0.5, 1, 0)

    register_provider("ends_with_period", lambda s: pa.table({"ends_with_period": pc.match_substring_regex(
        pc.fill_null(s.column("output"), ""), r"\.$")}), (MetricInfo("ends_with_period", "bool", True),))
    try:
        cmp = compare_variants(res, "s", "none", "rules")
        assert cmp.delta("ends_with_period").delta == -0.5  # "She has 7.\n#### 7" lost its final period
        assert [(f.sample_id, f.improved) for f in cmp.flips if f.metric == "ends_with_period"] == [("0", False)]
    finally:
        PROVIDERS.pop("ends_with_period")
