"""The map's "Pick H3 cells" and "Pick cells" tools, driven by mouse in a real headless Chromium."""

import json

import h3
import test_web_browser
from test_web_browser import SCREENSHOTS, click_at, sign_in
from webfixtures import LAT0, LON0, STEP

from geofence.fences import compile_fence, fence_from_json

# The browser test's app server and Chromium page fixtures, and its skip when Chromium is missing.
server, page, pytestmark = test_web_browser.server, test_web_browser.page, test_web_browser.pytestmark


def site(row: int, col: int) -> tuple[float, float]:
    """(lat, lon) of the grid cell 460-00-100-<3*row + col + 1>."""
    return LAT0 + row * STEP, LON0 + col * STEP


def key(row: int, col: int) -> str:
    return f"460-00-100-{3 * row + col + 1}"


def wait_count(page, text: str) -> None:
    page.wait_for_selector(f"#pick-count:text-is('{text}')")


def test_pick_two_h3_cells_by_mouse_preview_and_save(server, page):
    base, state = server
    sign_in(page, base, "marketer")
    page.wait_for_selector("li.fence")
    page.fill("#fence-name", "h3_middle")
    page.click("#pick-h3")
    page.select_option("#h3-res", "8")
    middle, east, west = site(1, 1), site(1, 2), site(1, 0)
    click_at(page, *middle)
    wait_count(page, "1 H3 cells picked")
    click_at(page, *east)
    wait_count(page, "2 H3 cells picked")
    # A third hexagon, then a second click elsewhere in that same hexagon (at its centre) removes it again.
    again = h3.cell_to_latlng(h3.latlng_to_cell(*west, 8))
    assert abs(again[0] - west[0]) + abs(again[1] - west[1]) > 0.001  # a different spot, ~300 m away
    click_at(page, *west)
    wait_count(page, "3 H3 cells picked")
    click_at(page, *again)
    wait_count(page, "2 H3 cells picked")

    hexes = [h3.latlng_to_cell(*middle, 8), h3.latlng_to_cell(*east, 8)]
    assert len(set(hexes)) == 2
    expected = compile_fence(fence_from_json({"kind": "h3", "name": "expected", "cells": hexes}),
                             state.fences.catalogue, state.fences.min_overlap)
    assert expected  # two ~0.7 km² hexagons over the middle row must hold some 300 m cell footprints
    page.click("#pick-preview")
    page.wait_for_selector("#editor:not([hidden]) .cell-pick")
    picked = page.eval_on_selector_all(".cell-pick:checked", "els => els.map(e => e.dataset.key)")
    assert sorted(picked) == expected
    page.click("#save-fence")
    page.wait_for_selector("#save-status[data-cells]")
    assert page.get_attribute("#save-status", "data-cells") == " ".join(expected)
    page.wait_for_selector("li.fence[data-name=h3_middle]")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "map_h3.png"))
    assert state.fences.cells_of("h3_middle") == expected
    saved = json.loads((state.fences_dir / "h3_middle.json").read_text())
    assert saved["kind"] == "h3" and sorted(saved["cells"]) == sorted(hexes)


def test_pick_three_cell_markers_by_mouse_untick_one_and_save(server, page):
    base, state = server
    sign_in(page, base, "marketer")
    page.wait_for_selector("li.fence")
    page.fill("#fence-name", "three_picked")
    page.click("#pick-cells")
    click_at(page, LAT0 + STEP * 0.5, LON0 + STEP * 0.5)  # between markers: picks nothing
    for row, col in ((0, 0), (0, 1), (1, 1), (2, 2)):
        click_at(page, *site(row, col))
    wait_count(page, "4 cells picked")
    click_at(page, *site(2, 2))  # a second click on a marker unpicks it
    wait_count(page, "3 cells picked")
    page.click("#pick-preview")
    page.wait_for_selector("#editor:not([hidden]) .cell-pick")
    picked = page.eval_on_selector_all(".cell-pick:checked", "els => els.map(e => e.dataset.key)")
    assert sorted(picked) == [key(0, 0), key(0, 1), key(1, 1)]
    page.uncheck(f".cell-pick[data-key='{key(0, 1)}']")
    page.click("#save-fence")
    page.wait_for_selector("#save-status[data-cells]")
    assert page.get_attribute("#save-status", "data-cells") == f"{key(0, 0)} {key(1, 1)}"
    page.wait_for_selector("li.fence[data-name=three_picked]")
    page.click("li.fence[data-name=three_picked]")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "map_cells.png"))
    assert state.fences.cells_of("three_picked") == [key(0, 0), key(1, 1)]
    saved = json.loads((state.fences_dir / "three_picked.json").read_text())
    assert saved["kind"] == "cells"
