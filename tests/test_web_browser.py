"""The marketer's map in a real headless Chromium: sign in, draw a fence by mouse, untick a cell, save it."""

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from test_daemon import site
from test_delivery import Receiver, free_port
from webfixtures import LAT0, LON0, PASSWORD, STEP, make_state

from appliance.config import load_config
from appliance.daemon import Daemon
from appliance.web import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).parent.parent / "out" / "screenshots"
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make test installs it)")


@pytest.fixture
def server(tmp_path):
    import uvicorn
    state = make_state(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", state
    srv.should_exit = True
    thread.join(5)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        yield page
        browser.close()


def sign_in(page, base: str, user: str) -> None:
    page.goto(base + "/")
    assert page.url.endswith("/login")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")


def click_at(page, lat: float, lon: float) -> None:
    x, y = page.evaluate("([lat, lon]) => { const p = siglocMap.latLngToContainerPoint([lat, lon]);"
                         " return [p.x, p.y]; }", [lat, lon])
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_timeout(150)


def test_draw_a_fence_by_mouse_untick_a_cell_and_save(server, page):
    base, state = server
    sign_in(page, base, "marketer")
    page.wait_for_selector("li.fence")  # cells and the existing fences have loaded
    page.fill("#fence-name", "middle_row")
    page.click(".leaflet-draw-draw-polygon")
    corners = [(LAT0 + STEP * 0.6, LON0 - STEP * 0.6), (LAT0 + STEP * 0.6, LON0 + STEP * 2.6),
               (LAT0 + STEP * 1.4, LON0 + STEP * 2.6), (LAT0 + STEP * 1.4, LON0 - STEP * 0.6)]
    for lat, lon in corners:
        click_at(page, lat, lon)
    click_at(page, *corners[0])  # clicking the first vertex closes the polygon
    page.wait_for_selector("#editor:not([hidden]) .cell-pick")
    picked = page.eval_on_selector_all(".cell-pick:checked", "els => els.map(e => e.dataset.key)")
    assert sorted(picked) == ["460-00-100-4", "460-00-100-5", "460-00-100-6"]
    page.uncheck(".cell-pick[data-key='460-00-100-6']")
    page.click("#save-fence")
    page.wait_for_selector("#save-status[data-cells]")
    assert page.get_attribute("#save-status", "data-cells") == "460-00-100-4 460-00-100-5"
    page.wait_for_selector("li.fence[data-name=middle_row]")
    page.click("li.fence[data-name=middle_row]")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "map.png"))
    assert state.fences.cells_of("middle_row") == ["460-00-100-4", "460-00-100-5"]
    assert (state.fences_dir / "middle_row.json").exists()


def test_a_report_client_is_sent_to_its_reports_not_the_map(server, page):
    base, _ = server
    page.goto(base + "/login")
    page.fill("input[name=name]", "client_a")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/reports")
    assert page.locator("a", has_text="mall_a").count() == 1
    assert page.locator("a", has_text="mall_b").count() == 0


def test_build_approve_and_activate_a_campaign_then_see_its_triggers_arrive(city, tmp_path, page):
    root = tmp_path / "probe"
    root.mkdir()
    receiver = Receiver()
    web_port = free_port()
    config = load_config(site(root, city, receiver.port, web_port, campaign=False))
    daemon = Daemon(config, root / "state", poll_s=0.2)
    for user in ("marketer", "approver"):
        daemon.probe.accounts.add_user(user, user, PASSWORD)
    daemon.start()
    base = f"http://127.0.0.1:{web_port}"
    try:
        for _ in range(100):
            if daemon.server.started:
                break
            time.sleep(0.1)
        sign_in(page, base, "marketer")
        page.goto(base + "/campaigns")
        page.fill("#new-campaign input[name=id]", "welcome")
        page.fill("#new-campaign input[name=name]", "Welcome to West Lake")
        page.select_option("#new-campaign select[name=fence]", "West Lake scenic area")
        page.select_option("#new-campaign select[name=kind]", "enter")
        page.click("#new-campaign button[type=submit]")
        row = "#campaigns tr[data-id=welcome]"
        page.click(f"{row} button[data-to=submitted]")
        page.wait_for_selector(f"{row} td.state:text-is('submitted')")
        page.context.clear_cookies()
        sign_in(page, base, "approver")
        page.goto(base + "/campaigns")
        page.click(f"{row} button[data-to=approved]")
        page.wait_for_selector(f"{row} td.state:text-is('approved')")
        page.context.clear_cookies()
        sign_in(page, base, "marketer")
        page.goto(base + "/campaigns")
        page.click(f"{row} button[data-to=test_send]")
        page.wait_for_selector(f"{row} button[data-to=active]")
        page.click(f"{row} button[data-to=active]")
        page.wait_for_selector(f"{row} td.state:text-is('active')")
        shutil.copy(city / "capture.pcap", root / "incoming" / "capture.pcap")
        page.wait_for_function(f"Number(document.querySelector('{row} td.triggers').textContent) > 0",
                               timeout=120_000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "campaigns.png"))
        deadline = time.monotonic() + 30
        while not receiver.accepted and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        daemon.shutdown()
        receiver.stop()
    assert receiver.accepted and receiver.bad_signatures == 0
    assert {b["campaign"] for b in receiver.bodies.values()} == {"welcome"}
    history = json.loads((root / "campaigns" / "welcome.json").read_text())["history"]
    assert [(h["to"], h["who"]) for h in history] == [("submitted", "marketer"), ("approved", "approver"),
                                                      ("test_send", "marketer"), ("active", "marketer")]
