"""``--engine hf|vllm|auto``: what runs, and the one-line refusals (no engine started)."""

from __future__ import annotations

import json

import pytest

from harness.engines import CPU_HEAD_SIZES, choose_engine, head_size
from harness.errors import HarnessError


def _model(tmp_path, **cfg):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], **cfg}))
    return tmp_path


def test_hf_is_taken_as_asked(tmp_path):
    assert choose_engine("hf", _model(tmp_path, hidden_size=64, num_attention_heads=4)).name == "hf"


def test_auto_falls_back_to_hf_with_one_line_why(tmp_path):
    choice = choose_engine("auto", _model(tmp_path, hidden_size=64, num_attention_heads=4), device="cpu")
    assert choice.name == "hf" and "head size 16" in choice.reason and "\n" not in choice.reason


@pytest.mark.parametrize("kwargs,needle", [({"trace": True}, "--trace"), ({"tp": 2}, "--tp")])
def test_explicit_vllm_that_cannot_run_is_one_line_error(tmp_path, kwargs, needle):
    with pytest.raises(HarnessError, match="--engine vllm: cannot run here") as err:
        choose_engine("vllm", _model(tmp_path, hidden_size=64, num_attention_heads=2), **kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_explicit_vllm_refuses_unsupported_head_size(tmp_path):
    with pytest.raises(HarnessError, match="head size 16"):
        choose_engine("vllm", _model(tmp_path, hidden_size=64, num_attention_heads=4), device="cpu")


def test_unknown_architecture_is_refused(tmp_path):
    path = _model(tmp_path, hidden_size=64, num_attention_heads=2)
    (path / "config.json").write_text(json.dumps({"architectures": ["NoSuchLMForCausalLM"], "head_dim": 64}))
    with pytest.raises(HarnessError, match="does not support architecture NoSuchLMForCausalLM"):
        choose_engine("vllm", path, device="cpu")
    assert choose_engine("vllm", _model(tmp_path, head_dim=64), device="cpu").name == "vllm"


def test_head_size_list_matches_vllm():
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    assert tuple(CPUAttentionBackend.get_supported_head_sizes()) == CPU_HEAD_SIZES


def test_head_size_reads_text_config(tmp_path):
    assert head_size(_model(tmp_path, text_config={"head_dim": 256})) == 256


def test_run_config_refuses_unknown_engine():
    from harness.run.config import RunConfig

    with pytest.raises(HarnessError, match="engine: 'tgi' is not hf, vllm or auto"):
        RunConfig.from_sources(None, {"tasks": "instructions-mini", "engine": "tgi"})


def test_tp_on_gpus_is_vllm_tensor_parallel_and_on_cpu_the_hf_gang(tmp_path):
    path = _model(tmp_path, head_dim=64)
    assert choose_engine("auto", path, tp=2, device="cuda").name == "vllm"
    cpu = choose_engine("auto", path, tp=2, device="cpu")
    assert cpu.name == "hf" and "needs GPUs" in cpu.reason and "DeepSpeed AutoTP" in cpu.reason


def test_vllm_replica_shards_over_its_tp_gpus(tiny_model_dir, monkeypatch):
    """--tp N with vLLM: the worker asks vLLM for N-way tensor parallelism on its own GPUs (mp executor)."""
    import vllm

    from harness.distributed.spec import BackendSpec
    from harness.engines import make_engine

    seen = {}

    class Captured(Exception):
        pass

    def fake_llm(model, **kwargs):
        seen.update(kwargs)
        raise Captured

    monkeypatch.setattr(vllm, "LLM", fake_llm)
    spec = BackendSpec(str(tiny_model_dir), "tiny", "tulu", engine="vllm", tp=4)
    kwargs = spec.worker_kwargs(threads=1, device="cuda")
    assert kwargs["tp"] == 4 and "tp" not in BackendSpec(str(tiny_model_dir), "tiny", "tulu", tp=4).worker_kwargs(1, "cpu")
    with pytest.raises(Captured):
        make_engine("vllm", str(tiny_model_dir), model_name="tiny", tensor_parallel_size=kwargs["tp"])
    assert seen["tensor_parallel_size"] == 4 and seen["distributed_executor_backend"] == "mp"
    seen.clear()
    with pytest.raises(Captured):
        make_engine("vllm", str(tiny_model_dir), model_name="tiny")
    assert "tensor_parallel_size" not in seen  # one GPU or CPU: vLLM's defaults
