"""What every HTML page must be: one main landmark and one heading, unique ids, labelled
controls, and no inline style or script (the CSP forbids them)."""

from __future__ import annotations

from html.parser import HTMLParser


class _Page(HTMLParser):
    """Collects what the accessibility checks need from a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.labelled: set[str] = set()
        self.controls: list[dict[str, str | None]] = []
        self.tags: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append(tag)
        if found.get("id"):
            self.ids.append(found["id"] or "")
        if tag == "label" and found.get("for"):
            self.labelled.add(found["for"] or "")
        if tag in ("input", "select", "textarea") and found.get("type") not in (
            "hidden",
            "submit",
        ):
            self.controls.append(found)
        if "style" in found or any(name.startswith("on") for name in found):
            self.inline.append(tag)
        if tag == "script" and not found.get("src"):
            self.inline.append("script")


def assert_well_formed_page(path: str, html: str) -> None:
    page = _Page()
    page.feed(html)
    assert page.tags.count("main") == 1, path
    assert page.tags.count("h1") == 1, path
    assert len(page.ids) == len(set(page.ids)), f"duplicate ids on {path}"
    assert page.inline == [], f"inline style or script on {path}"
    for control in page.controls:
        assert control.get("id") in page.labelled or control.get("aria-label"), (path, control)
