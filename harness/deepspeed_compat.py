"""DeepSpeed on CPU sandboxes: skip its shared-memory comm op (one place for the patch).

DeepSpeed JIT-builds ``deepspeed_shm_comm_op`` on the first ``init_distributed`` (about
24 s cold) and the op segfaults in AutoTP's ``inference_all_reduce`` on gVisor machines
(see docs/deepspeed.md). Tensor-parallel gangs, finetuning and the tests that build ZeRO
checkpoints all call :func:`disable_shm_op` before ``init_distributed``.

Example:
    >>> disable_shm_op()                                 # doctest: +SKIP
"""

from __future__ import annotations

import sys


def disable_shm_op() -> None:
    """Stop DeepSpeed from building its CPU shm comm op; call before ``init_distributed``.

    ``import deepspeed.comm.torch as x`` would bind the real ``torch`` (``deepspeed.comm``
    re-exports it), hence the ``sys.modules`` lookup.
    """
    import deepspeed.comm.torch  # noqa: F401

    sys.modules["deepspeed.comm.torch"].build_shm_op = lambda: None
