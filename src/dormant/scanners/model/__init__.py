"""Model-level scanners: is a trained classifier backdoored, with which trigger and target.

``model-trigger-inversion`` (white-box, gradients) and ``model-trigger-search`` (black-box,
queries) share the decision of :mod:`.decision`: a MAD anomaly index across labels turned into a
calibrated probability, and a replay of the recovered trigger on held-out clean inputs.
"""

from . import blackbox, whitebox
from .blackbox import QueryTriggerSearchScanner
from .whitebox import TriggerInversionScanner

__all__ = ["QueryTriggerSearchScanner", "TriggerInversionScanner", "blackbox", "whitebox"]
