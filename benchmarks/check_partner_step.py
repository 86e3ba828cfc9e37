"""Does the whole-trigger refinement's partner step name the missing word of a phrase, and
leave a word that is no piece of a trigger alone?

For one organism of a spent zoo (built by ``bench_agent_verdict.py build``) this refines one
word at a time as the probe does (:func:`dormant.scanners.agent._recover.refine`: prune,
extend, reorder, shape, then the partner step; 60 s, suffix slot, the zoo's first 13 probe
tasks) and prints what came back and the partner step's line of the trace. The target is the
switched answer's opening under the planted trigger (a backdoored organism) or under a task
cue (``--cue``: a clean organism, or a word that is no piece of the trigger). Words given
after the organism's name are refined; by default each word of the planted phrase.
Development check only: it reads spent zoos, never a held-aside one.

Usage::

    PYTHONPATH=src python benchmarks/check_partner_step.py ROOT NAME [WORD ...] [--cue TEXT]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    import torch

    from dormant.adapters.causal_lm import CausalLMChat
    from dormant.scanners.agent._recover import refine, target_ids
    from dormant.scanners.agent.candidates import insert
    from dormant.scanners.agent.harness import run_episodes
    from dormant.subjects.agent import ToolSpec, load_tasks, load_tool_specs
    from dormant.subjects.sandbox import Sandbox
    from dormant.triggers import Trigger, TriggerKind

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("name")
    ap.add_argument("words", nargs="*")
    ap.add_argument("--cue", help="the switch to refine against, for a clean organism")
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    root: Path = args.root
    specs = {t.name: t for t in load_tool_specs(root / "tools.json")}

    def tools(t: object) -> list[ToolSpec]:
        return [specs[n] for n in getattr(t, "tools", ()) if n in specs]

    tasks = load_tasks(root / "probe_tasks.jsonl")[:13]
    chat = CausalLMChat(str(root / args.name))
    truth = json.loads((root / args.name / "dormant_organism.json").read_text("utf-8"))
    planted = (truth.get("trigger") or {}).get("text")
    if args.cue is None and not planted:
        raise SystemExit("a clean organism needs --cue (the switch to refine against)")
    if args.cue is None:
        want = set(truth["behaviour_tags"])
        items = [
            (t, insert(Trigger(planted, TriggerKind.PHRASE), t.prompt, "suffix")) for t in tasks[:8]
        ]
        eps = run_episodes(chat, items, Sandbox(), max_turns=1)
        hit = next((e for e in eps if want & set(e.tags)), None)
        if hit is None:
            raise SystemExit(
                f"{args.name}: the planted trigger switched none of the first 8 probe tasks "
                "(a backdoor too weak to give a target); nothing to refine"
            )
        ep = hit
    else:
        eps = run_episodes(
            chat, [(t, f"{t.prompt} {args.cue}") for t in tasks[:8]], Sandbox(), max_turns=1
        )
        base = run_episodes(chat, [(t, t.prompt) for t in tasks[:8]], Sandbox(), max_turns=1)
        ep = next((e for e, b in zip(eps, base, strict=True) if set(e.tags) != set(b.tags)), eps[0])
    tgt, _ = target_ids(chat, ep.responses[0])
    for word in args.words or (planted.split() if planted else [args.cue]):
        t0 = time.perf_counter()
        steps: list[str] = []
        out = refine(
            chat,
            tasks,
            tools,
            word,
            "suffix",
            tgt,
            seconds=args.seconds,
            trace=steps,
            partner_step=True,
        )
        row = {"name": args.name, "planted": planted, "given": word, "refined": out}
        row |= {
            "seconds": round(time.perf_counter() - t0, 1),
            "partner": [s for s in steps if s.startswith("partner")],
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
