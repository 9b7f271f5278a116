"""Sound: audio input, the built-in synth, the speakers' child process and the JACK server probe."""
