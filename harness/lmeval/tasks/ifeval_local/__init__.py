"""lm-eval's IFEval over a local jsonl: ``ifeval_local.yaml`` (template) and ``utils.py`` (shim)."""
