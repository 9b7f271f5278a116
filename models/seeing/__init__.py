"""Seeing: camera frames -> content descriptors, words and valence-arousal."""
