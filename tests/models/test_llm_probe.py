"""`run.py check` names what the configured LLM server supports: reachable, JSON by schema or free text."""
from __future__ import annotations

import socket

import pytest

from installation.cli import main
from models.language.probe import describe_llm_server
from tests.fakes import FakeLlm


@pytest.fixture
def fake_llm():
    server = FakeLlm({"good": '{"ok": "yes"}'})
    yield server
    server.stop()


def test_a_server_that_takes_the_schema(fake_llm):
    line = describe_llm_server(fake_llm.url, "tiny")
    assert "answers" in line and "JSON schema: taken" in line
    assert fake_llm.requests[0]["max_tokens"] == 1  # the probe costs one token


def test_a_server_that_refuses_the_schema(fake_llm):
    fake_llm.refuse_schema = True
    assert "JSON schema: refused (HTTP 400" in describe_llm_server(fake_llm.url, "tiny")


def test_check_names_whether_the_server_takes_a_grammar(fake_llm):
    from models.language.probe import PROBE_WORD
    assert "ABC grammar: ignored" in describe_llm_server(fake_llm.url, "tiny")  # it answered the JSON, not the word
    fake_llm.contents["grammar"] = lambda body: PROBE_WORD if "grammar" in body else '{"ok": "yes"}'
    fake_llm.mode = "grammar"
    assert "ABC grammar: taken" in describe_llm_server(fake_llm.url, "tiny")
    fake_llm.refuse_grammar = True
    assert "ABC grammar: refused (HTTP 400" in describe_llm_server(fake_llm.url, "tiny")


def test_nobody_listening():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert "not reachable" in describe_llm_server(f"http://127.0.0.1:{port}/v1", "tiny", timeout_s=2.0)


def test_check_names_the_caption_and_composer_servers(fake_llm, capsys):
    fake_llm.refuse_schema = True
    main(["check", "--set", 'display.mode="headless"', "--set", 'captions.backend="llm"',
          "--set", f'captions.llm_url="{fake_llm.url}"', "--set", 'captions.llm_model="tiny"',
          "--set", 'compose.backend="llm"', "--set", f'compose.llm_url="{fake_llm.url}"'])
    out = capsys.readouterr().out
    assert "caption LLM: " in out and "composer LLM: " in out
    assert out.count("JSON schema: refused") == 2
