"""AlpacaEval's length-controlled (LC) win rate, computed by the ``alpaca_eval`` package itself.

The harness's judge annotations (one P(treatment better) per prompt, both orders) become
AlpacaEval annotations — ``output_1`` = the baseline, ``output_2`` = the treatment,
``preference = 1 + P`` (AlpacaEval's scale: 1 = baseline wins, 2 = model wins) — and
:func:`alpaca_eval.metrics.glm_winrate.get_length_controlled_winrate` fits its GLM and
predicts the win rate at zero length difference. Nothing here re-implements the GLM.

Which GLM: ``length_controlled_minimal`` (``tanh(std_delta_len)`` + a model term, no
regularisation). AlpacaEval's leaderboard GLM ``length_controlled_v1`` adds a per-instruction
difficulty term and regularisation towards "gamed" baselines; both come from a file on the
Hugging Face Hub (``tatsu-lab/alpaca_eval``, ``df_gamed.csv``) that covers only AlpacaEval's
805 instructions and cannot be fetched offline. The package's featuriser still asks the Hub
for that file, so :func:`offline_glm_data` hands it a stand-in that covers this annotation
set's indices with difficulty 0 — a column the minimal formula does not read. The LC value
is therefore alpaca_eval's number for that GLM, not the leaderboard's v1 number.

The interval is a percentile bootstrap over prompts: ``iters`` resamples of the annotations
(seed ``seed``), each refitted by alpaca_eval. alpaca_eval's own ``lc_standard_error`` is the
standard error of its per-instruction predictions, which vary only through the instruction
difficulty term; under the minimal GLM every prediction is equal and that error is 0, so it is
kept in ``details`` (``alpaca_lc_se``) but not used as the interval. The GLM's 5-fold
cross-validation needs at least :data:`MIN_PAIRS` pairs; fewer give a NULL value with the
reason in ``details``.

Note:
    alpaca_eval 0.6.6 imports ``pkg_resources`` at module level for two version helpers;
    setuptools ≥ 81 (the venv has 84) no longer ships it. :func:`import_glm` then registers a
    two-function stand-in built on ``packaging`` and ``importlib.metadata`` before importing.

Example:
    >>> ann = alpaca_annotations(["q1", "q2"], ["long answer", "b"], ["a", "short"], [1.0, 0.0], "rules", "none", "j")
    >>> ann[0]["preference"], ann[1]["preference"], ann[0]["output_2"]
    (2.0, 1.0, 'long answer')
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import math
import sys
import tempfile
import types
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

GLM_NAME = "length_controlled_minimal"
MIN_PAIRS = 5  # GroupKFold(n_splits=5) inside alpaca_eval's fit


def _pkg_resources_stand_in() -> types.ModuleType:
    from packaging.version import parse

    mod = types.ModuleType("pkg_resources")
    mod.parse_version = parse
    mod.get_distribution = lambda name: types.SimpleNamespace(version=importlib.metadata.version(name))
    return mod


def import_glm() -> types.ModuleType:
    """``alpaca_eval.metrics.glm_winrate`` (with the ``pkg_resources`` stand-in when needed)."""
    if "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
        sys.modules["pkg_resources"] = _pkg_resources_stand_in()
    return importlib.import_module("alpaca_eval.metrics.glm_winrate")


@contextlib.contextmanager
def offline_glm_data(n: int) -> Iterator[None]:
    """While active, alpaca_eval's Hub download of ``df_gamed.csv`` returns a local stand-in.

    The stand-in has one row per annotation index ``0..n-1`` with ``instruction_difficulty``
    0; only :data:`GLM_NAME` (which ignores that column) may be fitted under it.
    """
    glm = import_glm()
    original = glm.hf_hub_download
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "df_gamed.csv"
        path.write_text("model,index,instruction_difficulty\n" + "".join(f"none,{i},0.0\n" for i in range(n)))

        def local(*args, filename: str = "", **kwargs) -> str:
            if filename != "df_gamed.csv":
                raise RuntimeError(f"alpaca_eval asked the Hub for {filename!r}; the harness runs offline")
            return str(path)

        glm.hf_hub_download = local
        try:
            yield
        finally:
            glm.hf_hub_download = original


def alpaca_annotations(instructions: Sequence[str], treatments: Sequence[str], baselines: Sequence[str],
                       prefs: Sequence[float], treatment: str, baseline: str, annotator: str) -> list[dict]:
    """AlpacaEval annotation records for pairs judged with P(treatment better) = ``prefs[i]``."""
    return [{"index": i, "instruction": q, "output_1": b, "output_2": t, "generator_1": baseline,
             "generator_2": treatment, "annotator": annotator, "preference": 1.0 + float(p)}
            for i, (q, t, b, p) in enumerate(zip(instructions, treatments, baselines, prefs)) if not math.isnan(p)]


def alpaca_lc(annotations: list[dict], warn: bool = True) -> dict:
    """One call of alpaca_eval's ``get_length_controlled_winrate`` (:data:`GLM_NAME`, offline, no weights saved).

    Returns alpaca_eval's own dict (percent scale: ``length_controlled_winrate``,
    ``lc_standard_error``, ``win_rate``, ``standard_error``, ...).
    """
    import pandas as pd

    glm = import_glm()
    with offline_glm_data(len(annotations)), warnings.catch_warnings():
        # scikit-learn's notices about alpaca_eval's arguments; bootstrap refits (warn=False) are silent
        warnings.simplefilter("ignore", FutureWarning if warn else Warning)
        return glm.get_length_controlled_winrate(pd.DataFrame(annotations), glm_name=GLM_NAME, save_weights_dir=None,
                                                 is_warn_extreme_changes=warn)


def lc_win_rate(annotations: list[dict], iters: int = 100, seed: int = 0, level: float = 0.95) -> dict:
    """alpaca_eval's LC and raw win rates of ``annotations`` as fractions, with a bootstrap interval for LC.

    Returns:
        ``{"value", "ci_low", "ci_high", "n", "raw_win_rate", "raw_se", "alpaca_lc_se",
        "iters", "glm", "alpaca_eval"}``; ``value`` and its interval are None (with
        ``"reason"``) below :data:`MIN_PAIRS` pairs or when every preference is equal.
    """
    n = len(annotations)
    out = {"n": n, "glm": GLM_NAME, "alpaca_eval": importlib.metadata.version("alpaca_eval"), "iters": iters}
    if n < MIN_PAIRS or len({a["preference"] for a in annotations}) < 2:
        why = f"needs at least {MIN_PAIRS} pairs" if n < MIN_PAIRS else "every pair has the same preference"
        return out | {"value": None, "ci_low": None, "ci_high": None, "raw_win_rate": None, "raw_se": None,
                      "alpaca_lc_se": None, "reason": f"LC GLM not fitted: {why}"}
    m = alpaca_lc(annotations)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(iters):
        sample = [annotations[i] for i in rng.integers(0, n, n)]
        if len({a["preference"] for a in sample}) < 2:
            continue
        boots.append(float(alpaca_lc(sample, warn=False)["length_controlled_winrate"]) / 100)
    tail = (1 - level) / 2
    lo, hi = (float(np.quantile(boots, tail)), float(np.quantile(boots, 1 - tail))) if len(boots) >= 2 else (None, None)
    return out | {"value": float(m["length_controlled_winrate"]) / 100, "ci_low": lo, "ci_high": hi,
                  "raw_win_rate": float(m["win_rate"]) / 100, "raw_se": float(m["standard_error"]) / 100,
                  "alpaca_lc_se": float(m["lc_standard_error"]) / 100, "boot_fits": len(boots)}


__all__ = ["GLM_NAME", "MIN_PAIRS", "alpaca_annotations", "alpaca_lc", "import_glm", "lc_win_rate", "offline_glm_data"]
