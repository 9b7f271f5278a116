"""Projection: the projector's display loop, the compositor's accents, the frames' time stamps."""
