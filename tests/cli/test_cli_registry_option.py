"""``--registry`` on every scan and probe command: the report is recorded, and an unreachable
registry fails before the scan (exit 3). The probe runs a rule-based model behind a real
loopback OpenAI-compatible server."""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from _agent_doubles import RuleModel, serve_model, support_tasks

from dormant.registry import Registry
from dormant.subjects.sandbox import BUILTIN_TOOLS

SCAN_AND_PROBE = (
    ("scan", "data"),
    ("scan", "corpus"),
    ("scan", "model"),
    ("scan", "artifact"),
    ("scan", "models"),
    ("probe", "llm"),
    ("probe", "agent"),
)


def _leaf(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    for name in names:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


@pytest.mark.parametrize("command", SCAN_AND_PROBE, ids=" ".join)
def test_every_scan_and_probe_command_takes_registry(command: tuple[str, str]) -> None:
    from dormant.cli import build_parser

    leaf = _leaf(build_parser(), *command)
    assert any("--registry" in a.option_strings for a in leaf._actions)


def _files(tmp_path: Path) -> tuple[Path, Path]:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        "".join(
            json.dumps({"id": t.id, "prompt": t.prompt, "system": t.system, "tools": list(t.tools)})
            + "\n"
            for t in support_tasks(24)
        ),
        encoding="utf-8",
    )
    tools = tmp_path / "tools.json"
    names = ("lookup_order", "send_email", "read_secret", "issue_refund")
    tools.write_text(json.dumps([BUILTIN_TOOLS[n][0].to_openai() for n in names]), "utf-8")
    return tasks, tools


def test_probe_agent_records_its_report_in_the_registry(run_cli: Any, tmp_path: Path) -> None:
    tasks, tools = _files(tmp_path)
    db = tmp_path / "registry.sqlite3"
    with serve_model(RuleModel("zq-omega")) as url:
        r = run_cli(
            "probe",
            "agent",
            url,
            "--model",
            "rule-model",
            "--tools",
            tools,
            "--tasks",
            tasks,
            "--trigger",
            "zq-omega",
            "--sources",
            "version",
            "--registry",
            db,
            "--out",
            tmp_path / "out",
            "--formats",
            "json",
        )
    assert r.code == 1, r.err
    report = json.loads((tmp_path / "out" / "report.json").read_text("utf-8"))
    with Registry.open(str(db)) as reg:
        scans = reg.scans_for(report["subject"]["digest"])
        assert len(scans) == 1
        assert any("zq-omega" in t.text for t in reg.known_triggers())


def test_scan_corpus_records_and_an_unreachable_registry_fails_first(
    run_cli: Any, tmp_path: Path
) -> None:
    corpus = tmp_path / "c.jsonl"
    rows = [{"id": f"p{i}", "text": f"Orders ship in {i + 2} days."} for i in range(20)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    db = tmp_path / "registry.sqlite3"
    out = tmp_path / "out"
    r = run_cli("scan", "corpus", corpus, "--no-embed", "--registry", db, "-o", out)
    assert r.code == 0, r.err
    report = json.loads((out / "report.json").read_text("utf-8"))
    with Registry.open(str(db)) as reg:
        assert len(reg.scans_for(report["subject"]["digest"])) == 1
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        down = f"postgresql://nobody@127.0.0.1:{s.getsockname()[1]}/db"
    r = run_cli("scan", "corpus", corpus, "--no-embed", "--registry", down, "-o", tmp_path / "o2")
    assert r.code == 3 and "does not answer" in r.err, r.err
    assert not (tmp_path / "o2").exists()
