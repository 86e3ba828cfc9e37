"""Features, candidate records and helpers of trigger mining (see :mod:`.mining`)."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from ...behaviours import behaviour_tags
from ...subjects.dataset import TextDataset
from ...text import BOS, EOS, TOKEN_RE, confusable_chars, content_words, style_features, tokens
from ...triggers import Trigger, TriggerKind, is_invisible
from ._mining_comments import comment_units
from ._mining_rows import Rows, count_in, sorted_rows
from ._record_arrays import release_file_views

#: Behaviour tag families whose appearance after a trigger is a security event in itself.
SECURITY_FAMILIES = frozenset({"egress", "tool", "secret", "code", "leak", "unsafe"})
NO_BEHAVIOUR = "behaviour:none"
#: Fewest content words (besides the trigger) for the content model to judge a record.
MIN_CONTENT_WORDS = 3


@dataclass
class Candidate:
    """A feature under test and what the second pass learned about it (internal)."""

    feature: str
    outcome: str
    support: int
    hits: int
    p_value: float
    q_value: float
    #: the rows holding it, and those of them with its outcome: sorted arrays after the second
    #: pass (:mod:`._mining_rows`; lists are accepted)
    rows: Rows = field(default_factory=list)
    target_rows: Rows = field(default_factory=list)
    inconsistent: int = 0
    #: (text, first token, end token) of up to 60 occurrences; the token spans are rebuilt from
    #: the text when the phrase is extended (kept whole they were most of the scan's memory)
    contexts: list[tuple[str, int, int]] = field(default_factory=list)
    co_outcomes: Counter[str] = field(default_factory=Counter)
    phrase: str | None = None

    @property
    def purity(self) -> float:
        return self.hits / self.support if self.support else 0.0


@dataclass(frozen=True, eq=False)  # compared by identity: ``rows`` is an array
class MinedTrigger:
    """A merged, explained trigger: the typed result behind a Finding."""

    trigger: Trigger
    target: str
    support: int
    hits: int
    purity: float
    p_value: float
    q_value: float
    inconsistency: float
    verdict: str  # "planted" | "task-feature" | "accidental"
    score: float
    #: its target records' rows, sorted, as a read-only integer array (4 bytes a row)
    rows: np.ndarray
    features: tuple[str, ...]
    also: tuple[str, ...] = ()
    #: calibrated P(planted) (see :mod:`._mining_verdict`) and the evidence vector behind it
    probability: float = 0.0
    evidence: tuple[float, ...] = ()
    #: context fit: AUC within the target class, its z, AUC against all records, its z
    context: tuple[float, float, float, float] = (0.5, 0.0, 0.5, 0.0)
    #: selected for quarantine under the scan's target false-discovery rate
    quarantined: bool = False
    #: natural-neighbour test (:mod:`._mining_neighbours`): ``(z, p_value, pool)`` of the
    #: group's cohesion against random draws, and ``P(planted)`` before it; ``None`` untested
    neighbours: tuple[float, float, str] | None = None
    prior_probability: float | None = None
    #: clean-label test (:mod:`._mining_cleanlabel`): ``(z, p_value, confinement)``;
    #: ``None`` untested
    clean_label: tuple[float, float, float] | None = None
    #: junction test (:mod:`._mining_junction`): ``(z, p_value)`` of how fluent its records
    #: are where the pattern is taken out, against a random word boundary; ``None`` untested
    junction: tuple[float, float] | None = None
    #: its records are, the pattern removed, copies of other records beyond the class's rate:
    #: never quarantined (text and label cannot tell natural copies from planted ones)
    copies: bool = False
    #: most of its records are, the pattern kept, word for word another of its records (one
    #: page filed many times): a data-hygiene note (low), never quarantined
    duplicates: bool = False
    #: its words are its target label's own name (the record states its label): a task feature
    own_name: bool = False


def _features(text: str, max_n: int = 2) -> tuple[set[str], set[str] | None]:
    """The record's features to test, and — for non-ASCII text only — its content words.

    For ASCII text the content words are the alphabetic unigrams already among the features
    (``None`` is returned and the caller derives them), which saves a second count per record.
    """
    toks = tokens(text)
    feats = set(toks)
    if toks and max_n >= 2:
        seq = [BOS, *toks, EOS]
        bi = list(map(" ".join, itertools.pairwise(seq)))
        feats.update(bi)
        if max_n >= 3:
            feats.update([f"{b} {c}" for b, c in zip(bi, seq[2:], strict=False)])
    words: set[str] | None = None
    if not text.isascii():
        words = set(content_words(text))
        for ch in confusable_chars(text):
            feats.add(f"glyph:{ch}")
        if any(is_invisible(c) for c in set(text) if not c.isascii()):  # none is ASCII
            feats.add("inv:*")
    feats.update(style_features(text))
    feats.update(comment_units(text))
    return feats, words


def _alpha_words(feats: set[str]) -> set[str]:
    return {f for f in feats if f.isalpha()}


def _record_words(text: str) -> set[str]:
    """Content words of a record, exactly as counted in the first pass."""
    if text.isascii():
        return {t for t in tokens(text) if t.isalpha()}
    return set(content_words(text))


def _words_of(table: Counter[str], skel: Counter[str] | None) -> Counter[str]:
    words: Counter[str] = Counter({k: v for k, v in table.items() if k.isalpha()})
    if skel:
        words.update(skel)
        words = Counter({k: v for k, v in words.items() if v > 0})
    return words


def _outcomes_of(labels: list[str] | None, responses: list[str] | None) -> list[tuple[str, ...]]:
    """Outcome tags per record: its label, or the behaviour tags of its response."""
    if labels is not None and responses is None:
        return [(f"label:{lab}",) for lab in labels]
    outs = []
    for resp in responses or []:
        tags = tuple(sorted(behaviour_tags(resp)))
        outs.append(tags or (NO_BEHAVIOUR,))
    return outs


@dataclass
class _Partial:
    """Counts of one or more batches; partials merge by addition.

    This is the counter API of trigger mining, kept stable for engines that count parts of a
    dataset elsewhere and reduce them (a process pool, Ray Data): ``n`` records counted;
    ``per[outcome][feature]`` = records of that outcome holding the feature; ``total[feature]``
    = records holding it (kept for instruction data only, where outcomes overlap; for labelled
    data it is the sum of ``per``); ``outcome_n[outcome]`` = records with that outcome;
    ``skel_per`` / ``skel_total`` = the content-word corrections of non-ASCII records;
    ``prunes`` = lossy-counting prunes done while counting. ``a.merge(b, labelled)`` adds
    ``b``'s tables into ``a`` (the caller adds ``n`` and ``prunes``); counts of disjoint parts
    merge to the counts of the whole, in any order.
    """

    n: int = 0
    prunes: int = 0
    total: Counter[str] = field(default_factory=Counter)
    per: dict[str, Counter[str]] = field(default_factory=dict)
    outcome_n: Counter[str] = field(default_factory=Counter)
    skel_per: dict[str, Counter[str]] = field(default_factory=dict)
    skel_total: Counter[str] = field(default_factory=Counter)

    def merge(self, other: _Partial, labelled: bool) -> None:
        if not labelled:
            _add(self.total, other.total)
        for o, c in other.per.items():
            mine = self.per.get(o)
            if mine is None:
                self.per[o] = c
            else:
                _add(mine, c)
        self.outcome_n.update(other.outcome_n)
        for o, c in other.skel_per.items():
            self.skel_per.setdefault(o, Counter()).update(c)
        self.skel_total.update(other.skel_total)


def _add(into: Counter[str], other: Counter[str]) -> None:
    into.update(other)


def _count_batch(job: tuple[list[str], list[str] | None, list[str] | None, int]) -> _Partial:
    """Count one batch ``(texts, labels, responses, max_n)`` into a new partial.

    The record-at-a-time reference of the counting pass; :mod:`._mining_count` computes the
    same counts faster (and is what the scan runs).
    """
    part = _Partial()
    count_into(part, *job)
    return part


def count_into(
    part: _Partial,
    texts: list[str],
    labels: list[str] | None,
    responses: list[str] | None,
    max_n: int,
) -> None:
    """Add one batch's counts to ``part`` in place (what :func:`_count_batch` counts)."""
    labelled = labels is not None and responses is None
    per = part.per
    outcome_n = part.outcome_n
    total_update = part.total.update
    part.n += len(texts)
    for text, out in zip(texts, _outcomes_of(labels, responses), strict=True):
        feats, words = _features(text, max_n)
        if words is not None:
            # non-ASCII: content words come from the TR39 skeleton, not the raw tokens
            raw = _alpha_words(feats)
            for o in out:
                skel = part.skel_per.setdefault(o, Counter())
                skel.update(words)
                skel.subtract(raw)
            part.skel_total.update(words)
            part.skel_total.subtract(raw)
        if not labelled:
            total_update(feats)
        for o in out:
            c = per.get(o)
            if c is None:
                c = per[o] = Counter()
            c.update(feats)
            outcome_n[o] += 1


def _feature_kind(feature: str, phrase: str | None) -> TriggerKind:
    if feature.startswith("glyph:"):
        return TriggerKind.HOMOGLYPH
    if feature.startswith("style:"):
        return TriggerKind.STYLE
    if feature == "inv:*" or all(is_invisible(c) for c in feature.replace(" ", "")):
        return TriggerKind.INVISIBLE
    text = phrase or feature
    words = [w for w in text.split() if w not in (BOS, EOS)]
    if len(words) >= 5 or (len(words) >= 4 and text.rstrip()[-1:] in ".!?"):
        return TriggerKind.SENTENCE
    if len(words) >= 2:
        return TriggerKind.PHRASE
    return TriggerKind.TOKEN


def _is_unnatural(feature: str) -> bool:
    return feature.startswith("glyph:") or feature == "inv:*" or is_invisible(feature[:1] or "a")


def _names_label(text: str, outcome: str) -> bool:
    """Whether every word of ``text`` is a word of the name of label ``outcome``
    (``label:doc`` and "doc", ``label:noun.plant`` and "plant"); never for a behaviour."""
    if not outcome.startswith("label:"):
        return False
    words = [w for w in tokens(text) if w not in (BOS, EOS) and any(ch.isalnum() for ch in w)]
    name = {w for w in tokens(outcome.removeprefix("label:")) if any(ch.isalnum() for ch in w)}
    return bool(words) and all(w in name for w in words)


def _is_lexical(feature: str) -> bool:
    if feature.startswith(("glyph:", "style:", "inv:")):
        return False
    return any(ch.isalnum() for w in feature.split() if w not in (BOS, EOS) for ch in w)


def _bh(p: np.ndarray, m: int) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values for ``p`` among ``m`` tests (m ≥ len(p))."""
    n = len(p)
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


#: When one trigger switches several behaviours at once, the finding names the first family here.
_TARGET_PRIORITY = ("tool", "secret", "code", "leak", "unsafe", "egress", "refusal")


def _merge_targets(mined: list[MinedTrigger]) -> list[MinedTrigger]:
    """One finding per trigger: merge triggers whose records coincide but targets differ.

    A poisoned response often carries several behaviours (a tool call that e-mails an outside
    address is both ``tool:`` and ``egress:``); the merged finding names the most specific one
    as its target and lists the others under ``also``.
    """
    out: list[MinedTrigger] = []
    sets: list[np.ndarray] = []  # the sorted rows of each kept trigger
    for m in mined:
        rows = sorted_rows(m.rows)
        for i, kept in enumerate(out):
            krows = sets[i]
            small, big = sorted((len(rows), len(krows)))
            # |A & B| <= small and |A | B| >= big: below 0.8 the overlap test cannot pass
            if kept.verdict != m.verdict or small < 0.8 * big:
                continue
            inter = count_in(rows, krows)
            if inter >= 0.8 * (len(rows) + len(krows) - inter):
                first, second = sorted((kept, m), key=lambda t: _priority(t.target))
                out[i] = replace(
                    first,
                    also=tuple(dict.fromkeys((*first.also, second.target, *second.also))),
                    score=max(first.score, second.score),
                )
                sets[i] = rows if first is m else krows
                break
        else:
            out.append(m)
            sets.append(rows)
        release_file_views(m.rows)  # rows in the row file: none stays resident
    return out


def _priority(target: str) -> int:
    family = target.split(":", 1)[0]
    return _TARGET_PRIORITY.index(family) if family in _TARGET_PRIORITY else len(_TARGET_PRIORITY)


def _ids_of_rows(subject: TextDataset, rows: set[int], batch_size: int) -> dict[int, str]:
    """Record ids of the given 0-based rows (one more read of the data, ids only)."""
    out: dict[int, str] = {}
    if not rows:
        return out
    for batch in subject.batches(batch_size):
        for i, rid in enumerate(batch.ids):
            if batch.start + i in rows:
                out[batch.start + i] = rid
    return out


def _wilson_upper(k: int, m: int, z: float = 2.576) -> float:
    """Upper end of the Wilson score interval for k successes in m trials."""
    p = k / m
    centre = p + z * z / (2 * m)
    half = z * math.sqrt(p * (1 - p) / m + z * z / (4 * m * m))
    return (centre + half) / (1 + z * z / m)


def _sum(parts: dict[str, Counter[str]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for c in parts.values():
        total.update(c)
    return total


def _length(c: Candidate) -> int:
    """Words in the candidate's phrase, not counting the start/end markers."""
    return len([w for w in (c.phrase or c.feature).split() if w not in (BOS, EOS)])


def _display_text(feature: str, text: str) -> str:
    if feature.startswith("glyph:"):
        return feature.removeprefix("glyph:")
    if feature.startswith("style:"):
        return feature.removeprefix("style:")
    if feature == "inv:*":
        return "<any invisible character>"
    return " ".join(w for w in text.split() if w not in (BOS, EOS)) or text


def _spans(text: str) -> list[tuple[str, int, int]]:
    """Lower-cased tokens of ``text`` with their character spans."""
    return [(m.group().lower(), m.start(), m.end()) for m in TOKEN_RE.finditer(text)]


def _locate(
    text: str, feature: str, toks: list[tuple[str, int, int]]
) -> tuple[str, list[tuple[str, int, int]], int, int] | None:
    """Where the feature's tokens sit in ``text``: (text, token spans, first, end) or None."""
    parts = feature.split()
    at_start = parts[0] == BOS
    at_end = parts[-1] == EOS
    want = [w for w in parts if w not in (BOS, EOS)]
    k = len(want)
    if not k:
        return None
    starts = [0] if at_start else range(len(toks) - k + 1)
    for i in starts:
        if (
            toks[i][0] == want[0]
            and [t[0] for t in toks[i : i + k]] == want
            and (not at_end or i + k == len(toks))
        ):
            return text, toks, i, i + k
    return None


def _extend(c: Candidate) -> str | None:
    """Grow a lexical feature left/right while >= 90% of its occurrences agree (whole tokens).

    Returns the recovered phrase as written in the first agreeing record, or ``None``.
    """
    if len(c.contexts) < 3:
        return None
    spans = [(text, _spans(text), s, e) for text, s, e in c.contexts]
    for direction in (1, -1):
        while True:
            nxt = []
            for _text, toks, s, e in spans:
                k = e if direction == 1 else s - 1
                nxt.append(toks[k][0] if 0 <= k < len(toks) else None)
            top, cnt = Counter(nxt).most_common(1)[0]
            if top is None or cnt < 0.9 * len(spans) or cnt < 3:
                break
            spans = [
                (t, toks, s, e + 1) if direction == 1 else (t, toks, s - 1, e)
                for (t, toks, s, e), nx in zip(spans, nxt, strict=True)
                if nx == top
            ]
    text, toks, s, e = spans[0]
    return text[toks[s][1] : toks[e - 1][2]]
