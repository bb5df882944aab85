"""Slow demo: response-tune and poetry-tune Gemma-3-270M on CPU, then evaluate against the base.

Trains with the two demo configs (``configs/finetune/gemma-response.yaml`` and
``gemma-poetry.yaml``: 4 optimizer updates of 8 examples each, bf16, ZeRO-2, 2 Ray Train
workers), then runs ``harness run`` on ``instructions-mini`` (``--limit 16
--max-new-tokens 96``) for the base model and both checkpoints, and on ``style-probes``
for the base and the poetry-tuned model. It asserts only that everything ran: the numbers
(EOS rate, echo rate, poetry style leak) are written to ``demo_results.json`` and printed,
whatever they show (docs/finetune.md reports one run).

    FINETUNE_DEMO_DIR=results/finetune-demo HARNESS_TEST_HOME=~/.cache/harness \\
        .venv/bin/python -m pytest tests/slow/test_finetune_demo.py -m slow -q -s

Disk: each checkpoint is ~3.6 GB (bf16 weights + fp32 Adam states).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
EVAL = ["--max-new-tokens", "96", "--variants", "none", "-q"]
LIMITS = {"instructions-mini": "16", "style-probes": "45"}  # style-probes: all 45 probes


def alpaca_subset(src: Path, dest: Path, n: int = 64, max_chars: int = 400) -> Path:
    """The first ``n`` AlpacaEval rows whose reference answer has at most ``max_chars`` characters."""
    rows = [json.loads(line) for line in src.read_text("utf-8").splitlines() if line.strip()]
    keep = [r for r in rows if len(r["reference_output"]) <= max_chars][:n]
    dest.write_text("".join(json.dumps(r) + "\n" for r in keep), "utf-8")
    return dest


def _metrics(store: Path, run_id: str) -> dict:
    from harness.store import run_query

    rows = run_query(store, f"select metric, value, n from metrics where run_id = '{run_id}' "
                            "and sample_id is null and metric in ('eos_rate', 'echo_rate', 'mean_output_tokens', "
                            "'role_tag_rate')").to_pylist()
    return {r["metric"]: r["value"] for r in rows} | {"n": max((r["n"] or 0) for r in rows) if rows else 0}


def _poetry_leak(store: Path, run_id: str) -> dict:
    from harness.metrics.style_leak import detect
    from harness.store import run_query

    rows = run_query(store, f"select doc_json, output from samples where run_id = '{run_id}' and status = 'ok'").to_pylist()
    groups: dict[str, list[bool]] = {"near_poetry": [], "far": [], "all": []}
    for r in rows:
        near = json.loads(r["doc_json"] or "{}").get("near_domain")
        flag = "poetry" in detect(r["output"] or "")
        groups["all"].append(flag)
        if near == "poetry":
            groups["near_poetry"].append(flag)
        elif near is None:
            groups["far"].append(flag)
    return {k: {"leak": sum(v) / len(v) if v else None, "n": len(v)} for k, v in groups.items()}


def test_finetune_demo(shared_data, tmp_path):
    from harness.cli import main
    from harness.finetune import FinetuneConfig, run_finetune

    if os.environ.get("HARNESS_TEST_HOME"):
        os.environ["HARNESS_HOME"] = os.environ["HARNESS_TEST_HOME"]
    demo = Path(os.environ.get("FINETUNE_DEMO_DIR") or tmp_path).resolve()
    demo.mkdir(parents=True, exist_ok=True)
    store = demo / "store"
    data = {"gemma-response": alpaca_subset(shared_data / "alpaca_eval" / "alpaca_eval.jsonl", demo / "alpaca64.jsonl"),
            "gemma-poetry": shared_data / "single_task" / "poetry.jsonl"}
    report: dict = {"train": {}, "eval": {}}
    specs = {"base": "gemma-3-270m"}
    for name, path in data.items():
        cfg = FinetuneConfig.load(REPO / "configs" / "finetune" / f"{name}.yaml")
        cfg = replace(cfg, output_dir=str(demo / name), data=(replace(cfg.data[0], path=str(path)),), overwrite=True)
        t0 = time.monotonic()
        res = run_finetune(cfg)
        report["train"][name] = {"wall_s": round(time.monotonic() - t0, 1), "steps": res.steps, "tags": list(res.tags),
                                 "losses": list(res.losses), "examples": res.examples}
        assert res.steps == cfg.max_steps and res.tags
        specs[name] = f"deepspeed:{res.output_dir}@{res.tags[-1]}"
    runs = [(label, spec, "instructions-mini") for label, spec in specs.items()]
    runs += [(label, specs[label], "style-probes") for label in ("base", "gemma-poetry")]
    for label, spec, task in runs:
        run_id = f"{task}-{label}"
        t0 = time.monotonic()
        args = ["run", "--model", spec, "--tasks", task, "--limit", LIMITS[task], "--store", str(store),
                "--run-id", run_id, *EVAL]
        assert main(args) == 0, args
        entry = {"wall_s": round(time.monotonic() - t0, 1), **_metrics(store, run_id)}
        if task == "style-probes":
            entry["poetry_leak"] = _poetry_leak(store, run_id)
        report["eval"][run_id] = entry
    (demo / "demo_results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    for run_id, entry in report["eval"].items():
        assert entry["n"] > 0 and 0.0 <= entry["eos_rate"] <= 1.0, run_id
