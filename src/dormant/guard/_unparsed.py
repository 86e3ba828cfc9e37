"""Tool-call markup left in a response's text: a call the guard cannot vet.

A model that speaks a text tool-call format (Hermes ``<tool_call>{...}</tool_call>``, Llama 3's
``<|python_tag|>``, Mistral's ``[TOOL_CALLS]``, ``<function_call>``) and writes a block its
server cannot parse (malformed JSON, a cut-off call) leaves the block in the message text.
The guard never sees it as a call, yet an agent framework that parses leniently may still run
it, and its destination reaches whoever reads the text. Failing closed, such a block is treated
like a call with unreadable arguments, which the decision core already denies as malformed: the
response is withheld. Its readable parts (a tool name, outside hosts) are reported as the
behaviours it attempted.
"""

from __future__ import annotations

import re

from ..behaviours import get_detector

_MARKUP = re.compile(
    r"<tool_call>|</tool_call>|<function_call>|<\|python_tag\|>|\[TOOL_CALLS\]", re.IGNORECASE
)
_NAME = re.compile(r'"name"\s*:\s*"([A-Za-z0-9_.:-]{1,64})"')
_EGRESS = get_detector("egress")


def unparsed_calls(text: str) -> tuple[str, ...] | None:
    """The behaviours of the tool-call markup left in ``text``, or ``None`` when there is none.

    Returns
    -------
    tuple of str or None
        ``tool:<name>`` for each readable tool name and ``egress:<domain>`` for each outside
        host in the text after the first marker (possibly empty); ``None`` without markup.
    """
    m = _MARKUP.search(text)
    if m is None:
        return None
    rest = text[m.start() :]
    tags = {f"tool:{n}" for n in _NAME.findall(rest)}
    tags.update(h.tag for h in _EGRESS.detect(rest))
    return tuple(sorted(tags))
