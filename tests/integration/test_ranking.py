"""Response ranking (paper Table 2) on tiny-random-llama: shape, seeds, self-draws, the two statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.experts.variants import parse_variant
from harness.ranking import draw_negatives, load_pairs, rank
from harness.store import read_table

PAIRS = [
    ("Name a fruit.", "An apple."),
    ("Count to three.", "One, two, three."),
    ("Say hello in French.", "Bonjour!"),
    ("What colour is the sky?", "The sky is blue on a clear day."),
    ("Give me a word that rhymes with cat.", "Hat."),
    ("Write a haiku about rain.", "Soft rain on the roof\nwhispers to the sleeping town\npuddles hold the sky"),
]
NONE = parse_variant("none")


class CountingBackend:
    """Wraps a backend and counts ``score`` calls (ranking must batch into one)."""

    def __init__(self, inner):
        self.inner, self.calls, self.pairs = inner, 0, 0

    def score(self, pairs, variant, add_eos=False):
        self.calls += 1
        self.pairs += len(pairs)
        assert add_eos, "ranking scores response tokens + EOS"
        return self.inner.score(pairs, variant, add_eos=add_eos)


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from harness.distributed.executor import open_backend
    from harness.distributed.spec import BackendSpec

    spec = BackendSpec(model_path=str(tiny_model_dir), model_name="tiny-random-llama", prompt_format="tulu",
                       variants=(NONE, parse_variant("rules")), batch_size=4, no_ray=True, device="cpu")
    with open_backend(spec, progress=False) as b:
        yield b


def test_shape_and_one_batched_score_call(backend):
    counting = CountingBackend(backend)
    out = rank(counting, PAIRS, NONE, k=5, seed=0)
    n = len(PAIRS)
    assert counting.calls == 1 and counting.pairs == out["scored_pairs"] <= n * 6
    assert np.array(out["draws"]).shape == (n, 5) and np.array(out["diff_total"]).shape == (n, 5)
    for stat in ("total", "mean"):
        s = out[stat]
        assert s["n"] == n * 5 and 0 <= s["successes"] <= s["n"] and s["rate"] == s["successes"] / s["n"]
        assert s["ci_low"] <= s["rate"] <= s["ci_high"]
    assert out["variant"] == "none" and out["k"] == 5 and len(out["real_total"]) == n


def test_seed_determinism(backend):
    a, b = rank(backend, PAIRS, NONE, k=5, seed=7), rank(backend, PAIRS, NONE, k=5, seed=7)
    assert a == b
    c = rank(backend, PAIRS, NONE, k=5, seed=8)
    assert c["draws"] != a["draws"]
    assert a["draws"] == draw_negatives(len(PAIRS), 5, np.random.default_rng(7)).tolist()


def test_self_draws_tie_and_exclude_self_removes_them(backend):
    seed = next(s for s in range(100) if (draw_negatives(len(PAIRS), 5, np.random.default_rng(s))
                                          == np.arange(len(PAIRS))[:, None]).any())
    paper = rank(backend, PAIRS, NONE, k=5, seed=seed)
    assert paper["self_draws"] > 0
    assert paper["total"]["ties"] >= paper["self_draws"]  # a response against itself: difference exactly 0, a failure
    excl = rank(backend, PAIRS, NONE, k=5, seed=seed, exclude_self=True)
    draws = np.array(excl["draws"])
    assert excl["self_draws"] == 0 and not (draws == np.arange(len(PAIRS))[:, None]).any()
    assert draws.min() >= 0 and draws.max() < len(PAIRS)


def test_mean_is_total_over_tokens_with_eos(backend):
    out = rank(backend, PAIRS, NONE, k=2, seed=0)
    direct = backend.score(PAIRS, NONE, add_eos=True)
    for i, s in enumerate(direct):
        assert out["real_total"][i] == pytest.approx(s["logprob"], rel=1e-5)
        assert out["real_tokens"][i] == s["num_tokens"]
        assert out["real_mean"][i] == pytest.approx(s["logprob"] / s["num_tokens"], rel=1e-5)


class HandMade:
    """Log-probabilities by hand: a long real response vs a short random one."""

    TABLE = {"long real response": (-20.0, 20), "short": (-5.0, 2)}

    def score(self, pairs, variant, add_eos=False):
        return [{"logprob": self.TABLE[r][0], "num_tokens": self.TABLE[r][1], "is_greedy": False} for _, r in pairs]


def test_total_and_mean_differ_when_lengths_differ():
    items = [("Explain tides.", "long real response"), ("Say hi.", "short")]
    out = rank(HandMade(), items, NONE, k=1, seed=0, exclude_self=True)
    # instruction 0: total -20 < -5 (the short random response wins), mean -1.0 > -2.5 (the real one wins)
    assert out["diff_total"][0] == [-15.0] and out["diff_mean"][0] == [1.5]
    # instruction 1: total -5 > -20 and mean -2.5 < -1.0
    assert out["diff_total"][1] == [15.0] and out["diff_mean"][1] == [-1.5]
    assert out["total"]["successes"] == 1 and out["mean"]["successes"] == 1
    assert (np.array(out["diff_total"]) > 0).tolist() != (np.array(out["diff_mean"]) > 0).tolist()


def _pairs_file(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"instruction": i, "output": r, "id": n}) + "\n" for n, (i, r) in enumerate(PAIRS)))
    return path


def _metrics(store: Path) -> dict:
    rows = read_table(store, "metrics").to_pylist()
    return {(r["variant"], r["metric"]): r for r in rows}


def test_rank_cli_writes_metrics_and_run(tmp_path, tiny_model_dir, capsys):
    data = _pairs_file(tmp_path)
    argv = ["rank", "--model", "tiny-random-llama", "--data", str(data), "--k", "3", "--variants", "none,rules",
            "--batch-size", "4", "-q", "--no-ray"]
    assert main(argv + ["--store", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "ranking_total" in out and "rules" in out
    metrics = _metrics(tmp_path / "s")
    assert set(metrics) == {(v, m) for v in ("none", "rules") for m in ("ranking_total", "ranking_mean")}
    for r in metrics.values():
        assert r["task"] == "response-ranking" and r["n"] == len(PAIRS) * 3 and r["ci_low"] <= r["value"] <= r["ci_high"]
        assert json.loads(r["details"])["field_response"] == "output"
    runs = read_table(tmp_path / "s", "runs").to_pylist()
    assert len(runs) == 1 and runs[0]["status"] == "finished" and runs[0]["num_samples"] == len(PAIRS)
    assert json.loads(runs[0]["expert_json"])["rules"]  # the rules variant's token table is recorded


def test_rank_runs_through_the_run_lifecycle(tmp_path, tiny_model_dir, capsys, monkeypatch):
    """rank holds the run's writer lock and marks a run that breaks mid-way failed, like harness run."""
    from harness.ranking import cli as rank_cli
    from harness.store import RunLock

    data = _pairs_file(tmp_path)
    argv = ["rank", "--model", "tiny-random-llama", "--data", str(data), "--k", "2", "--variants", "none",
            "--batch-size", "4", "-q", "--no-ray", "--run-id", "rk", "--store", str(tmp_path / "s")]
    with RunLock(tmp_path / "s", "rk"):
        assert main(argv) == 2
    assert "run 'rk' is being written by pid" in capsys.readouterr().err

    def broken(*args, **kwargs):
        raise RuntimeError("scoring broke")

    monkeypatch.setattr("harness.ranking.core.rank", broken)
    with pytest.raises(RuntimeError, match="scoring broke"):
        main(argv)
    runs = read_table(tmp_path / "s", "runs").to_pylist()
    assert [r["status"] for r in runs] == ["failed"]
    monkeypatch.undo()
    assert main(argv) == 0  # the lock was released; the same run id finishes
    assert [r["status"] for r in read_table(tmp_path / "s", "runs").to_pylist()] == ["finished"]
    assert rank_cli.TASK in {r["task"] for r in read_table(tmp_path / "s", "metrics").to_pylist()}


def test_rank_cli_through_ray_equals_in_process(tmp_path, ray_cluster, tiny_model_dir, capsys):
    data = _pairs_file(tmp_path)
    argv = ["rank", "--model", "tiny-random-llama", "--data", str(data), "--k", "3", "--variants", "none",
            "--batch-size", "4", "-q"]
    assert main(argv + ["--store", str(tmp_path / "ray")]) == 0
    assert main(argv + ["--store", str(tmp_path / "local"), "--no-ray"]) == 0
    ray_m, local_m = _metrics(tmp_path / "ray"), _metrics(tmp_path / "local")
    assert {k: v["value"] for k, v in ray_m.items()} == {k: v["value"] for k, v in local_m.items()}


def test_rank_cli_bad_field_is_one_line(tmp_path, capsys):
    data = _pairs_file(tmp_path)
    assert main(["rank", "--model", "tiny-random-llama", "--data", str(data), "--field-response", "answer",
                 "--store", str(tmp_path / "s"), "--no-ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{data}:1" in err and "'answer'" in err
    assert not (tmp_path / "s").exists()


def test_load_pairs_picks_reference_output(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"instruction": "i", "reference_output": "r", "output": "o"}) + "\n")
    assert load_pairs(path) == ([("i", "r")], "reference_output")
