"""The sentence model's child process ends with the installation, however the installation ends."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]

PARENT = """
import sys, threading, time
from models.language.sentence_model import SentenceModel
model = SentenceModel(module="tests.fake_sentence_model")
threading.Thread(target=model.load, daemon=True).start()
while model._starting is None:
    time.sleep(0.01)
print(model._starting.process.pid, flush=True)
time.sleep(120)
"""


def test_a_child_still_loading_ends_when_the_installation_is_killed(tmp_path):
    env = {**os.environ, "FAKE_SENTENCE_GATE": str(tmp_path / "never")}  # the load never finishes
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        child = psutil.Process(child_pid)
        time.sleep(1.0)  # the child is in its (endless) load
        assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)

        def gone() -> bool:
            try:
                return child.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True
        deadline = time.monotonic() + 10.0
        while not gone() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gone(), "the sentence model's child outlived the killed installation"
    finally:
        parent.kill()
        parent.wait(10)
