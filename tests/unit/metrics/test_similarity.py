"""Similarity x/y, Spearman and metric rows with a deterministic fake encoder (hand-computed)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.metrics.similarity import (bootstrap_spearman_ci, load_domain_rows, similarity_metric_rows,
                                        similarity_points, spearman)

VEC = {"i0": [1, 0], "o0": [1, 0], "i1": [0, 1], "o1": [0.6, 0.8], "i2": [0.6, 0.8], "o2": [0, 1],
       "di": [1, 0], "dr": [1, 0], "di2": [0.6, 0.8], "dr2": [0.6, 0.8], "g": [0, 1]}


class FakeEncoder:
    name = "fake"

    def encode(self, texts):
        return np.array([VEC[t] for t in texts], dtype=float)


SAMPLES = [{"sample_id": str(i), "task": "t", "variant": "none", "instruction": f"i{i}", "output": f"o{i}"}
           for i in range(3)]
DOMAIN = [{"instruction": "di", "response": "dr"}, {"instruction": "di2", "response": "dr2"}]


def test_points_by_hand():
    pts, rho, ci = similarity_points(SAMPLES, DOMAIN, ["g"], FakeEncoder(), iters=200)
    # x_i = mean cos(instr_i, domain instrs); y_i = mean cos(out_i, domain resps) - mean cos(out_i, general)
    assert pts.column("x").to_pylist() == pytest.approx([0.8, 0.4, 0.8])
    assert pts.column("y").to_pylist() == pytest.approx([0.8, 0.0, -0.6])
    # ranks x [2.5, 1, 2.5], y [3, 2, 1] -> covariance 0
    assert rho == pytest.approx(0.0)
    assert -1.0 <= ci[0] <= ci[1] <= 1.0


def test_spearman_and_bootstrap():
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)  # 1 - 6*2/(4*15)
    assert spearman([1, 2, 3], [3, 2, 1]) == -1.0
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    x = np.arange(30.0)
    lo, hi = bootstrap_spearman_ci(x, x + 0.1, iters=100, seed=1)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)
    assert bootstrap_spearman_ci(x, -x, iters=50, seed=3) == bootstrap_spearman_ci(x, -x, iters=50, seed=3)


def test_metric_rows():
    pts, rho, ci = similarity_points(SAMPLES, DOMAIN, ["g"], FakeEncoder(), iters=50)
    rows = similarity_metric_rows("r", pts, rho, ci, "poetry", model="m", encoder_name="fake")
    per = [r for r in rows if r["metric"] == "similarity_xy"]
    assert [r["sample_id"] for r in per] == ["0", "1", "2"]
    d = json.loads(per[0]["details"])
    assert d["domain"] == "poetry" and d["x"] == pytest.approx(0.8) and d["y"] == pytest.approx(0.8)
    (agg,) = [r for r in rows if r["metric"] == "similarity_spearman"]
    assert agg["n"] == 3 and agg.get("sample_id") is None and agg["reference"] == "domain:poetry"
    assert json.loads(agg["details"])["encoder"] == "fake"


def test_domain_rows_loading(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n\n"
                 + json.dumps({"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "v"}]}) + "\n")
    assert load_domain_rows(f) == [{"instruction": "q", "response": "a"}, {"instruction": "u", "response": "v"}]
    f.write_text('{"instruction": "q"}\n')
    with pytest.raises(HarnessError, match=r"d.jsonl:1: no text field"):
        load_domain_rows(f)
    with pytest.raises(HarnessError, match="no general responses"):
        similarity_points(SAMPLES, DOMAIN, [], FakeEncoder())


@pytest.mark.slow
def test_real_minilm():
    from harness.metrics.similarity import HFEncoder

    enc = HFEncoder()
    e = enc.encode(["How many apples are left?", "How many oranges remain?", "Write a sonnet about love."])
    assert e.shape == (3, 384)
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2]
