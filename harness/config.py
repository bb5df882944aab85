"""Run configuration: a YAML file and command-line flags, validated into one record.

Flags override the file. Unknown keys are errors naming the file and key. The config
hash covers everything that changes outputs (model, tasks, variants, decoding, prompt
format), not where results go.

Example:
    >>> cfg = RunConfig.from_sources(None, {"model": "tiny-random-llama", "tasks": "instructions-mini", "limit": 4})
    >>> cfg.variants, cfg.limit
    (('none', 'rules'), 4)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from harness.errors import HarnessError, did_you_mean
from harness.records import DecodingParams
from harness.yaml_io import read_yaml_mapping


def _split(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v).strip() for v in value)


@dataclass(frozen=True)
class RunConfig:
    """Everything ``harness run`` needs. See ``harness run --help`` for each field."""

    model: str = "gemma-3-270m"
    tasks: tuple[str, ...] = ()
    prompts: str | None = None
    variants: tuple[str, ...] = ("none", "rules")
    limit: int | None = None
    max_new_tokens: int = 256
    batch_size: int = 8
    store: str = "results"
    address: str | None = None
    replicas: str = "1"
    num_cpus: int | None = None
    threads: int | None = None
    tp: int = 1  # --tp: tensor-parallel ranks per replica (harness.distributed.tensor_parallel)
    no_ray: bool = False
    tasks_dirs: tuple[str, ...] = ()
    data: tuple[str, ...] = ()  # task=PATH overrides
    experts: tuple[str, ...] = ()  # user expert YAML files
    prompt_format: str | None = None
    dtype: str = "float32"
    device: str = "auto"
    combine: str = "logit-add"
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    run_id: str | None = None
    trace: bool = False
    engine: str = "auto"  # --engine hf|vllm|auto (harness.engines.choose_engine)
    source: str = "<flags>"

    @classmethod
    def from_sources(cls, path: str | Path | None, flags: dict) -> RunConfig:
        """Merge a YAML config file (if any) with flags (``None`` flags are ignored)."""
        raw: dict = {}
        source = "<flags>"
        if path is not None:
            source = str(path)
            raw = read_yaml_mapping(path)
            raw = {k.replace("-", "_"): v for k, v in raw.items()}
        names = [f.name for f in fields(cls) if f.name != "source"]
        for k in raw:
            if k not in names:
                raise HarnessError(f"{source}: {k}: unknown setting{did_you_mean(k, names)}")
        merged = {**raw, **{k: v for k, v in flags.items() if v is not None and k in names}}
        for k in ("tasks", "variants", "tasks_dirs", "data", "experts"):
            if k in merged:
                merged[k] = _split(merged[k])
        cfg = cls(**merged, source=source)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        where = self.source
        if not self.tasks and not self.prompts:
            raise HarnessError(f"{where}: give --tasks NAME[,NAME] or --prompts FILE.jsonl")
        if self.limit is not None and self.limit <= 0:
            raise HarnessError(f"{where}: limit: must be a positive number of prompts per task, got {self.limit}")
        for name in ("max_new_tokens", "batch_size"):
            if getattr(self, name) <= 0:
                raise HarnessError(f"{where}: {name}: must be positive, got {getattr(self, name)}")
        if self.replicas != "auto" and not (str(self.replicas).isdigit() and int(self.replicas) > 0):
            raise HarnessError(f"{where}: replicas: a positive number or 'auto', got {self.replicas!r}")
        if not isinstance(self.tp, int) or self.tp < 1:  # --tp (DeepSpeed AutoTP)
            raise HarnessError(f"{where}: tp: tensor-parallel ranks per replica must be a positive integer, got {self.tp!r}")
        if self.tp > 1 and self.no_ray:
            raise HarnessError(f"{where}: tp: --tp {self.tp} runs a gang of Ray actors; drop --no-ray")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise HarnessError(f"{where}: dtype: {self.dtype!r} is not float32, bfloat16 or float16")
        if self.engine not in ("hf", "vllm", "auto"):
            raise HarnessError(f"{where}: engine: {self.engine!r} is not hf, vllm or auto")
        for item in self.data:
            if "=" not in item:
                raise HarnessError(f"{where}: data: expected TASK=PATH, got {item!r}")

    @property
    def decoding(self) -> DecodingParams:
        return DecodingParams(self.max_new_tokens, self.do_sample, self.temperature, self.top_p, self.seed)

    def data_overrides(self) -> dict[str, Path]:
        return {k: Path(v) for k, v in (d.split("=", 1) for d in self.data)}

    def with_(self, **changes) -> RunConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("source")
        return d

    def output_hash(self, model_fingerprint: str = "", engine: str = "hf") -> str:
        """Hash of what determines the outputs (not the store, cluster or batching).

        ``engine`` is the engine that runs (``auto`` resolved); ``hf`` adds nothing, so
        runs made before engines existed keep their ids.
        """
        keys = ("model", "tasks", "prompts", "variants", "limit", "max_new_tokens", "prompt_format", "dtype",
                "combine", "do_sample", "temperature", "top_p", "seed", "experts", "data")
        payload = {k: getattr(self, k) for k in keys} | {"model_fingerprint": model_fingerprint}
        if engine != "hf":
            payload["engine"] = engine
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
