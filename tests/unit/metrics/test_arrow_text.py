"""Vectorised n-gram helpers against hand-counted sets."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from harness.metrics import _arrow_text as T


def _keys(rows, pos, keys):
    return np.array(rows, np.int64), np.array(pos, np.int64), np.array(keys, np.uint64)


def test_split_ascii_whitespace_matches_python():
    texts = ["  a\tb\n\nc ", "", " \x0b\x0c ", "x\x1cy z", "one"]
    got = T.split_ascii_whitespace(pa.array(texts, pa.large_string())).to_pylist()
    assert [g or [] for g in got] == [["a", "b", "c"], [], [], ["x\x1cy", "z"], ["one"]]


def test_segment_distinct_counts_per_row():
    # row 0: {5, 7}; row 1: nothing; row 2: {1}; row 3: 9 keys, 9 distinct (class of width 16)
    rows, pos, keys = _keys([0, 0, 0, 2, 2] + [3] * 9, [0, 1, 2, 0, 1] + list(range(9)), [5, 7, 5, 1, 1] + list(range(9)))
    assert T.segment_distinct(rows, pos, keys, 4).tolist() == [2, 0, 1, 9]


@pytest.mark.parametrize(
    ("a", "b", "distinct_a", "found"),
    [
        ([1, 2, 2, 3], [3, 4, 1], 3, 2),
        ([1, 1], [2, 2], 1, 0),
        ([], [1, 2], 0, 0),
        ([7], [], 1, 0),
        ([4, 5, 6, 7, 8], [8, 8, 8, 4], 5, 2),
    ],
    ids=["partial", "disjoint", "empty-a", "empty-b", "duplicates-in-b"],
)
def test_segment_overlap_single_row(a, b, distinct_a, found):
    ra, pa_, ka = _keys([0] * len(a), range(len(a)), a)
    rb, pb, kb = _keys([0] * len(b), range(len(b)), b)
    d, f = T.segment_overlap(ra, pa_, ka, rb, pb, kb, 1)
    assert (d.tolist(), f.tolist()) == ([distinct_a], [found])


def test_ngram_keys_stay_within_rows():
    lists = T.split_ascii_whitespace(pa.array(["a b c", "d", "e f"], pa.large_string()))
    (codes,) = T.encode(lists)
    rows, pos, _ = T.ngram_keys(lists, codes, 2)
    assert rows.tolist() == [0, 0, 2] and pos.tolist() == [0, 1, 0]


def test_map_bytes_on_a_slice_maps_only_its_rows():
    lut = np.arange(256, dtype=np.uint8)
    lut[ord("!")] = ord(" ")
    sliced = pa.array(["a!", "b!c", "", "d!"], pa.large_string()).slice(1, 2)
    mapped = T.map_bytes(sliced, lut)
    assert mapped.to_pylist() == ["b c", ""]
    assert mapped.buffers()[2].size == 3  # not the whole parent buffer
