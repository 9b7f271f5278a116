"""/metrics as a monitoring tool scrapes it: the room's state (open, closed by the schedule,
blackout), the info metric, and the process metrics of the global registry."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from installation.config import load_config
from installation.web.metrics import room_state

pytest.importorskip("fastapi")
TOKEN = "metrics-token"


def scrape(status: dict, schedule_open: bool | None) -> str:
    from fastapi.testclient import TestClient

    from installation.web import build_web
    cfg = load_config(None, ["web.enabled=true", f'web.token="{TOKEN}"', "web.port=0"])
    schedule = None if schedule_open is None else SimpleNamespace(
        describe=lambda when: {"open": schedule_open, "reason": "open" if schedule_open else "closed today"})
    sources = SimpleNamespace(audio="file", camera="photos", render="procedural", display="headless")
    web = build_web(cfg, status=lambda: status, check=lambda command: None, commands=None, scenes=lambda: ["a"],
                    schedule=schedule, sources=sources)
    client = TestClient(web.server._app, client=("127.0.0.1", 5000))
    reply = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 200
    return reply.text


STATUS = {"installation": "Test room", "scene": "nocturne", "render": "procedural", "blackout": False, "fps": 30.0}


@pytest.mark.parametrize("schedule_open, blackout, state", [
    (True, False, "open"), (True, True, "blackout"), (False, True, "closed"), (None, False, "open")])
def test_the_room_state_is_one_of_open_closed_blackout(schedule_open, blackout, state):
    text = scrape({**STATUS, "blackout": blackout}, schedule_open)
    for name in ("open", "closed", "blackout"):
        assert f'chromesthesia_state{{chromesthesia_state="{name}"}} {1.0 if name == state else 0.0}' in text


def test_info_names_version_scene_and_sources_and_process_metrics_are_there():
    text = scrape(STATUS, True)
    info = next(line for line in text.splitlines() if line.startswith("chromesthesia_info{"))
    from installation.web.metrics import package_version
    for label in (f'version="{package_version()}"', 'scene="nocturne"', 'audio_source="file"', 'camera_source="photos"',
                  'render="procedural"', 'installation="Test room"'):
        assert label in info, label
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
                 "python_info", "python_gc_collections_total"):
        assert f"\n{name}" in text, name


def test_a_closed_schedule_outranks_the_blackout_it_causes():
    assert room_state({"open": False}, blackout=True) == "closed"
    assert room_state({"open": True}, blackout=True) == "blackout"
    assert room_state(None, blackout=False) == "open"
