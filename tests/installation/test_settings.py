"""A wing's settings type at its door holds no default that disagrees with the config section it is
built from (a settings type may have no defaults at all: then there is nothing to disagree)."""
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
    defaults = {f.name: f.default for f in dataclasses.fields(settings) if f.default is not dataclasses.MISSING}
    differ = {key: (value, getattr(settings, key)) for key, value in defaults.items() if getattr(settings, key) != value}
    assert not differ, f"[{name}] {type(settings).__name__} defaults (theirs, config.py's): {differ}"
