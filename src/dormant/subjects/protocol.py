"""What every subject offers the runner and its scanners: :class:`Subject` and its capabilities.

A subject is what is examined (a dataset, a classifier, a chat model or agent, a checkpoint).
The runner reads three things of it, and nothing else: its ``kind`` (which scanners apply),
``ref()`` (the name and content digest a report cites) and ``capabilities`` (which scanners can
run here; one whose ``requires`` names a capability the subject lacks is skipped, with the
reason in the report). Both contracts are :class:`typing.Protocol` classes (PEP 544), so a new
subject is any class of that shape; nothing has to subclass them.

The capabilities (:data:`CAPABILITIES`)
---------------------------------------
``records``
    the subject is a dataset of records (read in batches).
``embeddings``
    its inputs can be embedded (a dataset, through the data family's encoder; a classifier's
    own encoder).
``proba``
    class probabilities of a classifier.
``logits``
    raw next-token or class scores.
``gradients``
    white-box access: the subject's ``gradients`` attribute is a :class:`Gradients` object.
``generate`` / ``tools``
    a chat model that writes text / accepts tool specifications.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ..errors import InputError
from ..findings import SubjectRef

__all__ = ["CAPABILITIES", "Gradients", "Subject", "gradients_of"]

#: every capability a subject may declare and a scanner may require (other ``requires``
#: entries of a scanner name optional extras, checked by the scanner itself)
CAPABILITIES = frozenset(
    {"records", "proba", "gradients", "embeddings", "generate", "tools", "logits"}
)


@runtime_checkable
class Subject(Protocol):
    """What is examined: a kind, a reference for reports, and what it can be asked for."""

    @property
    def kind(self) -> str:
        """``labelled``, ``instruction``, ``classifier``, ``agent``, ``artifact`` ..."""
        ...

    @property
    def capabilities(self) -> frozenset[str]:
        """The capabilities it offers (a subset of :data:`CAPABILITIES`)."""
        ...

    def ref(self) -> SubjectRef:
        """Kind, name and content digest, as the report cites them."""
        ...


@runtime_checkable
class Gradients(Protocol):
    """The ``gradients`` capability: white-box access to a differentiable text model.

    What gradient-based trigger inversion (Wallace et al. 2019, "Universal Adversarial Triggers
    for Attacking and Analyzing NLP", HotFlip's first-order token scores, Ebrahimi et al. 2018;
    GCG, Zou et al. 2023; DBS, Shen et al. 2022) needs of a model, and all that the white-box
    scanners and their search helpers ask of it: its tokenizer, the input embedding matrix,
    embeddings of token ids, logits from token ids or from input embeddings, and the gradient
    of the loss with respect to those embeddings. The model's own weights take no gradient.
    :class:`dormant.adapters.hf_classifier.HFClassifier` provides it; a new white-box model
    family implements these members and nothing else.
    """

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (Hugging Face ``PreTrainedTokenizer`` interface)."""
        ...

    @property
    def max_length(self) -> int:
        """The longest input, in tokens, that the model is given."""
        ...

    def embedding_matrix(self) -> Any:
        """The input word-embedding weight (a ``vocab x dim`` tensor)."""
        ...

    def special_ids(self) -> set[int]:
        """Token ids a trigger never uses (padding, separators, ...)."""
        ...

    def n_parameters(self) -> int:
        """Number of weights of the model (what one forward pass costs, roughly)."""
        ...

    def embed_ids(self, input_ids: Any) -> Any:
        """Input embeddings of token ids (``batch x len`` -> ``batch x len x dim``): what
        :meth:`logits_from_embeds` takes."""
        ...

    def logits_from_ids(self, input_ids: Any, attention_mask: Any) -> Any:
        """Logits (``batch x labels``) for token ids."""
        ...

    def logits_from_embeds(self, embeds: Any, attention_mask: Any) -> Any:
        """Logits for given input embeddings (gradients flow to ``embeds``)."""
        ...

    def input_gradients(self, embeds: Any, attention_mask: Any, target: int) -> Any:
        """Gradient of the cross-entropy loss towards label ``target`` w.r.t. ``embeds``."""
        ...


def gradients_of(subject: object) -> Gradients:
    """The :class:`Gradients` object of ``subject``.

    Raises
    ------
    InputError
        ``subject`` does not declare the ``gradients`` capability, or what it offers under
        ``gradients`` lacks part of the :class:`Gradients` interface.
    """
    if not isinstance(subject, Subject) or "gradients" not in subject.capabilities:
        raise InputError(
            f"This scan needs white-box gradients; the {type(subject).__name__} subject does not "
            "offer them (a local transformers model does; use model-trigger-search for "
            "black-box models)."
        )
    grads = getattr(subject, "gradients", None)
    if not isinstance(grads, Gradients):
        raise InputError(
            f"The {type(subject).__name__} subject declares 'gradients' but its 'gradients' "
            "attribute lacks the Gradients interface (tokenizer, max_length, "
            "embedding_matrix, special_ids, n_parameters, embed_ids, logits_from_ids, "
            "logits_from_embeds, input_gradients)."
        )
    return grads
