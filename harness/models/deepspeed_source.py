"""DeepSpeed ZeRO checkpoints as model sources (``deepspeed:PATH[@TAG][?base=DIR]``).

A ZeRO checkpoint dir (``latest``, ``<tag>/zero_pp_rank_*_model_states.pt`` and
``*_optim_states.pt``) is consolidated once with ``deepspeed.utils.zero_to_fp32`` (lazy
mode: one safetensors shard in memory at a time) into a plain HF dir
``$HARNESS_HOME/models/deepspeed-<sha16>``, keyed by a content hash of the tag's files
plus the config/tokenizer files, built atomically under a file lock (``pull.py``'s
helpers) and reused by later runs. ``config.json`` and the tokenizer come from ``base``,
else from the checkpoint dir itself, else from its parent (the training output dir).
When Ray is initialised the conversion runs in a ``ray.remote(num_cpus=1)`` task on the
driver's node, so the driver never holds the weights; otherwise in this process.

ZeRO files are pickles (``torch.load(weights_only=False)``): only pass paths you trust.

Example:
    >>> parse_spec("deepspeed:/ckpt/run1@global_step3?base=/models/base")
    ZeroSpec(path=PosixPath('/ckpt/run1'), tag='global_step3', base=PosixPath('/models/base'))
    >>> sorted(["global_step10", "global_step2"], key=natural_key)
    ['global_step2', 'global_step10']
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.models.fingerprint import TOKENIZER_FILES, cached_sha256, sha256_file, weight_files
from harness.models.home import models_dir
from harness.models.local_dir import ResolvedModel, describe_dir
from harness.models.pull import build_atomically, is_complete, read_meta

logger = logging.getLogger(__name__)

PREFIX = "deepspeed:"
ALL = "all"
FORMAT = "harness-deepspeed-v1"  # bump when the conversion output changes
MAX_SHARD_BYTES = 2**30  # peak memory ~ 2 shards (tensors + serialised bytes)
_OPTIM = re.compile(r"^(?:bf16_)?zero_pp_rank_(\d+)_mp_rank_(\d+)_optim_states\.pt$")
_MODEL = re.compile(r"^(?:zero_pp_rank_(\d+)_)?mp_rank_(\d+)_model_states\.pt$")


@dataclass(frozen=True)
class ZeroSpec:
    """A parsed ``deepspeed:`` spec: checkpoint dir, tag (``None`` = ``latest``, ``all``), base dir."""

    path: Path
    tag: str | None = None
    base: Path | None = None


def natural_key(text: str) -> list:
    """Sort key putting ``global_step2`` before ``global_step10``.

    Example:
        >>> natural_key("global_step10")
        ['global_step', 10, '']
    """
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def parse_spec(spec: str) -> ZeroSpec:
    """Split ``[deepspeed:]PATH[@TAG][?base=DIR]``; a ``@`` followed by a ``/`` is part of PATH."""
    rest = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    base = None
    if "?" in rest:
        rest, _, query = rest.rpartition("?")
        key, _, value = query.partition("=")
        if key != "base" or not value:
            raise HarnessError(f"{spec}: unknown option {query!r}; the only option is ?base=HF_DIR")
        base = Path(value).expanduser().resolve()
    tag = None
    head, at, tail = rest.rpartition("@")
    if at and head and tail and "/" not in tail:
        rest, tag = head, tail
    if not rest:
        raise HarnessError(f"{spec}: expected deepspeed:PATH[@TAG][?base=HF_DIR]")
    return ZeroSpec(Path(rest).expanduser().resolve(), tag, base)


def _has_states(d: Path) -> bool:
    return d.is_dir() and any(d.glob("*_model_states.pt"))


def looks_like_zero_checkpoint(path: Path) -> bool:
    """True for a ZeRO dir (``latest``, ``global_step*``, ``zero_pp_rank_*``) that is not also a full HF dir."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / "config.json").is_file() and [p for p in weight_files(path) if not p.name.endswith(".json")]:
        return False  # e.g. a Trainer checkpoint saved with gathered 16-bit weights: use it as HF
    if (path / "latest").is_file() or _has_states(path) or any(path.glob("zero_pp_rank_*")):
        return True
    return any(p.name.startswith("global_step") and p.is_dir() for p in path.iterdir())


def list_tags(ckpt: Path) -> list[str]:
    """Tags (subdirs holding ``*_model_states.pt``) of a checkpoint dir, sorted naturally."""
    return sorted((p.name for p in ckpt.iterdir() if _has_states(p)), key=natural_key)


def _locate(zs: ZeroSpec) -> tuple[Path, str]:
    """Return ``(checkpoint dir, tag)``; a tag dir passed as PATH is split into both."""
    ckpt = zs.path
    if not ckpt.exists():
        raise HarnessError(f"{ckpt}: no such file or directory")
    if not ckpt.is_dir():
        raise HarnessError(f"{ckpt}: not a DeepSpeed checkpoint directory")
    if zs.tag is None and _has_states(ckpt) and not (ckpt / "latest").is_file():
        return ckpt.parent, ckpt.name
    tags = list_tags(ckpt)
    tag = zs.tag
    if tag is None:
        latest = ckpt / "latest"
        if not latest.is_file():
            raise HarnessError(f"{ckpt}: no 'latest' file; name a tag: {PREFIX}{ckpt}@TAG "
                               f"(tags: {', '.join(tags) or 'none'})")
        tag = latest.read_text("utf-8").strip()
    if tag not in tags:
        raise HarnessError(f"{ckpt}: no checkpoint tag {tag!r} (tags: {', '.join(tags) or 'none'}; or @all)")
    return ckpt, tag


def check_tag_files(tag_dir: Path) -> list[Path]:
    """The tag's ``*_model_states.pt`` + ``*_optim_states.pt``, checked without unpickling.

    Raises:
        HarnessError: no optimizer states, a missing rank, model parallelism, or a file
            that is not a complete torch zip archive (truncated copy).
    """
    files = sorted((p for p in tag_dir.iterdir() if p.is_file() and p.name.endswith("_states.pt")),
                   key=lambda p: natural_key(p.name))
    optim = {int(m[1]): p for p in files if (m := _OPTIM.match(p.name))}
    models = {p: _MODEL.match(p.name) for p in files if _MODEL.match(p.name)}
    if not models:
        raise HarnessError(f"{tag_dir}: no *_model_states.pt files")
    if not optim:
        raise HarnessError(f"{tag_dir}: no *_optim_states.pt files (the fp32 weights are rebuilt from them)")
    if any(m[2] != "00" for m in models.values()) or any(_OPTIM.match(p.name)[2] != "00" for p in optim.values()):
        raise HarnessError(f"{tag_dir}: model/pipeline-parallel checkpoints (mp_rank > 00) are not supported")
    zero3_ranks = {int(m[1]) for m in models.values() if m[1] is not None}
    for r in range(max(optim) + 1):
        if r not in optim:
            raise HarnessError(f"{tag_dir}: missing shard of rank {r} (zero_pp_rank_{r}_mp_rank_00_optim_states.pt)")
    if zero3_ranks and zero3_ranks != set(optim):
        missing = sorted(set(optim) ^ zero3_ranks)[0]
        raise HarnessError(f"{tag_dir}: missing shard of rank {missing} (model and optimizer states differ)")
    for p in files:
        if not zipfile.is_zipfile(p):
            raise HarnessError(f"{p}: truncated or not a torch checkpoint file")
    return files


def _find_base(ckpt: Path, base: Path | None) -> tuple[Path, Path]:
    """``(config dir, tokenizer dir)`` from ``base`` or the checkpoint dir or its parent."""
    if base is not None:
        if not (base / "config.json").is_file():
            raise HarnessError(f"{base}: base has no config.json")
        candidates = [base]
    else:
        candidates = [ckpt, ckpt.parent]
    cfg = next((d for d in candidates if (d / "config.json").is_file()), None)
    if cfg is None:
        raise HarnessError(f"{ckpt}: no config.json here or in its parent; pass {PREFIX}{ckpt}?base=HF_DIR")
    tok = next((d for d in candidates if any((d / n).is_file() for n in TOKENIZER_FILES)), None)
    if tok is None:
        raise HarnessError(f"{ckpt}: no tokenizer files here or in its parent; pass {PREFIX}{ckpt}?base=HF_DIR")
    return cfg, tok


def _hf_files(cfg_dir: Path, tok_dir: Path) -> list[Path]:
    files = [cfg_dir / n for n in ("config.json", "generation_config.json") if (cfg_dir / n).is_file()]
    return files + [tok_dir / n for n in TOKENIZER_FILES if (tok_dir / n).is_file()]


def content_hash(ckpt_files: list[Path], hf_files: list[Path], home: Path) -> str:
    """sha256 over the names and contents of the tag's files and the config/tokenizer files."""
    cached = cached_sha256(ckpt_files, home)
    h = hashlib.sha256(f"{FORMAT}\n".encode())
    for p in ckpt_files:
        h.update(f"ckpt/{p.name}\0{cached[p]}\n".encode())
    for p in hf_files:
        h.update(f"hf/{p.name}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def _expected_tensors(cfg_dir: Path) -> tuple[dict[str, tuple], dict[str, str]]:
    """Names/shapes the config's model expects, and its tied aliases (alias -> canonical)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(cfg_dir)))
    shapes, aliases, first = {}, {}, {}
    for name, t in model.state_dict(keep_vars=True).items():
        shapes[name] = tuple(t.shape)
        if id(t) in first:
            aliases[name] = first[id(t)]
        else:
            first[id(t)] = name
    return shapes, aliases


def _materialise(t):
    """A lazy ``GatheredTensor`` gathers into fresh memory; real tensors may alias, so copy those."""
    import torch

    out = t.contiguous().float()
    return out.clone() if isinstance(t, torch.Tensor) else out


def _write_safetensors(state_dict: dict, cfg_dir: Path, out: Path, where: str) -> int:
    """Materialise lazy tensors one shard at a time into ``out``; returns the tensor count."""
    from safetensors.torch import save_file

    shapes, aliases = _expected_tensors(cfg_dir)
    plan: dict[str, object] = {}
    for name in shapes:
        if name in aliases:
            continue
        src = next((n for n in [name] + [a for a, c in aliases.items() if c == name] if n in state_dict), None)
        if src is None:
            raise HarnessError(f"{where}: has no tensor {name!r} that config.json's model needs; wrong ?base=?")
        if tuple(state_dict[src].shape) != shapes[name]:
            raise HarnessError(f"{where}: {name} has shape {tuple(state_dict[src].shape)}, config.json wants "
                               f"{shapes[name]}; wrong ?base=?")
        plan[name] = state_dict[src]
    extra = sorted(set(state_dict) - set(shapes))
    if extra:
        logger.warning("%s: ignoring %d tensors the model does not use (e.g. %s)", where, len(extra), extra[0])
    shards: list[list[str]] = [[]]
    size = 0
    for name, t in plan.items():
        nbytes = 4 * math.prod(t.shape)
        if shards[-1] and size + nbytes > MAX_SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    names = ["model.safetensors"] if len(shards) == 1 else [
        f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    for fname, shard in zip(names, shards):
        tensors = {n: _materialise(plan[n]) for n in shard}  # one shard in memory at a time
        save_file(tensors, str(out / fname), metadata={"format": "pt"})
        weight_map.update({n: fname for n in shard})
        del tensors
    if len(shards) > 1:
        index = {"metadata": {"total_size": sum(4 * math.prod(plan[n].shape) for n in plan)},
                 "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n", "utf-8")
    return len(plan)


def convert_checkpoint(ckpt: str, tag: str, cfg_dir: str, tok_dir: str, out: str) -> dict:
    """Consolidate ``ckpt/tag`` into HF files in ``out`` (safetensors + config + tokenizer).

    Runs in a Ray task or in-process; DeepSpeed's prints and progress bars are captured.

    Example:
        >>> convert_checkpoint("/ckpt/run1", "global_step3", "/ckpt", "/ckpt", "/tmp/out")   # doctest: +SKIP
        {'tensors': 20, 'seconds': 1.2}
    """
    import time

    t0 = time.perf_counter()
    where = f"{ckpt}/{tag}"
    try:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    except ImportError as exc:
        raise HarnessError(f"{where}: deepspeed is not installed ({exc.name}); "
                           "pip install 'harness[deepspeed]'") from None
    out_dir = Path(out)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            state_dict = get_fp32_state_dict_from_zero_checkpoint(ckpt, tag=tag, lazy_mode=True)
            n = _write_safetensors(state_dict, Path(cfg_dir), out_dir, where)
    except HarnessError:
        raise
    except Exception as exc:  # pickles and DeepSpeed raise many types; keep one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HarnessError(f"{where}: cannot consolidate the ZeRO checkpoint: {type(exc).__name__}: {first}") from None
    logger.debug("%s", captured.getvalue())
    for p in _hf_files(Path(cfg_dir), Path(tok_dir)):
        shutil.copyfile(p, out_dir / p.name)
    return {"tensors": n, "seconds": round(time.perf_counter() - t0, 3)}


def _convert(ckpt: Path, tag: str, cfg_dir: Path, tok_dir: Path, out: Path) -> dict:
    """Run :func:`convert_checkpoint` in a Ray task on this node when Ray is up, else here."""
    args = (str(ckpt), tag, str(cfg_dir), str(tok_dir), str(out))
    try:
        import ray
    except ImportError:
        return convert_checkpoint(*args) | {"converted_in": "process"}
    if not ray.is_initialized() or ray.util.client.ray.is_connected():
        return convert_checkpoint(*args) | {"converted_in": "process"}  # a Ray Client's disk is not the cluster's
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    task = ray.remote(num_cpus=1, max_retries=0)(convert_checkpoint).options(scheduling_strategy=here)
    try:
        return ray.get(task.remote(*args)) | {"converted_in": "ray-task"}
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, HarnessError):
            raise HarnessError(str(cause)) from None
        raise HarnessError(f"{ckpt}/{tag}: conversion task failed: {type(cause or exc).__name__}") from None


def resolve_deepspeed(spec: str, home: Path, pull_missing: bool = True) -> ResolvedModel:
    """Resolve ``deepspeed:PATH[@TAG][?base=DIR]`` to a converted HF dir (name ``PATH.name@TAG``).

    Example:
        >>> resolve_deepspeed("deepspeed:/ckpt/run1@global_step3", harness_home()).name   # doctest: +SKIP
        'run1@global_step3'
    """
    zs = parse_spec(spec)
    if zs.tag == ALL:
        raise HarnessError(f"{spec}: @all sweeps every tag and is only accepted by `harness run`")
    ckpt, tag = _locate(zs)
    files = check_tag_files(ckpt / tag)
    cfg_dir, tok_dir = _find_base(ckpt, zs.base)
    sha = content_hash(files, _hf_files(cfg_dir, tok_dir), home)
    final = models_dir(home) / f"deepspeed-{sha[:16]}"
    name = f"{ckpt.name}@{tag}"
    if not is_complete(final):
        if not pull_missing:
            raise HarnessError(f"{ckpt}@{tag}: not converted yet; run: harness models pull {PREFIX}{ckpt}@{tag}")

        def build(tmp: Path) -> dict:
            stats = _convert(ckpt, tag, cfg_dir, tok_dir, tmp)
            logger.info("%s: consolidated %d tensors in %.1f s", name, stats["tensors"], stats["seconds"])
            return {"name": name, "source": f"{PREFIX}{ckpt}@{tag}", "sha256": sha, "tag": tag,
                    "config_dir": str(cfg_dir), "tokenizer_dir": str(tok_dir), "convert_seconds": stats["seconds"],
                    "converted_in": stats["converted_in"]}

        build_atomically(final, home, final.name, build)
    else:
        logger.info("%s: reusing %s (converted from %s)", name, final, read_meta(final).get("source"))
    return describe_dir(final, home, "deepspeed", name=name)


def sweep_specs(spec: str) -> dict[str, str] | None:
    """``{tag: spec}`` for ``deepspeed:PATH@all`` (or ``PATH@all`` of a ZeRO dir), naturally sorted; else ``None``.

    Example:
        >>> sweep_specs("tiny-random-llama") is None
        True
    """
    spec = str(spec).strip()
    if not spec.startswith(PREFIX) and "@all" not in spec:
        return None
    try:
        zs = parse_spec(spec)
    except HarnessError:
        return None
    if zs.tag != ALL or (not spec.startswith(PREFIX) and not looks_like_zero_checkpoint(zs.path)):
        return None
    if not zs.path.is_dir():
        raise HarnessError(f"{zs.path}: no such file or directory")
    tags = list_tags(zs.path)
    if not tags:
        raise HarnessError(f"{zs.path}: no checkpoint tags (dirs with *_model_states.pt) to sweep")
    query = f"?base={zs.base}" if zs.base else ""
    return {t: f"{PREFIX}{zs.path}@{t}{query}" for t in tags}
