"""Response-tune tiny-random-llama with 2 Ray Train workers + DeepSpeed ZeRO-3 on CPU.

One training run (module fixture, ~30 s, mostly worker start-up) on the session Ray
cluster (2 CPUs; each worker reserves 0.5 CPU), then checks: the loss goes down on a
repeated tiny dataset, every epoch has its ZeRO shards, the HF config + tokenizer are in
the output directory, and the merged fp32 weights load into the tiny model and generate.
"""

from __future__ import annotations

import json

import pytest

from harness.errors import HarnessError

EPOCHS = 3
RESPONSES = [
    "The sky is blue.",
    "Apples are red and sweet.",
    "Water boils at one hundred degrees.",
    "Cats like to sleep in the sun.",
]


@pytest.fixture(scope="module")
def finetuned(ray_cluster, tiny_model_dir, tmp_path_factory):
    from harness.finetune import FinetuneConfig, run_finetune

    root = tmp_path_factory.mktemp("finetune")
    data = root / "responses.jsonl"
    rows = [{"id": i, "domain": "demo", "instruction": f"Question {i}?", "response": RESPONSES[i % 4]} for i in range(16)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = FinetuneConfig.from_dict({
        "model": str(tiny_model_dir), "output_dir": str(root / "out"), "objective": "response",
        "data": {"format": "single_task", "path": str(data)},
        "lr": 3e-3, "batch_size": 4, "micro_batch_size": 1, "epochs": EPOCHS, "schedule": "linear",
        "warmup_ratio": 0.0, "max_seq_length": 64, "seed": 7, "zero_stage": 3,
        "num_workers": 2, "cpus_per_worker": 0.5,
    }, source="test")
    return cfg, run_finetune(cfg)


def test_loss_decreases(finetuned):
    cfg, res = finetuned
    assert res.steps == EPOCHS * 4  # 16 examples / (2 workers x 1 x accumulation 2) = 4 updates per epoch
    log = [json.loads(line) for line in (res.output_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, res.steps + 1))
    assert [r["epoch"] for r in log] == [e for e in range(1, EPOCHS + 1) for _ in range(4)]
    first, last = sum(res.losses[:3]) / 3, sum(res.losses[-3:]) / 3
    assert last < 0.8 * first, res.losses
    assert log[0]["lr"] == pytest.approx(3e-3) and log[-1]["lr"] < log[0]["lr"]  # linear decay


def test_checkpoint_layout(finetuned):
    cfg, res = finetuned
    out = res.output_dir
    assert res.tags == tuple(f"epoch{e}" for e in range(1, EPOCHS + 1))
    for tag in res.tags:
        names = {p.name for p in (out / tag).iterdir()}
        for rank in (0, 1):
            assert f"zero_pp_rank_{rank}_mp_rank_00_model_states.pt" in names
            assert f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt" in names
    assert (out / "latest").read_text().strip() == f"epoch{EPOCHS}"
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "zero_to_fp32.py"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "finetune.json").read_text())
    assert manifest["status"] == "done" and manifest["tags"] == list(res.tags)
    assert manifest["template"] == {"format": "tulu", "user_tag": "<|user|>", "assistant_tag": "<|assistant|>"}
    assert manifest["encoding"]["kept"] == 16 and manifest["config"]["grad_accum_steps"] == 2
    assert not (out / ".ray_train").exists()


def test_weights_load_back_and_generate(finetuned, tiny_model_dir):
    import torch
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.finetune.export import export_hf, load_model

    cfg, res = finetuned
    out = res.output_dir
    state = get_fp32_state_dict_from_zero_checkpoint(str(out), tag=res.tags[-1])
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}
    assert any(not torch.equal(base[k], v) for k, v in state.items())  # training changed the weights
    tok = AutoTokenizer.from_pretrained(str(out))
    enc = tok("<|user|>\nWhat colour is the sky?\n<|assistant|>\n", return_tensors="pt")
    gen = model.eval().generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    assert gen.shape[1] > enc["input_ids"].shape[1]
    # the helper gives the same weights, and a plain HF dir that loads anywhere
    again = load_model(out, res.tags[-1])
    assert torch.equal(again.model.embed_tokens.weight, model.model.embed_tokens.weight)
    dest = export_hf(out, res.tags[0], out.parent / "hf-epoch1")
    assert (dest / "model.safetensors").is_file() and (dest / "tokenizer.json").is_file()
    with pytest.raises(HarnessError, match="no checkpoint tag 'epoch9'"):
        load_model(out, "epoch9")


def test_output_dir_is_not_overwritten(finetuned):
    from harness.finetune.trainer import prepare, prepare_output_dir

    cfg, res = finetuned
    with pytest.raises(HarnessError, match="already holds a finetuning run; set overwrite: true"):
        prepare_output_dir(prepare(cfg))


def test_harness_run_on_deepspeed_checkpoint(finetuned, harness_home, tmp_path):
    """Evaluates ``deepspeed:OUT@all`` once the deepspeed: model source exists (another room)."""
    from harness.cli import main
    from harness.models import resolve

    cfg, res = finetuned
    try:
        resolve(f"deepspeed:{res.output_dir}@{res.tags[-1]}")
    except HarnessError as exc:
        if "not supported" in str(exc):
            pytest.skip("the deepspeed: model source is not implemented yet")
        raise
    rc = main(["run", "--model", f"deepspeed:{res.output_dir}@all", "--tasks", "instructions-mini", "--limit", "2",
               "--max-new-tokens", "4", "--variants", "none", "--store", str(tmp_path / "store"), "--no-ray", "-q"])
    assert rc == 0


def test_more_workers_than_cpus_is_a_one_line_error(ray_cluster, tiny_model_dir, tmp_path):
    from harness.finetune import FinetuneConfig, run_finetune

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": 0, "domain": "d", "instruction": "q", "response": "a"}) + "\n")
    cfg = FinetuneConfig.from_dict({"model": str(tiny_model_dir), "output_dir": str(tmp_path / "out"),
                                    "data": {"format": "single_task", "path": str(data)}, "batch_size": 4,
                                    "num_workers": 4, "cpus_per_worker": 1}, source="big.yaml")
    with pytest.raises(HarnessError, match=r"big.yaml: num_workers x cpus_per_worker = 4 CPUs, but the Ray cluster has 2"):
        run_finetune(cfg)
