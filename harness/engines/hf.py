"""The ``hf`` engine: today's :class:`harness.generation.Generator` under the engine interface.

The generator stays in :mod:`harness.generation` (scoring, the DeepSpeed TP gang and the
lm-eval bridge build on it); this module names it as an engine.

Example:
    >>> eng = HFEngine(pull("tiny-random-llama"))                      # doctest: +SKIP
    >>> eng.engine_name, eng.scorer() is eng                          # doctest: +SKIP
    ('hf', True)
"""

from __future__ import annotations

from harness.generation import Generator


class HFEngine(Generator):
    """Hugging Face ``generate`` with static batches and the HF rule-expert processor."""

    engine_name = "hf"
