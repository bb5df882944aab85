"""Child-process bodies for the driver-kill test (imported by forked children, so top level).

:func:`run_until_killed` runs (or resumes) a run in this process with its shards in a
seeded random order (as two replicas commit them out of order) and SIGKILLs itself at
its ``kill_at``-th store write: after the write (a committed file), or in the middle of
it (a temporary file on disk, the rename never happens).
"""

from __future__ import annotations

import importlib
import os
import random
import signal
import uuid

# imported once by the fork server, so each forked child starts in well under a second
WARM = ("harness.run.runner", "harness.engines.hf", "harness.distributed.worker", "harness.distributed.executor",
        "harness.metrics.summary", "harness.metrics.task_metrics", "harness.models", "harness.tasks",
        "transformers.models.llama.modeling_llama", "transformers.models.llama.configuration_llama",
        "transformers.models.auto.tokenization_auto", "transformers.models.auto.modeling_auto",
        "transformers.integrations.hub_kernels", "transformers.activations", "transformers.generation.utils",
        "transformers.tokenization_utils_fast")
for _name in WARM:
    importlib.import_module(_name)


def run_until_killed(flags: dict, kill_at: int, mid_write: bool, seed: int) -> None:
    from harness.run import runner
    from harness.run.config import RunConfig
    from harness.store import Store

    original_make_shards = runner.make_shards

    def shuffled(items, per_shard, first_id=0):
        shards = original_make_shards(items, per_shard, first_id)
        random.Random(seed).shuffle(shards)  # out-of-order commits, as with several replicas
        return shards

    runner.make_shards = shuffled
    original_write = Store.write_table
    writes = [0]

    def write_table(self, table, run_id, name, data):
        writes[0] += 1
        if writes[0] == kill_at and mid_write:
            tmp = self.table_dir(table, run_id) / f".{name}.{uuid.uuid4().hex}.tmp"
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(b"PAR1 half-written")
            os.kill(os.getpid(), signal.SIGKILL)
        path = original_write(self, table, run_id, name, data)
        if writes[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return path

    Store.write_table = write_table
    store = Store(flags["store"])
    if store.read_manifest(flags["run_id"]) is None:
        runner.execute(RunConfig.from_sources(None, flags), progress=False)
    else:
        runner.resume(flags["run_id"], flags["store"], progress=False, no_ray=True, threads=1)
