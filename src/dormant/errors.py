"""The one exception tree of dormant.

Every error the library raises on purpose derives from :class:`DormantError`; where the
meaning fits, an error also subclasses the matching builtin so that ``except ValueError``
keeps working for callers who do not know dormant::

    DormantError (Exception)
    ├── ConfigError (ValueError)           a parameter has a wrong type or value
    ├── InputError (ValueError)            the data / artifact given to a scan is unusable
    │   ├── InputNotFoundError (FileNotFoundError)
    │   ├── DataFormatError                unreadable, malformed line, non-UTF-8, bad field
    │   └── DataValidationError            empty, single class, duplicate ids, too long
    ├── MissingDependencyError (ImportError)   an optional extra is not installed
    ├── ScanError (RuntimeError)           a scanner failed while running
    ├── EndpointError (ConnectionError)    a model/tool server does not answer, times out or
    │                                      answers with malformed JSON / invalid tool calls
    └── ProvenanceError                    signing / verification / registry problems
        ├── VerificationError              a signature or manifest does not verify
        └── RegistryError                  the registry database is unreachable or corrupt

Messages name the parameter or input, what was expected and what was received.
The CLI maps them to exit codes (see :mod:`dormant.cli`).
"""

from __future__ import annotations


class DormantError(Exception):
    """Root of every error dormant raises on purpose."""


class ConfigError(DormantError, ValueError):
    """A setting has the wrong type or value."""


class InputError(DormantError, ValueError):
    """The input of a scan (a dataset, a model, an artifact) cannot be used."""


class InputNotFoundError(InputError, FileNotFoundError):
    """An input path does not exist."""


class DataFormatError(InputError):
    """An input cannot be parsed: bad encoding, malformed line, missing field."""


class DataValidationError(InputError):
    """An input parses but cannot be scanned: empty, one class, duplicate ids, too long."""


class MissingDependencyError(DormantError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class ScanError(DormantError, RuntimeError):
    """A scanner failed while running."""


class EndpointError(DormantError, ConnectionError):
    """A model or tool server did not answer, timed out, or answered with something malformed.

    ``retryable`` says whether trying again may help (connection refused, timeout, HTTP 5xx/429)
    as opposed to a malformed answer or a 4xx that will not change.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ProvenanceError(DormantError):
    """Hashing, signing, verification or registry failure."""


class VerificationError(ProvenanceError):
    """A signature, manifest or digest does not verify."""


class RegistryError(ProvenanceError):
    """The registry database cannot be reached or used."""


def require(module: str, extra: str) -> object:
    """Import an optional dependency or raise :class:`MissingDependencyError` naming the extra.

    Parameters
    ----------
    module:
        Dotted module name to import.
    extra:
        Name of the ``dormant`` extra that installs it, e.g. ``"embed"``.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised when extras are absent
        raise MissingDependencyError(
            f"{module!r} is required for this feature but is not installed; "
            f"install it with: pip install 'dormant[{extra}]'"
        ) from exc
