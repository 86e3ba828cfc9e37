"""The HTML page from its Jinja2 templates: hostile strings stay text, the page stays
self-contained, and each typed report section has one renderer in each writer."""

from __future__ import annotations

from html.parser import HTMLParser
from importlib.resources import files

from dormant import Finding, Report, Severity, SubjectRef
from dormant.findings import Evidence, Locator
from dormant.sections import KEYS, LabelAnomaly, ProbeSummary
from dormant.triggers import Position, Trigger, TriggerKind
from dormant.writers import _markdown_sections, html
from dormant.writers.html import to_html
from dormant.writers.markdown import to_markdown

SUBJECT = SubjectRef("dataset", 'data/"onload=alert(1).jsonl', "sha256:" + "cd" * 32)
TITLE = '<script>alert("t")</script> planted "onload=alert(1) x'
TRIGGER = '"onload=alert(2) <script>alert(3)</script>'


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _hostile_report() -> Report:
    finding = Finding(
        scanner="mining",
        subject=SUBJECT,
        title=TITLE,
        severity=Severity.HIGH,
        score=0.9,
        category="data-poisoning",
        trigger=Trigger(text=TRIGGER, kind=TriggerKind.PHRASE, position=Position.RANDOM),
        target="label:<img src=x onerror=alert(4)>",
        locator=Locator(record_ids=('r1"><script>alert(5)</script>',)),
        evidence=(Evidence("note", "</td><script>alert(6)</script>", "<b>meaning</b>"),),
        explanation="Explained <iframe src=//evil.example>",
    )
    return Report(SUBJECT, config={"x": "</pre><script>alert(7)</script>"}, findings=[finding])


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def test_a_hostile_title_trigger_and_evidence_are_escaped_in_the_page() -> None:
    page = to_html(_hostile_report().finish())
    parsed = _parse(page)
    # no element and no attribute came from the data: only the page's own
    assert "script" not in parsed.tags and "iframe" not in parsed.tags
    assert "img" not in parsed.tags  # the report has no plots with data
    assert not [name for name, _ in parsed.attrs if name.startswith("on")]
    # ... and the hostile strings are there as text, whole
    text = "".join(parsed.text)
    for s in (TITLE, TRIGGER, "</td><script>alert(6)</script>", "<iframe src=//evil.example>"):
        assert s in text
    assert "&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;" in page
    assert "&quot;onload=alert(2)" in page and '"onload=' not in page


def test_the_page_is_self_contained_with_its_csp_and_styles() -> None:
    page = to_html(_hostile_report().finish())
    parsed = _parse(page)
    csp = [v for k, v in parsed.attrs if k == "content" and v and "default-src" in v]
    assert csp == [
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'none'"
    ]
    assert "style" in parsed.tags and "link" not in parsed.tags
    for name, value in parsed.attrs:
        if name in ("src", "href"):
            assert value is not None and (value.startswith(("#", "data:"))), (name, value)
    assert ".sev-critical{" in page  # the stylesheet shipped as package data is inlined


def test_templates_ship_as_package_data_and_escape_by_default() -> None:
    folder = files("dormant.writers") / "templates"
    names = {p.name for p in folder.iterdir()}
    assert {"report.html.j2", "finding.html.j2", "probe.html.j2", "model.html.j2"} <= names
    env = html._env()
    assert env.autoescape("report.html.j2") and env.autoescape("anything.j2")
    assert env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"


def test_each_writer_has_one_renderer_per_section_type() -> None:
    for table in (html.RENDERERS, _markdown_sections.RENDERERS):
        assert set(table) == {LabelAnomaly, ProbeSummary}
        assert set(table) <= set(KEYS)


def test_a_malformed_section_is_left_out_and_the_rest_is_written() -> None:
    rep = _hostile_report()
    rep.extras["probe"] = {"candidates": "many"}  # hand-edited: not a probe summary
    rep.finish()
    page, md = to_html(rep), to_markdown(rep)
    assert 'id="probe"' not in page and "## Probe" not in md
    assert 'id="finding-1"' in page and "### 1." in md
