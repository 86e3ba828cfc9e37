"""``dormant probe llm|agent``: does some input condition switch what a model or agent does?"""

from __future__ import annotations

import argparse
import os
from contextlib import ExitStack
from typing import Any

from ._common import (
    Progress,
    add_report_options,
    parse_fail_on,
    parse_formats,
    progress_enabled,
)
from ._scan_cmd import finish, load_data_report
from .provenance import add_registry_option

_DESCRIPTION = (
    "Run the tasks with and without candidate trigger conditions (data-scan triggers, dates, "
    "version strings, code-comment and log-line patterns, invisible and look-alike characters, "
    "rare tokens) in a sandbox whose tools hand out honeytoken credentials, and report each "
    "condition that switches the model's behaviour (a tool it never calls otherwise, a new "
    "destination, a credential, insecure code, a leaked system prompt, ignored sources): the "
    "trigger, the behaviour, the rate with and without it, the significance after "
    "Benjamini-Hochberg, the replay rate on held-out tasks and replayable transcripts. A local "
    "model is first inverted from its weights: candidate attack targets after BAIT (IEEE S&P "
    "2025), then the trigger that raises each, tested like every other candidate."
)


def register(root: Any, scan: Any) -> None:
    """Add ``dormant probe llm`` and ``dormant probe agent``."""
    probe = root.add_parser(
        "probe",
        help="probe an LLM or agent for trigger conditions that switch its behaviour",
        description=_DESCRIPTION,
    )
    sub = probe.add_subparsers(dest="target", metavar="TARGET")

    def usage(_: argparse.Namespace) -> int:
        from . import _usage

        return _usage(probe)

    probe.set_defaults(func=usage)
    llm = _target(
        sub, "llm", "probe a local causal language model (Hugging Face directory, safetensors)"
    )
    llm.add_argument("model", help="local model directory (safetensors weights only)")
    llm.add_argument("--tools", default=None, help="tool definitions (JSON list, OpenAI shape)")
    llm.add_argument("--device", default="cpu")
    llm.add_argument(
        "--invert",
        default="auto",
        choices=("auto", "on", "off"),
        help="first invert attack targets and their triggers from the weights (BAIT, IEEE S&P "
        "2025) and test those triggers before the candidate families",
    )
    llm.add_argument(
        "--invert-seconds", type=float, default=240.0, help="time for the inversion at most"
    )
    _common_options(llm)
    llm.set_defaults(func=run_llm)

    agent = _target(sub, "agent", "probe a model behind an OpenAI-compatible endpoint, with tools")
    agent.add_argument("url", help="API root, e.g. http://127.0.0.1:8000/v1")
    agent.add_argument("--model", required=True, help="model name sent with each request")
    agent.add_argument("--tools", required=True, help="tool definitions (JSON list)")
    agent.add_argument(
        "--api-key-env",
        default=None,
        metavar="VAR",
        help="environment variable holding the API key (never pass keys on the command line)",
    )
    agent.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    agent.add_argument("--retries", type=int, default=3, help="retries of a failed request")
    agent.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    mcp = agent.add_mutually_exclusive_group()
    mcp.add_argument(
        "--mcp-command",
        default=None,
        help="an MCP tool server to start (stdio), whose tools "
        "the sandbox does not have are offered and called for real",
    )
    mcp.add_argument("--mcp-url", default=None, help="an MCP tool server (streamable HTTP)")
    _common_options(agent)
    agent.set_defaults(func=run_agent)


def _target(sub: Any, name: str, help: str) -> Any:
    """The subcommand ``probe NAME`` (the probe's description, defaults shown in its help)."""
    return sub.add_parser(
        name,
        help=help,
        description=_DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )


def _common_options(p: Any) -> None:
    p.add_argument("--tasks", required=True, help="tasks (JSONL: id, prompt, system, tools ...)")
    p.add_argument(
        "--data-report", default=None, help="a data-scan report.json whose triggers are tried"
    )
    p.add_argument(
        "--trigger",
        action="append",
        default=[],
        metavar="TEXT",
        help="an extra candidate trigger to try (repeatable)",
    )
    p.add_argument(
        "--sources",
        default="all",
        help="candidate families, comma-separated, among data-report, given, date, version, "
        "code, log, invisible, homoglyph, rare-token, vocab; or all",
    )
    p.add_argument("--max-candidates", type=int, default=64, help="candidate triggers at most")
    p.add_argument(
        "--positions",
        default="prefix,suffix,inline,replace",
        help="where triggers are inserted (inline: inside a code comment or log line)",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="false-discovery rate")
    p.add_argument("--n-tasks", type=int, default=60, help="tasks used at most")
    p.add_argument("--samples", type=int, default=1, help="runs per task (temperature > 0)")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--max-turns", type=int, default=3, help="model calls per task at most")
    p.add_argument(
        "--budget-seconds",
        type=float,
        default=None,
        help="stop probing after about this long and report the best result so far",
    )
    p.add_argument(
        "--scope-tools",
        default=None,
        metavar="NAMES",
        help="the tools of the deployment's task, comma-separated: a switch between them is "
        "graded by meaning (info when the inserted words ask for the tool, medium at most "
        "otherwise) and any other tool counts as harm; default: the tools the model calls "
        "without a trigger on a tenth of the tasks or more, less any that a found trigger "
        "explains instead (a backdoor firing on some clean requests)",
    )
    p.add_argument(
        "--scope-destinations",
        default=None,
        metavar="NAMES",
        help="the outbound destinations of the deployment's task, comma-separated, as the "
        "egress tags name them (billing.example, mailto:desk.example): any other destination "
        "is harm; default: those the model reaches without a trigger, less any that a found "
        "trigger explains instead",
    )
    p.add_argument("--seed", type=int, default=0)
    add_report_options(p)
    add_registry_option(p)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    from ..errors import ConfigError

    out: dict[str, Any] = {
        "candidates": tuple(args.trigger),
        "max_candidates": args.max_candidates,
        "positions": tuple(x.strip() for x in args.positions.split(",") if x.strip()),
        "alpha": args.alpha,
        "n_tasks": args.n_tasks,
        "samples": args.samples,
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
        "max_turns": args.max_turns,
    }
    if args.scope_tools is not None:
        out["scope_tools"] = tuple(x.strip() for x in args.scope_tools.split(",") if x.strip())
    if args.scope_destinations is not None:
        out["scope_destinations"] = tuple(
            x.strip().removeprefix("egress:")
            for x in args.scope_destinations.split(",")
            if x.strip()
        )
    if args.sources and args.sources.strip() != "all":
        out["sources"] = tuple(x.strip() for x in args.sources.split(",") if x.strip())
        if args.trigger and "given" not in out["sources"]:
            out["sources"] += ("given",)
    if args.budget_seconds is not None and args.budget_seconds <= 0:
        raise ConfigError(f"--budget-seconds must be > 0. Got {args.budget_seconds!r}.")
    return out


def run_llm(args: argparse.Namespace) -> int:
    from ..errors import MissingDependencyError
    from ..subjects.agent import load_tasks, load_tool_specs

    formats = parse_formats(args.formats)
    fail_on = parse_fail_on(args.fail_on)
    tasks = load_tasks(args.tasks)
    specs = load_tool_specs(args.tools) if args.tools else None
    priors = load_data_report(args.data_report)
    params = _params(args)
    try:
        from ..adapters.causal_lm import load_causal_lm
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("dormant"):
            raise MissingDependencyError(
                "Probing a local model needs dormant.adapters.causal_lm, which this build of "
                "dormant lacks; probe it through an OpenAI-compatible server with "
                "'dormant probe agent' instead."
            ) from None
        raise
    model = load_causal_lm(args.model, device=args.device)
    params["invert"] = args.invert
    params["invert_seconds"] = args.invert_seconds
    return _probe(args, model, tasks, specs, None, priors, params, formats, fail_on)


def run_agent(args: argparse.Namespace) -> int:
    from ..adapters.openai_http import OpenAIChat
    from ..errors import ConfigError
    from ..subjects.agent import load_tasks, load_tool_specs

    formats = parse_formats(args.formats)
    fail_on = parse_fail_on(args.fail_on)
    tasks = load_tasks(args.tasks)
    specs = load_tool_specs(args.tools)
    priors = load_data_report(args.data_report)
    params = _params(args)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(
                f"--api-key-env: the environment variable {args.api_key_env!r} is not set."
            )
    model = OpenAIChat(
        args.url,
        model=args.model,
        api_key=api_key,
        timeout=args.timeout,
        retries=args.retries,
        concurrency=args.concurrency,
    )
    with model:
        return _probe(args, model, tasks, specs, args, priors, params, formats, fail_on)


def _probe(
    args: argparse.Namespace,
    model: Any,
    tasks: Any,
    specs: Any,
    mcp_args: argparse.Namespace | None,
    priors: list[Any],
    params: dict[str, Any],
    formats: tuple[str, ...],
    fail_on: Any,
) -> int:
    from ..scanners.agent.probes import probe_model
    from ..scanners.base import ScanContext
    from ..subjects.sandbox import Sandbox
    from .provenance import open_registry

    registry = open_registry(args.registry)  # an unreachable registry fails before the probe
    try:
        progress = Progress(progress_enabled(args.progress) and not args.quiet)
        ctx = ScanContext(seed=args.seed, progress=progress, budget_seconds=args.budget_seconds)
        with ExitStack() as stack:
            mcp = None
            if mcp_args is not None and (mcp_args.mcp_command or mcp_args.mcp_url):
                from ..adapters.mcp import MCPTools

                mcp = stack.enter_context(
                    MCPTools(command=mcp_args.mcp_command, url=mcp_args.mcp_url)
                )
            sandbox = Sandbox(specs=specs, mcp=mcp)
            try:
                report = probe_model(
                    model, tasks, tools=sandbox, priors=priors, context=ctx, **params
                )
            finally:
                progress.close()
        failed = "probe {scanner} stopped early: {message}"
        return finish(args, report, formats, fail_on, registry, failed=failed)
    finally:
        if registry is not None:
            registry.close()
