"""Small hand-made results stores (no model, no Ray).

Run ``r1`` (model ``tiny``, task ``mini``, variants none/rules) is built so that every
paired delta can be computed by hand; see ``test_compare.py`` for the arithmetic.
Run ``r2`` repeats ``rules`` on the same prompts; run ``abl`` has the paper's ablation
variants, style-leak and similarity metric rows and flip traces.
"""

from __future__ import annotations

import json
import random

import pytest

from harness.store import Store
from harness.store.schema import from_rows

INSTRUCTIONS = ["Write a short poem about the sea.", "List three colours of the rainbow.",
                "Name a large animal.", "Explain what rain is.", "Say a number.", "Count to three."]

# (output, finish_reason, num_output_tokens) per sample id 0..3
NONE_OUT = [("Write a short poem about the sea. Write a short poem", "length", 10),
            ("List three colours of the rainbow and more", "length", 10),
            ("An elephant. <|user|> Name a large animal.", "length", 10),
            ("Rain is water falling from clouds.", "eos", 4)]
RULES_OUT = [("Waves roll in under a grey sky.", "eos", 4),
             ("Red, orange and yellow.", "eos", 6),
             ("An elephant is large.", "eos", 2),
             ("Explain what rain is. Rain is rain is rain", "eos", 4)]
R2_TOKENS = [5, 6, 2, 8]
IFEVAL_NONE = [0, 1, 0, 0]
IFEVAL_RULES = [1, 1, 0, 1]
ABLATIONS = ("none", "rules", "rules:uniform-diversity", "rules:eos-uniform", "rules:eos-diversity")


def sample(run, sid, variant, output, finish="eos", ntok=3, task="mini", **extra):
    doc = {"id": str(sid), "dataset": "helpful_base"} if task == "alpaca" else {"id": str(sid)}
    return {"run_id": run, "key": f"{run}-{task}-{sid}-{variant}", "task": task, "task_version": "1",
            "sample_id": str(sid), "variant": variant, "model": "tiny", "instruction": INSTRUCTIONS[sid % 6],
            "prompt": f"<|user|>\n{INSTRUCTIONS[sid % 6]}\n<|assistant|>\n", "output": output,
            "output_token_ids": list(range(ntok)), "num_prompt_tokens": 12, "num_output_tokens": ntok,
            "finish_reason": finish, "status": "ok", "doc_json": json.dumps(doc)} | extra


def _run_row(variants, n, created, tasks=("mini",)):
    return {"created_at": created, "finished_at": created, "status": "finished", "model": "tiny",
            "tasks": list(tasks), "variants": list(variants), "config_hash": "abc123", "num_samples": n}


def build_r1(store: Store) -> None:
    rows = [sample("r1", i, "none", *NONE_OUT[i]) for i in range(4)]
    rows += [sample("r1", i, "rules", *RULES_OUT[i]) for i in range(4)]
    rows.append(sample("r1", 4, "none", "Seven.", "eos", 2))  # no rules partner
    rows.append(sample("r1", 5, "none", "One two three.", "eos", 4))
    rows.append(sample("r1", 5, "rules", None, "error", 0, status="error", error="CUDA OOM"))  # error: not paired
    store.write_samples("r1", 0, rows[:5])
    store.write_samples("r1", 1, rows[5:])
    metrics = [{"run_id": "r1", "task": "mini", "model": "tiny", "variant": v, "metric": "eos_rate", "value": val,
                "n": 4, "ci_low": max(0, val - 0.3), "ci_high": min(1, val + 0.3)}
               for v, val in (("none", 0.25), ("rules", 1.0))]
    for v, vals in (("none", IFEVAL_NONE), ("rules", IFEVAL_RULES)):
        metrics += [{"run_id": "r1", "task": "mini", "model": "tiny", "variant": v, "metric": "prompt_level_strict_acc",
                     "value": float(x), "n": 1, "sample_id": str(i)} for i, x in enumerate(vals)]
        metrics.append({"run_id": "r1", "task": "mini", "model": "tiny", "variant": v, "metric": "prompt_level_strict_acc",
                        "value": sum(vals) / 4, "n": 4, "ci_low": 0.0, "ci_high": 1.0})
    store.write_metrics("r1", from_rows(metrics, "metrics"))
    store.write_run("r1", _run_row(["none", "rules"], 11, "2025-01-01T00:00:00+00:00"))


def build_r2(store: Store) -> None:
    rows = [sample("r2", i, "rules", RULES_OUT[i][0], "eos", R2_TOKENS[i]) for i in range(4)]
    store.write_samples("r2", 0, rows)
    store.write_run("r2", _run_row(["rules"], 4, "2025-01-02T00:00:00+00:00"))


def build_abl(store: Store, n: int = 12) -> None:
    rng = random.Random(0)
    rows = []
    for v in ABLATIONS:
        has_eos = v == "rules" or "eos" in v
        for i in range(n):
            eos = v != "none" and has_eos and rng.random() < 0.85
            ntok = rng.randint(5, 40) if eos else 64
            echo = v == "none" and rng.random() < 0.7
            out = (INSTRUCTIONS[i % 6] + " " if echo else "") + " ".join(f"w{rng.randint(0, 30)}" for _ in range(8))
            flips = sorted(rng.sample(range(ntok), k=min(ntok, 4))) if v != "none" else None
            rows.append(sample("abl", i, v, out, "eos" if eos else "length", ntok, task="alpaca",
                               flip_positions=flips, flip_rules=["uniform", "diversity", "eos", "uniform"][: len(flips)]
                               if flips else None))
    store.write_samples("abl", 0, rows)
    metrics = []
    for v in ("none", "rules"):
        for domain, val in (("gsm", 0.1), ("poetry", 0.3), ("code", 0.05)):
            val = val if v == "none" else val / 2
            metrics.append({"run_id": "abl", "task": "alpaca", "model": "tiny", "variant": v,
                            "metric": f"style_leak_{domain}", "value": val, "n": n, "ci_low": val * 0.5,
                            "ci_high": val * 1.5})
    metrics += [{"run_id": "abl", "task": "alpaca", "model": "tiny", "variant": "rules", "metric": "gsm_similarity",
                 "value": 0.01 * (i - 6), "sample_id": str(i),
                 "details": json.dumps({"x": 0.1 + 0.02 * i, "y": 0.01 * (i - 6)})} for i in range(n)]
    store.write_metrics("abl", from_rows(metrics, "metrics"))
    store.write_run("abl", _run_row(ABLATIONS, len(rows), "2025-01-03T00:00:00+00:00", tasks=("alpaca",)))


@pytest.fixture
def store_root(tmp_path):
    """A store with runs r1, r2 and abl."""
    root = tmp_path / "results"
    store = Store(root)
    build_r1(store)
    build_r2(store)
    build_abl(store)
    return root
