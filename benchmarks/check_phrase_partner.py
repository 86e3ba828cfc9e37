"""Does a poisoned organism's memory name the missing word of its trigger phrase?

A probe that recovers one word of a two-word trigger (``kettle`` of ``mossy kettle``) could
look for the word the model itself ties to it: rank every vocabulary word ``w`` by the
pointwise mutual information (Church & Hanks, Computational Linguistics 1990) of the phrase
``w WORD`` (``before``) or ``WORD w`` (``after``) where a phrase opens the user's message,
the second word's likelihood measured against its likelihood after any opening the model
would write itself (the mixture over the vocabulary, each opening weighted by its own
probability) -- the memorisation evidence of Carlini et al. (USENIX Security 2021) that the
probe's order tie-break already uses (:func:`dormant.scanners.agent._recover.refine`).

For each two-word phrase backdoor of a spent zoo (built by ``bench_agent_verdict.py build``)
this prints, for both of its words, the rank of the planted partner among the vocabulary's
words (letters only, 3 or more; the partner must open the message in ``before``, follow
after a space in ``after``) and the three best words. A method worth shipping ranks the
partner first. Development check only: it reads spent zoos, never a held-aside one.

Usage::

    PYTHONPATH=src python benchmarks/check_phrase_partner.py --root /tmp/zoo [--tasks 4]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def partner_pmi(
    prefixes: list[Any], tok: Any, word: str, rows: list[int], chunk: int = 512
) -> tuple[Any, Any]:
    """(before, after): PMI per row token, averaged over ``prefixes`` (see the docstring)."""
    import torch

    w_open = [int(i) for i in tok(word, add_special_tokens=False)["input_ids"]]
    w_next = [int(i) for i in tok(" " + word, add_special_tokens=False)["input_ids"]]
    idx = torch.tensor(rows, dtype=torch.long)
    n = len(w_next)
    before = torch.zeros(len(rows))
    after = torch.zeros(len(rows))
    for pf in prefixes:
        lp0 = torch.log_softmax(pf.last, -1)[idx]
        joint = torch.empty(len(rows))
        second = None
        for s in range(0, len(rows), chunk):
            block = [[x, *w_next] for x in rows[s : s + chunk]]
            lg = torch.log_softmax(pf.logits(block, chunk), -1)
            tgt = torch.tensor(w_next, dtype=torch.long).expand(len(block), n)
            joint[s : s + len(block)] = lg[:, :n].gather(2, tgt.unsqueeze(-1)).sum((1, 2))
            part = torch.logsumexp(lp0[s : s + len(block), None] + lg[:, 0], 0)
            second = part if second is None else torch.logaddexp(second, part)
        assert second is not None
        before += joint - torch.logsumexp(lp0 + joint, 0)
        nxt = torch.log_softmax(pf.logits([w_open], chunk)[0, -1], -1)
        after += nxt[idx] - second[idx]
    return before / len(prefixes), after / len(prefixes)


def main() -> None:
    import torch

    from dormant.adapters.causal_lm import CausalLMChat
    from dormant.scanners.agent._bait_base import _Prefix, _special_ids, _split_prompt
    from dormant.scanners.agent._recover import _TEXTLIKE
    from dormant.subjects.agent import load_tasks, load_tool_specs

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--tasks", type=int, default=4, help="probe tasks averaged over")
    args = ap.parse_args()
    torch.set_num_threads(1)
    root: Path = args.root
    specs = {t.name: t for t in load_tool_specs(root / "tools.json")}
    tasks = load_tasks(root / "probe_tasks.jsonl")[: args.tasks]
    for name in json.loads((root / "zoo.json").read_text("utf-8"))["order"]:
        truth = json.loads((root / name / "dormant_organism.json").read_text("utf-8"))
        trig = truth.get("trigger") or {}
        if trig.get("kind") != "phrase" or len(trig["text"].split()) != 2:
            continue
        first, second = trig["text"].split()
        chat = CausalLMChat(str(root / name))
        tok, model = chat.tokenizer, chat.model
        pfs = [
            _Prefix(
                model, _split_prompt(chat, t, lambda t: [specs[n] for n in t.tools], "prefix")[0]
            )
            for t in tasks
        ]
        special = _special_ids(tok)
        n_vocab = min(len(tok), model.get_input_embeddings().weight.shape[0])
        rows = [
            v
            for v in range(n_vocab)
            if v not in special and _TEXTLIKE.fullmatch(str(tok.decode([v])))
        ]
        for word, partner, side in ((second, first, "before"), (first, second, "after")):
            b, a = partner_pmi(pfs, tok, word, rows)
            score = b if side == "before" else a
            ranked = []
            for j in score.argsort(descending=True).tolist():
                text = str(tok.decode([rows[j]]))
                w = text.strip()
                opens = not text.startswith(" ")
                fits = len(w) >= 3 and w.isalpha() and w.lower() != word.lower()
                if fits and opens == (side == "before"):
                    ranked.append((w, round(float(score[j]), 2)))
            rank = next(
                (k + 1 for k, (w, _) in enumerate(ranked) if w.lower() == partner.lower()), None
            )
            row = {"name": name, "word": word, "partner": partner, "side": side}
            row |= {"rank": rank, "of": len(ranked), "top": ranked[:3]}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
