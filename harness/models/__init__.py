"""Models: the built-in catalogue, pulling/building them, and resolving user specs.

Importing this package is cheap (torch/transformers load only when a model is built).

Example:
    >>> from harness.models import BUILTINS
    >>> sorted(BUILTINS)
    ['gemma-3-270m', 'smollm2-135m-instruct', 'tiny-random-llama']
    >>> m = resolve("tiny-random-llama")   # doctest: +SKIP
    >>> m.path.name                        # doctest: +SKIP
    'tiny-random-llama'
"""

from harness.models.builtin import BUILTINS, BuiltinModel
from harness.models.deepspeed_source import sweep_specs
from harness.models.home import harness_home
from harness.models.pull import pull
from harness.models.local_dir import ResolvedModel
from harness.models.resolve import register_prefix, resolve

__all__ = ["BUILTINS", "BuiltinModel", "ResolvedModel", "harness_home", "pull", "register_prefix", "resolve", "sweep_specs"]
