"""IFEval scoring for ``ifeval.yaml``, delegated to lm-eval.

Referenced as ``!function utils.process_results``; imported only when a metric resolves
it. lm-eval is imported inside each function because ``lm_eval.tasks.ifeval`` tries to
download NLTK data at import time (see docs/tasks.md).
"""


def process_results(doc, results):
    """``(doc, [response]) -> {prompt_level_strict_acc: bool, inst_level_strict_acc: [bool], ...}``."""
    from lm_eval.tasks.ifeval.utils import process_results as impl

    return impl(doc, results)


def agg_inst_level_acc(items):
    """Mean over the flattened per-instruction results."""
    from lm_eval.tasks.ifeval.utils import agg_inst_level_acc as impl

    return impl(items)
