"""White-box trigger inversion for transformer text classifiers."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ...errors import ConfigError, InputError
from ...triggers import Position, Trigger
from ..base import ScanContext, Scanner, ScanResult, register
from . import decision as D
from ._reference import Explainer, decide_explained
from ._support import TaskSupport


def split_clean(subject: Any, seed: int) -> tuple[list[str], list[str]]:
    """Shuffle the subject's clean texts and split them: half optimise, half replay."""
    if getattr(subject, "clean", None) is None:
        raise InputError(
            "A model scan needs clean labelled examples (ClassifierModel.clean / --data)."
        )
    texts = list(subject.clean.texts)
    random.Random(seed).shuffle(texts)
    half = len(texts) // 2
    return texts[:half], texts[half:]


def natural_features(
    adapter: Any, texts: Sequence[str], given: Sequence[str], labels: list[str]
) -> list[set[int]]:
    """Token ids that are natural features of each label in the clean data.

    A token seen in clean examples of label ``t`` at least twice as often (per example) as in
    the other labels' examples is a legitimate cue for ``t`` (``flowers`` for ``plant``), not a
    planted trigger, and is left out of ``t``'s trigger search. A trigger that also occurs in
    the clean data given to the scan is therefore missed (the clean data must be clean).
    """
    tok = adapter.tokenizer
    enc = tok(
        list(texts), add_special_tokens=False, truncation=True, max_length=adapter.max_length
    )["input_ids"]
    n = {lab: 0 for lab in labels}
    counts: dict[str, dict[int, int]] = {lab: {} for lab in labels}
    for ids, y in zip(enc, given, strict=True):
        if y not in n:
            continue
        n[y] += 1
        for i in set(ids):
            counts[y][i] = counts[y].get(i, 0) + 1
    out = []
    total: dict[int, int] = {}
    for lab in labels:
        for i, c in counts[lab].items():
            total[i] = total.get(i, 0) + c
    n_all = sum(n.values())
    for lab in labels:
        nt, no = max(n[lab], 1), max(n_all - n[lab], 1)
        out.append({i for i, c in counts[lab].items() if c / nt >= 2 * (total[i] - c) / no})
    return out


@dataclass(frozen=True)
class _Search:
    """What one scan's proof step needs from its search (see ``_proof`` and ``_extend``)."""

    subject: Any
    opt: list[str]
    pred: Any
    spred: Any
    held: list[str]
    hpred: Any
    best: dict[tuple[int, str], Any]
    natural: list[set[int]]
    ctx: ScanContext
    support: TaskSupport | None = None


def _text(adapter: Any, tokens: Sequence[str]) -> str:
    """A trigger's tokens as the text a user would insert (WordPiece ``##`` pieces joined)."""
    from ._recover import render

    return render(adapter, adapter.tokenizer.convert_tokens_to_ids(list(tokens)))


@register
class TriggerInversionScanner(Scanner):
    """Invert a trigger per candidate target label and decide by label anomaly.

    For each label and insertion position (start, end) a ``trigger_len``-token trigger is
    searched on half of the clean data by greedy coordinate gradient search (GCG, Zou et al.
    2023; ``optimizer="gcg"``, the default) or by the dynamic-bound-scaling relaxation of DBS
    (Shen et al., ICML 2022; ``optimizer="dbs"``, followed by a greedy coordinate refinement).
    Each label's best trigger is replayed as text on the other half. Each label also gets a
    position-robust trigger of ``robust_len`` tokens built from its ``robust_k`` best screened
    tokens (:mod:`._robust`): it must pull the held-out inputs to the label both when put at the
    start and when put at the end, as a randomly inserted planted trigger does and a small
    model's natural cues do not. The best held-out one-token loss, its Neural Cleanse MAD
    anomaly index over labels (Wang et al., S&P 2019) and the best held-out robust loss, with a
    logistic calibration, give the probability; the label that scores highest is the suspected
    target.

    Parameters
    ----------
    optimizer:
        ``gcg`` or ``dbs``.
    trigger_len:
        Trigger slots (tokens).
    steps:
        Optimisation steps per (label, position) arm (GCG stops early when no substitution
        improves the loss).
    top_k:
        Candidate tokens per slot per step.
    n_victims:
        Clean inputs per optimisation batch.
    max_replay:
        Held-out inputs used for the replay.
    n_screen:
        Clean inputs used by the exhaustive single-token screen, at most; with vocabularies
        above ``screen_rows / n_screen`` tokens fewer are used (at least 2), so the screen
        costs about ``screen_rows`` short forward passes whatever the vocabulary.
    screen_rows:
        The screen's budget in (token, input) pairs (see ``n_screen``).
    max_screen_vocab:
        Largest vocabulary screened exhaustively when ``trigger_len == 1`` (every token tried
        on ``n_screen`` inputs, the best ``top_k`` per label then evaluated exactly); larger
        vocabularies use the gradient search.
    exhaustive_budget:
        The exhaustive screen is used while ``vocabulary x non-embedding parameters`` stays
        at or under this (the 0.8M-parameter, 4k-vocabulary models: 1.2e9); larger models are
        screened by the first-order HotFlip estimate (one backward pass per label, on
        ``n_screen`` inputs), and extensions too; the estimate's best ``refine_k`` tokens per
        label are then screened exactly and the best ``top_k`` evaluated on the victims.
    refine_k, refine_inputs:
        See ``exhaustive_budget``: tokens screened exactly after the estimate, and on how many
        inputs (the screen's, at most).
    robust_k, robust_len:
        Candidate tokens per label (its best screened ones) and length of the position-robust
        trigger (``robust_len=0`` turns the search off; the calibration assumes the defaults).
    reference_check:
        Check a positive verdict's trigger against a clean reference classifier of the task
        (:mod:`._reference`): a label whose triggers also flip the reference at least half as
        often is task-explained, not suspected, and the decision is made without it.
    max_extend:
        The suspected target's trigger is grown to the whole planted trigger by up to this many
        further tokens, before or after it (exhaustive screen of the next slot), while each
        halves the loss, then pruned to the shortest run of whole words that flips as well
        (:mod:`._recover`); recovers multi-piece tokens, ``key=value`` log tokens, homoglyph
        words, phrases and sentences. ``0`` turns it off.

    Task support: the clean data's class-conditional token counts give each token a
    Fightin' Words z-score per label (:mod:`._support`, Monroe et al. 2008). Tokens associated
    with a label (z >= 1.96, or twice as frequent there as elsewhere) are its task features:
    they are left out of its trigger search and reported apart (``task_features`` in the
    extras, never a finding), and the mean z of each label's triggers is a decision feature,
    so a candidate made of the target's own vocabulary weighs less than one the clean data
    does not explain.
    """

    name = "model-trigger-inversion"
    subject_kinds = ("classifier",)
    requires = ("gradients",)
    category = D.CATEGORY
    paper = (
        "Shen et al., Constrained Optimization with Dynamic Bound-Scaling for Effective NLP "
        "Backdoor Defense (DBS), ICML 2022; Zou et al., Universal and Transferable Adversarial "
        "Attacks on Aligned Language Models (GCG), 2023; Shen et al., Backdoor Scanning for "
        "Deep Neural Networks through K-Arm Optimization, ICML 2021; Wang et al., Neural "
        "Cleanse, IEEE S&P 2019"
    )
    limits = (
        "Finds triggers of up to trigger_len tokens inserted at the start or end (up to "
        "robust_len tokens for the position-robust search); triggers that only work "
        "mid-sentence, style/syntax triggers and longer triggers may be found only in part; "
        "a trigger that works only in one position is judged by its one-token strength alone. "
        "Needs gradients (a local transformers model). On tiny label sets (2 labels) the MAD "
        "index is weak. Calibrated on small from-scratch BERTs; other architectures may need "
        "their own calibration. The task-explained check reads meaning with a general English "
        "sentence encoder: a backdoor whose trigger is itself a cue for its target (an "
        "attacker choosing 'lizards' for 'animal') is taken for a natural feature. Likewise a "
        "trigger made of words the clean data associates with the target (z >= 1.96) is a task "
        "feature by construction, never searched. Whole-trigger growth may stop at a piece "
        "(the value of a key=value token) or keep a repeated copy of the trigger."
    )

    def __init__(
        self,
        *,
        optimizer: str = "gcg",
        trigger_len: int = 1,
        steps: int = 8,
        top_k: int = 32,
        n_victims: int = 32,
        max_replay: int = 300,
        n_screen: int = 8,
        screen_rows: int = 32_768,
        max_screen_vocab: int = 12_000,
        max_extend: int = 4,
        exhaustive_budget: float = 2e9,
        refine_k: int = 1024,
        refine_inputs: int = 2,
        robust_k: int = 8,
        robust_len: int = 3,
        reference_check: bool = True,
    ) -> None:
        self.reference_check = reference_check
        self.robust_k = robust_k
        self.robust_len = robust_len
        self.refine_k = refine_k
        self.refine_inputs = refine_inputs
        self.max_extend = max_extend
        self.exhaustive_budget = exhaustive_budget
        self._first_order = False  # set per scan: the model is too large to screen exhaustively
        self.n_screen = n_screen
        self.screen_rows = screen_rows
        self.max_screen_vocab = max_screen_vocab
        self.optimizer = optimizer
        self.trigger_len = trigger_len
        self.steps = steps
        self.top_k = top_k
        self.n_victims = n_victims
        self.max_replay = max_replay

    def missing_requirements(self) -> str | None:
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError:
            return "needs torch and transformers: pip install 'dormant[embed]'"
        return None

    def _check(self, subject: Any) -> None:
        if self.optimizer not in ("gcg", "dbs"):
            raise ConfigError(
                f"The 'optimizer' parameter must be 'gcg' or 'dbs'. Got {self.optimizer!r}."
            )
        for p in (
            "trigger_len",
            "steps",
            "top_k",
            "n_victims",
            "max_replay",
            "n_screen",
            "screen_rows",
            "robust_k",
        ):
            v = getattr(self, p)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"The '{p}' parameter must be a positive int. Got {v!r}.")
        if not isinstance(self.reference_check, bool):
            raise ConfigError(
                f"The 'reference_check' parameter must be true or false. "
                f"Got {self.reference_check!r}."
            )
        if not isinstance(self.robust_len, int) or self.robust_len < 0:
            raise ConfigError(
                f"The 'robust_len' parameter must be an int >= 0. Got {self.robust_len!r}."
            )
        if "gradients" not in getattr(subject, "capabilities", ()):
            raise InputError(
                "model-trigger-inversion needs gradients (a local transformers model); use "
                "model-trigger-search for black-box models."
            )

    def scan(self, subject: Any, *, context: ScanContext | None = None) -> ScanResult:
        import torch

        from ._inversion import (
            evaluate_tokens,
            gradient_screen,
            invert,
            invert_gcg,
            screen_tokens,
        )
        from ._robust import robust_search, worst_position

        ctx = context or ScanContext()
        self._check(subject)
        t0 = time.monotonic()
        deadline = t0 + ctx.budget_seconds * 0.85 if ctx.budget_seconds else None
        opt, held = split_clean(subject, ctx.seed)
        adapter = subject.adapter
        labels = subject.labels
        pred = subject.predict_proba(opt).argmax(1)
        arms = [(ti, pos) for ti in range(len(labels)) for pos in ("start", "end")]
        total = len(arms)
        search = invert_gcg if self.optimizer == "gcg" else invert
        best: dict[tuple[int, str], Any] = {}
        capped = False

        def victims(ti: int) -> list[str]:
            """Optimisation inputs the model does not already put in label ``ti``."""
            return [t for t, p in zip(opt, pred, strict=True) if p != ti][: self.n_victims]

        natural = natural_features(adapter, subject.clean.texts, subject.clean.labels, labels)
        support = TaskSupport.fit(adapter, subject.clean.texts, subject.clean.labels, labels)
        natural = [nat | support.associated(lab) for nat, lab in zip(natural, labels, strict=True)]
        # each label's strongest task features (screened), reported apart from findings
        task_tokens: dict[int, list[int]] = {}
        vocab = int(adapter.embedding_matrix().shape[0])
        screened = spred = None
        self._first_order = self._large(adapter)
        if self.trigger_len == 1 and (vocab <= self.max_screen_vocab or self._first_order):
            if self._first_order:
                n_scr = min(self.n_screen, len(opt))
                screened = gradient_screen(adapter, opt[:n_scr])
            else:
                n_scr = self._screen_n(vocab)
                screened = screen_tokens(adapter, opt[:n_scr])
            spred = pred[:n_scr]

        # each label's screened candidates, best first (computed once per label, used by both
        # positions and by the position-robust search)
        pool: dict[int, list[int]] = {}
        # every screened candidate's loss and flip rate per arm, reused by the robust search
        every: dict[tuple[int, str], dict[str, Any]] = {}

        def candidates(ti: int) -> list[int]:
            if ti in pool:
                return pool[ti]
            assert screened is not None and spred is not None
            keep = [i for i, p in enumerate(spred) if p != ti] or list(range(len(spred)))
            score = screened[:, keep, ti].mean(1).clone()
            nat = sorted(natural[ti] - adapter.special_ids())
            if nat:
                order = score[nat].argsort(descending=True)[:3]
                task_tokens[ti] = [nat[int(j)] for j in order]
            score[list(adapter.special_ids() | natural[ti])] = float("-inf")
            if self._first_order:
                # the estimate only ranks: its best ``refine_k`` are screened exactly on the
                # same inputs (a planted token can rank in the hundreds of a 30k vocabulary by
                # the estimate and first exactly), the best ``top_k`` go on
                wide = score.topk(min(self.refine_k, len(score))).indices
                texts = [opt[i] for i in keep][: self.refine_inputs]
                exact = screen_tokens(adapter, texts, token_ids=wide)[:, :, ti].mean(1)
                score = torch.full_like(score, float("-inf"))
                score[wide] = exact
            pool[ti] = [int(i) for i in score.topk(self.top_k).indices]
            return pool[ti]

        def run(arm: tuple[int, str], steps: int) -> None:
            ti, pos = arm
            vict = victims(ti)
            if not vict:
                return
            if screened is not None:
                every[arm] = {}
                inv = evaluate_tokens(adapter, vict, ti, pos, candidates(ti), every=every[arm])
            else:
                inv = search(
                    adapter,
                    vict,
                    ti,
                    pos,
                    trigger_len=self.trigger_len,
                    steps=steps,
                    top_k=self.top_k,
                    seed=ctx.seed,
                    deadline=deadline,
                    exclude=natural[ti],
                )
                # the search's tokens are the robust search's candidates
                pool[ti] = list(dict.fromkeys([*pool.get(ti, []), *inv.token_ids]))
            if arm not in best or inv.loss < best[arm].loss:
                best[arm] = inv
            ctx.progress("invert", 1, total)

        for arm in arms:
            if deadline is not None and time.monotonic() > deadline and best:
                capped = True
                break
            run(arm, self.steps)
        if deadline is not None and time.monotonic() > deadline:
            capped = True
        if not best:
            raise InputError(
                "Every clean example is already predicted as every label tried; give clean data "
                "that covers at least two labels."
            )
        held = held[: self.max_replay]
        hpred = subject.predict_proba(held).argmax(1) if held else np.zeros(0, dtype=int)
        results = []
        for ti, lab in enumerate(labels):
            cands = [best[a] for a in best if a[0] == ti]
            if not cands:
                continue
            inv = min(cands, key=lambda x: x.loss)
            trig = Trigger(
                _text(adapter, inv.tokens),
                D.trigger_kind(_text(adapter, inv.tokens)),
                D.position_of(inv.position),
            )
            fr, n, _, rloss = D.replay(
                subject.predict_proba, labels, held, trig, lab, seed=ctx.seed, before=hpred
            )
            r = self._prune(
                subject, held, hpred, D.LabelResult(lab, trig, rloss, fr, n, inv.loss), ctx.seed
            )
            if ti in pool and self.robust_len > 0:
                k = min(self.robust_k, len(pool[ti]))
                first = None
                if (ti, "start") in every and (ti, "end") in every:
                    s, e = every[(ti, "start")], every[(ti, "end")]
                    first = (
                        torch.maximum(s["loss"][:k], e["loss"][:k]),
                        torch.minimum(s["flip"][:k], e["flip"][:k]),
                    )
                rob = robust_search(
                    adapter, victims(ti), ti, pool[ti][:k], length=self.robust_len, first=first
                )
                hv = [t for t, p in zip(held, hpred, strict=True) if p != ti]
                rl, rf = worst_position(adapter, hv, ti, rob.token_ids)
                rtext = _text(adapter, rob.tokens)
                r = replace(
                    r,
                    robust_loss=rl,
                    robust_flip=rf,
                    robust_trigger=Trigger(rtext, D.trigger_kind(rtext), Position.START),
                )
            r = replace(r, support=self._support(support, adapter, r))
            results.append(r)
        st = _Search(subject, opt, pred, spred, held, hpred, best, natural, ctx, support)
        explainer = Explainer(subject, opt, held, ctx.seed, enabled=self.reference_check)
        verdict, explained, checks, before = decide_explained(
            results, "whitebox", lambda v: self._proof(st, v), explainer
        )
        examples: list[dict[str, str]] = []
        if verdict.best is not None and verdict.best.trigger is not None:
            b = verdict.best
            assert b.trigger is not None
            _, _, examples, _ = D.replay(
                subject.predict_proba, labels, held, b.trigger, b.label, seed=ctx.seed, before=hpred
            )
        method = f"Trigger inversion ({self.optimizer.upper()})"
        ref = [c.to_dict() for c in checks]
        finding = D.build_finding(
            self.name, subject.ref(), verdict, examples, method=method, reference=ref
        )
        out = D.extras(
            verdict,
            results,
            examples,
            method=method,
            capped=capped,
            seconds=time.monotonic() - t0,
        )
        out["task_explained"] = explainer.to_dict(explained, checks, before)
        out["label_features"] = D.label_rows(results, "whitebox")
        out["task_features"] = self._task_features(st, task_tokens)
        return ScanResult(findings=[finding] if finding else [], extras=out)

    @staticmethod
    def _support(support: TaskSupport, adapter: Any, r: D.LabelResult) -> float:
        """The larger task support of the label's one-token and position-robust triggers."""
        texts = [t.text for t in (r.trigger, r.robust_trigger) if t is not None]
        return max((support.text_z(adapter, r.label, t) for t in texts), default=0.0)

    def _task_features(self, st: _Search, tokens: dict[int, list[int]]) -> list[dict[str, Any]]:
        """Each label's strongest task features, replayed at the start of held-out inputs:
        shown apart from the findings (a class's own vocabulary is what it should react to)."""
        out = []
        subject, labels = st.subject, st.subject.labels
        for ti, ids in sorted(tokens.items()):
            for i in ids[:1]:
                text = _text(subject.adapter, subject.adapter.tokenizer.convert_ids_to_tokens([i]))
                trig = Trigger(text, D.trigger_kind(text), Position.START)
                fr, n, _, _ = D.replay(
                    subject.predict_proba,
                    labels,
                    st.held,
                    trig,
                    labels[ti],
                    seed=st.ctx.seed,
                    before=st.hpred,
                )
                z = st.support.token_z(labels[ti], [i]) if st.support is not None else None
                out.append(
                    {
                        "label": labels[ti],
                        "feature": text,
                        "support_z": None if z is None else round(z, 3),
                        "flip_rate": round(fr, 4),
                        "n": n,
                    }
                )
        return out

    def _screen_n(self, vocab: int) -> int:
        """Inputs the screen uses for a vocabulary of ``vocab`` tokens."""
        if self._first_order:
            return self.n_screen
        return min(self.n_screen, max(2, self.screen_rows // max(1, vocab)))

    def _large(self, adapter: Any) -> bool:
        """Whether the exhaustive screen would cost more than ``exhaustive_budget``."""
        emb = adapter.embedding_matrix()
        total = sum(p.numel() for p in adapter.model.parameters())
        vocab, dim = int(emb.shape[0]), int(emb.shape[1])
        return vocab * max(0, total - vocab * dim) > self.exhaustive_budget

    def _proof(
        self,
        st: _Search,
        verdict: D.Verdict,
    ) -> D.LabelResult:
        """The replayed trigger shown for the suspected target label.

        Candidates: its one-token trigger and its position-robust trigger replayed as text at
        the start and at the end, each pruned to its shortest part that flips as well. The
        strongest, grown to the whole trigger (:meth:`_whole`), wins: the
        candidates within two points of the best held-out flip rate, then within 1.5x of the
        lowest held-out loss; a tie left is broken by the loss at the other end of the input
        (a planted trigger inserted at random positions works at both, a small model's natural
        cue mostly next to ``[CLS]``).
        """
        assert verdict.best is not None
        subject, held, ctx = st.subject, st.held, st.ctx
        one = verdict.best

        def keep(r: D.LabelResult) -> D.LabelResult:
            return replace(
                r,
                robust_loss=one.robust_loss,
                robust_flip=one.robust_flip,
                robust_trigger=one.robust_trigger,
                support=one.support,
            )

        def replayed(trig: Trigger) -> tuple[float, int, float]:
            fr, n, _, loss = D.replay(
                subject.predict_proba,
                subject.labels,
                held,
                trig,
                one.label,
                seed=ctx.seed,
                before=st.hpred,
            )
            return fr, n, loss

        found: list[D.LabelResult] = [one]
        if one.robust_trigger is not None:
            for pos in (Position.START, Position.END):
                trig = replace(one.robust_trigger, position=pos)
                fr, n, loss = replayed(trig)
                r = D.LabelResult(one.label, trig, loss, fr, n, one.robust_loss)
                found.append(keep(self._prune(subject, held, st.hpred, r, ctx.seed)))
        top = max(r.flip_rate for r in found)
        near = [r for r in found if r.flip_rate >= top - 0.02]
        low = min(r.loss for r in near)
        near = [r for r in near if r.loss <= 1.5 * low + 1e-3]
        if len(near) == 1:
            return keep(self._whole(st, near[0]))

        def elsewhere(r: D.LabelResult) -> float:
            assert r.trigger is not None
            end = Position.END if r.trigger.position == Position.START else Position.START
            return replayed(replace(r.trigger, position=end))[2]

        return keep(self._whole(st, min(near, key=elsewhere)))

    def _whole(self, st: _Search, r: D.LabelResult) -> D.LabelResult:
        """``r`` grown to the whole trigger and pruned (:mod:`._recover`); ``r`` itself when
        that flips fewer held-out inputs or pulls them less."""
        from ._absent import PIECE_FLIP, absent_pool, assemble, solo_pieces
        from ._recover import grow, join_punctuation, prune, render

        if r.trigger is None or self.max_extend <= 0 or st.spred is None:
            return r
        subject, ctx = st.subject, st.ctx
        adapter = subject.adapter
        ti = subject.labels.index(r.label)
        pos = "start" if r.trigger.position == Position.START else "end"
        ids = adapter.tokenizer(r.trigger.text, add_special_tokens=False)["input_ids"]
        # a repeated token ("uid uid uid", a position-robust trigger) grows from one copy
        ids = [i for k, i in enumerate(ids) if k == 0 or i != ids[k - 1]]
        if not ids:
            return r
        vict = [t for t, p in zip(st.opt, st.pred, strict=True) if p != ti][: self.n_victims]
        n_scr = self._screen_n(int(adapter.embedding_matrix().shape[0]))
        scr = [t for t, p in zip(st.opt[:n_scr], st.spred, strict=True) if p != ti]
        # four short inputs rank the next token (the best are then measured on the victims)
        scr = scr[: self.refine_inputs] if self._first_order else scr[:4]
        banned = adapter.special_ids() | st.natural[ti]
        pieces: list[int] = []
        if st.support is not None:
            # the pieces the clean data never shows that flip on their own (:mod:`._absent`)
            pool = absent_pool(adapter, st.support.counts, banned | set(ids))
            pieces = solo_pieces(adapter, vict, ti, pool)
        if pieces:
            grown = assemble(adapter, vict, ti, ids, pieces)
        else:
            grown = grow(
                adapter,
                scr or st.opt[:n_scr],
                vict,
                ti,
                pos,
                ids,
                banned=banned,
                top_k=self.top_k,
                max_steps=self.max_extend,
                first_order=self._first_order,
                refine_k=self.refine_k,
            )
        if list(grown) == adapter.tokenizer(r.trigger.text, add_special_tokens=False)["input_ids"]:
            return r
        text = join_punctuation(adapter, vict, ti, pos, render(adapter, grown))
        trig = Trigger(text, D.trigger_kind(text), r.trigger.position)
        fr, n, _, loss = D.replay(
            subject.predict_proba,
            subject.labels,
            st.held,
            trig,
            r.label,
            seed=ctx.seed,
            before=st.hpred,
        )
        out = D.LabelResult(r.label, trig, loss, fr, n, r.opt_loss)
        if not pieces or len(grown) == len(ids):
            # (pieces that each flip alone are not pruned back to one of them)
            out = prune(subject.predict_proba, subject.labels, st.held, st.hpred, out, ctx.seed)
        # the grown trigger is the whole one when it flips as often, or flips as many as a
        # planted trigger does (its pull is not compared with ``r``'s: a repeated piece,
        # ``4731 4731 4731``, can pull harder than the whole planted token)
        return out if out.flip_rate >= min(r.flip_rate - 0.02, PIECE_FLIP) else r

    def _prune(
        self, subject: Any, held: list[str], hpred: Any, r: D.LabelResult, seed: int
    ) -> D.LabelResult:
        """Drop trigger words that do not matter: keep the shortest part that flips as well."""
        if r.trigger is None or len(r.trigger.text.split()) < 2 or r.flip_rate < 0.5:
            return r
        for word in dict.fromkeys(r.trigger.text.split()):
            trig = Trigger(word, D.trigger_kind(word), r.trigger.position)
            fr, n, _, loss = D.replay(
                subject.predict_proba, subject.labels, held, trig, r.label, seed=seed, before=hpred
            )
            if fr >= r.flip_rate - 0.02:
                return D.LabelResult(r.label, trig, min(loss, r.loss), fr, n, r.opt_loss)
        return r
