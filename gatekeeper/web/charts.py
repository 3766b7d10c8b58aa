"""Governance charts drawn on the server as SVG with pygal, from aggregates only.

Pages show them as `<img src=…svg>` next to a table of the same figures (the text alternative).
An SVG loaded as an image runs no script, and these carry none: pygal's script tags are removed
from the tree before it is written. pygal styles its drawing with an inline stylesheet, which
the pages' CSP (`style-src 'self'`) would refuse; each SVG response therefore carries its own
CSP, allowing inline style and nothing else."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

import pygal
from flask import Response
from pygal.style import Style

from gatekeeper.services.escapes import LeadTime, MonthRate

# pygal adds a legacy import finder (for its map plugins, which we do not use) to
# sys.meta_path; every later import that reaches it warns (ImportWarning). Take it out.
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__module__ != "pygal"]

SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"
_STYLE = Style(
    background="white",
    plot_background="white",
    font_family="system-ui, sans-serif",
    colors=("#1f5f99", "#b3541e", "#3c7d3c", "#7a4e9c", "#8a6d00", "#555555"),
)


def _without_scripts(root: Any) -> Any:
    for parent in list(root.iter()):
        for child in list(parent):
            if str(child.tag).rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root


def _render(chart: Any) -> str:
    chart.add_xml_filter(_without_scripts)
    return str(chart.render(is_unicode=True))


def _config(title: str) -> dict[str, Any]:
    return {
        "title": title,
        "style": _STYLE,
        "js": [],
        "width": 800,
        "height": 360,
        "show_legend": True,
        "legend_at_bottom": True,
        "print_values": False,
    }


def failure_rate_chart(rates: Iterable[MonthRate]) -> str:
    """Change failure rate (percent) per application, month by month."""
    listed = list(rates)
    months = sorted({r.month for r in listed})
    chart = pygal.Line(**_config("Change failure rate per application (%)"), range=(0, 100))
    chart.x_labels = months
    by_app: dict[str, dict[str, float | None]] = {}
    for r in listed:
        by_app.setdefault(r.application, {})[r.month] = (
            None if r.rate is None else round(r.rate * 100, 1)
        )
    for application, values in sorted(by_app.items()):
        chart.add(application, [values.get(m) for m in months], allow_interruptions=True)
    return _render(chart)


def lead_time_chart(times: Iterable[LeadTime]) -> str:
    """Median hours from a sign-off request to its decision, per application."""
    chart = pygal.HorizontalBar(**_config("Median sign-off lead time (hours)"))
    for t in times:
        chart.add(t.application, [None if t.median_hours is None else round(t.median_hours, 1)])
    return _render(chart)


def classes_chart(counts: Mapping[str, int]) -> str:
    """How many findings each class holds."""
    chart = pygal.Bar(**_config("Findings by class"))
    for label, count in counts.items():
        chart.add(label, [count])
    return _render(chart)


def svg_response(svg: str) -> Response:
    return Response(
        svg,
        mimetype="image/svg+xml",
        headers={"Content-Security-Policy": SVG_POLICY, "Cache-Control": "no-store"},
    )
