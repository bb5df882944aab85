"""The rule expert in vLLM's OpenAI-compatible server on loopback (docs/serving.md).

Starts one real server with ``--logits-processors harness.engines.vllm_plugin:RuleExpertLogitsProcessor``
on the head-size-32 tiny model, sends completions over HTTP with and without the expert
(``vllm_xargs``), and checks the tokens equal the HF engine's on the same prompt ids (which
test_vllm_engine.py shows equal the offline vLLM engine's). About 1-2 min of server start.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness.engines.vllm_plugin import QUALIFIED_NAME
from harness.experts.variants import parse_variants
from harness.records import DecodingParams, PromptItem

sys.path.insert(0, str(Path(__file__).parent))
from vllm_model import build_vllm_tiny  # noqa: E402

ITEMS = [PromptItem("t", "1", str(i), s) for i, s in enumerate(["Say hi.", "What should I do today?"])]
MAX_TOKENS = 16


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def server(tiny_model_dir, harness_home, tmp_path_factory):
    model = build_vllm_tiny(tiny_model_dir, harness_home / "vllm-tiny")
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_CPU_OMP_THREADS_BIND="nobind", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]))
    # vllm-cpu 0.32's `vllm` CLI looks up the version of a distribution named "vllm" and fails
    # (it is installed as "vllm-cpu"); the api_server module starts the same server.
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
           "--host", "127.0.0.1", "--port", str(port),
           "--dtype", "float32", "--enforce-eager", "--max-model-len", "512", "--logits-processors", QUALIFIED_NAME]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 900  # about 1 min on a quiet 2-core box; much longer when shared
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"vllm serve did not come up: {log.read_text()[-2000:]}")
            time.sleep(2)
        yield base, model
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_served_tokens_with_and_without_the_expert_equal_the_engines(server):
    from harness.engines.hf import HFEngine

    base, model = server
    hf = HFEngine(model, model_name="vtiny", device="cpu")
    variants = parse_variants(["none", "rules", "rules:eos-uniform-diversity-start"])
    want = {(r["variant"], r["sample_id"]): r["output_token_ids"]
            for r in hf.generate(ITEMS, variants, DecodingParams(max_new_tokens=MAX_TOKENS), batch_size=2)}
    for e in hf.encode(ITEMS):
        for v in variants:
            body = {"model": str(model), "prompt": e["ids"], "max_tokens": MAX_TOKENS, "temperature": 0.0,
                    "ignore_eos": True, "stop_token_ids": [hf.eos_id], "return_token_ids": True}
            if v.expert is not None:
                body["vllm_xargs"] = {"harness_expert": v.name, "harness_user_start": e["user_start"]}
            got = _post(base + "/v1/completions", body)["choices"][0]["token_ids"]
            assert got == want[(v.name, e["item"].sample_id)], (v.name, e["item"].sample_id)
    assert want[("none", "1")] != want[("rules:eos-uniform-diversity-start", "1")]


def test_bad_expert_argument_is_a_400(server):
    base, model = server
    body = {"model": str(model), "prompt": [1, 2, 3], "max_tokens": 2, "vllm_xargs": {"harness_expert": "rulez"}}
    with pytest.raises(urllib.error.HTTPError) as err:
        _post(base + "/v1/completions", body)
    assert err.value.code == 400 and "unknown variant" in err.value.read().decode()
