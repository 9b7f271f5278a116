"""Device adapters: audio in, camera, MIDI, OSC, display, the built-in synth."""
