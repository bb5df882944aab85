"""Benchmark: the vectorised response-shape summary over 1,000,000 synthetic sample rows.

Builds a ``samples`` table (Arrow, SAMPLES schema columns: task, variant, model, status,
finish_reason, num_output_tokens, instruction, output of about 200 characters) whose
mix resembles docs/measurements.md (the base variant echoes and leaks role tags, the
rules variant mostly stops with EOS), then times :func:`harness.metrics.summary.summarize`
end to end and per stage. The goal is 2 s for a million rows.

Usage::

    .venv/bin/python benchmarks/aggregate.py            # 1,000,000 rows
    .venv/bin/python benchmarks/aggregate.py --rows 200000 --scalar-rows 20000

Everything is Arrow compute plus numpy: no Python loop runs per row. ``--scalar-rows``
also times the scalar (pure Python) definitions on a slice, for comparison.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.metrics import shape
from harness.metrics.summary import format_summary, summarize
from harness.store.schema import SAMPLES

GOAL_S = 2.0
SPACE = pa.scalar(" ", pa.large_string())


def _vocab(rng: np.random.Generator, size: int = 5000) -> pa.Array:
    lengths = rng.integers(2, 9, size=size)
    letters = np.frombuffer(b"etaoinshrdlucmfwypvbgkjqxz", dtype=np.uint8)
    flat = letters[np.minimum(rng.geometric(0.15, size=int(lengths.sum())) - 1, 25)]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.StringArray.from_buffers(size, pa.py_buffer(offsets), pa.py_buffer(flat.tobytes()))


def _sentences(rng: np.random.Generator, vocab: pa.Array, n: int, low: int, high: int) -> pa.Array:
    """``n`` strings of ``low``..``high`` Zipf-distributed words joined by spaces (built in Arrow)."""
    counts = rng.integers(low, high + 1, size=n)
    ranks = np.arange(1, len(vocab) + 1)
    p = (1.0 / ranks) / (1.0 / ranks).sum()
    idx = rng.choice(len(vocab), size=int(counts.sum()), p=p)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), vocab.cast(pa.large_string()).take(pa.array(idx)))
    return pc.binary_join(lists, SPACE)


def build_samples(rows: int, seed: int = 0) -> pa.Table:
    """A synthetic ``samples`` table of ``rows`` rows (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    vocab = _vocab(rng)
    n_instr = max(1, rows // 500)
    instructions = pc.binary_join_element_wise(
        _sentences(rng, vocab, n_instr, 8, 30), pa.scalar("?", pa.large_string()), pa.scalar("", pa.large_string())
    )
    instr = instructions.take(pa.array(rng.integers(0, n_instr, size=rows)))
    variant = np.where(rng.random(rows) < 0.5, "none", "rules")
    is_base = variant == "none"
    body = _sentences(rng, vocab, rows, 15, 35)  # ~200 characters with the echoed heads

    u = rng.random(rows)
    prefix_echo = np.where(is_base, u < 0.70, u < 0.40)
    role = np.where(is_base, rng.random(rows) < 0.70, rng.random(rows) < 0.03)
    refusal = rng.random(rows) < 0.02
    empty = pa.scalar("", pa.large_string())
    head = pc.if_else(pa.array(prefix_echo), instr, empty)
    head = pc.if_else(pa.array(refusal), pa.scalar("I'm sorry, but I cannot help with that.", pa.large_string()), head)
    tail = pc.if_else(pa.array(role), pa.scalar("\n<|user|>\n", pa.large_string()), empty)
    output = pc.binary_join_element_wise(head, body, tail, SPACE)

    status = np.where(rng.random(rows) < 0.01, "error", "ok")
    eos = np.where(is_base, rng.random(rows) < 0.05, rng.random(rows) < 0.97)
    finish = np.where(status == "error", "error", np.where(eos, "eos", "length"))
    tokens = np.where(eos, rng.integers(5, 200, size=rows), 256).astype(np.int32)
    tasks = np.array(["alpaca_eval", "ifeval", "implicit_ins_val"])[rng.integers(0, 3, size=rows)]
    cols = {
        "run_id": pa.array(np.full(rows, "bench")),
        "key": pa.array(np.arange(rows).astype(str)),
        "task": pa.array(tasks),
        "sample_id": pa.array((np.arange(rows) % max(1, rows // 6)).astype(str)),
        "variant": pa.array(variant),
        "model": pa.array(np.full(rows, "gemma-3-270m")),
        "instruction": instr.cast(pa.string()),
        "output": pc.if_else(pa.array(status == "error"), pa.scalar(None, pa.large_string()), output).cast(pa.string()),
        "num_output_tokens": pa.array(np.where(status == "error", 0, tokens), pa.int32()),
        "finish_reason": pa.array(finish),
        "status": pa.array(status),
    }
    return pa.table({f.name: cols[f.name].cast(f.type) for f in SAMPLES if f.name in cols})


def _timed(fn, *args):
    """(result, wall seconds); the CPU seconds of the last call are kept in ``_timed.cpu``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    _timed.cpu = time.process_time() - c0
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="time summarize() this many times, report the best")
    ap.add_argument("--scalar-rows", type=int, default=0, help="time the pure-Python twins on N rows")
    args = ap.parse_args()

    samples, t_build = _timed(build_samples, args.rows, args.seed)
    mean_chars = pc.mean(pc.utf8_length(samples.column("output"))).as_py()
    print(f"built {samples.num_rows:,} rows in {t_build:.1f} s (mean output {mean_chars:.0f} chars); "
          f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}")

    best, best_cpu, metrics = float("inf"), float("inf"), None
    for _ in range(args.repeat):
        metrics, t = _timed(summarize, samples, "bench")
        best, best_cpu = min(best, t), min(best_cpu, _timed.cpu)

    ok = samples.filter(pc.equal(samples.column("status"), "ok"))
    output = pc.fill_null(ok.column("output").combine_chunks().cast(pa.large_string()), "")
    instr = pc.fill_null(ok.column("instruction").combine_chunks().cast(pa.large_string()), "")

    # The same stages as shape_table, block by block, to show where the time goes.
    def blocks(fn, *arrays):
        return [fn(*(a.slice(i, shape.CHUNK_ROWS) for a in arrays)) for i in range(0, len(output), shape.CHUNK_ROWS)]

    role, t = _timed(lambda: pc.match_substring_regex(output, shape._ROLE_RE).to_numpy(zero_copy_only=False))
    stages = {"role tags": (t, _timed.cpu)}
    role_arr = pa.array(role)
    for name, fn, arrays in (
        ("refusal", shape._refusal_vectorised, (output,)),
        ("echo (prefix + 5-gram)", lambda i, o, r: shape._echo_vectorised(i, o, r.to_numpy(zero_copy_only=False)),
         (instr, output, role_arr)),
        ("distinct-2", lambda o: shape._distinct_vectorised(o, 2), (output,)),
    ):
        _, t = _timed(blocks, fn, *arrays)
        stages[name] = (t, _timed.cpu)

    print(format_summary(metrics))
    print()
    print(f"stages on {ok.num_rows:,} ok rows (wall / CPU): "
          + ", ".join(f"{k} {w:.2f} / {c:.2f} s" for k, (w, c) in stages.items()))
    print(f"summarize(): {best:.2f} s wall ({best_cpu:.2f} s CPU) for {args.rows:,} rows "
          f"= {best / GOAL_S:.2f}x the {GOAL_S:.0f} s goal; load average now {os.getloadavg()[0]:.2f}")

    if args.scalar_rows:
        sub = ok.slice(0, args.scalar_rows).to_pylist()
        def scalar(rows):
            for r in rows:
                shape.shape_row(r["instruction"], r["output"], r["finish_reason"], r["num_output_tokens"])

        _, t_scalar = _timed(scalar, sub)
        scale = args.rows / max(1, len(sub))
        print(f"scalar Python shape_row on {len(sub):,} rows: {t_scalar:.2f} s wall / {_timed.cpu:.2f} s CPU "
              f"(~{t_scalar * scale:.0f} s / {_timed.cpu * scale:.0f} s extrapolated to {args.rows:,})")


if __name__ == "__main__":
    main()
