"""Secrets stay out of what is printed; the dashboard's token survives restarts; LLM servers get
their API key."""
from __future__ import annotations

import logging
import os
import stat

import pytest

from installation.config import ConfigError, load_config
from installation.showlog.redact import MASK, is_secret, redact_data, remember
from installation.operators.token_file import persistent_token

TOKEN = "s3cr3t-dashboard-token"


def test_secret_keys_are_known_by_name():
    for key in ("web.token", "osc.admin_token", "captions.llm_api_key", "compose.llm_api_key"):
        assert is_secret(key), key
    assert not is_secret("web.token_hint_s") and not is_secret("osc.port")
    assert redact_data({"web": {"token": TOKEN, "port": 1}}) == {"web": {"token": MASK, "port": 1}}


@pytest.mark.parametrize("text", [
    f'[web]\ntoken = {{ value = "{TOKEN}" }}\n',   # a table where text belongs
    f'[web]\ntoken = ["{TOKEN}"]\n',
    f'[osc]\nadmin_token = ["{TOKEN}"]\n',
    f'[compose]\nllm_api_key = ["{TOKEN}"]\n',
])
def test_a_config_error_never_quotes_a_secret(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert TOKEN not in str(err.value) and MASK in str(err.value)


def test_a_bad_override_of_a_secret_is_not_quoted():
    with pytest.raises(ConfigError) as err:
        load_config(None, [f'web.token="{TOKEN}'])  # an unclosed quote
    assert TOKEN not in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"web.token={{a={TOKEN}"])
    assert TOKEN not in str(err.value)


def test_a_loaded_configs_secrets_are_masked_in_every_log_line(caplog):
    cfg = load_config(None, [f'web.token="{TOKEN}"', 'osc.admin_token="another-secret"'])
    remember(cfg)
    with caplog.at_level(logging.INFO):
        logging.getLogger("anything.at.all").warning("the token was %s and %s", TOKEN, "another-secret")
    message = caplog.records[-1].getMessage()
    assert TOKEN not in message and "another-secret" not in message and message.count(MASK) == 2


def test_an_empty_web_token_is_kept_in_a_private_file_beside_the_config(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("")
    first, path = persistent_token(config)
    again, same = persistent_token(config)
    assert first == again and path == same and path.parent == tmp_path and len(first) >= 16
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.chmod(path, 0o644)
    persistent_token(config)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    path.unlink()
    assert persistent_token(config)[0] != first  # deleting it gives a new one


def test_the_llm_api_key_is_a_typed_setting_sent_as_a_bearer_header(monkeypatch):
    from models.language.client import API_KEY_ENV, auth_headers
    cfg = load_config(None, ['captions.llm_api_key="k-123"', 'compose.llm_api_key="k-456"'])
    assert cfg.captions.llm_api_key == "k-123" and cfg.compose.llm_api_key == "k-456"
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert "Authorization" not in auth_headers("")
    assert auth_headers("k-123")["Authorization"] == "Bearer k-123"
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    assert auth_headers("")["Authorization"] == "Bearer from-env"
