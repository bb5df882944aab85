"""Export a run's samples: AlpacaEval model outputs, JSON lines or CSV.

* ``alpaca-eval``: a JSON list of ``{"instruction", "output", "generator", "dataset"}``,
  one variant (what ``alpaca_eval --model_outputs`` reads); rows whose generation
  failed (``status == "error"``) are left out. ``dataset`` comes from the
  source row's ``dataset`` field when present, else the task name.
* ``jsonl``: every samples column, one JSON object per line.
* ``csv``: every scalar samples column (list columns such as token ids are left out).

Rows are ordered by task, then sample id (numeric ids numerically), then variant.

Example:
    >>> import tempfile
    >>> from harness.store import Store
    >>> from harness.results.api import Results
    >>> root = tempfile.mkdtemp()
    >>> _ = Store(root).write_samples("r", 0, [{"run_id": "r", "key": "k", "task": "alpaca", "sample_id": "0",
    ...     "variant": "rules", "model": "m", "instruction": "Hi?", "output": "Hello."}])
    >>> export_text(Results(root), "r", "alpaca-eval")
    '[\\n  {\\n    "instruction": "Hi?",\\n    "output": "Hello.",\\n    "generator": "m+rules",\\n    "dataset": "alpaca"\\n  }\\n]\\n'
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from harness.errors import HarnessError
from harness.results.api import Results
from harness.results.compare import sample_sort_key

FORMATS = ("alpaca-eval", "jsonl", "csv")


def _ordered(samples: pa.Table) -> pa.Table:
    keys = list(zip(samples.column("task").to_pylist(), samples.column("sample_id").to_pylist(),
                    samples.column("variant").to_pylist()))
    order = sorted(range(len(keys)), key=lambda i: (sample_sort_key(keys[i][:2]), keys[i][2]))
    return samples.take(pa.array(order, pa.int64()))


def _dataset(doc_json: str | None, task: str) -> str:
    try:
        doc = json.loads(doc_json) if doc_json else {}
    except ValueError:
        doc = {}
    value = doc.get("dataset") if isinstance(doc, dict) else None
    return str(value) if value else task


def alpaca_eval_records(samples: pa.Table, generator: str | None = None) -> list[dict]:
    """AlpacaEval ``model_outputs`` records of one variant's samples.

    Args:
        samples: rows of a single variant.
        generator: the name AlpacaEval shows; default ``<model>+<variant>``.
    """
    variants = sorted(set(samples.column("variant").to_pylist()))
    if len(variants) > 1:
        raise HarnessError(f"export --format alpaca-eval: the run has variants {', '.join(variants)}; "
                           f"pick one with --variant")
    return [{"instruction": r["instruction"] or "", "output": r["output"] or "",
             "generator": generator or f"{r['model']}+{r['variant']}", "dataset": _dataset(r["doc_json"], r["task"])}
            for r in _ordered(samples).to_pylist()]


def export_text(results: Results, run: str, fmt: str, variant: str | None = None, generator: str | None = None) -> str:
    """The export of ``run`` (optionally one variant) in format ``fmt`` as text.

    Raises:
        HarnessError: unknown run, variant or format; alpaca-eval with several variants.
    """
    if fmt not in FORMATS:
        raise HarnessError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    samples = results.samples(run=run, variant=variant)
    if samples.num_rows == 0:
        raise HarnessError(f"export: run {run!r} has no sample rows yet")
    if fmt == "alpaca-eval":
        ok = samples.filter(pc.fill_null(pc.not_equal(samples.column("status"), "error"), True))
        return json.dumps(alpaca_eval_records(ok, generator), indent=2, ensure_ascii=False) + "\n"
    samples = _ordered(samples)
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in samples.to_pylist())
    scalar = [f.name for f in samples.schema if not pa.types.is_list(f.type)]
    buf = io.BytesIO()
    pcsv.write_csv(samples.select(scalar), buf)
    return buf.getvalue().decode()


def write_export(text: str, out: str | Path | None) -> Path | None:
    """Write ``text`` to ``out`` (parents created); ``None`` means the caller prints it."""
    if out is None or str(out) == "-":
        return None
    path = Path(out)
    if path.is_dir():
        raise HarnessError(f"--out {out}: is a directory; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def count_errors(samples: pa.Table) -> int:
    """Rows with ``status == "error"`` (left out of alpaca-eval exports)."""
    return int(pc.sum(pc.fill_null(pc.equal(samples.column("status"), "error"), False)).as_py() or 0)
