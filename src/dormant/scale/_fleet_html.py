"""The fleet report as one self-contained HTML page with a sortable table.

Model names, paths, triggers, targets and error messages come from what is under scan and may be
hostile: the Jinja2 environment autoescapes every value, invisible characters of a trigger are
shown as ``⟨U+XXXX⟩``, and the page carries a Content-Security-Policy that allows no outside
resource and only the one inline script whose SHA-256 it names (the column sort), so an escaping
slip still cannot run code or call out.
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from dataclasses import asdict
from importlib import resources
from typing import TYPE_CHECKING

from ..errors import require

if TYPE_CHECKING:
    from ._fleet_records import FleetReport

#: Sorts the table by the clicked column (numbers by ``data-v``); no data leaves the page.
SORT_SCRIPT = """
(function () {
  var table = document.getElementById("fleet");
  var heads = table.tHead.rows[0].cells;
  function key(row, i, num) {
    var c = row.cells[i];
    if (num) { return parseFloat(c.getAttribute("data-v")); }
    return c.textContent.toLowerCase();
  }
  Array.prototype.forEach.call(heads, function (th, i) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      var num = th.getAttribute("data-type") === "num";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a, i, num), y = key(b, i, num);
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
})();
"""


def csp() -> str:
    """The page's Content-Security-Policy: nothing from outside, only the sort script."""
    digest = base64.b64encode(hashlib.sha256(SORT_SCRIPT.encode("utf-8")).digest()).decode()
    return (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'; img-src data:; form-action 'none'; base-uri 'none'"
    )


def visible(text: str) -> str:
    """Show format and control characters (invisible triggers) as ``⟨U+XXXX⟩``."""
    return "".join(
        f"⟨U+{ord(ch):04X}⟩" if unicodedata.category(ch) in ("Cf", "Cc", "Zl", "Zp") else ch
        for ch in text
    )


def render_fleet_html(report: FleetReport) -> str:
    """Render ``report`` (see the module docstring for what makes the page safe)."""
    jinja2 = require("jinja2", "fleet")
    env = jinja2.Environment(  # type: ignore[attr-defined]
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # type: ignore[attr-defined]
    )
    env.filters["visible"] = visible
    source = resources.files("dormant.scale").joinpath("templates/fleet.html.j2")
    template = env.from_string(source.read_text("utf-8"))
    return str(
        template.render(
            csp=csp(),
            script=SORT_SCRIPT,
            rows=report.rows,
            summary=report.summary(),
            manifest=report.manifest,
            engine=report.engine,
            workers=report.workers,
            seconds=f"{report.seconds:.1f}",
            settings=asdict(report.settings),
            version=report.version,
        )
    )
