"""Finetuning configuration: one YAML file (plus a few CLI flags), validated into a record.

Keys mirror the paper's hyperparameters (paper-spec §1.7). Values are converted to the
field types by :func:`harness.yaml_io.typed_fields` (``lr: "1e-5"`` is a number). Unknown
keys, wrong types and impossible batch arithmetic are one-line :class:`~harness.errors.HarnessError` naming the
file and the key.

Example:
    >>> cfg = FinetuneConfig.from_dict({"model": "tiny-random-llama", "output_dir": "/tmp/rt",
    ...     "objective": "response", "data": {"format": "single_task", "path": "x.jsonl"},
    ...     "batch_size": 4, "num_workers": 2}, source="demo.yaml")
    >>> cfg.grad_accum_steps, cfg.warmup
    (2, 0.03)
    >>> FinetuneConfig.from_dict({"lr": 1e-5, "epoch": 3}, source="demo.yaml")
    Traceback (most recent call last):
    ...
    harness.errors.HarnessError: demo.yaml: epoch: unknown key (did you mean 'epochs'?)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path


from harness.errors import HarnessError, did_you_mean
from harness.yaml_io import read_yaml_mapping, typed_fields
from harness.prompts import ASSISTANT_TAG, USER_TAG

OBJECTIVES = ("instruction", "response", "text")
SCHEDULES = ("linear", "cosine")
DTYPES = ("float32", "bfloat16")
#: Warmup ratio per schedule: the scripts' linear/3 % and the paper prose's cosine/10 %.
DEFAULT_WARMUP = {"linear": 0.03, "cosine": 0.10}


@dataclass(frozen=True)
class DataSpec:
    """One training data source (see :mod:`harness.finetune.datasets` for formats).

    Attributes:
        format: builder name (``messages``, ``single_task``, ``alpaca``, ``gsm``, ``mbpp``, ``poetry``,
            ``recipes``, ``chess``).
        path: local file (``.jsonl``, ``.json``, ``.parquet``; chess also ``.pgn``).
        limit: the builder's row/game cap (``None``: the paper's own, e.g. 1000).
        odd_turns: ``messages`` only: ``drop`` the trailing user turn (the paper's
            converter) or ``error``.
    """

    format: str
    path: str
    limit: int | None = None
    odd_turns: str = "drop"


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything ``harness finetune`` needs.

    Attributes:
        model: model spec for :func:`harness.models.resolve` (built-in, HF dir, ...).
        output_dir: where ZeRO checkpoints (``epoch{e}``), ``config.json``, tokenizer,
            ``train_log.jsonl`` and ``finetune.json`` go.
        objective: ``instruction`` (Eq. 1), ``response`` (Eq. 2: user turns emptied) or
            ``text`` (plain LM over instruction + response).
        data: the sources, concatenated in order.
        user_tag / assistant_tag: template tags (``<|A|>``/``<|B|>`` for Appendix B).
        text_separator: joins instruction and response for ``objective: text``.
        lr, batch_size, micro_batch_size, epochs, schedule, warmup_ratio, max_seq_length,
            seed, weight_decay, gradient_clipping: as in the paper (effective batch 64,
            micro-batch 1, AdamW with weight decay 0, 0 = no clipping).
        max_steps: stop after this many optimizer updates (bounded demos); the last
            checkpoint is then tagged ``step{N}`` unless it ends an epoch.
        zero_stage: DeepSpeed ZeRO stage (2 or 3).
        dtype: ``float32`` or ``bfloat16`` (DeepSpeed bf16 with fp32 master weights).
        num_workers / cpus_per_worker / use_gpu: Ray Train scaling.
        address / num_cpus: join a Ray cluster, or size the private local one.
        overwrite: allow an ``output_dir`` that already holds a checkpoint.
        source: the config file (for error messages).
    """

    model: str = "tiny-random-llama"
    output_dir: str = ""
    objective: str = "instruction"
    data: tuple[DataSpec, ...] = ()
    user_tag: str = USER_TAG
    assistant_tag: str = ASSISTANT_TAG
    text_separator: str = "\n"
    lr: float = 1e-5
    batch_size: int = 64
    micro_batch_size: int = 1
    epochs: int = 5
    max_steps: int | None = None
    schedule: str = "linear"
    warmup_ratio: float | None = None
    max_seq_length: int = 2048
    seed: int = 42
    weight_decay: float = 0.0
    gradient_clipping: float = 0.0
    zero_stage: int = 3
    dtype: str = "float32"
    num_workers: int = 2
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    address: str | None = None
    num_cpus: int | None = None
    overwrite: bool = False
    source: str = "<dict>"

    @property
    def warmup(self) -> float:
        """The warmup ratio in force (explicit, else the schedule's default)."""
        return DEFAULT_WARMUP[self.schedule] if self.warmup_ratio is None else self.warmup_ratio

    @property
    def grad_accum_steps(self) -> int:
        """Gradient accumulation = batch / (workers x micro-batch)."""
        return self.batch_size // (self.num_workers * self.micro_batch_size)

    @classmethod
    def from_dict(cls, raw: dict, source: str = "<dict>") -> FinetuneConfig:
        """Validate a mapping (YAML contents) into a config; errors name ``source`` and the key."""
        if not isinstance(raw, dict):
            raise HarnessError(f"{source}: expected a mapping of keys, got {type(raw).__name__}")
        rest = {k: v for k, v in raw.items() if k != "data"}
        values = typed_fields(cls, rest, source, skip=("source", "data"))
        if "data" in raw:
            values["data"] = _data(raw["data"], source)
        cfg = cls(**values, source=source)
        cfg.check()
        return cfg

    @classmethod
    def load(cls, path: str | Path, overrides: dict | None = None) -> FinetuneConfig:
        """Read a YAML file, apply ``overrides`` (``None`` values ignored) and validate.

        Relative ``output_dir`` and data paths in the file are relative to the file; an
        ``output_dir`` override (a CLI flag) is relative to the working directory.
        """
        p = Path(path)
        raw = read_yaml_mapping(p)
        base = p.resolve().parent  # relative paths in the file are relative to the file
        if isinstance(raw.get("output_dir"), str) and raw["output_dir"]:
            raw["output_dir"] = str((base / Path(raw["output_dir"]).expanduser()).resolve())
        for key, value in (overrides or {}).items():
            if value is not None:  # flags: relative to the working directory
                raw[key] = str(Path(value).expanduser().resolve()) if key == "output_dir" else value
        cfg = cls.from_dict(raw, source=str(path))
        data = tuple(replace(d, path=str((base / Path(d.path).expanduser()).resolve())) for d in cfg.data)
        return replace(cfg, data=data)

    def check(self) -> None:
        """Cross-field checks (raises one-line :class:`HarnessError`)."""
        s = self.source
        if not self.output_dir:
            raise HarnessError(f"{s}: output_dir: required (where checkpoints are written)")
        if not self.data:
            raise HarnessError(f"{s}: data: required (a mapping with format and path, or a list of them)")
        _choice(s, "objective", self.objective, OBJECTIVES)
        _choice(s, "schedule", self.schedule, SCHEDULES)
        _choice(s, "dtype", self.dtype, DTYPES)
        if self.zero_stage not in (2, 3):
            raise HarnessError(f"{s}: zero_stage: must be 2 or 3, got {self.zero_stage}")
        for key in ("batch_size", "micro_batch_size", "epochs", "max_seq_length", "num_workers"):
            if getattr(self, key) < 1:
                raise HarnessError(f"{s}: {key}: must be >= 1, got {getattr(self, key)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise HarnessError(f"{s}: max_steps: must be >= 1, got {self.max_steps}")
        if self.lr <= 0:
            raise HarnessError(f"{s}: lr: must be > 0, got {self.lr}")
        if not 0.0 <= self.warmup < 1.0:
            raise HarnessError(f"{s}: warmup_ratio: must be in [0, 1), got {self.warmup}")
        for key in ("weight_decay", "gradient_clipping"):
            if getattr(self, key) < 0:
                raise HarnessError(f"{s}: {key}: must be >= 0, got {getattr(self, key)}")
        if self.cpus_per_worker <= 0:
            raise HarnessError(f"{s}: cpus_per_worker: must be > 0, got {self.cpus_per_worker}")
        if self.batch_size % (self.num_workers * self.micro_batch_size):
            raise HarnessError(
                f"{s}: batch_size: {self.batch_size} is not a multiple of num_workers x micro_batch_size "
                f"= {self.num_workers} x {self.micro_batch_size}"
            )
        for key in ("user_tag", "assistant_tag"):
            if not getattr(self, key).strip():
                raise HarnessError(f"{s}: {key}: must be a non-empty tag such as '<|user|>'")
        if self.user_tag == self.assistant_tag:
            raise HarnessError(f"{s}: assistant_tag: must differ from user_tag ({self.user_tag!r})")

    def to_json(self) -> dict:
        """A JSON-ready dict (recorded as ``finetune.json`` next to the checkpoints)."""
        d = asdict(self)
        d["data"] = [asdict(x) for x in self.data]
        d["warmup_ratio"] = self.warmup
        d["grad_accum_steps"] = self.grad_accum_steps
        return json.loads(json.dumps(d))


def _choice(source: str, key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise HarnessError(f"{source}: {key}: unknown value {value!r}{did_you_mean(str(value), choices)}; "
                           f"choose one of {', '.join(choices)}")


def _data(value, source: str) -> tuple[DataSpec, ...]:
    items = value if isinstance(value, list) else [value]
    out = []
    for i, item in enumerate(items):
        where = f"{source}: data[{i}]" if isinstance(value, list) else f"{source}: data"
        if not isinstance(item, dict):
            raise HarnessError(f"{where}: expected a mapping with format and path, got {item!r}")
        values = typed_fields(DataSpec, item, where, section=True)
        for key in ("format", "path"):
            if not values.get(key):
                raise HarnessError(f"{where}.{key}: required string")
        spec = DataSpec(**values)
        if spec.limit is not None and spec.limit < 1:
            raise HarnessError(f"{where}.limit: expected a positive integer, got {spec.limit!r}")
        if spec.odd_turns not in ("drop", "error"):
            raise HarnessError(f"{where}.odd_turns: expected 'drop' or 'error', got {spec.odd_turns!r}")
        from harness.finetune.datasets import BUILDERS

        if spec.format not in BUILDERS:
            raise HarnessError(f"{where}.format: unknown format {spec.format!r}"
                               f"{did_you_mean(spec.format, BUILDERS)}; formats: {', '.join(BUILDERS)}")
        out.append(spec)
    return tuple(out)
