"""--truncate-prompts end to end: over-long prompts cut from the left, recorded per row."""

from __future__ import annotations

import json

from harness.run.config import RunConfig
from harness.run.runner import execute
from harness.store import read_table


def test_truncated_rows_record_the_dropped_tokens(tmp_path, harness_home):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "long", "instruction": "word " * 3000}) + "\n"
                       + json.dumps({"id": "short", "instruction": "Say hi."}) + "\n")
    cfg = RunConfig.from_sources(None, {"model": "tiny-random-llama", "prompts": str(prompts), "max_new_tokens": 4,
                                        "no_ray": True, "truncate_prompts": True, "store": str(tmp_path / "store")})
    result = execute(cfg, progress=False)
    rows = read_table(tmp_path / "store", "samples", result.run_id).to_pylist()
    by_id = {(r["sample_id"], r["variant"]): r for r in rows}
    assert len(rows) == 4
    for variant in ("none", "rules"):
        long, short = by_id[("long", variant)], by_id[("short", variant)]
        assert short["prompt_truncated_tokens"] == 0
        assert long["prompt_truncated_tokens"] > 3000 - 2048  # a 6k-token prompt on a 2,048-token model
        assert long["num_prompt_tokens"] + 4 <= 2048 and long["num_prompt_tokens"] > 2000
        assert long["instruction"].strip().endswith("word") and len(long["instruction"]) < len("word " * 3000)
