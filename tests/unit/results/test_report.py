"""harness report: report.md with embedded PNGs."""

from __future__ import annotations

import re

import pytest

import harness.results
from harness.errors import HarnessError
from harness.report import build_report
from harness.report.data import ablation_rows, rules_of

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _embedded(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def test_full_report_has_every_section_and_plot(store_root, tmp_path):
    path = build_report(harness.results.open(store_root), "abl", tmp_path / "rep", iters=200)
    md = path.read_text()
    pngs = sorted(p.name for p in path.parent.glob("*.png"))
    assert pngs == ["ablation.png", "deltas.png", "flip_positions.png", "shape_by_variant.png", "similarity.png",
                    "style_leak.png"]
    assert sorted(_embedded(md)) == pngs
    for p in path.parent.glob("*.png"):
        data = p.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000
    # Table 4 shape with the paper's numbers as labelled context
    for label, win in (("None (base)", "2.4%"), ("All rules", "24.4%"), ("− EOS rule", "10.4%"),
                       ("− Diversity rule", "14.3%"), ("− Uniform rule", "16.3%")):
        assert re.search(rf"\| {re.escape(label)} \| `[^`]+` \|.*\| {re.escape(win)} \|", md), label
    assert "not comparable" in md and "Llama-2-7B" in md
    # style leak: one row per (variant, task), one column per domain in the one domain list's order
    assert "| variant | task | n | poetry | gsm | code |" in md
    assert re.search(r"\| none \| alpaca \| \d+ \| 0\.300 \[0\.150, 0\.450\] \| 0\.100 \[0\.050, 0\.150\] \| "
                     r"0\.050 \[0\.025, 0\.075\] \|", md)
    assert "12 points from 1 metric/variant groups" in md
    assert "| rules | uniform | 24 |" in md


def test_report_without_optional_data_keeps_placeholders(store_root, tmp_path):
    path = build_report(harness.results.open(store_root), "r1", tmp_path / "r1")
    md = path.read_text()
    assert sorted(_embedded(md)) == sorted(p.name for p in path.parent.glob("*.png"))
    assert {"shape_by_variant.png", "deltas.png", "ifeval.png"} <= set(_embedded(md))
    assert "Placeholder: renders when `metrics` has rows whose `details` JSON holds `x`" in md
    assert "No `style_leak_*` rows" in md and "No attribution traces" in md
    assert "harness run --variants ablations" in md
    # paired deltas hand-checked in test_compare.py appear in the report
    assert "| eos | 4 | 0.250 | 1.000 | +0.750 [" in md


def test_single_variant_run(store_root, tmp_path):
    md = build_report(harness.results.open(store_root), "r2", tmp_path / "r2").read_text()
    assert "Needs the `none` variant" in md


def test_table4_rows_match_option_strings_by_rule_set():
    assert rules_of("rules:diversity-uniform") == rules_of("rules:uniform-diversity") == {"uniform", "diversity"}
    assert rules_of("rules:eos-uniform-diversity") == rules_of("rules")
    rows = ablation_rows({"none": {}, "rules:eos-uniform-diversity": {}, "rules:diversity-eos": {}})
    assert [(label, v) for label, v, _ in rows] == [
        ("None (base)", "none"), ("All rules", "rules:eos-uniform-diversity"), ("− EOS rule", None),
        ("− Diversity rule", None), ("− Uniform rule", "rules:diversity-eos")]
    assert ablation_rows({"none": {}, "rules": {}}) == []


def test_report_errors(store_root, tmp_path):
    res = harness.results.open(store_root)
    with pytest.raises(HarnessError, match="run 'nope'"):
        build_report(res, "nope", tmp_path / "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(HarnessError, match="not a directory"):
        build_report(res, "r1", tmp_path / "file")


def test_report_shows_raw_and_length_controlled_win_rates(store_root, tmp_path):
    pytest.importorskip("pandas")
    from harness.judges.winrate import Pair, PairSet, append_metrics, metric_rows

    lengths = [(120, 40, 1.0), (30, 90, 0.0), (200, 60, 1.0), (50, 50, 0.5), (80, 20, 0.75), (10, 70, 0.25)]
    ps = PairSet([Pair("mini", str(i), "q", "t" * a, "b" * b) for i, (a, b, _) in enumerate(lengths)],
                 "variant:none", "tiny", "rules")
    rows = metric_rows("r1", ps, [p for _, _, p in lengths], "length", lc_iters=3)
    append_metrics(store_root, "r1", rows)
    md = build_report(harness.results.open(store_root), "r1", tmp_path / "r1").read_text()
    (raw,) = [r for r in rows if r["metric"] == "judge_win_rate" and r.get("sample_id") is None]
    (lc,) = [r for r in rows if r["metric"] == "judge_lc_win_rate"]
    line = next(x for x in md.split("## Judged win rates")[1].splitlines() if x.startswith("| mini | rules"))
    assert f"{raw['value']:.3f}" in line and f"{lc['value']:.3f}" in line and "variant:none" in line
