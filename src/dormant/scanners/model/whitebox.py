"""White-box trigger inversion for transformer text classifiers."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ...errors import ConfigError, InputError
from ...subjects.protocol import Subject, gradients_of
from ...triggers import Position, Trigger
from ..base import ScanContext, Scanner, ScanResult, register
from . import decision as D
from ._conclude import conclude
from ._reference import Explainer, decide_explained
from ._support import TaskSupport
from ._whitebox_proof import ProofSteps, _Search, _text


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
    adapter: Any,
    texts: Sequence[str],
    given: Sequence[str],
    labels: list[str],
    *,
    support: TaskSupport | None = None,
) -> list[set[int]]:
    """Token ids that are natural features of each label in the clean data.

    A token seen in clean examples of label ``t`` at least twice as often (per example) as in
    the other labels' examples, *and* associated with ``t`` at the 5 % level by the Fightin'
    Words log-odds test (z >= 1.96, Monroe, Colaresi & Quinn 2008; :mod:`._support`), is a
    legitimate cue for ``t`` (``flowers`` for ``plant``), not a planted trigger, and is left
    out of ``t``'s trigger search. The ratio alone would let a single clean record exclude a
    rare token (one ``bb`` in the BBS sense removed a planted ``bb`` from its target's search,
    z 0.40); the test needs the association to be more than chance. A trigger that is frequent
    in its target's clean records is still missed (the clean data must be clean).

    Parameters
    ----------
    adapter, texts, given, labels
        The model's gradient adapter (its tokenizer), the clean texts, their labels and the
        model's labels in output order.
    support
        The clean data's :class:`~._support.TaskSupport` (fitted here when not given).

    Returns
    -------
    list of set of int
        Per label (in ``labels`` order), the token ids left out of its search.
    """
    if support is None:
        support = TaskSupport.fit(adapter, texts, given, labels)
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
        ratio = {i for i, c in counts[lab].items() if c / nt >= 2 * (total[i] - c) / no}
        out.append(ratio & support.associated(lab))
    return out


@register
class TriggerInversionScanner(ProofSteps, Scanner):
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
    with a label (z >= 1.96; a token twice as frequent there as elsewhere but below that z,
    such as a rare token one clean record happens to hold, is not) are its task features:
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
        if not isinstance(subject, Subject) or "gradients" not in subject.capabilities:
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
        adapter = gradients_of(subject)
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

        support = TaskSupport.fit(adapter, subject.clean.texts, subject.clean.labels, labels)
        # the natural features (ratio and z >= 1.96) are a subset of the associated tokens, so the
        # label's associated set is what its search leaves out (``natural_features`` documents it)
        natural = [set(support.associated(lab)) for lab in labels]
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
        decided = decide_explained(results, "whitebox", lambda v: self._proof(st, v), explainer)
        method = f"Trigger inversion ({self.optimizer.upper()})"
        finding, out = conclude(
            self.name,
            subject,
            held,
            decided,
            results,
            explainer,
            method,
            capped,
            t0,
            ctx.seed,
            hpred,
        )
        out["label_features"] = D.label_rows(results, "whitebox")
        out["task_features"] = self._task_features(st, task_tokens)
        return ScanResult(findings=[finding] if finding else [], extras=out)
