"""Put the transplant score of each predicted label on one scale before calibrating it.

On some tasks the clean texts of one label are decided by short spans far more often than
those of another: on a binary FOLDOC-vs-GCIDE task, a computing term (``FileMaker, Inc.``)
moves almost every GCIDE donor to ``foldoc`` at the model's confidence ceiling, while no
ordinary definition moves FOLDOC donors to ``gcide``. One threshold for both labels is then
set by the ``foldoc`` texts, and a trigger whose target is ``gcide`` has to beat them.

:class:`LabelScale` standardises a score by the predicted label's own location and spread,
``(s - m_y) / sd_y``, both estimated on the *reference* texts (the donors, each scored with
itself left out of the donors and the clean counts) — never on the calibration texts — so
the conformal p-value of the standardised score stays valid: the map is fixed before the
calibration and test texts are scored. This is a normalised nonconformity score
(Papadopoulos, Vovk & Gammerman 2011, "Regression conformal prediction with nearest
neighbours", JAIR 40; Lei et al. 2018, "Distribution-free predictive inference for
regression", JASA, §5.2 locally weighted conformal), with the label as the locality, in the
spirit of Vovk et al.'s label-conditional (Mondrian) conformal prediction (2005, ch. 4) but
keeping one calibration set for all labels (a per-label set of ~60 texts could never reach
``p <= 0.01``). A label with few reference texts is shrunk towards the pooled estimates with
:data:`PSEUDO` pseudo-texts (empirical-Bayes shrinkage), so no label's scale rests on two
texts; the prior spread is the pooled within-label variance. Written here: a location-scale
fit per group is a few lines of numpy, and the conformal packages (MAPIE, crepes) calibrate a
model's own output, not a score computed outside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: pseudo-texts of the pooled estimate in each label's location and spread
PSEUDO = 4.0


@dataclass(frozen=True)
class LabelScale:
    """Per-label location and spread of the clean reference texts' scores.

    Attributes
    ----------
    center:
        ``m_y`` per label index.
    scale:
        ``sd_y`` per label index (> 0).
    """

    center: tuple[float, ...]
    scale: tuple[float, ...]

    def __call__(self, score: float, label: int) -> float:
        """The standardised score ``(score - m_y) / sd_y``."""
        return (float(score) - self.center[label]) / self.scale[label]


def fit_label_scale(scores: Sequence[float], labels: Sequence[int], n_labels: int) -> LabelScale:
    """Fit :class:`LabelScale` on reference scores and their predicted label indices.

    Raises
    ------
    ValueError
        Fewer than two scores, or lengths that differ.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=int)
    if len(s) != len(y) or len(s) < 2:
        raise ValueError(f"need two or more scores with one label each; got {len(s)}, {len(y)}")
    m_all = float(s.mean())
    # the prior spread is the pooled *within-label* variance (the labels' own locations
    # removed), so that labels far apart do not widen each other's scale
    present = [c for c in range(n_labels) if (y == c).any()]
    within = sum(float(((s[y == c] - s[y == c].mean()) ** 2).sum()) for c in present)
    dof = len(s) - len(present)
    v_all = (within / dof if dof > 0 else 0.0) or float(s.var(ddof=1)) or 1.0
    center, scale = [], []
    for c in range(n_labels):
        sc = s[y == c]
        m = (float(sc.sum()) + PSEUDO * m_all) / (len(sc) + PSEUDO)
        # the spread about the label's own mean, shrunk towards the pooled within-label one
        ss = (float(((sc - sc.mean()) ** 2).sum()) if len(sc) else 0.0) + PSEUDO * v_all
        center.append(m)
        scale.append(float(np.sqrt(ss / (max(len(sc) - 1, 0) + PSEUDO))))
    return LabelScale(tuple(center), tuple(scale))


__all__ = ["PSEUDO", "LabelScale", "fit_label_scale"]
