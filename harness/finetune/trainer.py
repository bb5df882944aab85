"""Driver side of ``harness finetune``: data, output directory, Ray Train ``TorchTrainer``.

:func:`prepare` resolves the model, builds and encodes the data (counts recorded);
:func:`run_finetune` also writes the self-describing output directory and launches
``num_workers`` data-parallel DeepSpeed workers. The output directory then holds::

    config.json, generation_config.json, tokenizer files   # saved once, before training
    finetune.json                                          # config, data counts, tags
    train_log.jsonl                                        # one line per optimizer update
    latest, zero_to_fp32.py, epoch1/, epoch2/, ...         # DeepSpeed ZeRO checkpoints

Example:
    >>> cfg = FinetuneConfig.load("configs/finetune/tiny-response.yaml")   # doctest: +SKIP
    >>> res = run_finetune(cfg)                                           # doctest: +SKIP
    >>> res.tags                                                          # doctest: +SKIP
    ('epoch1', 'epoch2')
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from harness.errors import HarnessError
from harness.finetune.config import FinetuneConfig
from harness.finetune.datasets import build_all
from harness.finetune.encoding import Encoded, encode_examples
from harness.finetune.export import list_tags

log = logging.getLogger(__name__)

_TAG_DIR = re.compile(r"^(epoch|step)\d+$")
_OUR_FILES = ("latest", "zero_to_fp32.py", "train_log.jsonl", "finetune.json")


@dataclass
class Prepared:
    """Everything the workers need, built once on the driver."""

    cfg: FinetuneConfig
    model_path: Path
    model_name: str
    fingerprint: str
    tokenizer: object
    encoded: list[Encoded]
    data_stats: list[dict]
    encode_stats: dict
    pad_id: int


@dataclass(frozen=True)
class FinetuneResult:
    """What a finished run produced.

    Attributes:
        output_dir: the checkpoint directory (``deepspeed:OUTPUT@TAG`` evaluates it).
        tags: checkpoint tags written, in order (``epoch1``, ... or a final ``stepN``).
        steps: optimizer updates done.
        losses: the logged loss per update.
        examples: training examples after encoding.
        wall_seconds: time of the whole run.
    """

    output_dir: Path
    tags: tuple[str, ...]
    steps: int
    losses: tuple[float, ...] = field(default=())
    examples: int = 0
    wall_seconds: float = 0.0


def prepare(cfg: FinetuneConfig) -> Prepared:
    """Resolve the model, load its tokenizer, build and encode the training data."""
    from transformers import AutoTokenizer

    from harness.models import resolve

    model = resolve(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(str(model.path))
    examples, data_stats = build_all(cfg.data)
    encoded, stats = encode_examples(examples, tokenizer, objective=cfg.objective, max_seq_length=cfg.max_seq_length,
                                     user_tag=cfg.user_tag, assistant_tag=cfg.assistant_tag,
                                     text_separator=cfg.text_separator)
    if not encoded:
        raise HarnessError(f"{cfg.source}: data: no training examples left ({stats.examples} read, "
                           f"{stats.dropped_all_masked} with no trained token after max_seq_length {cfg.max_seq_length})")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stats_d = asdict(stats)
    stats_d["dropped_ids"] = stats_d["dropped_ids"][:20]
    return Prepared(cfg, model.path, model.name, model.fingerprint, tokenizer, encoded, data_stats, stats_d, pad_id)


def prepare_output_dir(prep: Prepared) -> Path:
    """Create ``output_dir`` and save the HF config + tokenizer + ``finetune.json`` into it.

    Refuses a directory that already holds a checkpoint unless ``overwrite: true``; with it,
    only this module's own artefacts (tag dirs, ``latest``, logs) are removed.
    """
    from transformers import AutoConfig, GenerationConfig

    cfg = prep.cfg
    out = Path(cfg.output_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise HarnessError(f"{cfg.source}: output_dir: {out} exists and is not a directory")
    ours = [p for p in out.iterdir() if p.name in _OUR_FILES or (p.is_dir() and _TAG_DIR.match(p.name))] if out.is_dir() else []
    if ours and not cfg.overwrite:
        raise HarnessError(f"{cfg.source}: output_dir: {out} already holds a finetuning run; "
                           "set overwrite: true or choose another directory")
    for p in ours:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    AutoConfig.from_pretrained(str(prep.model_path)).save_pretrained(out)
    try:
        GenerationConfig.from_pretrained(str(prep.model_path)).save_pretrained(out)
    except OSError:
        log.info("%s: no generation_config.json to copy", prep.model_path)
    prep.tokenizer.save_pretrained(out)
    write_manifest(out, prep, status="training")
    return out


def write_manifest(out: Path, prep: Prepared, **extra) -> None:
    """Write ``finetune.json``: config, base model, data counts, template tags, outcome."""
    doc = {
        "config": prep.cfg.to_json(),
        "base_model": {"name": prep.model_name, "path": str(prep.model_path), "fingerprint": prep.fingerprint},
        "template": {"format": "tulu", "user_tag": prep.cfg.user_tag, "assistant_tag": prep.cfg.assistant_tag},
        "data": prep.data_stats,
        "encoding": prep.encode_stats,
        **extra,
    }
    tmp = out / "finetune.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2) + "\n", "utf-8")
    tmp.replace(out / "finetune.json")


def read_losses(out: Path) -> list[float]:
    """The ``loss`` column of ``train_log.jsonl`` (empty if absent)."""
    path = Path(out) / "train_log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["loss"] for line in path.read_text("utf-8").splitlines() if line.strip()]


def _check_resources(cfg: FinetuneConfig) -> None:
    import ray

    totals = ray.cluster_resources()
    need_cpu = cfg.num_workers * cfg.cpus_per_worker
    if totals.get("CPU", 0.0) + 1e-9 < need_cpu:
        raise HarnessError(f"{cfg.source}: num_workers x cpus_per_worker = {need_cpu:g} CPUs, but the Ray cluster "
                           f"has {totals.get('CPU', 0.0):g}; lower num_workers or cpus_per_worker")
    if cfg.use_gpu and totals.get("GPU", 0.0) < cfg.num_workers:
        raise HarnessError(f"{cfg.source}: use_gpu with num_workers = {cfg.num_workers}, but the Ray cluster has "
                           f"{totals.get('GPU', 0.0):g} GPUs")


def _worker_harness_error(exc: BaseException) -> HarnessError | None:
    """Find a HarnessError raised inside a worker (Ray wraps it), to surface it as one line."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, HarnessError):
            return e
        todo += [e.__cause__, e.__context__, *getattr(e, "worker_failures", {}).values()]
        todo.append(getattr(e, "cause", None) if isinstance(getattr(e, "cause", None), BaseException) else None)
    return None


def run_finetune(cfg: FinetuneConfig, prep: Prepared | None = None) -> FinetuneResult:
    """Train ``cfg`` with Ray Train + DeepSpeed ZeRO and return what was written.

    Joins ``cfg.address`` or an already-initialised Ray; otherwise starts (and stops) a
    private local cluster of ``cfg.num_cpus`` CPUs.
    """
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from harness.distributed.cluster import connect
    from harness.finetune.train_loop import train_loop_per_worker

    start = time.monotonic()
    prep = prep or prepare(cfg)
    out = prepare_output_dir(prep)
    started = connect(cfg.address, cfg.num_cpus)
    try:
        _check_resources(cfg)
        worker_cfg = replace(cfg, output_dir=str(out))
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config={"cfg": worker_cfg, "model_path": str(prep.model_path), "data": ray.put(prep.encoded),
                               "pad_id": prep.pad_id},
            torch_config=TorchConfig(backend="nccl" if cfg.use_gpu else "gloo"),
            scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                         resources_per_worker={"CPU": cfg.cpus_per_worker}),
            run_config=RunConfig(name="finetune", storage_path=str(out / ".ray_train"),
                                 failure_config=FailureConfig(max_failures=0, controller_failure_limit=0)),
        )
        try:
            trainer.fit()
        except Exception as exc:  # Ray wraps worker errors; surface our own as one line
            write_manifest(out, prep, status="failed", error=str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            inner = _worker_harness_error(exc)
            if inner is not None:
                raise inner from None
            if type(getattr(exc, "controller_failure", None)).__name__ == "WorkerGroupStartupTimeoutError":
                raise HarnessError(f"{cfg.source}: Ray Train could not start {cfg.num_workers} workers with "
                                   f"{cfg.cpus_per_worker:g} CPU{' + 1 GPU' if cfg.use_gpu else ''} each "
                                   "in time: the cluster's resources are busy") from None
            raise
    finally:
        if started:
            ray.shutdown()
    shutil.rmtree(out / ".ray_train", ignore_errors=True)
    tags = tuple(list_tags(out))
    losses = tuple(read_losses(out))
    result = FinetuneResult(out, tags, len(losses), losses, len(prep.encoded), round(time.monotonic() - start, 2))
    write_manifest(out, prep, status="done", tags=list(tags), steps=result.steps, wall_seconds=result.wall_seconds)
    return result
