"""The dashboard's server-side SVG charts: labelled for screen readers, text escaped, points kept
inside the plot."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

from flight_delay.ui.charts import HEIGHT, LEFT, TOP, WIDTH, Series, bar_chart, line_chart

SVG = "{http://www.w3.org/2000/svg}"


def test_a_line_chart_is_an_image_named_by_its_title_and_description() -> None:
    chart = line_chart(
        "ROC curve",
        [
            Series("model a", [(0, 0), (0.5, 0.8), (1, 1)], "AUC 0.81"),
            Series("b", [(0, 0), (1, 1)]),
        ],
        "false positive rate",
        "true positive rate",
        diagonal=True,
    )
    root = ElementTree.fromstring(str(chart))
    assert root.get("role") == "img"
    title_id, desc_id = root.get("aria-labelledby", "").split()
    assert root.find(f"{SVG}title").get("id") == title_id
    assert root.find(f"{SVG}title").text == "ROC curve"
    description = root.find(f"{SVG}desc")
    assert description.get("id") == desc_id
    assert description.text == "ROC curve: model a (AUC 0.81), 3 points; b, 2 points."
    assert len(root.findall(f"{SVG}polyline")) == 2
    assert "style=" not in str(chart)  # presentation attributes only: the CSP forbids inline style


def test_text_is_escaped_and_points_stay_in_the_plot() -> None:
    hostile = '</title><script>alert(1)</script><title x="'
    chart = str(line_chart(hostile, [Series(hostile, [(-5, 7), (2, -1)])], hostile, hostile))
    assert "<script>" not in chart
    ElementTree.fromstring(chart)  # still well-formed
    xs = [float(x) for x in re.findall(r"(-?[\d.]+),(?:-?[\d.]+)", chart)]
    assert xs and all(LEFT <= x <= LEFT + WIDTH for x in xs)
    ys = [float(y) for y in re.findall(r"(?:-?[\d.]+),(-?[\d.]+)", chart)]
    assert ys and all(TOP <= y <= TOP + HEIGHT for y in ys)


def test_a_bar_chart_lists_the_largest_values_in_its_description() -> None:
    chart = str(bar_chart("Importance", [("hour", 0.4), ("<airline>", 0.2)], "gain share"))
    root = ElementTree.fromstring(chart)
    assert root.find(f"{SVG}desc").text == "Importance, gain share: hour 40.0%, <airline> 20.0%"
    assert "&lt;airline&gt;" in chart
    widths = [float(r.get("width")) for r in root.findall(f"{SVG}rect")]
    assert widths[0] == 2 * widths[1]
