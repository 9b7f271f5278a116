"""MIDI: outputs (ports, files, OSC events) and inputs (controllers, clock)."""
