"""Run configuration: a YAML file and command-line flags, validated into one record.

Flags override the file. Unknown keys are errors naming the file and key; values are
converted to the field types by :func:`harness.yaml_io.typed_fields` (``limit: "4"`` is 4,
``no_ray: "no"`` is False, ``max_new_tokens: [1]`` is a one-line error). The config
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
import re
import socket
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from harness.engines import ENGINES
from harness.errors import HarnessError, did_you_mean
from harness.prompts import FORMATS
from harness.records import DecodingParams
from harness.yaml_io import coerce, field_types, read_yaml_mapping, typed_fields

DEVICES = ("auto", "cpu", "cuda")
COMBINES = ("logit-add", "logsoftmax-sum")
_ADDRESS = re.compile(r"(?P<scheme>ray://)?(?P<host>\[[0-9a-fA-F:]+\]|[^\s:/\[\]]+)(?::(?P<port>\d{1,5}))?")


def check_address_syntax(address: str, where: str = "--address") -> tuple[str, int] | None:
    """``(host, port)`` of a Ray address, ``None`` for ``auto``/``local``; bad syntax is an error.

    >>> check_address_syntax("ray://head:10001"), check_address_syntax("10.0.0.2:6379"), check_address_syntax("auto")
    (('head', 10001), ('10.0.0.2', 6379), None)
    """
    if address in ("auto", "local"):
        return None
    m = _ADDRESS.fullmatch(address)
    port = m and (m["port"] or ("10001" if m["scheme"] else None))
    if not m or not port or not 0 < int(port) < 65536:
        raise HarnessError(f"{where}: expected HOST:PORT, ray://HOST[:PORT] or auto, got {address!r}")
    return m["host"].strip("[]"), int(port)


def check_reachable(address: str | None, timeout_s: float = 3.0) -> None:
    """Fail fast (one line) when nothing answers at a Ray ``address`` (instead of Ray's minutes of retries).

    >>> check_reachable("127.0.0.1:1")
    Traceback (most recent call last):
    ...
    harness.errors.HarnessError: --address 127.0.0.1:1: cannot connect (connection refused); is the Ray cluster up? (`ray status` on its head node)
    """
    target = check_address_syntax(address) if address else None
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout_s).close()
    except OSError as exc:
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else (
            f"no answer within {timeout_s:g} s" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc)))
        raise HarnessError(f"--address {address}: cannot connect ({reason}); is the Ray cluster up? "
                           "(`ray status` on its head node)") from None


@dataclass(frozen=True)
class RunConfig:
    """Everything ``harness run`` needs. See ``harness run --help`` for each field."""

    model: str = "gemma-3-270m"
    tasks: tuple[str, ...] = ()
    prompts: str | None = None
    variants: tuple[str, ...] = ("none", "rules")
    limit: int | None = None
    max_new_tokens: int | None = None  # None: each task's max_gen_toks, else 256 (harness.decoding)
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
    do_sample: bool | None = None  # None: the task's generation_kwargs, else greedy
    temperature: float | None = None
    top_p: float | None = None
    seed: int = 0
    run_id: str | None = None
    trace: bool = False
    truncate_prompts: bool = False  # --truncate-prompts: cut over-long prompts from the left (harness.run.context)
    sentinel: float = 0.02  # share of (prompt, variant) pairs re-generated alone (harness.run.sentinel); 0 disables
    engine: str = "auto"  # --engine hf|vllm|auto (harness.engines.choose_engine)
    source: str = "<flags>"

    @classmethod
    def from_sources(cls, path: str | Path | None, flags: dict) -> RunConfig:
        """Merge a YAML config file (if any) with flags (``None`` flags are ignored)."""
        values: dict = {}
        source = "<flags>"
        if path is not None:
            source = str(path)
            raw = {k.replace("-", "_"): v for k, v in read_yaml_mapping(path).items()}
            if isinstance(raw.get("variants"), list):  # a run config's list may hold {name:, max_new_tokens:, ...}
                from harness.experts.variants import variant_string

                raw["variants"] = [variant_string(v, f"{source}: variants[{i}]") if isinstance(v, dict) else v
                                   for i, v in enumerate(raw["variants"])]
            values = typed_fields(cls, raw, source, skip=("source",), unknown="unknown setting")
        types = field_types(cls)
        for k, v in flags.items():  # argparse values are typed already; resume passes a manifest's JSON
            if v is not None and k in types and k != "source":
                values[k] = coerce(v, types[k], f"--{k.replace('_', '-')}")
        cfg = cls(**values, source=source)
        cfg.validate()
        return cfg

    def where(self, name: str) -> str:
        """How an error names a setting: ``FILE: name`` for a config file, ``--name`` for flags."""
        return f"--{name.replace('_', '-')}" if self.source == "<flags>" else f"{self.source}: {name}"

    def validate(self) -> None:
        w = self.where
        if not self.tasks and not self.prompts:
            raise HarnessError(f"{self.source}: give --tasks NAME[,NAME] or --prompts FILE.jsonl")
        if self.limit is not None and self.limit <= 0:
            raise HarnessError(f"{w('limit')}: must be a positive number of prompts per task, got {self.limit}")
        for name in ("max_new_tokens", "batch_size"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise HarnessError(f"{w(name)}: must be positive, got {getattr(self, name)}")
        if self.replicas != "auto" and not (str(self.replicas).isdigit() and int(self.replicas) > 0):
            raise HarnessError(f"{w('replicas')}: a positive number or 'auto', got {self.replicas!r}")
        if not isinstance(self.tp, int) or self.tp < 1:  # --tp (DeepSpeed AutoTP)
            raise HarnessError(f"{w('tp')}: tensor-parallel ranks per replica must be a positive integer, got {self.tp!r}")
        if self.no_ray:  # these only size or join a Ray cluster, which --no-ray does not use
            for name, unset in (("address", None), ("num_cpus", None), ("replicas", "1")):
                if getattr(self, name) != unset:
                    raise HarnessError(f"{w(name)}: {getattr(self, name)!r} needs Ray, but no_ray (--no-ray) "
                                       "generates in this process; drop one of them")
        if self.tp > 1 and self.no_ray:
            raise HarnessError(f"{w('tp')}: --tp {self.tp} runs a gang of Ray actors; drop --no-ray")
        for name in ("threads", "num_cpus"):  # 0 is not "all": leave the flag out for the default
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise HarnessError(f"{w(name)}: must be a positive number (leave it out for the default), "
                                   f"got {getattr(self, name)}")
        for name, choices in (("device", DEVICES), ("combine", COMBINES), ("prompt_format", (None, *FORMATS))):
            if getattr(self, name) not in choices:
                shown = [c for c in choices if c]
                raise HarnessError(f"{w(name)}: {getattr(self, name)!r} is not one of {', '.join(shown)}"
                                   f"{did_you_mean(str(getattr(self, name)), shown)}")
        if self.do_sample and (self.temperature <= 0 or not 0 < self.top_p <= 1):
            raise HarnessError(f"{w('do_sample')}: needs temperature > 0 and top_p in (0, 1], "
                               f"got {self.temperature} and {self.top_p}")
        if self.address is not None:
            check_address_syntax(self.address, w("address"))
        if isinstance(self.sentinel, bool) or not isinstance(self.sentinel, int | float) or not 0 <= self.sentinel <= 1:
            raise HarnessError(f"{w('sentinel')}: a share of pairs between 0 and 1 (0 disables), got {self.sentinel!r}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise HarnessError(f"{w('dtype')}: {self.dtype!r} is not float32, bfloat16 or float16")
        if self.engine not in ENGINES:
            raise HarnessError(f"{w('engine')}: {self.engine!r} is not hf, vllm or auto")
        for item in self.data:
            if "=" not in item:
                raise HarnessError(f"{w('data')}: expected TASK=PATH, got {item!r}")

    def explicit_decoding(self) -> dict:
        """Decoding fields this config sets itself (they override a task's ``generation_kwargs``)."""
        names = ("max_new_tokens", "do_sample", "temperature", "top_p")
        return {k: getattr(self, k) for k in names if getattr(self, k) is not None} | {"seed": self.seed}

    @property
    def decoding(self) -> DecodingParams:
        """The run-level decoding: explicit settings over the defaults (no task, no variant)."""
        from harness.decoding import resolve_decoding

        return resolve_decoding({}, self.explicit_decoding(), {})

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
        if self.truncate_prompts:  # only when set, so run ids of earlier configs stay the same
            payload["truncate_prompts"] = True
        if engine != "hf":
            payload["engine"] = engine
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
