"""Counting the features of trigger mining as integer codes in NumPy (the fast counting pass).

The features and counts are exactly those of :func:`._mining_features._count_batch` (word 1-2
-grams with start/end markers, invisible runs, confusable characters, style features, per
outcome, each feature once per record), but no n-gram string is built per record:

- the ASCII records of a batch are joined with a separator that cannot occur in them (a NUL,
  which is a token of its own) and tokenised by **one** regular-expression call;
- each token gets an integer id from a vocabulary (``dict``, C-level ``map``), a bigram is the
  pair of ids packed in one integer, ``(a + 1) << 24 | b``; the start and end markers are ids
  0 and 1, so every bigram of the batch is computed by a few NumPy operations on the id array;
- each (record, feature) pair is kept once (``np.unique`` of ``record << 48 | code``) and the
  pairs are counted per outcome (``np.unique`` of ``outcome << 48 | code`` with counts);
- the running table is one sorted array of ``outcome << 48 | code`` keys and their counts,
  merged with each batch's by ``searchsorted`` and a linear insert; the lossy-counting prune
  (Manku & Motwani, VLDB 2002) is the same rule as the string tables', applied at the same
  points, so the counts — kept and pruned — are identical.

Records that are not ASCII (Unicode case folding, TR39 confusables, invisible runs) or that
hold a NUL go through :func:`._mining_features._features` and are encoded from its strings.
Trigram features (``max_n=3``) are not encoded (the caller counts them as strings).

:meth:`CodeCounts.to_partial` decodes the table to the string counter API
(:class:`._mining_features._Partial`) once, at the end.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from ...text import BOS, EOS, style_features
from ._mining_comments import comment_units, has_comment_marker
from ._mining_features import _alpha_words, _features, _outcomes_of, _Partial

_SEP = "\x00"
_JOIN = "\n\x00\n"
#: TOKEN_RE on lower-cased ASCII text (which holds no invisible characters): alphanumeric runs,
#: runs of other non-space characters, underscore runs; ``\s`` keeps its Unicode meaning.
_ASCII_TOKEN_RE = re.compile(r"[a-z0-9]+|[^a-z0-9_\s]+|_+")
_B24 = 24
_M24 = (1 << _B24) - 1
_B48 = 48
_M48 = (1 << _B48) - 1
#: most records whose pairs are packed at once (the record index must fit in 15 bits)
_CHUNK = 1 << 15
#: vocabulary entries above which the caller should go on with string tables
MAX_VOCAB = _M24 - 1


class CodeCounts:
    """Running per-outcome feature counts of a stream of batches, as integer codes.

    Parameters
    ----------
    labelled:
        One label per record (``True``) or instruction data with behaviour tags, where a record
        may carry several outcomes and the ``total`` table is kept apart (``False``).
    max_n:
        1 or 2 (longest word n-gram).
    """

    def __init__(self, *, labelled: bool, max_n: int = 2) -> None:
        if max_n not in (1, 2):
            raise ValueError(f"max_n must be 1 or 2 for integer codes. Got {max_n!r}.")
        self.labelled = labelled
        self.max_n = max_n
        self.vocab: dict[str, int] = {BOS: 0, EOS: 1, _SEP: 2}
        self.words: list[str] = [BOS, EOS, _SEP]
        self.outcome_index: dict[str, int] = {}
        self.keys = np.empty(0, dtype=np.int64)
        self.counts = np.empty(0, dtype=np.int64)
        self.total_keys = np.empty(0, dtype=np.int64)
        self.total_counts = np.empty(0, dtype=np.int64)
        self.n = 0
        self.prunes = 0
        self.outcome_n: Counter[str] = Counter()
        self.skel_per: dict[str, Counter[str]] = {}
        self.skel_total: Counter[str] = Counter()

    # ------------------------------------------------------------------ encoding

    def _ids(self, toks: list[str]) -> np.ndarray:
        vocab = self.vocab
        new = set(toks).difference(vocab)
        if new:
            for t in sorted(new):
                vocab[t] = len(self.words)
                self.words.append(t)
        return np.fromiter(map(vocab.__getitem__, toks), dtype=np.int64, count=len(toks))

    def _id(self, token: str) -> int:
        i = self.vocab.get(token)
        if i is None:
            i = self.vocab[token] = len(self.words)
            self.words.append(token)
        return i

    def _code(self, feature: str) -> int:
        known = self.vocab.get(feature)
        if known is not None:
            return known
        parts = feature.split(" ")
        if len(parts) != 2:  # a word, a style or a code-comment unit: one vocabulary entry
            return self._id(feature)
        return (self._id(parts[0]) + 1) << _B24 | self._id(parts[1])

    def _pairs(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(record, code) of every feature of every record of ``texts`` (with repeats)."""
        recs: list[np.ndarray] = []
        codes: list[np.ndarray] = []
        asc = [i for i, t in enumerate(texts) if t.isascii() and _SEP not in t]
        extra_r: list[int] = []
        extra_c: list[int] = []
        if asc:
            sub = [texts[i] for i in asc]
            toks = _ASCII_TOKEN_RE.findall(_JOIN.join(sub).lower())
            toks.insert(0, _SEP)
            toks.append(_SEP)
            arr = self._ids(toks)
            sep = arr == 2
            local = np.cumsum(sep) - 1
            where = np.asarray(asc, dtype=np.int64)
            keep = ~sep
            recs.append(where[local[keep]])
            codes.append(arr[keep])
            if self.max_n >= 2:
                ps, qs = sep[:-1], sep[1:]
                valid = ~(ps & qs)
                a = np.where(ps, 0, arr[:-1])[valid]
                b = np.where(qs, 1, arr[1:])[valid]
                recs.append(where[local[:-1][valid]])
                codes.append((a + 1) << _B24 | b)
            for i, text in zip(asc, sub, strict=True):
                units = style_features(text)
                if has_comment_marker(text):  # skips the call for most records
                    units += comment_units(text)
                for f in units:
                    extra_r.append(i)
                    extra_c.append(self._code(f))
        if len(asc) < len(texts):
            chosen = set(asc)
            for i, text in enumerate(texts):
                if i in chosen:
                    continue
                feats, words = _features(text, self.max_n)
                if words is not None:
                    self._skeleton(feats, words, i)
                for f in feats:
                    extra_r.append(i)
                    extra_c.append(self._code(f))
        if extra_r:
            recs.append(np.asarray(extra_r, dtype=np.int64))
            codes.append(np.asarray(extra_c, dtype=np.int64))
        if not recs:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        return np.concatenate(recs), np.concatenate(codes)

    def _skeleton(self, feats: set[str], words: set[str], i: int) -> None:
        # non-ASCII: content words come from the TR39 skeleton, not the raw tokens
        raw = _alpha_words(feats)
        for o in self._outs[i]:
            skel = self.skel_per.setdefault(o, Counter())
            skel.update(words)
            skel.subtract(raw)
        self.skel_total.update(words)
        self.skel_total.subtract(raw)

    # ------------------------------------------------------------------ counting

    def add(self, texts: list[str], labels: list[str] | None, responses: list[str] | None) -> None:
        """Count one batch (same counts as :func:`._mining_features._count_batch`)."""
        for k in range(0, len(texts), _CHUNK):
            self._add(
                texts[k : k + _CHUNK],
                None if labels is None else labels[k : k + _CHUNK],
                None if responses is None else responses[k : k + _CHUNK],
            )

    def _add(self, texts: list[str], labels: list[str] | None, responses: list[str] | None) -> None:
        self._outs = _outcomes_of(labels, responses)
        index = self.outcome_index
        flat: list[int] = []
        n_out: list[int] = []
        for out in self._outs:
            for o in out:
                j = index.get(o)
                if j is None:
                    j = index[o] = len(index)
                flat.append(j)
                self.outcome_n[o] += 1
            n_out.append(len(out))
        self.n += len(texts)
        rec, code = self._pairs(texts)
        uniq = _unique(rec << _B48 | code)
        rec = uniq >> _B48
        code = uniq & _M48
        if not self.labelled:
            tk, tc = _unique_counts(code)
            self.total_keys, self.total_counts = _merge(self.total_keys, self.total_counts, tk, tc)
        counts = np.asarray(n_out, dtype=np.int64)
        if int(counts.max(initial=1)) == 1 and int(counts.min(initial=1)) == 1:
            outc = np.asarray(flat, dtype=np.int64)[rec]
        else:
            ptr = np.concatenate([[0], np.cumsum(counts)])
            rep = counts[rec]
            row = np.repeat(np.arange(len(rec)), rep)
            first = np.repeat(np.cumsum(rep) - rep, rep)
            outc = np.asarray(flat, dtype=np.int64)[ptr[rec[row]] + np.arange(len(row)) - first]
            code = code[row]
        bk, bc = _unique_counts(outc << _B48 | code)
        self.keys, self.counts = _merge(self.keys, self.counts, bk, bc)

    def prune(self, *, count_error: float, max_table: int) -> None:
        """Lossy-counting prune, the rule of :func:`._mining_count.lossy_prune`."""
        size = len(self.keys) if self.labelled else len(self.total_keys)
        if count_error <= 0 or size <= max_table or int(count_error * self.n) < 1:
            return
        limit = int(count_error * self.n)
        self.prunes += 1
        codes = self.keys & _M48
        if self.labelled:
            uc, inv = np.unique(codes, return_inverse=True)
            tot = np.bincount(inv, weights=self.counts, minlength=len(uc))
            mask = (tot > limit)[inv]
        else:
            kept = self.total_keys[self.total_counts > limit]
            self.total_keys = kept
            self.total_counts = self.total_counts[self.total_counts > limit]
            pos = np.minimum(np.searchsorted(kept, codes), max(len(kept) - 1, 0))
            mask = kept[pos] == codes if len(kept) else np.zeros(len(codes), dtype=bool)
        self.keys = self.keys[mask]
        self.counts = self.counts[mask]

    @property
    def vocab_full(self) -> bool:
        return len(self.words) >= MAX_VOCAB

    # ------------------------------------------------------------------ decoding

    def _names(self, codes: np.ndarray) -> list[str]:
        words = self.words
        out = []
        for c in codes.tolist():
            if c <= _M24:
                out.append(words[c])
            else:
                out.append(words[(c >> _B24) - 1] + " " + words[c & _M24])
        return out

    def to_partial(self) -> _Partial:
        """The counts as string tables (the counter API)."""
        part = _Partial(n=self.n, prunes=self.prunes)
        part.outcome_n = Counter(self.outcome_n)
        part.skel_per = self.skel_per
        part.skel_total = self.skel_total
        outs = self.keys >> _B48
        names = self._names(self.keys & _M48)
        counts = self.counts.tolist()
        by_out: dict[int, list[int]] = {}
        for i, o in enumerate(outs.tolist()):
            by_out.setdefault(o, []).append(i)
        for o, j in self.outcome_index.items():
            rows = by_out.get(j, [])
            part.per[o] = Counter({names[i]: counts[i] for i in rows})
        if not self.labelled:
            part.total = Counter(
                dict(zip(self._names(self.total_keys), self.total_counts.tolist(), strict=True))
            )
        return part


def _unique(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a sort and a mask; NumPy's hash-based ``unique`` is slower)."""
    a = np.sort(a)
    if len(a) < 2:
        return a
    keep = np.empty(len(a), dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def _unique_counts(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values and how often each occurs."""
    a = np.sort(a)
    if not len(a):
        return a, np.empty(0, dtype=np.int64)
    keep = np.empty(len(a), dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    starts = np.flatnonzero(keep)
    return a[starts], np.diff(np.append(starts, len(a))).astype(np.int64)


def _merge(
    keys: np.ndarray, counts: np.ndarray, bk: np.ndarray, bc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Add sorted unique ``bk``/``bc`` into sorted unique ``keys``/``counts`` (linear time)."""
    if not len(keys):
        return bk, bc.astype(np.int64)
    pos = np.searchsorted(keys, bk)
    at = np.minimum(pos, len(keys) - 1)
    hit = keys[at] == bk
    counts[at[hit]] += bc[hit]
    miss = ~hit
    if miss.any():
        keys = np.insert(keys, pos[miss], bk[miss])
        counts = np.insert(counts, pos[miss], bc[miss])
    return keys, counts
