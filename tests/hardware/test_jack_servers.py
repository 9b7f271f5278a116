"""The test suite's own JACK servers: a server killed mid-run must not use up the machine's slots."""
from __future__ import annotations

import os

import pytest

from tests.conftest import JACKD_NAME, is_jackd, jack_registrations, reclaim_dead_jack_registrations, start_jackd, stop_jackd


@pytest.mark.jack
def test_a_killed_test_server_gives_its_registry_slot_back(jack_server):
    name = f"vanish{os.getpid()}"
    server = start_jackd(name)
    try:
        assert jack_registrations().get(name) == server.pid
        server.kill()  # as a CI timeout or kill -9 leaves it: no clean exit, the slot stays taken
        server.wait(5)
        assert jack_registrations().get(name) == server.pid
        assert reclaim_dead_jack_registrations() >= 1
        assert name not in jack_registrations()
        # what stays is live servers only, this run's own among them
        assert all(is_jackd(pid) for other, pid in jack_registrations().items() if JACKD_NAME.match(other))
        assert jack_registrations()[f"chroma{os.getpid()}"] > 0
    finally:
        stop_jackd(server)


@pytest.mark.jack
def test_a_registry_full_of_killed_servers_does_not_stop_the_next_one():
    killed = 0
    # JACK's 8 slots, some held by live servers; more kills than slots, since other test runs on the
    # machine free dead servers' slots when they start
    while len(jack_registrations()) < 8 and killed < 24:
        server = start_jackd(f"vanish{os.getpid()}_{killed}")
        server.kill()
        server.wait(5)
        killed += 1
    assert len(jack_registrations()) == 8
    server = start_jackd(f"vanishing{os.getpid()}")  # frees the dead slots and starts
    try:
        assert jack_registrations()[f"vanishing{os.getpid()}"] == server.pid
    finally:
        stop_jackd(server)


def test_a_count_after_the_pid_in_a_server_name_still_names_the_live_test_process():
    """Read as one number, pid and count make a pid that does not run: another test run starting
    meanwhile would stop this run's live server as an orphan."""
    assert JACKD_NAME.match(f"vanish{os.getpid()}_12").group(1) == str(os.getpid())
    assert JACKD_NAME.match(f"chroma256x{os.getpid()}").group(1) == str(os.getpid())
