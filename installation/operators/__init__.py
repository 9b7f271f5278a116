"""The operators' doors: the route table, control, MIDI learn, OSC wiring, the dashboard token."""
