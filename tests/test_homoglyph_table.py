"""The look-alike table of trigger insertion agrees with Unicode's confusables (TR39).

``dormant.triggers.HOMOGLYPH_TO_LATIN`` (non-Latin letter -> the Latin letter it imitates) is
checked against ``confusables.txt`` as shipped by the maintained ``confusable-homoglyphs``
package, the table the guard folds text with: every entry must be a confusable of its Latin
letter there, so the hand-kept subset cannot drift from the standard.
"""

from __future__ import annotations

import pytest

from dormant.triggers import HOMOGLYPH_TO_LATIN

confusables = pytest.importorskip("confusable_homoglyphs.confusables")

# TR39 folds the capital I into the lower-case l (its prototype of the class {I, l, 1, |});
# the insertion table keeps the capital, so Greek capital iota maps to "I".
_CASE_FOLDED_BY_TR39 = {"\u0399": "l"}


def _targets(ch: str) -> set[str]:
    return {e["c"] for e in confusables.confusables_data.get(ch, [])}


@pytest.mark.parametrize("ch", sorted(HOMOGLYPH_TO_LATIN))
def test_each_entry_is_a_tr39_confusable_of_its_latin_letter(ch: str) -> None:
    latin = HOMOGLYPH_TO_LATIN[ch]
    assert latin.isascii() and latin.isalpha()
    assert not ch.isascii()
    assert _CASE_FOLDED_BY_TR39.get(ch, latin) in _targets(ch)
