"""The paper's protocol: per-variant caps in keys and rows, task caps by default, the invariance
sentinel (including a forced divergence), compare's cap pairing, the configs docs cite, tulu-ab."""

import argparse
import json
import re

import pytest

from harness.run import sentinel
from harness.cli import build_parser, main
from harness.run.config import RunConfig
from harness.run.runner import prepare
from harness.store import read_table
from tests.conftest import REPO

RUN = ["run", "--model", "tiny-random-llama", "--tasks", "instructions-mini", "--limit", "3", "--no-ray", "-q",
       "--batch-size", "3", "--variants", "none@max_new_tokens=3,rules@max_new_tokens=5"]


@pytest.fixture(scope="module")
def capped_run(tmp_path_factory, tiny_model_dir):
    store = tmp_path_factory.mktemp("capped")
    assert main(RUN + ["--store", str(store), "--sentinel", "0.5"]) == 0
    return store


def test_rows_record_the_cap_each_variant_ran_with(capped_run):
    rows = read_table(capped_run, "samples").to_pylist()
    assert {(r["variant"], r["max_new_tokens"]) for r in rows} == {("none", 3), ("rules", 5)}
    for r in rows:
        assert r["num_output_tokens"] <= r["max_new_tokens"]
        assert json.loads(r["decoding_json"])["max_new_tokens"] == r["max_new_tokens"]
    assert max(r["num_output_tokens"] for r in rows if r["variant"] == "rules") > 3


def test_content_keys_include_the_cap(tiny_model_dir):
    def keys(variants):
        return prepare(RunConfig.from_sources(None, {"model": "tiny-random-llama", "tasks": "instructions-mini",
                                                     "limit": 2, "variants": variants})).keys
    a, b = keys("none@max_new_tokens=3,rules"), keys("none@max_new_tokens=4,rules")
    assert a[("instructions-mini", "mini-001", "none")] != b[("instructions-mini", "mini-001", "none")]
    assert a[("instructions-mini", "mini-001", "rules")] == b[("instructions-mini", "mini-001", "rules")]


def test_task_cap_is_used_unless_a_flag_or_variant_says_otherwise(tiny_model_dir):
    base = {"model": "tiny-random-llama", "tasks": "instructions-mini", "limit": 1}
    for extra, want in (({}, {"none": 512, "rules": 512}), ({"max_new_tokens": 8}, {"none": 8, "rules": 8}),
                        ({"max_new_tokens": 8, "variants": "none,rules@max_new_tokens=20"}, {"none": 8, "rules": 20})):
        plan = prepare(RunConfig.from_sources(None, base | extra))
        assert {v.name: plan.decoding_for(plan.items[0], v).max_new_tokens for v in plan.variants} == want


def test_sentinel_rows_in_metrics_and_report(capped_run, tmp_path):
    rows = [r for r in read_table(capped_run, "metrics").to_pylist() if r["metric"] == sentinel.SENTINEL_METRIC]
    assert sum(r["n"] for r in rows) == 3  # 50 % of 6 pairs
    assert all(r["value"] == 1.0 for r in rows)
    run_id = read_table(capped_run, "runs").column("run_id")[0].as_py()
    assert main(["report", run_id, "--store", str(capped_run), "--out", str(tmp_path / "rep")]) == 0
    assert "all identical to the batched rows" in (tmp_path / "rep" / "report.md").read_text()


def test_forced_divergence_is_recorded_and_flagged(tmp_path, monkeypatch, capsys, tiny_model_dir):
    def perturb(row):
        ids = list(row["output_token_ids"])
        ids[1] = ids[1] + 1
        return row | {"output_token_ids": ids}

    monkeypatch.setattr(sentinel, "PERTURB", perturb)
    store = tmp_path / "s"
    assert main(RUN + ["--store", str(store), "--sentinel", "0.01"]) == 0
    assert "INVARIANCE SENTINEL: tokens changed" in capsys.readouterr().out
    (row,) = [r for r in read_table(store, "metrics").to_pylist() if r["metric"] == sentinel.SENTINEL_METRIC]
    assert (row["value"], row["n"]) == (0.0, 1)
    assert [d["first_divergence"] for d in json.loads(row["details"])["divergences"]] == [1]
    run_id = read_table(store, "runs").column("run_id")[0].as_py()
    assert main(["report", run_id, "--store", str(store), "--out", str(tmp_path / "rep")]) == 0
    assert "**WARNING" in (tmp_path / "rep" / "report.md").read_text()
    monkeypatch.setattr(sentinel, "PERTURB", None)
    assert main(RUN + ["--store", str(store), "--sentinel", "0.01"]) == 0  # nothing new: stored rows kept
    assert [r["value"] for r in read_table(store, "metrics").to_pylist() if r["metric"] == sentinel.SENTINEL_METRIC] == [0.0]


def test_sentinel_zero_disables(tmp_path, tiny_model_dir):
    assert main(RUN[:-2] + ["--variants", "none", "--limit", "1", "--max-new-tokens", "4", "--store", str(tmp_path),
                            "--sentinel", "0"]) == 0
    assert sentinel.SENTINEL_METRIC not in read_table(tmp_path, "metrics").column("metric").to_pylist()


def test_compare_pairs_different_caps_only_when_asked(capped_run, capsys):
    run_id = read_table(capped_run, "runs").column("run_id")[0].as_py()
    assert main(["compare", run_id, "--store", str(capped_run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--mixed-caps" in err and "3 vs 5" in err
    assert main(["compare", run_id, "--store", str(capped_run), "--mixed-caps"]) == 0
    assert "caps (max_new_tokens): baseline 3, treatment 5; 3 pairs ran with DIFFERENT caps and are compared " \
        "anyway (mixed caps)" in capsys.readouterr().out


def test_paper_and_mini_configs_dry_run(tmp_path, capsys, tiny_model_dir):
    # The paper's 8192-token caps need a context above 8192 (the harness refuses caps beyond it):
    # the tiny model with a 16k context stands in for such a model.
    import shutil

    long_ctx = tmp_path / "tiny-16k"
    shutil.copytree(tiny_model_dir, long_ctx)
    cfg = json.loads((long_ctx / "config.json").read_text())
    (long_ctx / "config.json").write_text(json.dumps(cfg | {"max_position_embeddings": 16384}))
    data = tmp_path / "ae.jsonl"
    data.write_text("".join(json.dumps({"id": i, "instruction": f"Task {i}.", "reference_output": "ok"}) + "\n"
                            for i in range(3)))
    assert main(["run", str(REPO / "configs/paper.yaml"), "--model", str(long_ctx), "--dry-run",
                 "--data", f"alpaca-eval={data}", "--store", str(tmp_path / "st")]) == 0
    out = capsys.readouterr().out
    caps = dict(re.findall(r"^\s+(\S+?)@max_new_tokens=\d+\s+alpaca-eval: max_new_tokens (\d+), greedy$", out, re.M))
    assert caps == {"none": "512", "rules": "8192", "rules:uniform-diversity": "512",
                    "rules:eos-uniform": "8192", "rules:eos-diversity": "8192"}
    assert "prompt format: tulu" in out and not (tmp_path / "st").exists()
    assert main(["run", str(REPO / "configs/mini.yaml"), "--model", "tiny-random-llama", "--dry-run"]) == 0
    assert "pairs:         40 (prompt x variant)" in capsys.readouterr().out


def _help_texts(parser: argparse.ArgumentParser):
    yield parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _help_texts(sub)


def test_every_cited_config_path_exists():
    texts = [p.read_text() for d in ("docs", "cluster") for p in (REPO / d).rglob("*") if p.is_file()
             and p.suffix in (".md", ".yaml", ".yml", ".sh", ".txt", "")]
    texts += [(REPO / "README.md").read_text(), *_help_texts(build_parser())]
    cited = {m for t in texts for m in re.findall(r"(?<![\w/.])configs/[\w./-]+\.ya?ml", t)}
    assert "configs/paper.yaml" in cited and "configs/mini.yaml" in cited
    assert [c for c in sorted(cited) if not (REPO / c).is_file()] == []


def test_tulu_ab_format_anchors_the_expert_at_the_instruction(tmp_path, tiny_model_dir):
    from harness.engines.hf import HFEngine
    from harness.records import PromptItem

    gen = HFEngine(tiny_model_dir, prompt_format="tulu-ab")
    (enc,) = gen.encode([PromptItem("t", "1", "0", "Name a fruit.")])
    assert enc["text"] == "<|A|>\nName a fruit.\n<|B|>\n"
    assert "<|A|>" in gen.tokenizer.decode(enc["ids"][:enc["user_start"]])
    assert gen.tokenizer.decode(enc["ids"][enc["user_start"]:]).lstrip().startswith("Name")
    assert main(["run", "--model", "tiny-random-llama", "--prompts", str(_prompts(tmp_path)), "--no-ray", "-q",
                 "--max-new-tokens", "2", "--variants", "rules", "--prompt-format", "tulu-ab", "--store",
                 str(tmp_path / "st")]) == 0
    assert read_table(tmp_path / "st", "samples").column("prompt")[0].as_py().startswith("<|A|>\n")


def _prompts(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"instruction": "Name a fruit."}\n')
    return p


def test_task_until_cuts_native_rows(tmp_path, tiny_model_dir):
    (tmp_path / "d.jsonl").write_text('{"id": "a", "instruction": "Name a fruit."}\n')
    task = tmp_path / "t.yaml"
    base = "task: stop-demo\ndataset_path: d.jsonl\ndoc_to_text: instruction\ngeneration_kwargs:\n  max_gen_toks: 12\n"
    task.write_text(base)
    argv = ["run", "--model", "tiny-random-llama", "--tasks", "stop-demo", "--tasks-dir", str(tmp_path),
            "--variants", "rules:uniform-diversity", "--no-ray", "-q", "--sentinel", "0"]
    assert main(argv + ["--store", str(tmp_path / "a")]) == 0
    (full,) = read_table(tmp_path / "a", "samples").to_pylist()
    text = full["output"]
    stop = next(text[i:i + 2] for i in range(3, len(text) - 2)
                if text[i:i + 2].strip() and text.find(text[i:i + 2]) == i)  # first occurrence past index 3
    task.write_text(base + f"  until: [{json.dumps(stop)}]\n")
    assert main(argv + ["--store", str(tmp_path / "b")]) == 0
    (cut,) = read_table(tmp_path / "b", "samples").to_pylist()
    assert cut["output"] == text[:text.find(stop)] and cut["finish_reason"] == "stop"
    assert json.loads(cut["decoding_json"])["until"] == [stop] and cut["key"] != full["key"]
    assert cut["output_token_ids"] == full["output_token_ids"][:len(cut["output_token_ids"])]
    assert len(cut["output_token_ids"]) < len(full["output_token_ids"])
