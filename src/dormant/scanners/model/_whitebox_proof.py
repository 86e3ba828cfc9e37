"""The proof steps of white-box trigger inversion (see :mod:`.whitebox`): decide each label
from its searched triggers, grow them to the whole trigger, prune, and replay task features.

A mixin of :class:`~.whitebox.TriggerInversionScanner`: the search (``scan``) is there, what
turns its result into a proved verdict is here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ...subjects.protocol import gradients_of
from ...triggers import Position, Trigger
from ..base import ScanContext
from . import decision as D
from ._support import TaskSupport


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


class ProofSteps:
    """The proof steps of :class:`~.whitebox.TriggerInversionScanner` (its settings below)."""

    exhaustive_budget: float
    max_extend: int
    n_screen: int
    n_victims: int
    refine_inputs: int
    refine_k: int
    screen_rows: int
    top_k: int
    _first_order: bool
    #: complete a one-word trigger's WordPiece piece to its word (:mod:`._words`) before the
    #: tightening. Off: on the one model it was built for it adds the planted word's own pieces
    #: but not in their order (``z`` -> ``zquilx`` for ``zorvexquil``), and the final candidate
    #: set was not measured on the benchmark zoo's clean models (BENCHMARKS.md "Whole words
    #: from a WordPiece piece")
    complete_words: bool = False

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
        grads = gradients_of(subject)
        for ti, ids in sorted(tokens.items()):
            for i in ids[:1]:
                text = _text(grads, grads.tokenizer.convert_ids_to_tokens([i]))
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
        total = adapter.n_parameters()
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
            return keep(self._tight(st, self._whole(st, near[0])))

        def elsewhere(r: D.LabelResult) -> float:
            assert r.trigger is not None
            end = Position.END if r.trigger.position == Position.START else Position.START
            return replayed(replace(r.trigger, position=end))[2]

        return keep(self._tight(st, self._whole(st, min(near, key=elsewhere))))

    def _whole(self, st: _Search, r: D.LabelResult) -> D.LabelResult:
        """``r`` grown to the whole trigger and pruned (:mod:`._recover`); ``r`` itself when
        that flips fewer held-out inputs or pulls them less."""
        from ._absent import PIECE_FLIP, absent_pool, assemble, solo_pieces
        from ._recover import grow, join_punctuation, prune, render

        if r.trigger is None or self.max_extend <= 0 or st.spred is None:
            return r
        subject, ctx = st.subject, st.ctx
        adapter = gradients_of(subject)
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

    def _tight(self, st: _Search, r: D.LabelResult) -> D.LabelResult:
        """``r`` with a WordPiece piece completed to its word (:func:`._words.complete_word`,
        when :attr:`complete_words`), less every token (a piece, a repeated copy, a word) the
        switch holds without on held-out inputs, by :func:`._complete.prune_tokens`'s paired
        test."""
        from ._complete import donor_margins, prune_tokens
        from ._recover import render

        if r.trigger is None:
            return r
        subject = st.subject
        adapter = gradients_of(subject)
        ids = adapter.tokenizer(r.trigger.text, add_special_tokens=False)["input_ids"]
        ti = subject.labels.index(r.label)
        donors = [t for t, p in zip(st.held, st.hpred, strict=True) if p != ti]
        if not ids or len(donors) < 6:
            return r
        import torch

        from ._absent import PIECE_FLIP

        if self.complete_words and st.support is not None and self.max_extend > 0:
            # a WordPiece piece of a planted word completed to the word (:mod:`._words`)
            from ._words import complete_word, word_pieces

            vict = [t for t, p in zip(st.opt, st.pred, strict=True) if p != ti][: self.n_victims]
            banned = adapter.special_ids() | st.natural[ti]
            ids = list(complete_word(adapter, vict, donors, ti, ids, word_pieces(adapter, banned)))
        if len(ids) < 2:
            return r
        # the test works at the weaker end of the input: a trigger that does not switch there
        # (a position trigger planted at the start) is left as it is, never pruned by it
        weak = donor_margins(adapter, donors, ti, torch.tensor([ids]))[0]
        robust = float((weak > 0).float().mean()) >= PIECE_FLIP
        kept = prune_tokens(adapter, donors, ti, ids) if robust else tuple(ids)
        if list(kept) == adapter.tokenizer(r.trigger.text, add_special_tokens=False)["input_ids"]:
            return r
        text = render(adapter, kept)
        trig = Trigger(text, D.trigger_kind(text), r.trigger.position)
        fr, n, _, loss = D.replay(
            subject.predict_proba,
            subject.labels,
            st.held,
            trig,
            r.label,
            seed=st.ctx.seed,
            before=st.hpred,
        )
        return D.LabelResult(r.label, trig, loss, fr, n, r.opt_loss)

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
