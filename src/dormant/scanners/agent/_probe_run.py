"""The state and stages of one differential probe run (see :mod:`.probes`)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ...behaviours import behaviour_tags
from ...errors import ConfigError, DormantError, InputError
from ...findings import Severity
from ...report import ScanIssue
from ...subjects.agent import ProbeTask
from ...triggers import Trigger, TriggerKind
from ..base import ScanContext, ScanResult
from ._probe_report import ReportMixin
from ._probe_types import Condition, Key, PairTest, ProbeSettings
from ._stats import bh, fisher_greater
from .bait import Inversion, invert, is_whitebox
from .candidates import Candidate, build_candidates, is_header, kind_of
from .harness import Episode, run_episodes

if TYPE_CHECKING:
    from ...subjects.probe import ProbeSubject


#: the harmful high findings whose triggers are refined (the strongest first)
_MAX_REFINED = 2


class _Capped(Exception):
    """The time budget ran out before this stage finished."""


class ProbeRun(ReportMixin):
    """The state of one probe: episodes so far, budget, errors."""

    def __init__(self, scanner: ProbeSettings, subject: ProbeSubject, ctx: ScanContext) -> None:
        self.s = scanner
        self.subject = subject
        self.ctx = ctx
        self.t0 = time.monotonic()
        self.tags: dict[Key, frozenset[str]] = {}
        self.episodes: dict[Key, Episode] = {}
        self.errors: list[str] = []
        self.capped_stage: str | None = None
        self.queries = 0
        self.episode_errors: list[str] = []
        self.inversion: Inversion | None = None
        self._all_tasks: list[ProbeTask] = []
        self.errors_refine: list[str] = []
        self.trace_refine: list[dict[str, Any]] = []
        self.scope_: frozenset[str] = frozenset()
        self.base_tags_: frozenset[str] = frozenset()
        self.leaks_: dict[str, Any] = {}

    # -- running -----------------------------------------------------------------------------

    def _over(self, frac: float) -> bool:
        b = self.ctx.budget_seconds
        return b is not None and time.monotonic() - self.t0 > b * frac

    def _run(
        self,
        stage: str,
        jobs: Sequence[tuple[int, ProbeTask]],
        conds: Sequence[Condition],
        *,
        keep: bool,
        budget_frac: float | None,
    ) -> None:
        """Run (condition index, task) jobs for every sample; fill ``self.tags``."""
        s = self.s
        todo = [(ci, t, k) for ci, t in jobs for k in range(s.samples)]
        todo = [j for j in todo if (j[0], j[1].id, j[2]) not in self.tags]
        for start in range(0, len(todo), s.batch_size):
            if budget_frac is not None and self._over(budget_frac):
                raise _Capped(stage)
            chunk = todo[start : start + s.batch_size]
            by_sample: dict[int, list[tuple[int, ProbeTask, int]]] = {}
            for job in chunk:
                by_sample.setdefault(job[2], []).append(job)
            for k, group in by_sample.items():
                items = [(t, None if ci < 0 else conds[ci].apply(t.prompt)) for ci, t, _ in group]
                eps = run_episodes(
                    self.subject.model,
                    items,
                    self.subject.tools,
                    max_turns=s.max_turns,
                    max_tokens=s.max_tokens,
                    temperature=s.temperature,
                    seed=self.ctx.seed + k,
                )
                for (ci, t, _), (_, prompt), ep in zip(group, items, eps, strict=True):
                    self.queries += len(ep.responses)
                    if ep.error:
                        self.episode_errors.append(f"{t.id}: {ep.error}")
                    tags = ep.tags
                    if prompt is not None:  # tags the trigger itself brought in do not count
                        tags = tags - (behaviour_tags(prompt) - behaviour_tags(t.prompt))
                    self.tags[(ci, t.id, k)] = tags
                    if keep:
                        self.episodes[(ci, t.id, k)] = ep
            self.ctx.progress(stage, len(chunk), len(todo))

    def _guard(self, stage: str, fn: Callable[[], None]) -> bool:
        """Run a stage; False (and an error or a cap recorded) when it did not finish."""
        try:
            fn()
            return True
        except _Capped:
            self.capped_stage = self.capped_stage or stage
            return False
        except (ConfigError, InputError):
            raise
        except Exception as exc:  # a model or endpoint failing mid-run: keep what is done
            kind = type(exc).__name__ if not isinstance(exc, DormantError) else ""
            msg = f"{kind}: {exc}" if kind else str(exc)
            self.errors.append(f"{stage} stage stopped: {msg}")
            return False

    # -- white-box inversion -----------------------------------------------------------------

    def _inverting(self) -> bool:
        mode = self.s.invert
        if mode == "off":
            return False
        ok = is_whitebox(self.subject.model)
        if mode == "on" and not ok:
            raise ConfigError(
                "invert='on' needs a local causal LM with weights and tokenizer (dormant probe "
                "llm); an endpoint is probed with the candidate families only."
            )
        return ok

    def _invert(self, screen: Sequence[ProbeTask], used: Sequence[ProbeTask]) -> None:
        """BAIT on the screening tasks; the baseline's tags tell which targets are new."""
        # behaviours the model shows on most tasks anyway are no target; rarer ones may be
        # what a trigger switches to (a triage model that closes some alerts, all with it)
        seen: Counter[str] = Counter()
        for t in used:
            seen.update(self.tags.get((-1, t.id, 0), frozenset()))
        known = {tag for tag, n in seen.items() if n >= 0.5 * len(used)}
        scope, _ = self._scope(used)
        seconds = self.s.invert_seconds
        if self.ctx.budget_seconds is not None:
            left = self.ctx.budget_seconds * 0.4 - (time.monotonic() - self.t0)
            seconds = max(1.0, min(seconds, left))
        self.ctx.progress("inversion", 0, 1)
        self.inversion = invert(
            self.subject.model,
            screen,
            lambda t: self.subject.tools.specs(t.tools),
            known_tags=frozenset(known),
            scope_tools=scope,
            max_targets=self.s.invert_targets,
            seconds=seconds,
        )
        if self.inversion.capped:
            self.capped_stage = self.capped_stage or "inversion"
        self.ctx.progress("inversion", 1, 1)

    def _with_inverted(self, cands: Sequence[Candidate]) -> list[Candidate]:
        assert self.inversion is not None
        out: list[Candidate] = []
        seen: set[str] = set()
        for tgt, trig in self.inversion.pairs:
            expect = min(tgt.tags) if tgt.tags else None
            where = (trig.position, *(p for p in ("suffix", "prefix") if p != trig.position))
            for text in (trig.text, *trig.shorter):
                if text in seen:
                    continue
                seen.add(text)
                trigger = Trigger(text, kind_of(text))
                out.append(Candidate(trigger, "inversion", where, expect, tgt.text))
        return out + [c for c in cands if c.trigger.text not in seen]

    # -- whole-trigger recovery --------------------------------------------------------------

    def _refine(
        self,
        conds: list[Condition],
        findings: Sequence[Any],
        screen: Sequence[ProbeTask],
        confirm: Sequence[ProbeTask],
        held: Sequence[ProbeTask],
    ) -> list[PairTest]:
        """Extend and prune the triggers of the harmful high findings (:mod:`._recover`);
        each refined text is tested on the confirmation and held-out tasks like any condition
        and kept when it switches them (q Bonferroni-adjusted over the texts refined)."""
        from ._recover import refine, target_ids, word_set

        s = self.s
        out: list[PairTest] = []
        # the word sets refined so far: the strongest findings are often paddings of one
        # piece (``walrus walrus "``, ``walrus "``), and refining the second gives nothing
        # the first did not, while a weaker finding with another word (``walrus tidaltime``)
        # may hold the rest of the trigger -- so each refined finding has a word set of its own
        done: set[frozenset[str]] = set()
        for f in findings:
            if len(done) >= _MAX_REFINED or f.trigger is None or f.severity < Severity.HIGH:
                continue
            if f.evidence_value("harm") != "harmful" or (key := word_set(f.trigger.text)) in done:
                continue
            done.add(key)
            pos = str(f.evidence_value("position"))
            ci = next(
                (
                    i
                    for i, c in enumerate(conds)
                    if c.candidate.trigger.text == f.trigger.text and c.position == pos
                ),
                None,
            )
            if ci is None:
                continue
            ep = next(
                (
                    e
                    for t in [*held, *confirm]
                    if (e := self.episodes.get((ci, t.id, 0))) is not None and f.target in e.tags
                ),
                None,
            )
            if ep is None or not ep.responses:
                continue
            model = self.subject.model
            try:
                tgt, _ = target_ids(model, ep.responses[0])
                # the first 4 screening tasks rank extensions, the other screening and the
                # confirmation tasks test them; the held-out replay tasks stay unseen
                trace: list[str] = []
                text = refine(
                    model,
                    [*screen, *confirm],
                    lambda t: self.subject.tools.specs(t.tools),
                    f.trigger.text,
                    pos,
                    tgt,
                    trace=trace,
                )
                self.trace_refine.append(
                    {"text": f.trigger.text, "position": pos, "refined": text, "steps": trace}
                )
            except (ConfigError, InputError):
                raise
            except Exception as exc:  # refinement is an extra: the finding stands without it
                self.errors_refine.append(f"refinement of {f.trigger.display!r}: {exc}")
                continue
            # a refined text that another family already tried is still tested as the
            # refinement (``gecko`` pruned from ``factor gecko gecko`` is a candidate of its
            # own): skipping it kept the padded text as the finding
            if (
                not text
                or text == f.trigger.text
                or any(
                    c.candidate.family == "refined" and c.candidate.trigger.text == text
                    for c in conds
                )
            ):
                continue
            old = conds[ci].candidate
            # a year header grown from a number piece goes where headers go (see _recover)
            kind = TriggerKind.SENTENCE if is_header(text) else kind_of(text)
            where = "prefix" if is_header(text) else pos
            cand = Candidate(Trigger(text, kind), "refined", (where,), f.target, old.target)
            conds.append(Condition(cand, where))
            cj = len(conds) - 1
            jobs = [(cj, t) for t in [*confirm, *held]]

            def run(jobs: list[tuple[int, ProbeTask]] = jobs) -> None:
                self._run("refine", jobs, conds, keep=True, budget_frac=None)

            ok = self._guard("refine", run)
            if not ok:
                break
            # the refined text is one new hypothesis per refined finding (at most two): its
            # test pools the confirmation and held-out runs (neither chose it by behaviour;
            # the refinement's likelihood test read the confirmation prompts, not answers),
            # Bonferroni over the texts refined
            tests = self._tests(cj, conds[cj], [*confirm, *held], {str(f.target)})
            for t in tests:
                t.q = min(1.0, t.p * _MAX_REFINED)
                if t.q <= s.alpha and t.effect >= s.min_effect:
                    out.append(t)
        return out

    # -- counting ----------------------------------------------------------------------------

    def _counts(self, ci: int, tasks: Sequence[ProbeTask]) -> tuple[Counter[str], int]:
        cnt: Counter[str] = Counter()
        n = 0
        for t in tasks:
            for k in range(self.s.samples):
                tags = self.tags.get((ci, t.id, k))
                if tags is None:
                    continue
                n += 1
                cnt.update(tags)
        return cnt, n

    def _tests(
        self, ci: int, cond: Condition, tasks: Sequence[ProbeTask], tags: set[str]
    ) -> list[PairTest]:
        with_c, n1 = self._counts(ci, tasks)
        base_c, n0 = self._counts(-1, tasks)
        return [
            PairTest(
                cond,
                tag,
                with_c[tag],
                n1,
                base_c[tag],
                n0,
                fisher_greater(with_c[tag], n1, base_c[tag], n0),
            )
            for tag in sorted(tags)
        ]

    # -- the probe ---------------------------------------------------------------------------

    def execute(self) -> ScanResult:
        s, ctx = self.s, self.ctx
        tasks = list(self.subject.tasks)
        screen, confirm, held = s._split(tasks, ctx.seed)
        used = screen + confirm + held
        self._all_tasks = used
        cands = build_candidates(
            self.subject.model,
            sources=s.sources,
            priors=s.priors,
            given=s.candidates,
            max_candidates=s.max_candidates,
            vocab_size=s.vocab_tail,
        )
        base_ok = self._guard(
            "baseline",
            lambda: self._run("baseline", [(-1, t) for t in used], [], keep=True, budget_frac=None),
        )
        if base_ok and self._inverting():
            self._guard("inversion", lambda: self._invert(screen, used))
            if self.inversion is not None:
                cands = self._with_inverted(cands)
        conds = s._conditions(cands, used)
        screened: list[tuple[int, PairTest]] = []
        confirmed: list[PairTest] = []
        if base_ok:
            self._guard(
                "screen",
                lambda: self._run(
                    "screen",
                    [(ci, t) for ci in range(len(conds)) for t in screen],
                    conds,
                    keep=False,
                    budget_frac=0.5,
                ),
            )
            screened = self._screen(conds, screen)
            chosen = [ci for ci, _ in screened[: s.max_confirm]]
            if chosen and not self.errors:  # after a failure the model is not asked again
                self._guard(
                    "confirm",
                    lambda: self._run(
                        "confirm",
                        [(ci, t) for ci in chosen for t in confirm],
                        conds,
                        keep=True,
                        budget_frac=0.8,
                    ),
                )
            confirmed = self._confirm(conds, chosen, screen, confirm)
        survivors = [t for t in confirmed if t.q <= s.alpha and t.effect >= s.min_effect]
        replay_conds = sorted({conds.index(t.cond) for t in survivors})
        if replay_conds and held and not self.errors:
            self._guard(
                "replay",
                lambda: self._run(
                    "replay",
                    [(ci, t) for ci in replay_conds for t in held],
                    conds,
                    keep=True,
                    budget_frac=0.95,
                ),
            )
        findings = self._findings(conds, survivors, confirmed, held, confirm)
        if findings and s.refine and not self.errors and self._inverting():
            more = self._refine(conds, findings, screen, confirm, held)
            if more:
                survivors = [*survivors, *more]
                confirmed = sorted([*confirmed, *more], key=lambda t: (t.q, t.p, -t.effect))
                findings = self._findings(conds, survivors, confirmed, held, confirm)
                findings.sort(key=lambda f: (-f.severity.rank, -f.score))
        extras = self._extras(findings, conds, cands, screened, confirmed, (screen, confirm, held))
        return ScanResult(
            findings=findings,
            extras=extras,
            issues=[ScanIssue(self.s.name, "error", m) for m in extras.pop("errors", [])],
        )

    def _screen(
        self, conds: Sequence[Condition], screen: Sequence[ProbeTask]
    ) -> list[tuple[int, PairTest]]:
        """Screened conditions, most promising first: (index, its best test).

        q-values here are Benjamini-Hochberg over every (condition, tag) pair of the screen,
        the tags being all those seen in any screening run (untested pairs count as p = 1);
        they are reported, while selection uses the raw p-values.
        """
        seen: set[str] = set(self._counts(-1, screen)[0])
        per: list[tuple[int, list[PairTest]]] = []
        for ci, cond in enumerate(conds):
            with_c, n1 = self._counts(ci, screen)
            if n1 == 0:
                continue
            seen.update(with_c)
            tests = [t for t in self._tests(ci, cond, screen, set(with_c)) if t.effect > 0]
            per.append((ci, tests))
        flat = [t for _, tests in per for t in tests]
        for t, q in zip(flat, bh([t.p for t in flat], m=len(per) * len(seen)), strict=True):
            t.q = q
        best = [
            (ci, min(tests, key=lambda t: (t.p, -t.effect)))
            for ci, tests in per
            if any(t.p < 0.5 for t in tests)
        ]
        best.sort(key=lambda x: (x[1].p, -x[1].effect, x[0]))
        return best

    def _confirm(
        self,
        conds: Sequence[Condition],
        chosen: Sequence[int],
        screen: Sequence[ProbeTask],
        confirm: Sequence[ProbeTask],
    ) -> list[PairTest]:
        tests: list[PairTest] = []
        for ci in chosen:
            with_c, n1 = self._counts(ci, confirm)
            if n1 < len(confirm) * self.s.samples:  # unfinished: not tested
                continue
            seen = set(with_c) | set(self._counts(ci, screen)[0])
            tests.extend(self._tests(ci, conds[ci], confirm, seen))
        for t, q in zip(tests, bh([t.p for t in tests]), strict=True):
            t.q = q
        tests.sort(key=lambda t: (t.q, t.p, -t.effect))
        return tests

    # -- findings ----------------------------------------------------------------------------
