"""``dormant scan artifact``: is this file (or every file of this model directory) safe to load?

The scan hashes the artifact (:mod:`dormant.provenance.hashing`), checks each file's
serialization (:mod:`dormant.provenance.serialization`) and returns a
:class:`~dormant.report.Report` whose subject is the artifact's digest and whose findings are
``unsafe-serialization`` (code that would run on load, unreadable archives and streams,
inconsistent safetensors headers) or ``supply-chain`` (the registry says the artifact was
tampered with, or holds no verified signature for it). Each finding's subject is the file it
is about, with that file's own digest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError
from ..findings import Evidence, Finding, Severity, SubjectRef
from ..report import Report, ScanIssue
from ..scanners.base import ScanContext, Scanner, ScanResult, register
from ._scan_ctx import Issue
from .hashing import DEFAULT_IGNORED, Manifest, hash_path
from .serialization import FileScan, scan_file

if TYPE_CHECKING:
    from ..registry import Registry

_SCORE = {
    Severity.CRITICAL: 1.0,
    Severity.HIGH: 0.85,
    Severity.MEDIUM: 0.5,
    Severity.LOW: 0.25,
    Severity.INFO: 0.05,
}

_EXPLAIN = {
    "global": "Unpickling imports this name and may call it; code outside the allow-list runs "
    "with the loading process's rights.",
    "dynamic-global": "The import is assembled at load time, a known way to hide a payload "
    "from scanners that only read literal GLOBAL opcodes.",
    "extension": "EXT opcodes import whatever the loading process registered with copyreg; "
    "the file alone does not say what runs.",
    "persistent-id": "Persistent ids are handed to the loader's persistent_load hook.",
    "malformed": "The stream cannot be read to its end. Loaders execute opcodes as they go, so "
    "a payload before the break still runs; the rest was not examined (fail closed).",
    "unreadable": "Part of the file could not be read, so it could not be checked (fail closed).",
    "too-deep": "Nested archives beyond the depth limit were not examined (fail closed).",
    "polyglot": "The file reads as two formats; a loader and a scanner can see different contents.",
    "object-array": "Object arrays are stored as a pickle.",
    "torchscript": "TorchScript code in the archive is compiled and run by torch.jit.load.",
    "path-traversal": "A member name that is absolute or climbs out with '..' makes extraction "
    "write anywhere the extracting user may (zip-slip): a planted file, a replaced script.",
    "lambda-layer": "Keras rebuilds Lambda layers from serialized Python bytecode and runs it "
    "when the model is loaded (always for .h5, with safe_mode=False for .keras).",
    "custom-object": "Keras imports the module a configuration names while loading the model; a "
    "module outside Keras is code from outside the file.",
    "unsafe-op": "The TensorFlow graph runs this op when it is executed: it reaches files, "
    "Python or the network with the loading process's rights.",
    "template-code": "Runtimes render the chat template with Jinja on every request; attribute "
    "walks to Python internals are server-side template injection (CVE-2024-34359).",
    "template-instructions": "Literal text in the chat template reaches the model on every turn, "
    "unseen by the user.",
    "template-trigger": "The template changes what the model sees when a message contains a "
    "phrase: a trigger built into the template.",
    "custom-op-domain": "Operators outside the standard ONNX domains need a custom-op library: "
    "native code from outside the model file.",
    "external-data-path": "External tensor data is read from the location the model names; an "
    "absolute or escaping path reads any file the loading user may.",
    "trailing-data": "Bytes after the pickle's end are ignored by pickle.load but may be read "
    "by custom loaders.",
}


class ArtifactSubject:
    """A model file or directory as a scan subject (kind ``artifact``), hashed once.

    Parameters
    ----------
    path:
        A checkpoint file or a model directory.
    allow_symlinks:
        Follow symbolic links inside a model directory.
    max_workers:
        Threads used to hash files.
    """

    kind: ClassVar[str] = "artifact"
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        allow_symlinks: bool = False,
        max_workers: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.allow_symlinks = allow_symlinks
        self.max_workers = max_workers
        self._manifest: Manifest | None = None

    def manifest(self) -> Manifest:
        """The artifact's :class:`~dormant.provenance.hashing.Manifest` (hashed on first use)."""
        if self._manifest is None:
            self._manifest = hash_path(
                self.path,
                max_workers=self.max_workers,
                allow_symlinks=self.allow_symlinks,
                ignore=DEFAULT_IGNORED,
            )
        return self._manifest

    def ref(self) -> SubjectRef:
        return SubjectRef(kind="artifact", name=str(self.path), digest=self.manifest().digest)


@register
class ArtifactScanner(Scanner):
    """Check model files for unsafe serialization without loading them.

    Parameters
    ----------
    max_depth:
        How deep nested archives are opened before reporting them unreadable.
    max_member_bytes:
        Largest archive member or decompressed stream held in memory for a pickle scan.
    allow_symlinks:
        Follow symbolic links inside a model directory.
    max_workers:
        Threads used to hash files.

    Notes
    -----
    Method: opcode-level pickle analysis with an allow-list of safe imports (picklescan and
    ModelScan, Protect AI; Fickling, Sultanik, Trail of Bits 2021), hardened against the
    published bypasses (broken streams, ``STACK_GLOBAL`` over memoised strings, zip/pickle
    polyglots, duplicate zip members, nested archives). Keras ``.keras``/``.h5`` configurations
    (Lambda bytecode, non-Keras imports), TensorFlow SavedModel graphs (file, Python and
    debugger ops), GGUF chat templates (template injection, instructions, trigger branches)
    and ONNX models (custom-op domains, escaping external-data paths) are read without being
    loaded (:mod:`dormant.provenance.modelformats`). Limits: it reads serialization
    formats only — a safetensors or ONNX file with backdoored *weights* is clean here (use the
    model scanners), template instructions are found by phrase patterns, and a joblib
    file that embeds raw NumPy buffers stops the opcode walk at the
    first buffer (reported as unreadable).
    """

    name: ClassVar[str] = "serialization"
    subject_kinds: ClassVar[tuple[str, ...]] = ("artifact",)
    category: ClassVar[str] = "unsafe-serialization"
    paper: ClassVar[str] = (
        "Sultanik, 'Never a dill moment: Exploiting machine learning pickle files', Trail of "
        "Bits 2021; Protect AI picklescan/ModelScan; PyTorch weights_only unpickler allow-list"
    )
    limits: ClassVar[str] = (
        "Serialization only; weights are not examined. Allow-listed callables are trusted."
    )

    def __init__(
        self,
        *,
        max_depth: int = 4,
        max_member_bytes: int = 4 << 30,
        allow_symlinks: bool = False,
        max_workers: int | None = None,
    ) -> None:
        self.max_depth = max_depth
        self.max_member_bytes = max_member_bytes
        self.allow_symlinks = allow_symlinks
        self.max_workers = max_workers

    def _check(self) -> None:
        if not isinstance(self.max_depth, int) or self.max_depth < 1:
            raise ConfigError(
                f"The 'max_depth' parameter must be a positive int. Got {self.max_depth!r}."
            )
        if not isinstance(self.max_member_bytes, int) or self.max_member_bytes < 1:
            raise ConfigError(
                "The 'max_member_bytes' parameter must be a positive int. "
                f"Got {self.max_member_bytes!r}."
            )

    def scan(self, subject: Any, *, context: ScanContext | None = None) -> ScanResult:
        """Check every file of an :class:`ArtifactSubject` (or a path); one :class:`ScanResult`.

        A directory with no file in a format this scanner reads is a ``skip`` issue.
        """
        self._check()
        if isinstance(subject, str | os.PathLike):
            subject = ArtifactSubject(
                subject, allow_symlinks=self.allow_symlinks, max_workers=self.max_workers
            )
        if not isinstance(subject, ArtifactSubject):
            raise ConfigError(
                f"{self.name} scans an ArtifactSubject or a path. "
                f"Got {type(subject).__name__} instead."
            )
        manifest, root = subject.manifest(), subject.path
        findings: list[Finding] = []
        files = []
        for entry in manifest.files:
            full = root if manifest.kind == "file" else root / entry.path
            ref = SubjectRef(kind="artifact", name=str(full), digest=entry.digest)
            result = scan_file(
                full, max_depth=self.max_depth, max_member_bytes=self.max_member_bytes
            )
            findings.extend(self._findings(ref, result))
            files.append(
                {
                    **entry.to_dict(),
                    "format": result.format,
                    "pickles": result.pickles,
                    "members": result.members,
                    "complete": result.complete,
                }
            )
        issues = []
        if not any(f["format"] != "unknown" for f in files):
            issues.append(
                ScanIssue(
                    self.name,
                    "skip",
                    f"no file of {root} is in a format this scanner reads (pickle, zip "
                    "checkpoint, .npy, safetensors, Keras, SavedModel, GGUF, ONNX); nothing "
                    "was checked",
                )
            )
        return ScanResult(findings=findings, extras={"files": files}, issues=issues)

    def scan_path(
        self, path: str | os.PathLike[str], *, registry: Registry | None = None
    ) -> Report:
        """Scan a file or a model directory; return the finished :class:`Report`.

        A thin wrapper over the one runner (:func:`dormant.runner.run_scanners`).

        Parameters
        ----------
        path:
            A checkpoint file or a model directory.
        registry:
            When given, the registry's provenance status of the artifact adds a
            ``supply-chain`` finding (tampered, or no verified signature), and the report is
            recorded in it.
        """
        from ..scanners._runner import run_scanners

        self._check()
        subject = ArtifactSubject(
            path, allow_symlinks=self.allow_symlinks, max_workers=self.max_workers
        )
        ref = subject.ref()
        report = Report(subject=ref, config={"scanner": self.name, **self.get_params()})
        report = run_scanners(subject, [self], report=report)
        if registry is not None:
            manifest = subject.manifest()
            report.findings.extend(_provenance_findings(registry, ref, manifest))
            report.finish()
            registry.record_artifact(manifest.digest, str(subject.path), _kind(manifest))
            registry.record_scan(report)
        return report

    def _findings(self, ref: SubjectRef, result: FileScan) -> list[Finding]:
        return [self._finding(ref, result, issue) for issue in result.issues]

    def _finding(self, ref: SubjectRef, result: FileScan, issue: Issue) -> Finding:
        where = f" in {issue.member}" if issue.member else ""
        ev = [Evidence("format", result.format, "format detected from the file's bytes")]
        ev.append(Evidence("kind", issue.kind))
        if issue.member:
            ev.append(Evidence("member", issue.member, "archive member (nested with '!')"))
        if issue.offset is not None:
            ev.append(Evidence("offset", issue.offset, "byte offset of the opcode"))
        if issue.opcode:
            ev.append(Evidence("opcode", issue.opcode))
        if issue.name:
            ev.append(Evidence("global", issue.name, "module.name imported on load"))
        return Finding(
            scanner=self.name,
            subject=ref,
            title=f"{Path(ref.name).name}{where}: {issue.title}",
            severity=issue.severity,
            score=_SCORE[issue.severity],
            category="unsafe-serialization",
            evidence=tuple(ev),
            explanation=_EXPLAIN.get(issue.kind, ""),
        )


def scan_artifact(
    path: str | os.PathLike[str],
    *,
    registry: Registry | None = None,
    max_depth: int = 4,
    allow_symlinks: bool = False,
) -> Report:
    """Scan a checkpoint file or model directory for unsafe serialization.

    Shorthand for ``ArtifactScanner(...).scan_path(path, registry=registry)``.
    """
    scanner = ArtifactScanner(max_depth=max_depth, allow_symlinks=allow_symlinks)
    return scanner.scan_path(path, registry=registry)


def _kind(manifest: Manifest) -> str:
    return "model" if manifest.kind == "directory" else "file"


def _provenance_findings(
    registry: Registry, subject: SubjectRef, manifest: Manifest
) -> list[Finding]:
    status = registry.provenance_status(manifest.digest)
    if status.status == "verified":
        return []
    if status.status == "tampered":
        sev, title = Severity.CRITICAL, "artifact failed signature verification"
    elif status.status == "signed":
        sev, title = Severity.LOW, "artifact is signed but the signature was never verified"
    else:
        sev, title = Severity.LOW, "no verified signature on record for this artifact"
    ev = [Evidence("provenance_status", status.status)]
    if status.detail:
        ev.append(Evidence("detail", status.detail))
    return [
        Finding(
            scanner="provenance",
            subject=subject,
            title=title,
            severity=sev,
            score=_SCORE[sev],
            category="supply-chain",
            evidence=tuple(ev),
            explanation="Provenance status from the registry: verify the signature with "
            "`dormant provenance verify` before trusting this artifact.",
        )
    ]
