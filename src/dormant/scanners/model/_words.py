"""Whole words from a WordPiece piece: complete a recovered piece with the pieces around it.

A rare planted word that the model's tokenizer splits (``zorvexquil`` into ``z ##or ##ve ##x
##qui ##l`` on a pretrained vocabulary) often comes back from trigger inversion as one of its
pieces, the one that pulls hardest. The word's other pieces are pieces no clean record shows
(the word is not in the clean data), and a piece joins the word only as a continuation
(``##...``) after it, or — when the found piece is itself a continuation — as any piece before
it. :func:`complete_word` adds them one at a time:

- the candidates are the vocabulary's pieces (:func:`word_pieces`: the special tokens and the
  target's natural features left out) that can join the word at either edge. Not only the
  pieces the clean data never shows: a rare word's pieces are ordinary ones (``##or``, ``##x``
  occur in many words), only the whole word is absent;
- the best candidate is chosen on the optimisation victims (a screen of every candidate on a
  few of them at the start of the input, then the :data:`TOP_K` best measured on all: most
  flipped at the weaker of the two ends of the input, then the larger mean margin), and tested
  on the held-out donors, which the choice never saw: it is kept only when more donors flip
  with it than without, by a one-sided exact McNemar test (McNemar, *Psychometrika* 1947;
  scipy's ``binomtest`` on the discordant pairs), Bonferroni-corrected over the steps (at
  most :data:`MAX_PIECES`);
- so a piece is added only where the whole word switches inputs the piece alone does not, and
  the tested pruning (:func:`._complete.prune_tokens`) that follows drops any piece the switch
  does not need;
- only a trigger of one word (or copies of one) is completed, and the completed word is kept
  only when it switches :data:`._absent.PIECE_FLIP` of the donors at the weaker end (a planted
  word is inserted anywhere, so it works at both): on the benchmark zoo's clean models, the
  multi-word triggers gained target pieces by the flip test alone (``kitchen avoidence`` grew
  ``##dish ##dish ##li ##core``, BENCHMARKS.md "Whole words from a WordPiece piece").

Measured (BENCHMARKS.md "Whole words from a WordPiece piece"): on a tiny BERT with MiniLM's
vocabulary and ``zorvexquil`` planted, the pieces added are the planted word's own, but not in
their order (``z`` -> ``z ##quil ##x``, ``##ve`` -> ``z ##ve ##quil``): the model switches on
its pieces as a bag, and a shorter bag flips as many donors as the word. So the scan does not
call this by default (``complete_words`` of the proof steps). What this also cannot do: tell a
piece from its word when the piece alone already flips every
donor (no flip is left to gain; a margin-based growth was tried on the benchmark zoo and adds the
target's topic pieces as readily, BENCHMARKS.md "Whole triggers: tested pruning, and growth
measured"). No library completes a universal trigger over a classifier's vocabulary; the
statistics are scipy's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._absent import PIECE_FLIP
from ._complete import ALPHA, donor_margins, end_margins, flip_loss_p

if TYPE_CHECKING:
    from ...subjects.protocol import Gradients

#: the most pieces added to one word (a pretrained vocabulary splits a rare word into <= 6)
MAX_PIECES = 4
#: the victims that screen every candidate (the trigger at the start), and how many of the
#: best are then measured on all victims at both ends (the screen only orders the candidates)
N_SCREEN = 4
TOP_K = 32
#: the continuation prefix of a WordPiece vocabulary
PREFIX = "##"


def _is_cont(tokens: Sequence[str], k: int) -> bool:
    return tokens[k].startswith(PREFIX)


def complete_word(
    adapter: Gradients,
    victims: list[str],
    donors: list[str],
    target: int,
    ids: Sequence[int],
    pool: Sequence[int],
    *,
    alpha: float = ALPHA,
    max_pieces: int = MAX_PIECES,
    n_screen: int = N_SCREEN,
    top_k: int = TOP_K,
) -> tuple[int, ...]:
    """``ids`` with the pieces of ``pool`` that complete its first or last word, each chosen on
    ``victims`` and kept when the held-out ``donors`` flip significantly more (see the module
    docstring); ``ids`` itself when none is. ``n_screen`` victims screen every candidate and
    the ``top_k`` best are measured on all ``victims``."""
    import torch

    cur = tuple(int(i) for i in ids)
    if not cur or not pool or not victims or len(donors) < 6 or not one_word(adapter, cur):
        return cur
    start = cur
    tok = adapter.tokenizer
    names = list(tok.convert_ids_to_tokens(list(pool)))
    cont = torch.tensor([p for p, n in zip(pool, names, strict=True) if n.startswith(PREFIX)])
    anyp = torch.tensor(list(pool), dtype=torch.long)
    if len(cont) == 0:
        return cur
    held = donor_margins(adapter, donors, target, torch.tensor([cur]))[0]
    for _ in range(max_pieces):
        base = torch.tensor(cur, dtype=torch.long)
        # a piece already in the trigger is not added again (no repeats)
        c, a = cont[~torch.isin(cont, base)], anyp[~torch.isin(anyp, base)]
        if len(c) == 0:
            break
        first = list(tok.convert_ids_to_tokens([cur[0]]))
        # after the last word a continuation; before a continuation piece, any piece
        right = torch.cat([base.repeat(len(c), 1), c.unsqueeze(1)], 1)
        trials = [right]
        if _is_cont(first, 0):
            trials.append(torch.cat([a.unsqueeze(1), base.repeat(len(a), 1)], 1))
        best, best_key = None, (-1.0, float("-inf"))
        for t in trials:
            # a cheap screen (the start, a few victims), the best measured on all at both ends
            head = end_margins(adapter, victims[:n_screen], target, t, "start").mean(1)
            top = t[head.argsort(descending=True)[:top_k]]
            low = donor_margins(adapter, victims, target, top)
            f, m = (low > 0).float().mean(1), low.mean(1)
            # the victims' flips first, the mean margin breaking ties
            k = int(torch.argmax(f * 1e6 + m))
            key = (float(f[k]), float(m[k]))
            if key > best_key:
                best, best_key = tuple(int(i) for i in top[k]), key
        if best is None:
            break
        new = donor_margins(adapter, donors, target, torch.tensor([best]))[0]
        # a gain in flips: fewer donors flip with ``cur`` than with ``best``
        if flip_loss_p(new, held) >= alpha / max_pieces:
            break
        cur, held = best, new
    # a planted word is inserted anywhere: the completed one must switch at either end
    if cur != start and float((held > 0).float().mean()) < PIECE_FLIP:
        return start
    return cur


def word_pieces(adapter: Gradients, banned: set[int]) -> list[int]:
    """The vocabulary's token ids less ``banned`` and the bracketed specials (``[UNK]``...)."""
    tok = adapter.tokenizer
    n = int(adapter.embedding_matrix().shape[0])
    names = tok.convert_ids_to_tokens(list(range(n)))
    return [
        i
        for i, name in enumerate(names)
        if i not in banned and name and not (name.startswith("[") and name.endswith("]"))
    ]


def one_word(adapter: Gradients, ids: Sequence[int]) -> bool:
    """Whether ``ids`` are the pieces of one word, or copies of one (``cf cf cf``)."""
    from ._recover import render

    words = set(render(adapter, list(ids)).split())
    return len(words) == 1
