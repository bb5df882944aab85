"""compare pairs rows whose generation caps differ only when asked, and says which caps it paired."""

import pytest

from harness.errors import HarnessError
from harness.results.api import Results
from harness.results.compare import compare_variants
from harness.results.render import format_caps
from harness.store import Store


def _store(tmp_path, caps):
    rows = [{"run_id": "r", "key": f"{v}{i}", "task": "t", "sample_id": str(i), "variant": v, "model": "m",
             "instruction": "Name a colour.", "output": "Red.", "finish_reason": fr, "num_output_tokens": 3,
             "max_new_tokens": caps[v][i]}
            for i in range(3) for v, fr in (("none", "length"), ("rules", "eos"))]
    Store(tmp_path).write_samples("r", 0, rows)
    return Results(tmp_path)


def test_mismatched_pairs_are_left_out_by_default(tmp_path):
    results = _store(tmp_path, {"none": [512, 512, 512], "rules": [512, 8192, 512]})
    cmp = compare_variants(results, "r", "none", "rules", metrics=["eos"])
    assert (cmp.n_pairs, cmp.cap_mismatches, cmp.caps) == (2, 1, ([512], [512]))
    assert "1 pairs with different caps left out (--mixed-caps pairs them)" in format_caps(cmp)
    mixed = compare_variants(results, "r", "none", "rules", metrics=["eos"], mixed_caps=True)
    assert (mixed.n_pairs, mixed.caps) == (3, ([512], [512, 8192]))
    assert mixed.to_dict()["mixed_caps"] is True


def test_all_pairs_mismatched_is_a_one_line_error(tmp_path):
    results = _store(tmp_path, {"none": [512] * 3, "rules": [8192] * 3})
    with pytest.raises(HarnessError, match=r"max_new_tokens 512 vs 8192\); pass --mixed-caps"):
        compare_variants(results, "r", "none", "rules", metrics=["eos"])


def test_rows_without_caps_still_pair(tmp_path):
    results = _store(tmp_path, {"none": [None] * 3, "rules": [None] * 3})
    assert compare_variants(results, "r", "none", "rules", metrics=["eos"]).n_pairs == 3
