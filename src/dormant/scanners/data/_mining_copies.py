"""Copies and duplicates among a planted-looking group's records (the clean-label test's part).

**Copies: what text and label cannot separate.** Where a label is set by metadata, natural
records are often *copies* of other records with a fixed suffix — Debian's ``-prof`` package
description is its ``-dev`` package's plus "; profiling libraries", a Python 3 package's is
its Python 2 package's plus "(Python 3)". Such a group is a random-looking share of its class,
consistent, and one exact string: a clean-label plant in every respect the text shows, and
also what an attacker who *adds* poisoned copies of genuine records leaves. The test counts
the group's records that, the pattern removed, are word for word another record of the data
(or another of the group's records, the pattern removed: pages that share a description and
differ only in a name line shared too). Its null is the class *as it reads with the pattern
removed* — a record whose copy now holds the pattern still has a copy, which is what an
insertion into drawn records leaves (counting only the records without the pattern, as
before, made a plant in a section whose pages are often filed twice look like an excess: 47 %
where the section has 66 %). For a group whose records read as another class (a dirty-label
plant takes its records from anywhere in the data) the null is the data's own rate of records
that are another record where that is higher (:class:`._mining_hashcount.RepeatSample`;
manual pages copied word for word across sections made a relabelled log token "copies" with
two such pairs among its 81 records, against a class with none). A **copy template** is a
group *most* of whose records are template copies (:func:`template_null`: the one-sided
binomial test is against the copy rate at a template share of one half, at the scan's
``alpha``): a plant inserted into drawn records of a class with many copies has copies at the
class's rate, a little more or less by chance (seed 7's phrase: 67 of 81 against 66 %,
binomial p 0.0007 — an excess by chance, not a template), while Debian's ``-prof`` group is
copies throughout. A copy template stays a finding (medium at most) but is never quarantined,
and the finding says that text and label alone cannot tell it apart. Copies are counted for
every planted-looking group, also one whose records read as another class (only copies that
carry the same label count: a record copied from another class and relabelled is a dirty-label
plant, not a template).

**Duplicates: one page filed many times.** A natural duplicate repeats *with* the pattern in
it (``stat``, ``fstat`` and ``lstat`` share one manual page, each filed as a record); an
inserted string — at a random place, even into copied pages — leaves every poisoned record its
own text. A group more than half of whose records are word for word another of its records
with the pattern kept (:data:`DUPLICATES_SHARE`) is *duplicates*: its link to the outcome is
repetition, a data-hygiene fact reported at low, never quarantined. A pattern that is the
whole of its records (one text shared by several records) is duplicates and copies by
definition. Stated limit: an attacker who plants one poisoned text many times, word for word,
is reported as duplicates (low, with its record ids), not as a trigger.
"""

from __future__ import annotations

import zlib
from collections import Counter
from typing import Any

import numpy as np

#: Share of a group's records a copy template must explain (:func:`template_null`): more
#: than half — the group is the template's, not a draw of its class with some copies.
TEMPLATE_SHARE = 0.5
#: Share of a group's records that, the pattern kept, are word for word another of its
#: records, above which the group is one or a few pages filed many times (a data-hygiene note,
#: never a trigger): more than half of its evidence is repetition. A planted string inserted at
#: a random place leaves every poisoned record its own text, even in copied pages.
DUPLICATES_SHARE = 0.5


def template_null(base: float) -> float:
    """The share of copies a group must exceed to be called a copy *template*: most of its
    records copies beyond the class's rate ``base``.

    A group is a mixture of template records (a copy by construction) and records drawn from
    the class (a copy at rate ``base``); with a template share ``pi`` its copy rate is
    ``base + pi (1 - base)``. Calling the group copies — which caps it at medium and keeps
    it out of quarantine — needs the template to explain its records, ``pi > 1/2``, so the
    null is the copy rate at ``pi = 1/2``. A clean-label plant inserted into drawn records of a
    class whose pages are often filed twice (manual pages: 66 % of one section) has ``pi = 0``
    however many of its records are copies; a copy template (Debian's ``-prof`` packages)
    has ``pi`` near 1.
    """
    return base + TEMPLATE_SHARE * (1.0 - base)


def copy_test(
    blinded: list[str],
    row_toks: list[list[str]],
    whole: np.ndarray,
    members: np.ndarray,
    others: np.ndarray,
    seen: Any,
    target: str,
    floor: float,
) -> tuple[float, float, float]:
    """(copies, copies_p, duplicates) of one group in its class sample.

    ``blinded``/``row_toks``: each sampled class record with the pattern removed / its tokens;
    ``whole``: the group's records; ``members``/``others``: the records holding the pattern and
    those without it (both with text left once it is removed); ``seen``: the class's record
    hashes (:class:`._mining_hashcount.HashCounts`); ``floor``: a lowest copy rate for the
    null (the data's own, for a group whose records read as another class; else 0).
    ``copies`` is the share of the group's records that, blinded, are another record of the
    class or another group record; ``copies_p`` its one-sided binomial p-value against
    :func:`template_null` of the class's rate as it reads with the pattern removed (a record
    whose copy now holds the pattern still has a copy); ``duplicates`` the share of group
    records that, the pattern *kept*, are word for word another group record.
    """
    from scipy.stats import binomtest

    hashes = [record_hash(blinded[i]) for i in np.nonzero(whole)[0]]
    shared = Counter(hashes)
    seen_n = seen.counts(target, np.array(hashes, dtype=np.uint64)).tolist()
    copies = sum(c > 0 or shared[h] > 1 for h, c in zip(hashes, seen_n, strict=True))
    full = Counter(record_hash(" ".join(row_toks[i])) for i in np.nonzero(whole)[0])
    dups = sum(c for c in full.values() if c > 1) / max(int(whole.sum()), 1)
    rest = np.nonzero(others)[0]
    other_h = np.array([record_hash(blinded[i]) for i in rest], np.uint64)
    blind_members = Counter(record_hash(blinded[i]) for i in np.nonzero(members)[0])
    other_n = seen.counts(target, other_h) + np.array(
        [blind_members[int(h)] for h in other_h], dtype=np.int64
    )
    base = max(float(np.mean(other_n > 1)) if len(rest) else 0.0, floor)
    p = binomtest(
        copies, len(hashes), min(max(template_null(base), 1e-3), 1.0), alternative="greater"
    )
    return copies / len(hashes), float(p.pvalue), dups


def record_hash(text: str) -> int:
    """A 64-bit hash of a normalised record text (CRC-32 and Adler-32 side by side)."""
    data = text.encode("utf-8")
    return zlib.crc32(data) << 32 | zlib.adler32(data)
