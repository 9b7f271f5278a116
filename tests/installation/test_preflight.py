"""`check` is the start's own validation: five configs the run refuses get the same sentence and
exit 2 from `check` and from a start."""
from __future__ import annotations

import socket
import sys

import pytest

from installation.cli import main

HEADLESS = ["--set", 'display.mode="headless"', "--set", "osc.enabled=false"]


@pytest.fixture
def taken_port():
    """A TCP port with a live listener on it (another program)."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        yield other.getsockname()[1]


def five_configs(port: int) -> dict[str, list[str]]:
    return {
        "ndi required without cyndilib": ["--set", "video_out.ndi=true", "--set", "video_out.required=true"],
        "link without LinkPython": ["--set", 'tempo.source="link"'],
        "an unknown holiday country": ["--set", 'schedule.holidays_country="XX"'],
        "a closure on no date": ["--set", 'schedule.closures=["2026-13-45"]'],
        "a dashboard port taken": ["--set", "web.enabled=true", "--set", f"web.port={port}"],
    }


def errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error: ")]


@pytest.mark.parametrize("name", list(five_configs(0)))
def test_check_and_the_start_refuse_with_the_same_sentence(name, taken_port, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cyndilib", None)  # absent even where the extra is installed
    monkeypatch.setitem(sys.modules, "cyndilib.sender", None)
    monkeypatch.setitem(sys.modules, "link", None)
    args = five_configs(taken_port)[name]
    assert main(["check", *HEADLESS, *args]) == 2
    said_by_check = errors(capsys.readouterr().err)
    assert main(["--headless", "--quiet", "--duration", "1", *HEADLESS, *args]) == 2
    said_by_start = errors(capsys.readouterr().err)
    assert len(said_by_start) == 1 and said_by_start[0] in said_by_check, (said_by_check, said_by_start)


def test_every_port_the_run_opens_is_probed(taken_port):
    from installation.config import load_config
    from installation.preflight import start_problems

    cfg = load_config(None, ["osc.enabled=true", f"osc.port={taken_port}", "osc.tcp_enabled=true",
                             f"osc.tcp_port={taken_port}", "osc.query_enabled=true", f"osc.query_port={taken_port}",
                             "web.enabled=true", f"web.port={taken_port}"])
    problems = start_problems(cfg)
    assert [p.split(" cannot listen")[0] for p in problems] == ["OSC over TCP", "OSCQuery", "the dashboard"]
    assert all("Address already in use" in p for p in problems)  # a free UDP port beside a TCP listener is free
