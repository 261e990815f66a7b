"""The pipeline picture: the DAG's order without redundant lines, coloured by step status."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from pipelines.definition import definition_json
from pipelines.graph import COLOURS, edges, render_definition, render_svg
from pipelines.settings import Settings


def test_edges_are_the_reduced_dag_with_branch_labels(default_settings: Settings) -> None:
    definition = json.loads(definition_json(default_settings))
    assert sorted(edges(definition)) == sorted([
        ("Preprocess", "Train", ""),
        ("Train", "Evaluate", ""),
        ("Evaluate", "AccuracyCheck", ""),
        ("AccuracyCheck", "RegisterModel", "true"),
        ("AccuracyCheck", "AccuracyTooLow", "false"),
        ("RegisterModel", "DeployEndpoint", ""),
    ])


def test_svg_is_valid_and_coloured_by_execution(default_settings: Settings) -> None:
    svg = render_definition(definition_json(default_settings),
                            {"Preprocess": "Succeeded", "Train": "Failed"})
    root = ET.fromstring(svg)
    boxes = [e for e in root.iter("{http://www.w3.org/2000/svg}rect") if e.get("rx")]
    assert len(boxes) == 7
    fills = {e.get("fill") for e in boxes}
    assert {COLOURS["Succeeded"], COLOURS["Failed"], COLOURS[None]} <= fills
    assert "Training · Failed" in svg


def test_a_long_display_name_is_cut_at_a_word_and_keeps_the_svg_valid(default_settings: Settings) -> None:
    """Cut after escaping, an `&amp;` could lose its end, and then the picture would not open."""
    definition = json.loads(definition_json(default_settings))
    definition["Steps"][0]["DisplayName"] = "Check the reviews and their labels & encodings"
    root = ET.fromstring(render_svg(definition))
    texts = [e.text or "" for e in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "Check the reviews and their labels…" in texts
