"""Each wing's settings type at its door holds the same defaults as the config section it is built
from: a default section makes the settings type's default instance."""
from __future__ import annotations

import dataclasses

import pytest

from installation.config import Config


def sections_with_settings() -> dict[str, type]:
    return {name: field.annotation for name, field in Config.model_fields.items()
            if isinstance(field.annotation, type) and hasattr(field.annotation, "settings")}


def test_some_section_builds_settings():
    assert "osc" in sections_with_settings()


@pytest.mark.parametrize("name", sorted(sections_with_settings()))
def test_settings_defaults_agree_with_the_config_sections(name):
    section = sections_with_settings()[name]()
    settings = section.settings()
    assert dataclasses.is_dataclass(settings) and type(settings).__dataclass_params__.frozen
    assert settings == type(settings)(), f"[{name}] defaults differ from {type(settings).__name__}'s"
