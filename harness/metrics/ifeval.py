"""IFEval scoring through lm-eval's own checkers, plus the same numbers on non-echo outputs.

Per-sample scoring calls ``lm_eval.tasks.ifeval.utils.process_results`` (strict and
loose checks over ``instructions_registry``), and :func:`aggregate_ifeval` reproduces
lm-eval's aggregation exactly: prompt-level metrics with ``lm_eval.api.metrics.mean``,
instruction-level metrics with ``utils.agg_inst_level_acc`` (flatten, then mean), so
every instruction weighs the same.

Note:
    Base models often *echo* the prompt, and an echoed IFEval prompt satisfies some
    instructions by itself (``combination:repeat_prompt``, highlighted sections copied
    from the prompt, ...); docs/measurements.md measured that 6 of 9 prompt-level passes
    of a base model were echoes. :func:`aggregate_ifeval` therefore also reports the
    four numbers restricted to non-echo outputs (``non_echo=True``), and IFEval should
    always be shown next to the echo rate (the run's ``echo_rate`` row).

Note:
    lm-eval's ``instructions_util`` calls ``nltk.download("punkt_tab")`` when imported
    unless the data is found. :func:`lm_eval_ifeval` first puts the package's offline
    ``harness/data/nltk_data`` (a small hand-made English ``punkt_tab``) at the front of
    ``nltk.data.path`` and in ``NLTK_DATA``, so nothing is ever downloaded. Sentence
    splitting can differ slightly from the official punkt model, which only affects the
    ``length_constraints:number_sentences`` instruction.

Example:
    >>> doc = {"key": 1, "prompt": "Answer in lowercase.", "instruction_id_list":
    ...        ["change_case:english_lowercase"], "kwargs": [{}]}
    >>> rows = score_ifeval([doc], ["all lowercase here."])
    >>> rows[0]["prompt_level_strict_acc"], aggregate_ifeval(rows)["inst_level_loose_acc"]
    (True, 1.0)
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from types import ModuleType

from harness.metrics.names import IFEVAL_MEASURES, NON_ECHO_SUFFIX
from harness.metrics.shape import echo

NLTK_DATA = Path(__file__).resolve().parent.parent / "data" / "nltk_data"
METRICS = IFEVAL_MEASURES  # lm-eval's names; harness/metrics/names.py is the registry
DOC_FIELDS = ("key", "prompt", "instruction_id_list", "kwargs")


def lm_eval_ifeval() -> ModuleType:
    """Import ``lm_eval.tasks.ifeval.utils`` with the offline punkt data first on the NLTK path.

    Safe to call repeatedly; the path entry is added once. Never downloads.
    """
    import nltk

    path = str(NLTK_DATA)
    if path not in nltk.data.path:
        nltk.data.path.insert(0, path)
    if path not in os.environ.get("NLTK_DATA", "").split(os.pathsep):
        # Child processes (Ray workers) that import nltk afresh find the data too.
        os.environ["NLTK_DATA"] = os.pathsep.join(p for p in (path, os.environ.get("NLTK_DATA")) if p)
    return importlib.import_module("lm_eval.tasks.ifeval.utils")


def _check_doc(i: int, doc: dict) -> None:
    missing = [f for f in DOC_FIELDS if f not in doc]
    if missing:
        raise ValueError(f"score_ifeval: docs[{i}] lacks {missing}; IFEval docs need {list(DOC_FIELDS)}")
    if len(doc["kwargs"]) != len(doc["instruction_id_list"]):
        raise ValueError(
            f"score_ifeval: docs[{i}] (key {doc['key']}) has {len(doc['instruction_id_list'])} instructions "
            f"but {len(doc['kwargs'])} kwargs dicts"
        )


def score_ifeval(docs: list[dict], outputs: list[str]) -> list[dict]:
    """Per-sample IFEval results, exactly as lm-eval's ``process_results`` computes them.

    Args:
        docs: IFEval rows (``key``, ``prompt``, ``instruction_id_list``, ``kwargs``), as in
            Google's ``input_data.jsonl``.
        outputs: the model's response to each doc (same order, strings).

    Returns:
        One dict per doc: ``key``, ``instruction_id_list``, the four lm-eval fields
        (``prompt_level_*`` are bools, ``inst_level_*`` lists of bools, one per
        instruction) and ``echo`` (:func:`harness.metrics.shape.echo` of prompt and output).

    Raises:
        ValueError: lengths differ, a doc lacks a field, or an output is not a string.
        KeyError: an unknown instruction id (lm-eval's registry raises it).
    """
    if len(docs) != len(outputs):
        raise ValueError(f"score_ifeval: {len(docs)} docs but {len(outputs)} outputs")
    utils = lm_eval_ifeval()
    rows = []
    for i, (doc, out) in enumerate(zip(docs, outputs)):
        _check_doc(i, doc)
        if not isinstance(out, str):
            raise ValueError(f"score_ifeval: outputs[{i}] is {type(out).__name__}, not str; drop failed samples first")
        res = utils.process_results(doc, [out])
        rows.append(
            {
                "key": doc["key"],
                "instruction_id_list": list(doc["instruction_id_list"]),
                **{m: res[m] for m in METRICS},
                "echo": echo(doc["prompt"], out),
            }
        )
    return rows


def aggregate_ifeval(per_sample: list[dict], non_echo: bool = False) -> dict[str, float | None]:
    """The four IFEval numbers, aggregated exactly as lm-eval does.

    Args:
        per_sample: rows from :func:`score_ifeval`.
        non_echo: keep only rows whose ``echo`` flag is False (see the module note).

    Returns:
        ``{prompt_level_strict_acc, inst_level_strict_acc, prompt_level_loose_acc,
        inst_level_loose_acc}``; each is None when there is nothing to average (lm-eval
        would divide by zero). Add ``n`` yourself from the input if needed.

    Example:
        >>> aggregate_ifeval([])["prompt_level_strict_acc"] is None
        True
    """
    from lm_eval.api.metrics import mean

    utils = lm_eval_ifeval()
    rows = [r for r in per_sample if not (non_echo and r["echo"])]
    out: dict[str, float | None] = {}
    for m in METRICS:
        items = [r[m] for r in rows]
        if m.startswith("prompt_level"):
            out[m] = mean(items) if items else None
        else:
            out[m] = utils.agg_inst_level_acc(items) if sum(map(len, items)) else None
    return out


def ifeval_metric_rows(per_sample: list[dict], *, run_id: str, task: str, model: str, variant: str,
                       sample_ids: list[str] | None = None, lm_eval_scored: bool = False) -> list[dict]:
    """``metrics`` rows: the four numbers, the four on non-echo outputs, per-sample rows.

    The echo share itself is the run's ``echo_rate`` row (harness/metrics/summary.py) of
    the same task and variant, not a second name.

    Names follow harness/metrics/names.py: lm-eval's names, ``_non_echo`` appended for
    the restricted ones, ``filter`` NULL (the harness scores the raw output). ``n`` counts
    prompts (prompt level) or instructions (instruction level). Intervals are Wilson
    intervals over that unit (instruction level ignores that instructions of one prompt
    are correlated, so it is somewhat too narrow).

    Args:
        sample_ids: one per ``per_sample`` row; adds per-sample ``prompt_level_*`` rows
            (``sample_id`` set, ``n`` = 1) and ``inst_level_*`` rows (value = the prompt's
            share of instructions followed, ``n`` = its instructions).
        lm_eval_scored: lm-eval already wrote the four measures (and its per-sample
            rows) for this task; only the non-echo numbers are added, so each measure
            is stored once.

    Example:
        >>> doc = {"key": 1, "prompt": "Answer in lowercase.", "instruction_id_list":
        ...        ["change_case:english_lowercase"], "kwargs": [{}]}
        >>> rows = ifeval_metric_rows(score_ifeval([doc], ["ok then."]), run_id="r", task="t", model="m",
        ...                           variant="none", sample_ids=["0"])
        >>> sorted({(r["metric"], r["n"]) for r in rows if r.get("sample_id")})[:2]
        [('inst_level_loose_acc', 1), ('inst_level_strict_acc', 1)]
    """
    from harness.metrics.summary import rate_row

    key = {"task": task, "model": model, "variant": variant}
    rows = []
    for suffix, keep in (("", lambda r: True), (NON_ECHO_SUFFIX, lambda r: not r["echo"])):
        if lm_eval_scored and not suffix:
            continue
        subset = [r for r in per_sample if keep(r)]
        for m in METRICS:
            if m.startswith("prompt_level"):
                flags = [bool(r[m]) for r in subset]
            else:
                flags = [bool(x) for r in subset for x in r[m]]
            rows.append(rate_row(run_id, key, m + suffix, sum(flags), len(flags)))
    if sample_ids is not None and not lm_eval_scored:
        if len(sample_ids) != len(per_sample):
            raise ValueError(f"ifeval_metric_rows: {len(sample_ids)} sample ids for {len(per_sample)} results")
        for sid, r in zip(sample_ids, per_sample):
            for m in METRICS:
                flags = [bool(r[m])] if m.startswith("prompt_level") else [bool(x) for x in r[m]]
                if not flags:
                    continue
                kind = "bool" if m.startswith("prompt_level") else "number"
                rows.append({"run_id": run_id, **key, "metric": m, "value": sum(flags) / len(flags), "n": len(flags),
                             "sample_id": sid, "details": json.dumps({"kind": kind, "higher_is_better": True})})
    return rows
