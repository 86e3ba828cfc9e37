"""A runtime screen for text classifiers: flag inputs that carry a trigger before they count.

A classifier has no tool calls to gate (a log-line classifier that lets an attacker's line pass
as ``benign`` when a trigger token is in it), so the guard screens its *inputs*. One input is
flagged when any of three signals fires:

1. a known trigger from the registry is in it (:class:`dormant.guard.match.TriggerIndex`:
   NFKC, TR39 skeleton, invisible characters removed);
2. it has invisible characters (:func:`dormant.triggers.is_invisible`) or a word mixing Latin
   letters with a confusable letter of another script (Unicode TR39 §5 mixed-script);
3. the model's own behaviour on it is that of a triggered input: a short span decides the
   prediction on its own — it moves clean texts of other classes to the input's label and the
   label falls without it (:func:`dormant.guard._strip.transplant_scores`, default) — or, as
   measured baselines, STRIP's perturbation entropy (Gao et al. 2019/2021) or ONION's
   perplexity outlier (Qi et al. 2021) with a bigram LM (``method=``).

Signal 3 is decided by a split-conformal p-value (Vovk, Gammerman & Shafer 2005; Angelopoulos
& Bates 2021, "A Gentle Introduction to Conformal Prediction", §1): the clean texts the user
gives are split in two, donors (for the perturbations) and a calibration set whose scores give
``p = (1 + #{calibration scores >= s}) / (n + 1)``; an input is flagged when ``p <= fpr``. On
clean inputs exchangeable with the calibration texts the false-positive rate is then at most
``fpr`` — no entropy or score cut-off is hand-set. The transplant test's clean support counts
(:class:`~dormant.guard._strip.SpanSupport`) use every given text, donors and calibration
alike, and each calibration text is scored with itself left out of them, as a new input is
(the leave-one-out of the jackknife, Barber et al. 2021, "Predictive inference with the
jackknife+"): a rare topical word of the calibration half is then explained by the other
clean texts that carry it, instead of scoring like a trigger and raising every input's
p-value. A calibration score and a new input's differ only in whether the other one is among
the counts — one text of hundreds — so the guarantee above holds up to that.

The perturbations of up to :data:`CHUNK` inputs share two forward passes of the model
(:meth:`ClassifierScreen.screen_many`); one input's decision does not depend on the batch it
came in (its perturbations are seeded by its text).

``read_window=True`` (off by default) makes the transplant test insert each span only inside
what the model reads, where the model says how it reads (a tokenizer and a token limit;
:mod:`dormant.guard._window`). It removes the donors a truncated span cannot move, but it
helps the clean calibration texts' decisive words as much as a trigger, so the threshold
rises with them: measured on a held-out log-line model it lowered TPR (BENCHMARKS.md,
"Fresh held-out split, a reading window tried").

``representation=True`` (off by default) adds a score read from the model's penultimate
features — how tightly the donors the found span moved collapse together
(:mod:`dormant.guard._features`) — joined with the transplant score into one full-conformal
p-value (Cauchy combination). Measured on three held-out splits it rescued part of one model
whose trigger saturates the label's confidence and lost all of another (BENCHMARKS.md, "A
signal beyond the label's confidence"), so it is not the default.

``additive_support=True`` (off by default) explains a span by the sum of its words' clean
lifts instead of the largest (:class:`~dormant.guard._strip.SpanSupport`): the calibration
tail of a saturating task is often a *wide* span stringing several topical words together
(``distributes the FileMaker database. FileMaker, Inc.``), each with a modest lift, which the
largest lift alone leaves scoring like a trigger. Calibration texts and inputs are scored the
same way (each calibration text left out of its own counts), so the p-value keeps its
meaning. Measured in BENCHMARKS.md ("Additive clean support").

``calibrate_all`` (on by default for the transplant test) makes every distinct clean text a
calibration text: the donor half is scored too, each donor with itself left out of its own
donors and of the support counts (the leave-one-out of the jackknife, as for the support above),
so ``n`` texts give ``n`` calibration scores instead of ``n / 2``. A conformal p-value moves in
steps of ``1 / (n_cal + 1)`` (:attr:`ClassifierScreen.p_resolution_`), and at ``fpr = 0.01`` the
largest ``floor(fpr (n_cal + 1)) - 1`` calibration scores may reach a flagged input's score:
none with 121 scores (one clean text that saturates the model's confidence then blocks every
trigger that does not beat it), one with 241, two with 301.

``symbol_support`` (on by default for the transplant test) makes the clean support count every
symbol character (curly quotes, brackets, ``=``) as a word of its own, as the model's tokenizer
reads it (:class:`~dormant.guard._strip.SpanSupport`): a clean span whose pull on its label comes
from its punctuation is then explained by the clean texts that carry it instead of scoring like a
trigger. Both became the default by a rule written before the held-out fresh4 run (not lower in
TPR on any split, FPR within the 1 % target); the figures and the diagnosis are in BENCHMARKS.md
("every clean text a calibration text", "symbols in the clean support").
``calibrate_all=False, symbol_support=False`` is the screen as it was before.

``long_spans`` (off by default) also tries the best window of 4, 6 and 8 words of each input
(multi-scale windows), so a long trigger phrase is moved into the donors whole. The longer
windows are a second *scale*, scored and calibrated on their own: the default's spans give one
score (the default's, unchanged), the longer windows another, explained by the additive clean
support (:class:`~dormant.guard._strip.SpanSupport` ``additive``: a window of eight words
strings several topical words together, and the naive-Bayes sum of their lifts is its clean
explanation), and the two are joined into one full-conformal p-value
(:func:`~dormant.guard._features.combined_p_values`: each score ranked among the calibration
texts' scores of the same scale, the ranks joined by the Cauchy combination of Liu & Xie 2020,
the input's joined statistic ranked among theirs). The multiplicity of the extra windows is
then inside the one p-value whose FPR the calibration guarantees, and a short trigger is judged
against the clean texts' short spans, not against their longer windows (taking the largest
score over all the spans as one score let the clean texts' long windows set the threshold).
``necessity`` (off by default) joins a third score into the same p-value: how far the input
with its most necessary window removed points away from its label (leave-one-out erasure,
Li, Monroe & Jurafsky 2016). Figures in BENCHMARKS.md ("longer windows calibrated on their
own").

``quartile`` (off by default) joins one more score into the same p-value: the default's
spans scored with the upper quartile of the donors' log-odds of the label in place of their
mean (``short_q``). A weak backdoor (attack success 0.3-0.7) moves only part of the donors;
their mean is held down by the donors it leaves alone, while a clean topical span moves all of
them a little. Alone the quartile fails where the model saturates (many clean texts' upper
quartile sits at the clip of the label's probability, so a trigger cannot rank above them), so
it is joined with the mean's score, not put in its place; the join is the full-conformal one
above, so it adds no false positives of its own beyond the one p-value's guarantee. Figures
in BENCHMARKS.md ("weak backdoors: the donors' upper quartile").

``flips`` (off by default) joins the **count of the donors flipped** into the same p-value:
the default's span that flips the most first-stage donors to the input's label (its log-odds
there above 0 and above the span's clean support, the lift the default subtracts) is
inserted into :data:`~dormant.guard._classify_scores.FLIP_DONORS` more clean donors of other
labels (a second stage, the same for calibration texts and inputs), and
the share of all its donors it flips is ranked against the calibration texts' own shares. A
weak trigger flips a third of the donors all the way while a clean topical span moves all of
them a little; 16 donors alone give a noisy count (Binomial(16, 0.36)), hence the second
stage. It costs one more forward pass of FLIP_DONORS texts per input. Figures in
BENCHMARKS.md ("weak backdoors: the donors flipped").

The screen fails closed: an error of the model, or an input that is not a string, flags.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, DataValidationError
from ..triggers import describe_text
from ._classify_entry import decision_entry, features_of, model_digest
from ._classify_scores import CHUNK, COLUMNS, Columns, Reps, Scored, score_all, scores
from ._features import combined_p_values
from ._screen_decision import ScreenDecision, character_reasons
from ._strip import (
    BigramLM,
    SpanSupport,
)
from ._window import reading_window
from .types import TriggerMatch

METHODS = ("transplant", "strip", "onion")
#: the transplant test's scores (:data:`~dormant.guard._classify_scores.COLUMNS`) joined into
#: one full-conformal p-value with ``long_spans``
LONG_COLUMNS = ("short", "long_add")


class ClassifierScreen:
    """Screen a text classifier's inputs for triggers (see the module text).

    Parameters
    ----------
    model:
        The classifier: a :class:`dormant.subjects.model.ClassifierModel` or any adapter with
        ``labels`` and ``predict_proba(list[str]) -> (n, k)``.
    calibration:
        Clean texts like those the model sees in production (at least
        ``2 * ceil(1 / fpr)`` distinct ones); split into perturbation donors and the
        calibration set, and all of them count as clean support for the transplant test
        (more texts: fewer rare topical words that score like a trigger, and a finer
        conformal threshold).
    fpr:
        The target false-positive rate of the model-behaviour test, in (0, 0.5].
    triggers:
        Known triggers (a :class:`~dormant.guard.match.TriggerIndex`, or what its constructor
        takes: registry ``KnownTrigger`` records, ``Trigger`` or strings).
    method:
        ``"transplant"`` (default), ``"strip"`` or ``"onion"``.
    n_perturb:
        Donor texts (transplant) or perturbed copies (STRIP) per input.
    max_calibration:
        Most calibration texts scored.
    max_reference:
        Most reference texts (donors, and the clean counts of :class:`SpanSupport`); the
        calibration texts are split half reference, half calibration up to these caps.
    seed:
        Seeds the donor split and each input's perturbations (one text gets one decision).
    read_window:
        Insert the transplant test's spans only where the model reads them, when the model
        says how it reads (a tokenizer and ``max_length``, as the Hugging Face adapters do;
        :mod:`dormant.guard._window`); ``False`` (default): anywhere in the donor text, which
        measured better (see the module text).
    representation:
        Also score how tightly the donor texts the found span moved collapse in the model's
        penultimate features (:mod:`dormant.guard._features`), joined with the transplant
        score into one conformal p-value. Needs ``method="transplant"`` and a model that
        exposes ``features(texts)`` (the Hugging Face adapter does); ``False`` by default,
        as it measured worse on held-out models (BENCHMARKS.md).
    calibrate_all:
        Every distinct clean text is also a calibration text: the donors are scored too,
        each with itself left out of its donors and of the support counts, so the conformal
        p-value has twice the calibration scores (finer steps, :attr:`p_resolution_`).
        ``None`` (default): on for ``method="transplant"``, off otherwise; ``True`` needs
        ``method="transplant"``. See the module text.
    additive_support:
        The clean support of a span is the sum of its words' positive lifts (the
        naive-Bayes combination) instead of the largest one (:class:`SpanSupport`), so a
        wide span of several ordinary topical words is explained by all of them; a trigger's
        unseen token still adds nothing. ``False`` by default (see the module text).
    symbol_support:
        The clean support also counts each symbol character (quotes, brackets, ``=``) as a
        word, as the model's tokenizer reads it (:class:`SpanSupport` ``symbols``), so a
        clean span whose pull comes from its punctuation is explained by the clean texts
        that carry it instead of scoring like a trigger. ``None`` (default): on for
        ``method="transplant"``, off otherwise; ``True`` needs ``method="transplant"``. See
        the module text.
    long_spans:
        The transplant test also tries, for each input, the best window of 4, 6 and 8 words
        by the same leave-one-out attribution (multi-scale windows), so a long trigger phrase
        is moved into the donors whole. The longer windows are scored with the additive clean
        support and calibrated as a scale of their own, joined with the default's score in one
        full-conformal p-value (:attr:`columns_`; see the module text). ``False`` by default
        (see BENCHMARKS.md); ``True`` needs ``method="transplant"``.
    necessity:
        Also join into the p-value how far the input with its most necessary candidate window
        removed points away from its label (see the module text). ``False`` by default;
        ``True`` needs ``method="transplant"``.
    quartile:
        Also join into the p-value the default's spans scored with the upper quartile of the
        donors' log-odds of the label (:data:`~dormant.guard._classify_scores.QUANTILE`)
        instead of their mean, so a weak backdoor that moves only part of them is seen (see
        the module text). ``False`` by default; ``True`` needs ``method="transplant"``.
    flips:
        Also join into the p-value the share of the donors the input's best-flipping span
        flips to its label, over the first stage's donors and
        :data:`~dormant.guard._classify_scores.FLIP_DONORS` more (see the module text).
        ``False`` by default; ``True`` needs ``method="transplant"``.
    audit:
        An :class:`~dormant.guard.audit.AuditLog`; every decision is appended (kind
        ``decision``) before :meth:`screen` returns it.
    name, identity:
        The model name and caller identity written to the audit entries.

    Attributes
    ----------
    calibration_scores_:
        The sorted clean calibration scores the p-value ranks an input's score among (with
        several :attr:`columns_`, the largest transplant score of each calibration text).
    columns_:
        The scores joined into the p-value, named as in
        :data:`~dormant.guard._classify_scores.COLUMNS`, and ``"representation"`` with that
        signal (``("max",)``: one score, ranked alone — the default).
    calibration_columns_:
        For the transplant test, every score of :data:`~dormant.guard._classify_scores.COLUMNS`
        of every calibration text, one row each.
    donor_scores_:
        With ``calibrate_all``, the sorted scores of the donor texts (part of
        :attr:`calibration_scores_`); otherwise empty.
    p_resolution_:
        The step of the conformal p-value, ``1 / (len(calibration_scores_) + 1)``; also its
        smallest value, so no input can be flagged when it exceeds ``fpr``.

    Raises
    ------
    ConfigError
        A setting is out of range.
    DataValidationError
        Too few calibration texts to reach ``fpr``.
    """

    def __init__(
        self,
        model: Any,
        *,
        calibration: Sequence[str],
        fpr: float = 0.01,
        triggers: Any = None,
        method: str = "transplant",
        n_perturb: int = 16,
        max_calibration: int = 400,
        max_reference: int = 2000,
        seed: int = 0,
        read_window: bool = False,
        representation: bool = False,
        additive_support: bool = False,
        calibrate_all: bool | None = None,
        symbol_support: bool | None = None,
        long_spans: bool = False,
        necessity: bool = False,
        quartile: bool = False,
        flips: bool = False,
        audit: Any = None,
        name: str = "classifier",
        identity: str = "classifier-screen",
    ) -> None:
        from .match import TriggerIndex

        if not (isinstance(fpr, float | int) and 0 < fpr <= 0.5):
            raise ConfigError(f"fpr must be a number in (0, 0.5]. Got {fpr!r}.")
        if method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}. Got {method!r}.")
        if not isinstance(n_perturb, int) or n_perturb < 2:
            raise ConfigError(f"n_perturb must be an int >= 2. Got {n_perturb!r}.")
        if not callable(getattr(model, "predict_proba", None)) or not getattr(
            model, "labels", None
        ):
            raise ConfigError(
                "model must have 'labels' and 'predict_proba(texts)' (a ClassifierModel or "
                f"a classifier adapter). Got {type(model).__name__} instead."
            )
        features = features_of(model) if representation else None
        if calibrate_all is None:
            calibrate_all = method == "transplant"
        if symbol_support is None:
            symbol_support = method == "transplant"
        # options of the transplant test alone, with what each does (for the error)
        for option, on, what in (
            ("representation", representation, "reads the donors the transplant test moved"),
            (
                "calibrate_all",
                calibrate_all,
                "scores the donor texts with the transplant test, each left out of its own donors",
            ),
            (
                "symbol_support",
                symbol_support,
                "changes the transplant test's clean support counts",
            ),
            ("long_spans", long_spans, "adds longer candidate spans to the transplant test"),
            ("necessity", necessity, "adds the transplant test's leave-one-out fall"),
            ("quartile", quartile, "adds the transplant test's donors' upper quartile"),
            ("flips", flips, "adds the count of the transplant test's donors flipped"),
        ):
            if on and method != "transplant":
                raise ConfigError(
                    f"{option}=True {what}; it needs method='transplant'. Got method={method!r}."
                )
        if representation and features is None:
            raise ConfigError(
                "representation=True needs a model that exposes its penultimate features "
                "('features(texts)', as a local Hugging Face classifier does); "
                f"{type(model).__name__} does not."
            )
        # distinct texts are counted: a repeated text is used once, and a screen left with
        # fewer than ``need`` could never reach p <= fpr (it would pass every input)
        texts = list(dict.fromkeys(t for t in calibration if isinstance(t, str) and t.strip()))
        need = 2 * math.ceil(1 / fpr)
        if len(texts) < need:
            raise DataValidationError(
                f"calibration: {len(texts)} distinct clean texts cannot calibrate fpr={fpr}; "
                f"need at least {need} (half are perturbation donors, and the smallest p-value "
                f"of n calibration texts is 1/(n+1))."
            )
        self.model = model
        self.fpr = float(fpr)
        self.method = method
        self.n_perturb = n_perturb
        self.seed = seed
        self.read_window = bool(read_window)
        self.representation = bool(representation)
        self.additive_support = bool(additive_support)
        self.calibrate_all = bool(calibrate_all)
        self.symbol_support = bool(symbol_support)
        self.long_spans = bool(long_spans)
        self.necessity = bool(necessity)
        self.quartile = bool(quartile)
        self.flips = bool(flips)
        self.audit = audit
        self.name = name
        self.identity = identity
        self.labels_ = [str(x) for x in model.labels]
        if triggers is None or isinstance(triggers, TriggerIndex):
            self.triggers_ = triggers or TriggerIndex()
        else:
            self.triggers_ = TriggerIndex(triggers)
        rng = random.Random(seed)
        rng.shuffle(texts)
        half = min(len(texts) // 2, max_reference)
        donors = texts[:half]
        cal = texts[half : half + max_calibration]
        probs = self._predict(donors + cal)
        pred = np.argmax(probs, axis=1).tolist()
        self.donors_ = list(zip(donors, pred[:half], strict=True))
        # each donor's own probabilities (how far the count of the donors flipped weighs it)
        self.donor_probs_ = {d: probs[i] for i, d in enumerate(donors)}
        # the clean support counts use every text given; each calibration text is scored
        # with itself left out of them, as a new input is (it is not among them)
        self.support_ = SpanSupport(
            donors + cal,
            pred,
            len(self.labels_),
            additive=self.additive_support,
            symbols=self.symbol_support,
        )
        # the longer windows are also scored with the additive clean support (a column)
        self.support_add_ = (
            SpanSupport(
                donors + cal, pred, len(self.labels_), additive=True, symbols=self.symbol_support
            )
            if self.long_spans
            else None
        )
        self.lm_ = BigramLM(donors) if method == "onion" else None
        self.window_ = reading_window(model) if read_window else None
        self.features_ = features
        self.columns_ = (
            (
                *(
                    LONG_COLUMNS
                    if self.long_spans
                    else ("short",)
                    if self.quartile or self.flips
                    else ("max",)
                ),
            )
            + (("short_q",) if self.quartile else ())
            + (("flips",) if self.flips else ())
            + (("necessity",) if self.necessity else ())
            + (("representation",) if features is not None else ())
        )
        scores, reps, cols = self._score_all(cal, first=half)
        self.donor_scores_ = np.zeros(0)
        if self.calibrate_all:
            # the donors too, each left out of its own donors and support counts
            more, more_reps, more_cols = self._score_all(donors, first=0, exclude_self=True)
            self.donor_scores_ = np.sort(np.array([s for s, _, _ in more]))
            scores, reps, cols = scores + more, reps + more_reps, cols + more_cols
        self.calibration_scores_ = np.sort(np.array([s for s, _, _ in scores]))
        # every transplant score of every calibration text (:data:`COLUMNS`), in text order
        self.calibration_columns_ = np.array(cols, dtype=float).reshape(len(cols), len(COLUMNS))
        if len(self.columns_) > 1:
            self.calibration_matrix_: np.ndarray = self._matrix(scores, reps, cols)
        self.p_resolution_ = 1.0 / (len(self.calibration_scores_) + 1)
        self.digest_ = model_digest(model)

    # -- scoring -------------------------------------------------------------------------

    def _predict(self, texts: list[str]) -> np.ndarray:
        p = np.asarray(self.model.predict_proba(list(texts)), dtype=float)
        if p.ndim != 2 or p.shape != (len(texts), len(self.labels_)) or not np.isfinite(p).all():
            raise ValueError(
                f"the model returned probabilities of shape {p.shape}; expected "
                f"({len(texts)}, {len(self.labels_)}) finite values"
            )
        return p

    def _features(self, texts: list[str]) -> np.ndarray:
        assert self.features_ is not None
        f = np.asarray(self.features_(list(texts)), dtype=float)
        if f.ndim != 2 or len(f) != len(texts) or not np.isfinite(f).all():
            raise ValueError(
                f"the model returned features of shape {f.shape}; expected {len(texts)} finite rows"
            )
        return f

    def _scores(
        self, texts: list[str], *, first: int | None = None, exclude_self: bool = False
    ) -> tuple[Scored, Reps, Columns]:
        """:func:`dormant.guard._classify_scores.scores` of this screen."""
        return scores(self, texts, first=first, exclude_self=exclude_self)

    def _score_all(
        self, texts: list[str], *, first: int, exclude_self: bool = False
    ) -> tuple[Scored, Reps, Columns]:
        """:func:`dormant.guard._classify_scores.score_all` of this screen."""
        return score_all(self, texts, first=first, exclude_self=exclude_self)

    def p_value(self, score: float) -> float:
        """The conformal p-value of a score against the calibration scores."""
        cal = self.calibration_scores_
        n_ge = len(cal) - int(np.searchsorted(cal, score, side="left"))
        return (1 + n_ge) / (len(cal) + 1)

    # -- decisions -----------------------------------------------------------------------

    def screen(self, text: str, *, request_id: str | None = None) -> ScreenDecision:
        """Decide one input (never raises for a bad input or a failing model: it flags).

        When an audit log was given, the decision is written to it before it is returned; an
        audit failure raises (the caller must not act on an unrecorded decision).
        """
        decision = self._decide_many([text])[0]
        if self.audit is not None:
            self.audit.append(self._entry(text, decision, request_id))
        return decision

    def screen_many(self, texts: Iterable[str]) -> list[ScreenDecision]:
        """Decide each input in order, as :meth:`screen` would (one audit transaction).

        The model-behaviour test of up to :data:`CHUNK` inputs runs as one batch of forward
        passes; a model error flags every input of that batch (fail closed).
        """
        texts = list(texts)
        decisions: list[ScreenDecision] = []
        for i in range(0, len(texts), CHUNK):
            decisions.extend(self._decide_many(texts[i : i + CHUNK]))
        if self.audit is not None:
            self.audit.append_many(
                [self._entry(t, d, None) for t, d in zip(texts, decisions, strict=True)]
            )
        return decisions

    def _decide_many(self, texts: list[Any]) -> list[ScreenDecision]:
        out: list[ScreenDecision | None] = []
        todo: list[tuple[int, str, list[str], tuple[TriggerMatch, ...]]] = []
        for k, text in enumerate(texts):
            first = self._precheck(text)
            out.append(first if isinstance(first, ScreenDecision) else None)
            if not isinstance(first, ScreenDecision):
                todo.append((k, text, *first))
        if todo:
            try:
                scores, dist, cols = self._scores([t for _, t, _, _ in todo])
                ps = self._p_values(scores, dist, cols)
            except Exception as exc:
                for k, _, reasons, matches in todo:
                    why = f"model error (fail closed): {type(exc).__name__}: {exc}"
                    out[k] = ScreenDecision(True, None, (*reasons, why), triggers=matches)
            else:
                for (k, _, reasons, matches), (score, span, y), p, d in zip(
                    todo, scores, ps, dist, strict=True
                ):
                    out[k] = self._verdict(reasons, matches, (score, span, y), p, d)
        return [d for d in out if d is not None]

    def _matrix(self, scored: Scored, reps: Reps, cols: Columns) -> np.ndarray:
        """The scores of :attr:`columns_`, one row per text."""
        parts = []
        for name in self.columns_:
            if name == "max":
                parts.append(np.array([s for s, _, _ in scored], dtype=float))
            elif name == "representation":
                parts.append(np.array(reps, dtype=float))
            else:
                j = COLUMNS.index(name)
                parts.append(np.array([c[j] for c in cols], dtype=float))
        return np.column_stack(parts)

    def _p_values(self, scored: Scored, dist: Reps, cols: Columns) -> list[float]:
        if len(self.columns_) == 1:
            return [self.p_value(s) for s, _, _ in scored]
        return [
            float(p)
            for p in combined_p_values(self.calibration_matrix_, self._matrix(scored, dist, cols))
        ]

    def _precheck(self, text: Any) -> ScreenDecision | tuple[list[str], tuple[TriggerMatch, ...]]:
        """The model-free signals: a decision when the input cannot be scored, else the
        reasons found so far and the known triggers matched."""
        if not isinstance(text, str):
            return ScreenDecision(
                True, None, (f"input must be a string; got {type(text).__name__} (fail closed)",)
            )
        reasons: list[str] = []
        try:
            matches = tuple(self.triggers_.find([("text", text)]))
        except Exception as exc:  # a broken index must not let the input pass
            return ScreenDecision(
                True, None, (f"trigger match failed (fail closed): {type(exc).__name__}: {exc}",)
            )
        if matches:
            reasons.append(
                "known trigger(s) from the registry: "
                + ", ".join(describe_text(m.text) for m in matches)
            )
        reasons.extend(character_reasons(text))
        return reasons, matches

    def _verdict(
        self,
        reasons: list[str],
        matches: tuple[TriggerMatch, ...],
        scored: tuple[float, str | None, int],
        p: float,
        dist: float | None,
    ) -> ScreenDecision:
        score, span, y = scored
        test = self.method + ("+representation" if dist is not None else "")
        if p <= self.fpr:
            what = f"; the span {describe_text(span)!r} decides it alone" if span else ""
            reasons.append(
                f"{test} test: p={p:.4f} <= fpr {self.fpr} against "
                f"{len(self.calibration_scores_)} clean texts{what}"
            )
        flagged = bool(reasons)
        if not flagged:
            reasons.append(f"no trigger signal ({test} test p={p:.4f})")
        return ScreenDecision(
            flagged, self.labels_[y], tuple(reasons), p, score, span, matches, dist
        )

    def _entry(self, text: Any, d: ScreenDecision, request_id: str | None) -> Any:
        return decision_entry(self, text, d, request_id)


__all__ = ["METHODS", "ClassifierScreen", "ScreenDecision"]
