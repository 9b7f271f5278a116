"""Scenes as data: presets/*.toml and the pure mapping functions over them."""
