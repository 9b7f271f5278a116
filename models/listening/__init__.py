"""Listening: live audio -> onsets, beats, rolling descriptors and valence-arousal."""
