"""The dashboard and /metrics over real HTTP and websockets, and in real headless Chromium.

The installation's side is real: Control validates and applies commands taken from the same
queue the main thread drains, and a projector thread feeds frames into the preview sink.
"""
from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pytest

from installation.clock import MonotonicClock
from installation.config import load_config
from installation.operators.control import Control, LiveState
from installation.mailbox import DropOldest
from installation.records import Command
from tests.waiting import wait_for

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

TOKEN = "s3cret-token"
SCENES = ["nocturne", "gallery", "pulse"]


class Room:
    """The parts of a running installation the dashboard talks to, on real threads."""

    def __init__(self, show_log=None, allow=("127.0.0.0/8",), port: int = 0, settings: tuple[str, ...] = (),
                 schedule=None) -> None:
        from installation.web import build_web
        self.live = LiveState(scene="nocturne")
        self.clock = MonotonicClock()
        self.control = Control(self.live, lambda: SCENES, show_log, clock=self.clock)
        self.commands: DropOldest[Command] = DropOldest(256)
        self.frames_shown = 0
        cfg = load_config(None, ["web.enabled=true", f'web.token="{TOKEN}"', f"web.port={port}",
                                 f"web.allow={json.dumps(list(allow))}", "web.status_hz=10", "web.preview_hz=10",
                                 *settings])
        self.web = build_web(cfg, status=self.status, check=self.control.check, commands=self.commands,
                             scenes=lambda: SCENES, show_log=show_log, schedule=schedule,
                             param_specs=lambda: self.control.param_specs, live=self.live.frozen)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._projector, name="projector", daemon=True)

    def status(self) -> dict:
        return {"installation": "Test room", "scene": self.live.scene, "blackout": self.live.blackout,
                "fps": 30.0, "music_va": [0.1, -0.2], "image_va": [0.3, 0.4], "projected_va": [0.2, 0.1],
                "tempo_bpm": 96.0, "notes_per_s": 3.5, "drops": {"frames": 2, "commands": 0},
                "failures": 1, "restarts": 0, "caption": "a slow blue tide",
                "reasons": {"mood": "calm", "tempo": "slow"}, "freeze": self.live.freeze,
                "blackout_by": self.live.blackout_sender}

    def _projector(self) -> None:
        n = 0
        while not self.stop_event.is_set():
            n += 1
            rgb = np.zeros((360, 640, 3), np.uint8)
            rgb[:, : (n * 7) % 640] = (40, 90, 200)
            self.web.preview.show(rgb)
            self.frames_shown += 1
            self.control.apply_until(self.commands, self.clock.now_s() + 1 / 30, self.clock)

    def __enter__(self) -> "Room":
        self.web.start()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.thread.join(2)
        self.web.stop()

    @property
    def url(self) -> str:
        host, port = self.web.server.address
        return f"http://{host}:{port}"


@pytest.fixture
def room():
    with Room() as r:
        yield r


def test_token_is_required_everywhere(room):
    for path in ("/", "/status", "/metrics", "/preview.jpg"):
        assert httpx.get(room.url + path, timeout=10).status_code == 401
        assert httpx.get(room.url + path, params={"token": "wrong"}, timeout=10).status_code == 401
    assert httpx.get(room.url + "/status", params={"token": TOKEN}, timeout=10).status_code == 200
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(room.url + "/status", headers=bearer, timeout=10).json()["status"]["scene"] == "nocturne"
    # A link with the token signs in once: a session cookie, and a redirect to the clean address.
    link = httpx.get(room.url + "/", params={"token": TOKEN}, timeout=10)
    assert link.status_code == 303 and link.headers["location"] == "/"
    cookie = link.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN.lower() not in cookie
    page = httpx.get(room.url + "/", cookies=link.cookies, timeout=10)
    assert page.status_code == 200 and 'id="blackout"' in page.text
    assert httpx.get(room.url + "/status", cookies=link.cookies, timeout=10).status_code == 200
    # The token itself is not a cookie the dashboard takes.
    assert httpx.get(room.url + "/status", cookies={"chromesthesia_token": TOKEN}, timeout=10).status_code == 401


def test_addresses_outside_the_allowlist_are_refused():
    """Closed when accepted, before a byte is read; the application's own check answers 403."""
    from fastapi.testclient import TestClient
    with Room(allow=("10.0.0.0/8",)) as r:
        with pytest.raises(httpx.TransportError):
            httpx.get(r.url + "/status", params={"token": TOKEN}, timeout=10)
        assert r.web.server.gate.stats["refused_host"] >= 1
        reply = TestClient(r.web.server._app, client=("127.0.0.1", 5000)).get("/status", params={"token": TOKEN})
        assert reply.status_code == 403 and "web.allow" in reply.text


def test_commands_are_validated_applied_and_refusals_logged(tmp_path):
    from installation.showlog.writer import ShowLog, read_show_log
    log = ShowLog(tmp_path / "show.jsonl", MonotonicClock())
    with Room(show_log=log) as r:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        ok = httpx.post(r.url + "/command", json={"address": "/scene", "args": ["gallery"]}, headers=bearer, timeout=10)
        assert ok.json() == {"ok": True}
        assert wait_for(lambda: r.live.scene == "gallery", 10)
        bad = httpx.post(r.url + "/command", json={"address": "/scene", "args": ["nowhere"]}, headers=bearer, timeout=10)
        assert bad.json()["ok"] is False and "no scene" in bad.json()["reason"]
        stop = httpx.post(r.url + "/command", json={"address": "/stop", "args": []}, headers=bearer, timeout=10)
        assert stop.status_code == 403 and not r.live.stop_requested
        metrics = httpx.get(r.url + "/metrics", headers=bearer, timeout=10).text
    log.close()
    refused = [rec for rec in read_show_log(tmp_path / "show.jsonl") if rec["kind"] == "command" and not rec["ok"]]
    assert [(rec["address"], rec["source"]) for rec in refused] == [("/scene", "web")]
    assert refused[0]["sender"].startswith("web:127.0.0.1") and "no scene" in refused[0]["reason"]
    assert 'chromesthesia_commands_total{result="accepted",source="web"} 1.0' in metrics
    assert 'chromesthesia_commands_total{result="refused",source="web"} 1.0' in metrics
    for name in ("chromesthesia_fps 30.0", "chromesthesia_uptime_seconds", "chromesthesia_notes_per_second 3.5",
                 'chromesthesia_dropped_total{mailbox="frames"} 2.0', "chromesthesia_restarts_total 0.0",
                 "chromesthesia_faults_total 1.0"):
        assert name in metrics, name


def test_websocket_pushes_status_and_preview_pictures(room):
    from websockets.sync.client import connect
    ws_url = room.url.replace("http", "ws") + "/ws"
    with pytest.raises(Exception):
        with connect(ws_url + "?token=wrong", open_timeout=10) as ws:
            ws.recv(timeout=10)
    texts, pictures = [], []
    with connect(f"{ws_url}?token={TOKEN}", open_timeout=10) as ws:
        while len(texts) < 2 or len(pictures) < 2:
            message = ws.recv(timeout=10)
            (pictures if isinstance(message, bytes) else texts).append(message)
    status = json.loads(texts[-1])
    assert status["status"]["caption"] == "a slow blue tide" and status["scenes"] == SCENES
    assert all(p[:2] == b"\xff\xd8" for p in pictures) and pictures[0] != pictures[-1]


def test_a_taken_port_is_one_sentence():
    from installation.errors import UserError
    with Room() as first:
        port = first.web.server.address[1]
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}"):
            Room(port=port).web.start()


# --- real browser ----------------------------------------------------------------------------------
def chromium_driver():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.skip("chromium and chromium-driver are not installed (Debian packages); `make test` installs them")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(chromedriver), options=options)


@pytest.fixture
def browser():
    driver = chromium_driver()
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_dashboard_in_headless_chromium(room, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(room.url + "/")
    assert "token is required" in browser.find_element(By.TAG_NAME, "body").text
    browser.get(f"{room.url}/?token={TOKEN}")
    assert wait_for(lambda: browser.find_element(By.ID, "name").text == "Test room", 20)
    assert wait_for(lambda: browser.find_element(By.ID, "caption").text == "a slow blue tide", 20)

    button = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, '.scene-button[data-scene="pulse"]'), 20)
    button[0].click()
    status = lambda: httpx.get(room.url + "/status", params={"token": TOKEN}, timeout=10).json()["status"]
    assert wait_for(lambda: status()["scene"] == "pulse", 20)
    assert wait_for(lambda: "active" in browser.find_element(
        By.CSS_SELECTOR, '.scene-button[data-scene="pulse"]').get_attribute("class"), 20)

    browser.find_element(By.ID, "blackout").click()
    assert wait_for(lambda: status()["blackout"] is True, 20)

    preview = browser.find_element(By.ID, "preview")
    first = wait_for(lambda: preview.get_attribute("src"), 20)
    frames = lambda: int(preview.get_attribute("data-frames") or 0)
    count = wait_for(frames, 20)
    assert wait_for(lambda: preview.get_attribute("src") != first and frames() > count, 20)
    assert 0 < browser.execute_script("return arguments[0].naturalWidth", preview) <= 480


class ClosedCalendar:
    """A calendar that has the room closed today (Calendar.describe's shape)."""

    def describe(self, when) -> dict:
        return {"open": False, "reason": "holiday: Christmas Day", "next_change": "2026-12-26T10:00",
                "next_state": "open", "open_hours": ["10:00-18:00"]}


def sign_in(browser, url: str, token: str = TOKEN) -> None:
    """The login form, as a technician uses it."""
    from selenium.webdriver.common.by import By
    browser.get(url + "/")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "sign-in").click()


def text_of(browser, id_: str) -> str:
    """An element's text; "" while the page it was on is being replaced."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    try:
        return browser.find_element(By.ID, id_).text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def answer(browser, yes: bool) -> None:
    from selenium.webdriver.common.by import By
    dialog = browser.find_element(By.ID, "confirm")
    assert wait_for(lambda: dialog.get_attribute("open") is not None, 20)
    browser.find_element(By.ID, "confirm_yes" if yes else "confirm_no").click()
    assert wait_for(lambda: browser.execute_script("const d = document.getElementById('confirm'); return !d || !d.open"), 20)


def test_each_control_in_chromium(browser, tmp_path):
    """Freeze, brightness and volume (to the route table's 2), prompt, blackout with its reason,
    restart behind a confirm, warnings apart from faults, the log, today's report."""
    import logging

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from installation.showlog.writer import ShowLog
    show_log = ShowLog(tmp_path / "show.jsonl", MonotonicClock())
    with Room(show_log=show_log) as r:
        sign_in(browser, r.url)
        assert wait_for(lambda: text_of(browser, "name") == "Test room", 20)
        assert browser.current_url == r.url + "/"
        find = lambda id_: browser.find_element(By.ID, id_)  # noqa: E731

        find("freeze").click()
        assert wait_for(lambda: r.live.freeze is True, 20)
        assert wait_for(lambda: "active" in find("freeze").get_attribute("class"), 20)

        volume = wait_for(lambda: browser.find_elements(By.ID, "param-volume"), 20)[0]
        assert (volume.get_attribute("min"), volume.get_attribute("max")) == ("0", "2")
        volume.send_keys(Keys.END)
        assert wait_for(lambda: r.live.params["volume"] == 2.0, 20)
        brightness = find("param-brightness")
        assert brightness.get_attribute("max") == "1"
        brightness.send_keys(Keys.HOME)
        assert wait_for(lambda: r.live.params["brightness"] == 0.0, 20)

        find("prompt_text").send_keys("a lighthouse in fog")
        find("prompt_send").click()
        assert wait_for(lambda: r.live.prompt_override == "a lighthouse in fog", 20)
        assert wait_for(lambda: "a lighthouse in fog" in find("prompt_now").text, 20)
        find("prompt_clear").click()
        assert wait_for(lambda: r.live.prompt_override is None, 20)

        assert find("dark").is_displayed() is False
        find("blackout").click()
        assert wait_for(lambda: r.live.blackout is True, 20)
        assert wait_for(lambda: "operator (web:127.0.0.1" in find("dark").text, 20)

        find("restart").click()
        answer(browser, yes=False)
        assert wait_for(lambda: "not sent" in find("command_result").text, 20) and r.live.stop_requested is None
        find("restart").click()
        answer(browser, yes=True)
        assert wait_for(lambda: r.live.stop_requested == "restart", 20)

        logging.getLogger("chromesthesia.test").warning("embedded default: no camera, photos instead")
        logging.getLogger("chromesthesia.test").error("renderer failed: out of memory")
        assert wait_for(lambda: "no camera" in find("warnings").text, 20)
        assert "out of memory" in find("faults").text and "no camera" not in find("faults").text
        assert "out of memory" not in find("warnings").text
        assert "1 since start" in find("faults_total").text
        assert "no camera" in find("log").text

        report = find("report_link")
        assert report.is_displayed() and report.get_attribute("href") == r.url + "/report"
        page = httpx.get(r.url + "/report", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        assert page.status_code == 200 and "<html" in page.text.lower()
        whole = httpx.get(r.url + "/log", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
        assert "out of memory" in whole and "no camera" in whole
    show_log.close()


def test_lighting_up_in_closed_hours_asks_first(browser):
    from selenium.webdriver.common.by import By
    with Room(schedule=ClosedCalendar()) as r:
        r.commands.put(Command(0.0, "/blackout", (1,), "schedule"))
        assert wait_for(lambda: r.live.blackout is True, 20)
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        unasked = httpx.post(r.url + "/command", json={"address": "/blackout", "args": [0]}, headers=bearer, timeout=10)
        assert unasked.status_code == 409 and "closed (holiday: Christmas Day)" in unasked.json()["confirm"]

        sign_in(browser, r.url)
        dark = browser.find_element(By.ID, "dark")
        assert wait_for(lambda: "closed by the schedule (holiday: Christmas Day)" in dark.text, 20)
        assert "2026-12-26 10:00" in dark.text
        browser.find_element(By.ID, "blackout").click()
        answer(browser, yes=False)
        assert wait_for(lambda: "not sent" in browser.find_element(By.ID, "command_result").text, 20)
        assert r.live.blackout is True
        browser.find_element(By.ID, "blackout").click()
        answer(browser, yes=True)
        assert wait_for(lambda: r.live.blackout is False, 20)
        assert wait_for(lambda: not dark.is_displayed(), 20)


def test_login_form_and_revoking_sessions(browser):
    from selenium.webdriver.common.by import By
    with Room() as r:
        sign_in(browser, r.url, "not-the-token")
        assert wait_for(lambda: "not this room's" in text_of(browser, "message"), 20)
        sign_in(browser, r.url)
        assert wait_for(lambda: text_of(browser, "name") == "Test room", 20)
        cookie = browser.get_cookie("chromesthesia_session")
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
        assert "token" not in browser.current_url
        # Another browser, signed in by a link with the token.
        other = httpx.get(r.url + "/", params={"token": TOKEN}, timeout=10).cookies
        assert httpx.get(r.url + "/status", cookies=other, timeout=10).status_code == 200

        browser.find_element(By.ID, "revoke").click()
        answer(browser, yes=True)
        assert wait_for(lambda: browser.current_url == r.url + "/login", 20)
        assert httpx.get(r.url + "/status", cookies=other, timeout=10).status_code == 401
        browser.get(r.url + "/")
        assert browser.find_elements(By.ID, "token")  # the login form again

        # The OSC admin path (/web/revoke from an osc.admin_allow host) does the same.
        sign_in(browser, r.url)
        assert wait_for(lambda: text_of(browser, "connection") == "live", 20)
        r.control.effects["revoke_sessions"] = lambda command, value: r.web.revoke_sessions()
        r.commands.put(Command(0.0, "/web/revoke", (), "admin 10.0.0.9:9000"))
        assert wait_for(lambda: browser.current_url == r.url + "/login", 20)  # its websocket was closed
        refused = r.control.apply(Command(0.0, "/web/revoke", (), "10.0.0.9:9000"))
        assert refused["ok"] is False and "osc.admin_allow" in refused["reason"]


def test_phone_width_puts_scene_and_blackout_first(room, browser):
    from selenium.webdriver.common.by import By
    browser.set_window_size(390, 844)
    sign_in(browser, room.url)
    assert wait_for(lambda: text_of(browser, "caption") == "a slow blue tide", 20)
    top = lambda id_: browser.find_element(By.ID, id_).rect["y"]  # noqa: E731
    assert top("controls") < top("picture") < top("caption-card")
    assert top("blackout") < 844 and top("scenes") < 844
    reasons = browser.find_element(By.ID, "reasons-box")
    assert reasons.get_attribute("open") is None and not browser.find_element(By.ID, "reasons").is_displayed()
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390


def test_osc_refusals_are_counted_and_logged_through_the_audited_control(tmp_path):
    from installation.showlog.writer import ShowLog, read_show_log
    from installation.web.metrics import CommandAudit
    log = ShowLog(tmp_path / "show.jsonl", MonotonicClock())
    control = Control(LiveState(scene="nocturne"), lambda: SCENES, log)
    audit = CommandAudit(log)
    audited = audit.control(control, "osc")
    assert audited.live is control.live and audited.param_specs == control.param_specs
    assert audited.check(Command(0.0, "/scene", ("gallery",), "10.0.0.5:9000")) is None
    assert "no scene" in audited.check(Command(0.0, "/scene", ("attic",), "10.0.0.5:9000"))
    for _ in range(100):  # a sender looping on a bad command: the log gets 60 a minute and a count
        audited.check(Command(0.0, "/blackout", ("x",), "10.0.0.6:9000"))
    audited.check(Command(0.0, "/scene", ("attic",), "10.0.0.5:9000"))
    log.close()
    records = read_show_log(tmp_path / "show.jsonl")
    refused = [r for r in records if r["kind"] == "command"]
    assert refused[0]["sender"] == "10.0.0.5:9000" and refused[0]["source"] == "osc" and not refused[0]["ok"]
    assert len(refused) == 60
    assert [r["count"] for r in records if r["kind"] == "refusals_suppressed"] == []  # said with the next logged one
    assert audit.snapshot() == {("osc", "accepted"): 1, ("osc", "refused"): 102}




# --- the whole installation ------------------------------------------------------------------------
@pytest.mark.slow
def test_the_running_installation_serves_its_dashboard_and_a_click_changes_its_scene(browser, tmp_path, caplog):
    """The installation itself (headless, embedded default) with [web] on: the page in Chromium,
    a scene click seen in /status, a refused command in the show log and /metrics, the summary."""
    import logging

    from selenium.webdriver.common.by import By

    from installation.app import Installation, RunOptions
    from installation.showlog.writer import read_show_log

    embedded = ["osc.enabled=false", 'display.mode="headless"', 'audio.source="synth"', 'camera.source="photos"',
                'render.backend="procedural"', 'synth.speakers="off"']
    cfg = load_config(None, [*embedded, "web.enabled=true", "web.port=0", f'web.token="{TOKEN}"'])
    installation = Installation(cfg, RunOptions(duration_s=90.0, record_dir=tmp_path, headless=True, quiet=True))
    runner = threading.Thread(target=installation.run)
    caplog.set_level(logging.INFO, logger="chromesthesia.status")
    runner.start()
    try:
        assert wait_for(lambda: installation.web.server.started, 60)
        host, port = installation.web.server.address
        url = f"http://{host}:{port}"
        status = lambda: httpx.get(url + "/status", params={"token": TOKEN}, timeout=10).json()  # noqa: E731
        first = wait_for(lambda: (s := status()) and s["status"]["fps"] > 0 and s, 60)
        target = next(name for name in first["scenes"] if name != first["status"]["scene"])
        browser.get(f"{url}/?token={TOKEN}")
        button = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f'.scene-button[data-scene="{target}"]'), 30)
        button[0].click()
        assert wait_for(lambda: status()["status"]["scene"] == target, 30)
        assert installation.status_snapshot()["scene"] == target
        preview = browser.find_element(By.ID, "preview")
        assert wait_for(lambda: int(preview.get_attribute("data-frames") or 0) >= 2, 30)
        refused = httpx.post(url + "/command", json={"address": "/param/volume", "args": [7]},
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
        assert refused["ok"] is False
        metrics = httpx.get(url + "/metrics", params={"token": TOKEN}, timeout=10).text
        assert 'chromesthesia_commands_total{result="refused",source="web"} 1.0' in metrics
        assert "chromesthesia_fps " in metrics
    finally:
        installation.request_stop("test over")
        runner.join(30)
    assert not runner.is_alive()
    records = read_show_log(tmp_path / "show.jsonl")
    assert any(r["kind"] == "command" and r["address"] == "/param/volume" and not r["ok"] for r in records)
    assert any(r["kind"] == "scene" and r["scene"] == target for r in records)
    said = [r.getMessage() for r in caplog.records if r.name == "chromesthesia.status"]
    assert any(m.startswith("ran 0:") and "frames" in m for m in said), said
    assert f"wrote {tmp_path / 'show.jsonl'}" in said and f"wrote {tmp_path / 'visuals.mp4'}" in said, said
