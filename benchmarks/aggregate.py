"""Benchmark: the vectorised response-shape summary over 1,000,000 synthetic sample rows.

Builds a ``samples`` table (Arrow, SAMPLES schema columns: task, variant, model, status,
finish_reason, num_output_tokens, instruction, output of about 200 characters) whose
mix resembles docs/measurements.md (the base variant echoes and leaks role tags, the
rules variant mostly stops with EOS), then times :func:`harness.metrics.summary.summarize`
end to end and per stage. The goal is 2 s for a million rows.

Usage::

    .venv/bin/python benchmarks/aggregate.py            # 1,000,000 rows
    .venv/bin/python benchmarks/aggregate.py --rows 200000 --scalar-rows 20000
    .venv/bin/python benchmarks/aggregate.py --rows 0 --store-rows 10000000   # 10 M rows on disk

Everything is Arrow compute plus numpy: no Python loop runs per row. ``--scalar-rows``
also times the scalar (pure Python) definitions on a slice, for comparison.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.metrics import shape, stored
from harness.metrics.summary import format_summary, summarize, summarize_store
from harness.store.schema import SAMPLES, conform

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


def _load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _goal(t: float) -> str:
    return f"{t / GOAL_S:.2f}x the {GOAL_S:.0f} s goal"


def _best(fn, repeat: int):
    """(result, best wall s, CPU s of that call) over ``repeat`` calls."""
    best, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        out, t = _timed(fn)
        if t < best:
            best, cpu = t, _timed.cpu
    return out, best, cpu


def with_stored(samples: pa.Table) -> pa.Table:
    """``samples`` plus the stored metric columns (shape only; style labels stay null)."""
    cols = stored.stored_columns(samples, style=False)
    for name, col in cols.items():
        samples = samples.append_column(name, col)
    return samples


def build_store(path: Path, rows: int, seed: int, scored: bool) -> None:
    """Write a run ``bench`` of ``rows`` rows to ``path`` once, 1,000,000 rows per file (row groups
    of 65,536), with stored metric columns unless ``scored`` (then summaries score the text);
    only one file's rows are in memory at a time."""
    tag = f"{rows} {'scored' if scored else 'stored'}"
    if (path / "DONE").exists() and (path / "DONE").read_text() == tag:
        return
    shutil.rmtree(path, ignore_errors=True)
    block = min(rows, 1_000_000)
    base = build_samples(block, seed)  # later files repeat the first with new keys
    base = base if scored else with_stored(base)
    for i, start in enumerate(range(0, rows, block)):
        n = min(block, rows - start)
        part = base.slice(0, n).set_column(
            base.schema.get_field_index("key"), "key", pa.array(np.arange(start, start + n).astype(str))
        )
        out = path / "samples" / "run_id=bench" / f"part-{i:06d}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        table = conform(part, "samples").drop_columns(["run_id"])
        pq.write_table(table, out, compression="zstd", row_group_size=shape.CHUNK_ROWS)
    (path / "DONE").write_text(tag)


def store_child(path: str, repeat: int) -> None:
    """Time summarize_store on a store (run in a child process so its peak RSS is its own)."""
    metrics, best, cpu = _best(lambda: summarize_store(path, "bench"), repeat)
    n = sum(r["n"] for r in metrics.to_pylist() if r["metric"] == "error_rate")
    # VmHWM is this process's own peak (ru_maxrss would carry the parent's across exec)
    hwm = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("VmHWM"))
    rss = int(hwm.split()[1]) / 1024
    print(f"summarize_store(): {best:.2f} s wall ({cpu:.2f} s CPU) for {n:,} rows, peak RSS {rss:.0f} MiB; {_load()}")


def in_memory(args) -> None:
    """The in-memory cases: scored on read (1 and all threads), stored columns, stages, scalar twin."""
    samples, t_build = _timed(build_samples, args.rows, args.seed)
    mean_chars = pc.mean(pc.utf8_length(samples.column("output"))).as_py()
    print(f"built {samples.num_rows:,} rows in {t_build:.1f} s (mean output {mean_chars:.0f} chars); {_load()}")

    # 1. rows without stored columns (written before v3's commit-time scoring): scored on read
    scored, t_scored, cpu_scored = _best(lambda: summarize(samples, "bench"), args.repeat)
    one, t_one, cpu_one = _best(lambda: summarize(samples, "bench", workers=1), 1)
    # 2. rows with the columns the runner stores at commit (harness.metrics.stored)
    with_cols, t_commit = _timed(with_stored, samples)
    fast, t_fast, cpu_fast = _best(lambda: summarize(with_cols, "bench"), args.repeat)
    same = fast.equals(scored) and one.equals(scored)

    ok = samples.filter(pc.equal(samples.column("status"), "ok"))
    output = pc.fill_null(ok.column("output").combine_chunks().cast(pa.large_string()), "")
    instr = pc.fill_null(ok.column("instruction").combine_chunks().cast(pa.large_string()), "")

    # The same stages as shape_table, block by block on one thread, to show where the time goes.
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

    print(format_summary(fast))
    print()
    print(f"scoring stages on {ok.num_rows:,} ok rows, one thread (wall / CPU / share of the goal): "
          + ", ".join(f"{k} {w:.2f} / {c:.2f} s / {w / GOAL_S:.2f}x" for k, (w, c) in stages.items()))
    print(f"[stored columns] summarize(): {t_fast:.2f} s wall ({cpu_fast:.2f} s CPU) for {args.rows:,} rows "
          f"= {_goal(t_fast)}; {_load()}")
    print(f"[scored on read] summarize(): {t_scored:.2f} s wall ({cpu_scored:.2f} s CPU) on {os.cpu_count()} threads "
          f"= {_goal(t_scored)}; one thread {t_one:.2f} s wall ({cpu_one:.2f} s CPU) = {_goal(t_one)}; {_load()}")
    print(f"vectorised scoring of the stored shape columns for the whole table: {t_commit:.2f} s for {args.rows:,} rows "
          f"({1e6 * t_commit / max(1, args.rows):.1f} us/row); identical metrics on all three paths: {'yes' if same else 'NO'}")

    commit_rows = samples.slice(0, 5000).to_pylist()
    _, t = _timed(stored.commit_columns, commit_rows)
    print(f"stored.commit_columns (the runner's per-shard hook: shape flags + style labels) on {len(commit_rows):,} rows: "
          f"{t:.2f} s wall / {_timed.cpu:.2f} s CPU = {1e6 * _timed.cpu / max(1, len(commit_rows)):.0f} us CPU per row; {_load()}")

    if args.scalar_rows:
        sub = ok.slice(0, args.scalar_rows).to_pylist()
        def scalar(rows):
            for r in rows:
                shape.shape_row(r["instruction"], r["output"], r["finish_reason"], r["num_output_tokens"])

        _, t_scalar = _timed(scalar, sub)
        scale = args.rows / max(1, len(sub))
        print(f"scalar Python shape_row on {len(sub):,} rows: {t_scalar:.2f} s wall / {_timed.cpu:.2f} s CPU "
              f"(~{t_scalar * scale:.0f} s / {_timed.cpu * scale:.0f} s extrapolated to {args.rows:,})")



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="time each summary this many times, report the best")
    ap.add_argument("--scalar-rows", type=int, default=0, help="time the pure-Python twins on N rows")
    ap.add_argument("--store-rows", type=int, default=0, help="also summarise a store of N rows on disk (e.g. 10000000)")
    ap.add_argument("--store-dir", default=os.path.join(tempfile.gettempdir(), "harness-aggregate-bench"),
                    help="where the --store-rows store is generated once and reused")
    ap.add_argument("--store-scored", action="store_true",
                    help="the store has no stored metric columns (rows from before v3): summaries score the text")
    ap.add_argument("--store-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.store_child:
        return store_child(args.store_child, args.repeat)

    print(f"cpus={os.cpu_count()} {_load()}")
    if args.rows:
        in_memory(args)
    if args.store_rows:
        path = Path(args.store_dir)
        _, t = _timed(build_store, path, args.store_rows, args.seed, args.store_scored)
        size = sum(p.stat().st_size for p in path.rglob("*.parquet")) / 2**30
        kind = "without stored columns (text scored on read)" if args.store_scored else "with stored columns"
        print(f"store of {args.store_rows:,} rows {kind} at {path} ({size:.2f} GiB of Parquet) ready in {t:.1f} s")
        subprocess.run([sys.executable, __file__, "--store-child", str(path), "--repeat", str(args.repeat)], check=True)


if __name__ == "__main__":
    main()
