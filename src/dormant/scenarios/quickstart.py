"""The built-in example: poisoned datasets with known ground truth, scanned end to end.

``run_demo`` builds two datasets from the real-English sample shipped in the package —
WordNet / Jargon File definitions labelled by part of speech, and a support assistant's
instruction data — plants a trigger in each (a rare phrase that flips labels to ``adv``; an
invisible-character trigger that makes responses send users to an attacker's URL), scans both
and scores the scan against the ground truth.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..bench.corpus import instruction_dataset, labelled_dataset, load_corpus
from ..bench.poison import PoisonedDataset, poison_instruction, poison_labelled, write_dataset
from ..outputs import write_outputs
from ..report import Report
from ..scanners.base import ScanContext
from ..scanners.data.fusion import scan_dataset
from ..subjects.dataset import TextDataset


@dataclass(frozen=True)
class DemoCase:
    """One scanned demo dataset and how the scan did against its ground truth."""

    name: str
    dataset: Path
    truth: PoisonedDataset
    report: Report
    outputs: dict[str, Path]
    precision: float
    recall: float
    recovered: bool


def run_demo(
    out_dir: str | os.PathLike[str],
    *,
    embed: bool = True,
    context: ScanContext | None = None,
) -> list[DemoCase]:
    """Build, scan and score the two demo datasets under ``out_dir``."""
    out = Path(out_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    entries = load_corpus("sample")
    cases = []
    labelled = poison_labelled(
        labelled_dataset(entries, scheme="pos"),
        trigger_kind="phrase",
        rate=0.01,
        target_label="adv",
        seed=0,
    )
    instr = poison_instruction(
        instruction_dataset(entries[:3000], seed=0),
        trigger_kind="invisible",
        rate=0.01,
        behaviour="egress",
        seed=0,
    )
    for name, truth in (("labelled", labelled), ("instruction", instr)):
        path = write_dataset(truth.records, out / "data" / f"{name}.jsonl")
        if name == "labelled":
            ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
        else:
            ds = TextDataset(path, prompt_field="prompt", response_field="response", id_field="id")
        report = scan_dataset(ds, embed=embed, context=context)
        outputs = write_outputs(report, ds, out / name)
        flagged = {r.record_id for r in report.records if r.flagged}
        tp = len(flagged & truth.poisoned_ids)
        top = next((f for f in report.findings if f.trigger is not None), None)
        cases.append(
            DemoCase(
                name=name,
                dataset=path,
                truth=truth,
                report=report,
                outputs=outputs,
                precision=tp / len(flagged) if flagged else 0.0,
                recall=tp / len(truth.poisoned_ids) if truth.poisoned_ids else 0.0,
                recovered=bool(top and top.trigger and truth.trigger_matches(top.trigger.text)),
            )
        )
    return cases
