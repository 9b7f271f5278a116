"""Captions: the five facet agents, their phrase banks and the director that turns music into prompts."""
