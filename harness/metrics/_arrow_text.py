"""Vectorised text helpers for :mod:`harness.metrics.shape`: word lists and per-row n-gram sets.

Everything works on whole Arrow string arrays (pyarrow.compute) and flat numpy arrays;
no Python loop runs per row. Words become integer ids with one ``dictionary_encode``,
n-grams become ``uint64`` keys, and per-row set sizes come from sorting each row's
keys inside a padded matrix (rows bucketed by length, so padding at most doubles memory).

Example:
    >>> import pyarrow as pa
    >>> lists = split_ascii_whitespace(pa.array([" a b a b ", ""], pa.large_string()))
    >>> rows, pos, keys = ngram_keys(lists, encode(lists)[0], 2)
    >>> segment_distinct(rows, pos, keys, 2).tolist()
    [2, 0]
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SPACE = pa.scalar(" ", pa.large_string())
_NULL = pa.scalar(None, pa.large_string())
_POLY = np.uint64(0x100000001B3)  # FNV-64 prime (odd): the rolling hash below keeps all bits


def map_bytes(arr: pa.Array, lut: np.ndarray) -> pa.Array:
    """Apply a 256-entry byte map to every UTF-8 byte of a null-free string array.

    Only safe for maps that change ASCII bytes into ASCII bytes: those never occur
    inside a multi-byte UTF-8 sequence, so the result is valid UTF-8 and equals
    ``str.translate`` with the same map.
    """
    arr = arr.cast(pa.large_string())
    _, offsets_buf, data = arr.buffers()
    # (len + 1,) offsets of this (possibly sliced) array into the shared data buffer
    offsets = np.frombuffer(offsets_buf, dtype=np.int64, count=len(arr) + 1, offset=8 * arr.offset)
    start, end = int(offsets[0]), int(offsets[-1])
    body = np.zeros(0, np.uint8)
    if end > start:
        body = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
    return pa.Array.from_buffers(
        pa.large_string(), len(arr), [None, pa.py_buffer(offsets - start), pa.py_buffer(lut[body])]
    )


def split_ascii_whitespace(arr: pa.Array) -> pa.Array:
    """Split each string on runs of ASCII whitespace; no empty pieces (``"" -> []``).

    Equals ``[t for t in re.split("[ \\t\\n\\r\\f\\v]+", s) if t]`` row by row.
    """
    trimmed = pc.ascii_trim_whitespace(arr)
    # A blank row would split into [""]: make it null so it contributes no pieces.
    blank = pc.equal(pc.binary_length(trimmed), 0)
    return pc.ascii_split_whitespace(pc.if_else(blank, _NULL, trimmed))


def row_ids(lists: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(row of every flattened element, element count per row) of a list array."""
    rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    return rows, np.bincount(rows, minlength=len(lists))


def encode(*lists: pa.Array) -> list[np.ndarray]:
    """Integer ids of the flattened elements of several list arrays, with one shared dictionary."""
    flats = [lst.flatten().cast(pa.large_string()) for lst in lists]
    ids = pa.concat_arrays(flats).dictionary_encode().indices.to_numpy().astype(np.uint64)
    out, start = [], 0
    for f in flats:
        out.append(ids[start : start + len(f)])
        start += len(f)
    return out


def ngram_keys(lists: pa.Array, codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, slot within row, key) of every contiguous n-gram of each row's elements.

    Bigrams get the exact key ``id1 * V + id2``; longer n-grams a 64-bit rolling hash of
    their ids. Keys are only ever compared within one row, where a hash collision among a
    few hundred n-grams has probability below 1e-14.
    """
    rows, counts = row_ids(lists)
    m = len(codes) - n + 1
    if m <= 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.uint64)
    valid = rows[:m] == rows[n - 1 :]  # the n elements lie in one row (rows are contiguous)
    if n == 2:
        key = codes[:m] * np.uint64(int(codes.max()) + 1) + codes[1:]
    else:
        key = codes[:m].copy()
        with np.errstate(over="ignore"):
            for t in range(1, n):
                key = key * _POLY + codes[t : t + m]
    r = rows[:m][valid]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.flatnonzero(valid) - starts[r]
    return r, pos, key[valid]


def _sorted_segments(rows: np.ndarray, pos: np.ndarray, keys: np.ndarray, n_rows: int):
    """Yield ``(row ids, matrix)`` per length class: each row's keys sorted along axis 1.

    A class ``c`` holds the rows with ``2**(c-1) < count <= 2**c`` keys; its matrix is
    ``(rows in class, 2**c)``, padded with a copy of the row's first key (``pos == 0``),
    so padding never adds a new value. Padding at most doubles memory.
    """
    counts = np.bincount(rows, minlength=n_rows)
    if len(keys) == 0:
        return
    width_class = np.ceil(np.log2(np.maximum(counts, 1))).astype(np.uint8)
    first = np.zeros(n_rows, dtype=np.uint64)
    at0 = pos == 0
    first[rows[at0]] = keys[at0]
    item_class = width_class[rows]
    order = np.argsort(item_class, kind="stable")  # radix sort on uint8
    bounds = np.searchsorted(item_class[order], np.arange(int(width_class.max()) + 2))
    local = np.empty(n_rows, dtype=np.int64)
    for c in range(int(width_class.max()) + 1):
        sel = order[bounds[c] : bounds[c + 1]]
        if len(sel) == 0:
            continue
        crow = np.flatnonzero((width_class == c) & (counts > 0))
        local[crow] = np.arange(len(crow))
        mat = np.repeat(first[crow][:, None], 1 << c, axis=1)  # (rows in class, 2**c)
        mat[local[rows[sel]], pos[sel]] = keys[sel]
        mat.sort(axis=1)
        yield crow, mat


def segment_distinct(rows: np.ndarray, pos: np.ndarray, keys: np.ndarray, n_rows: int) -> np.ndarray:
    """Number of distinct keys per row (``0`` for rows without keys).

    Args:
        rows: row of each key, shape ``(K,)``.
        pos: the key's slot within its row, ``0 .. count - 1``, shape ``(K,)``.
        keys: ``uint64`` keys, shape ``(K,)``.
        n_rows: number of rows.
    """
    out = np.zeros(n_rows, dtype=np.int64)
    for crow, mat in _sorted_segments(rows, pos, keys, n_rows):
        out[crow] = 1 + np.count_nonzero(mat[:, 1:] != mat[:, :-1], axis=1)
    return out


def segment_overlap(
    rows_a: np.ndarray, pos_a: np.ndarray, keys_a: np.ndarray,
    rows_b: np.ndarray, pos_b: np.ndarray, keys_b: np.ndarray, n_rows: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (distinct keys of ``a``, distinct keys of ``a`` that also occur in ``b``).

    One sort of the union: keys get a low tag bit (0 for ``a``, 1 for ``b``), so within a
    run of equal keys the ``a`` copies come first. A run that starts with tag 0 is a
    distinct ``a`` key; it is found in ``b`` when the same run ends with tag 1. Dropping
    one hash bit for the tag leaves 63-bit keys.
    """
    shift = np.uint64(1)
    rows = np.concatenate([rows_a, rows_b])
    n_a = np.bincount(rows_a, minlength=n_rows)
    pos = np.concatenate([pos_a, pos_b + n_a[rows_b]])  # b's keys follow a's within a row
    keys = np.concatenate([keys_a << shift, (keys_b << shift) | shift])
    distinct = np.zeros(n_rows, dtype=np.int64)
    found = np.zeros(n_rows, dtype=np.int64)
    for crow, mat in _sorted_segments(rows, pos, keys, n_rows):
        base, tag = mat >> shift, mat & shift
        new = np.ones(mat.shape, dtype=bool)
        new[:, 1:] = base[:, 1:] != base[:, :-1]  # first element of each run of equal keys
        last = np.ones(mat.shape, dtype=bool)
        last[:, :-1] = new[:, 1:]  # last element of each run
        starts_a = new & (tag == 0)
        distinct[crow] = np.count_nonzero(starts_a, axis=1)
        # For every element, the column where its run starts; then whether that start is an a-key.
        run_start = np.where(new, np.arange(mat.shape[1])[None, :], 0)
        np.maximum.accumulate(run_start, axis=1, out=run_start)
        run_has_a = np.take_along_axis(starts_a, run_start, axis=1)
        found[crow] = np.count_nonzero(last & (tag == 1) & run_has_a, axis=1)
    return distinct, found


def starts_with_rowwise(text: pa.Array, prefix: pa.Array) -> np.ndarray:
    """Row-wise ``text[i].startswith(prefix[i])`` for short prefixes (one pass per prefix length)."""
    plen = pc.utf8_length(prefix).to_numpy(zero_copy_only=False)
    out = np.zeros(len(text), dtype=bool)
    for length in np.unique(plen):
        idx = pa.array(np.flatnonzero(plen == length))
        head = pc.utf8_slice_codeunits(text.take(idx), 0, int(length))
        out[idx.to_numpy()] = pc.equal(head, prefix.take(idx)).to_numpy(zero_copy_only=False)
    return out
