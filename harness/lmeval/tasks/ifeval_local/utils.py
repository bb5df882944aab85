"""IFEval scoring for the bridge's local-data ``ifeval.yaml``: lm-eval's own functions.

Referenced as ``!function utils.process_results``. The offline ``punkt_tab`` is put on
``nltk.data.path`` before ``lm_eval.tasks.ifeval`` is imported (that import would try to
download it otherwise).
"""

from harness.lmeval.local import offline_nltk

offline_nltk()

from lm_eval.tasks.ifeval.utils import agg_inst_level_acc, process_results  # noqa: E402

__all__ = ["agg_inst_level_acc", "process_results"]
