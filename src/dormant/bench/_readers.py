"""Readers for the dictionary files of Debian packages (WordNet data files, dictd databases).

Private helpers of :mod:`dormant.bench.corpus`; each reader yields :class:`RawEntry` tuples
(cleaned text, headword, part of speech, topic) in file order.

Formats:

- WordNet 3.0 ``data.<pos>`` (``wndb(5WN)``): ``offset lex_filenum ss_type w_cnt word lex_id ...
  p_cnt [ptr ...] [frames ...] | gloss``; ``w_cnt`` is two hex digits, ``p_cnt`` three decimal
  digits; the licence header lines start with two spaces.
- dictd (``dictd(8)``): ``<name>.index`` lines ``headword TAB offset TAB length`` where offset and
  length are base64 numbers (alphabet ``A-Za-z0-9+/``, most significant digit first) into the
  uncompressed ``<name>.dict.dz`` (dictzip, a gzip file).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ..errors import DataFormatError
from ._dictzip import DictzipReader

MIN_WORDS = 8
MAX_WORDS = 80

#: WordNet lexicographer files by number (``lexnames(5WN)``), used as the entry's topic.
LEXNAMES = (
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
)

_WN_POS = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
_ABBREV_POS = {
    "n": "noun",
    "v": "verb",
    "vt": "verb",
    "vi": "verb",
    "a": "adj",
    "adj": "adj",
    "adv": "adv",
}
_B64 = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
}
_SENTENCE_END = re.compile(r"[.!?][\"”’)]?\s+(?=[A-Z\"“(])")
_ABBREVIATION = re.compile(
    r"(?:\b[A-Za-z]|\b(?:e\.g|i\.e|etc|vs|cf|Mr|Mrs|Dr|St|Jr|Sr|Inc|Ltd|Co|Corp|No|Vol|"
    r"Syn|Fig|approx|esp|U\.S|U\.K))\.$"
)
_XREF = re.compile(r"\{\s*([^{}]*?)\s*\}")
_BRACES = frozenset("{}")
_TERMINAL = frozenset('.!?"”’)')
_PRONUNCIATION = re.compile(r"^(?:/[^/]{1,40}/,?\s*)+")
_DATE = re.compile(r"\(\d{4}-\d{2}-\d{2}\)")


class RawEntry(NamedTuple):
    """One cleaned dictionary entry before it becomes a ``CorpusEntry``."""

    text: str
    headword: str
    pos: str
    topic: str


def collapse(text: str) -> str:
    """Collapse runs of whitespace into one space and strip the ends."""
    return " ".join(text.split())


def fit_length(text: str, *, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> str:
    """Return ``text`` cut at a sentence boundary to at most ``max_words``, or ``""``.

    ``""`` means the entry is unusable: shorter than ``min_words``, or a first sentence longer
    than ``max_words``.
    """
    words = text.split()
    if len(words) < min_words:
        return ""
    if len(words) <= max_words:
        return text
    kept: list[str] = []
    count = 0
    for sentence in split_sentences(text):
        n = len(sentence.split())
        if count + n > max_words:
            break
        kept.append(sentence)
        count += n
    if count < min_words:
        return ""
    return " ".join(kept)


def split_sentences(text: str) -> list[str]:
    """Split at ``.``/``!``/``?`` followed by a capitalised word, not after initials or
    common abbreviations (``e.g.``, ``Dr.``, ``U.S.``)."""
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        end = m.end()
        candidate = text[start:end].rstrip()
        if _ABBREVIATION.search(candidate.rstrip('"”’)')):
            continue
        out.append(candidate)
        start = end
    out.append(text[start:].strip())
    return [s for s in out if s]


# -- WordNet --------------------------------------------------------------------------------


def read_wordnet(paths: list[Path], *, shuffle_seed: int | None = None) -> Iterator[RawEntry]:
    """Parse WordNet ``data.<pos>`` files; yield glosses of 8..80 words.

    Synsets come in file order, or shuffled by ``shuffle_seed`` (a caller wanting a few
    entries then stops early instead of parsing all 117,000 synsets).
    """
    lines: list[tuple[Path, int, str]] = []
    for path in paths:
        try:
            with path.open(encoding="utf-8", errors="strict") as fh:
                lines += [
                    (path, n, line)
                    for n, line in enumerate(fh, start=1)
                    if line.strip() and not line.startswith("  ")  # licence header
                ]
        except UnicodeDecodeError as exc:
            raise DataFormatError(f"{path}: expected UTF-8 text ({exc}).") from exc
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(lines)
    for path, lineno, line in lines:
        try:
            yield from _wordnet_line(line)
        except (ValueError, IndexError) as exc:
            raise DataFormatError(
                f"{path}:{lineno}: expected a WordNet data line "
                f"'offset lex_filenum ss_type w_cnt words p_cnt pointers | gloss'; "
                f"got {line[:80]!r} ({exc})."
            ) from exc


def _wordnet_line(line: str) -> Iterator[RawEntry]:
    head, sep, gloss = line.partition(" | ")
    if not sep:
        raise ValueError("no ' | ' before the gloss")
    fields = head.split()
    lex_filenum = int(fields[1])
    ss_type = fields[2]
    w_cnt = int(fields[3], 16)
    words = fields[4 : 4 + 2 * w_cnt : 2]
    p_cnt = int(fields[4 + 2 * w_cnt])
    if len(fields) < 5 + 2 * w_cnt + 4 * p_cnt:
        raise ValueError(f"{p_cnt} pointers announced, fewer present")
    if ss_type not in _WN_POS or not words:
        raise ValueError(f"unknown synset type {ss_type!r}")
    text = fit_length(collapse(gloss).rstrip(";"))
    if not text:
        return
    headword = re.sub(r"\([a-z]+\)$", "", words[0]).replace("_", " ")
    topic = LEXNAMES[lex_filenum] if lex_filenum < len(LEXNAMES) else ""
    yield RawEntry(text, headword, _WN_POS[ss_type], topic)


# -- dictd ----------------------------------------------------------------------------------


def b64_number(s: str) -> int:
    """Decode a dictd base64 number (most significant digit first)."""
    value = 0
    for ch in s:
        value = value * 64 + _B64[ch]
    return value


def read_dictd(
    index_path: Path,
    dict_path: Path,
    name: str,
    *,
    shuffle_seed: int | None = None,
    whole: bool = True,
) -> Iterator[RawEntry]:
    """Yield cleaned entries of a dictd database, one per distinct article.

    Articles come in file order, or shuffled by ``shuffle_seed`` (so that a caller wanting a
    few entries can stop early instead of cleaning all of them). ``whole=False`` inflates only
    the chunks of the articles read, for a caller that wants a few.
    """
    data = DictzipReader(dict_path)
    if whole:
        data.inflate_all()
    spans: set[tuple[str, str]] = set()  # base64 (offset, length); aliases share an article
    with index_path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or not parts[1] or not parts[2]:
                raise DataFormatError(
                    f"{index_path}:{lineno}: expected 'headword TAB offset TAB length'; "
                    f"got {line[:80]!r}."
                )
            if not parts[0].startswith(("00-", "00database")):
                spans.add((parts[1], parts[2]))
    if shuffle_seed is None:
        order = sorted(spans, key=lambda span: (_decode(index_path, span[0]), span[1]))
    else:
        order = sorted(spans)  # a fixed order to shuffle; decoding waits for the read
        random.Random(shuffle_seed).shuffle(order)
    clean = {"jargon": _clean_jargon, "foldoc": _clean_foldoc, "gcide": _clean_gcide}[name]
    for off, size in order:
        raw = data.read(_decode(index_path, off), _decode(index_path, size))
        article = raw.decode("utf-8", errors="replace")
        entry = clean(article)
        if entry is not None and entry.text[-1] in _TERMINAL and not _BRACES & set(entry.text):
            yield entry


def _decode(index_path: Path, s: str) -> int:
    try:
        return b64_number(s)
    except KeyError as exc:
        raise DataFormatError(
            f"{index_path}: offsets and lengths must be dictd base64 numbers "
            f"(A-Z a-z 0-9 + /); got {s!r}."
        ) from exc


def _paragraphs(lines: list[str]) -> list[list[str]]:
    paras: list[list[str]] = []
    cur: list[str] = []
    for line in lines:
        if line.strip():
            cur.append(line)
        elif cur:
            paras.append(cur)
            cur = []
    if cur:
        paras.append(cur)
    return paras


def _markup(text: str) -> str:
    """Resolve ``{cross reference}`` markup: keep the words, keep a URL, drop local pages."""

    def xref(m: re.Match[str]) -> str:
        inner = m.group(1)
        link = re.fullmatch(r"(.*?)\s*\(([^()\s]+)\)", inner)
        if link:
            words, target = link.groups()
            if target.startswith(("http://", "https://", "ftp://")):
                return f"{words} ({target})" if words else target
            return words
        return inner

    text = collapse(text)
    while True:  # nested {{cross references}}
        resolved = _XREF.sub(xref, text)
        if resolved == text:
            return collapse(text)
        text = resolved


def _first_sense(paras: list[str]) -> list[str]:
    """Keep only sense 1 of a numbered multi-sense article (paragraphs already collapsed)."""
    if not paras or not re.match(r"1\.\s", paras[0]):
        return paras
    out = [paras[0][2:].lstrip()]
    for p in paras[1:]:
        if re.match(r"\d+\.\s", p):
            break
        out.append(p)
    return out


_LEADING_TAGS = re.compile(r"^(?:\[[^\]]*\]\s*)+")  # [Usenet], [from telecommunications ...]


def _clean_jargon(article: str) -> RawEntry | None:
    head, _, body = article.partition("\n\n")
    head_lines = head.split("\n")
    headword = head_lines[0].strip()
    pos = ""
    if len(head_lines) > 1:
        m = re.search(r"(?:^|,)\s*([a-z]+)\.", head_lines[1].split("/")[-1])
        pos = _ABBREV_POS.get(m.group(1), "") if m else ""
    paras = [collapse(" ".join(p)) for p in _paragraphs(body.split("\n"))]
    while paras and _LEADING_TAGS.match(paras[0]):
        paras[0] = _LEADING_TAGS.sub("", paras[0])
        if not paras[0]:
            paras.pop(0)
    text = _PRONUNCIATION.sub("", _markup(" ".join(_first_sense(paras))))
    m = re.match(r"(n|adj|v|vt|vi|adv)\.\s+", text)
    if m:
        pos = pos or _ABBREV_POS.get(m.group(1), "")
        text = text[m.end() :]
    text = fit_length(text)
    return RawEntry(text, headword, pos, "") if text and headword else None


def _clean_foldoc(article: str) -> RawEntry | None:
    head, _, body = article.partition("\n\n")
    headword = head.split("\n")[0].strip()
    kept: list[str] = []
    topic = ""
    for para in _paragraphs(body.split("\n")):
        first = para[0]
        if first.startswith("    ") or first.strip().startswith("["):
            continue  # code, formulae, bibliography
        line = collapse(" ".join(para))
        if _DATE.fullmatch(line) or line in ("[Details?]",):
            continue
        for _ in range(2):  # "<category> /pronunciation/" in either order
            line = _PRONUNCIATION.sub("", line)
            m = re.match(r"<([^>]+)>\s*", line)
            if m:
                topic = topic or m.group(1).split(",")[0].strip()
                line = line[m.end() :]
        kept.append(line)
    text = _markup(" ".join(kept))
    text = collapse(_DATE.sub("", text.replace("[Details?]", "")))
    text = fit_length(text)
    if text.startswith(("<", "/")):
        return None  # a malformed category or pronunciation in the source
    return RawEntry(text, headword, "", topic) if text and headword else None


_GCIDE_SOURCE = re.compile(r"^\s*\[[^\]]*(?:Webster|WordNet|PJC|Century|Chambers)[^\]]*\]\s*$")


def _clean_gcide(article: str) -> RawEntry | None:
    lines = article.split("\n")
    header = lines[0]
    headword = header.split("\\")[0].split(",")[0].strip()
    after = header.rsplit("\\", 1)[-1] if "\\" in header else ""
    m = re.match(r"\s*,?\s*(?:\([^)]*\)\s*,?\s*)?([a-z]+)\.", after)
    pos = _ABBREV_POS.get(m.group(1), "") if m else ""
    i, depth = 1, header.count("[") - header.count("]") + header.count("{") - header.count("}")
    while i < len(lines) and (depth > 0 or lines[i].strip().startswith("[")):
        depth += lines[i].count("[") - lines[i].count("]")
        depth += lines[i].count("{") - lines[i].count("}")
        i += 1
    definition: list[str] = []
    for line in lines[i:]:
        if not line.strip() or _GCIDE_SOURCE.match(line) or line.strip().startswith("Syn:"):
            break
        definition.append(line)
    text = _markup(" ".join(definition))
    text = re.sub(r"^(?:\d+\.\s*)?(?:\([A-Z][^)]{0,30}\)\s*)*", "", text)
    text = re.sub(r"\s*\[(?:Obs|R|Colloq|Archaic|Prov\. Eng|Poetic|Local)\.?\]\s*", " ", text)
    text = collapse(re.sub(r"\s--\s?[A-Z][^;]*$", "", text))
    if "[" in text or "\\" in text or not text:
        return None
    text = fit_length(text)
    return RawEntry(text, headword, pos, "") if text and headword else None
