"""In-process vs 1 Ray replica vs 2 Ray replicas on the same prompts (same outputs).

Prints wall time, model-load time and generation time for each mode, the 1-replica
overhead against in-process (goal <= 10 %) and the 2-replica speed-up. On a machine with
C cores, 1 replica gets C torch threads and each of 2 replicas gets C/2, so the speed-up
measures data parallelism against intra-op threading on the same cores — report it as it is.

    .venv/bin/python benchmarks/ray_scaling.py --model gemma-3-270m --limit 16 --max-new-tokens 48
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run_mode(args, mode: str, store: str) -> dict:
    from harness.run.config import RunConfig
    from harness.run.runner import execute
    from harness.store import read_table

    flags = {"model": args.model, "tasks": args.tasks, "limit": args.limit, "max_new_tokens": args.max_new_tokens,
             "batch_size": args.batch_size, "variants": "none,rules", "store": store, "run_id": mode}
    if mode == "in-process":
        flags["no_ray"] = True
    else:
        flags["replicas"] = mode.split("-")[0]
    t0 = time.perf_counter()
    result = execute(RunConfig.from_sources(None, flags), progress=False)
    wall = time.perf_counter() - t0
    t = read_table(store, "samples", mode).sort_by("key")
    load = result.timings.get("load_seconds", 0.0)
    return {"mode": mode, "wall": wall, "load": load, "generate": wall - load,
            "tokens": sum(t.column("num_output_tokens").to_pylist()),
            "outputs": list(zip(t.column("key").to_pylist(), t.column("output_token_ids").to_pylist()))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="gemma-3-270m")
    p.add_argument("--tasks", default="instructions-mini")
    p.add_argument("--limit", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=4)
    args = p.parse_args()
    import ray

    results = []
    for mode in ("in-process", "1-replica", "2-replicas"):
        with tempfile.TemporaryDirectory() as store:
            if mode != "in-process" and not ray.is_initialized():
                ray.init("local", num_cpus=os.cpu_count(), include_dashboard=False, object_store_memory=512 * 2**20,
                         log_to_driver=False)
            results.append(run_mode(args, mode, store))
    base = results[0]
    print(f"model {args.model}, {args.limit} prompts x 2 variants, <= {args.max_new_tokens} new tokens, "
          f"batch {args.batch_size}, {os.cpu_count()} CPUs")
    print(f"{'mode':<12} {'wall s':>8} {'load s':>8} {'gen s':>8} {'tok/s':>8} {'same outputs':>13}")
    for r in results:
        same = r["outputs"] == base["outputs"]
        print(f"{r['mode']:<12} {r['wall']:8.1f} {r['load']:8.1f} {r['generate']:8.1f} {r['tokens'] / r['generate']:8.1f} {str(same):>13}")
    one, two = results[1], results[2]
    print(f"1-replica overhead vs in-process (generation): {100 * (one['generate'] / base['generate'] - 1):+.1f} % (goal <= 10 %)")
    print(f"2-replica speed-up vs 1 replica (generation): {one['generate'] / two['generate']:.2f}x")
    ray.shutdown()


if __name__ == "__main__":
    main()
