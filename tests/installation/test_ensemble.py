"""Several installations: a follower takes the music state from a listener's /out streams over OSC."""
from __future__ import annotations

import socket

import pytest

from hardware.osc.out import analysis_bundle, analysis_values
from installation.clock import MonotonicClock
from installation.ensemble import OscMusicIn, parse_host_port
from installation.errors import UserError
from installation.mailbox import Latest
from installation.records import MusicState
from tests.waiting import wait_for


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_follower_takes_the_music_state_from_the_analysis_streams():
    port = free_udp_port()
    states: Latest[MusicState] = Latest()
    music_in = OscMusicIn(f"127.0.0.1:{port}", MonotonicClock(), states.put)
    music_in.open()
    heard = MusicState(t_s=1.0, valence=0.4, arousal=-0.3, loudness_dbfs=-12.0, onset_strength=0.7, tempo_bpm=128.0,
                       beat_phase=0.25, beat_confidence=0.9, band_low=0.6, band_mid=0.3, band_high=0.1, silent=False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender.sendto(analysis_bundle(analysis_values(heard)), ("127.0.0.1", port))
        followed = states.take(timeout_s=10.0)
        assert followed is not None and music_in.states == 1
        assert followed.va == pytest.approx(heard.va)
        assert followed.tempo_bpm == pytest.approx(128.0) and followed.beat_phase == pytest.approx(0.25)
        assert followed.loudness_dbfs == pytest.approx(-12.0, abs=1e-4) and not followed.silent
        assert (followed.band_low, followed.band_mid, followed.band_high) == pytest.approx((0.6, 0.3, 0.1))
        sender.sendto(b"garbage", ("127.0.0.1", port))  # a stray packet does not end it
        sender.sendto(analysis_bundle(analysis_values(heard)), ("127.0.0.1", port))
        assert wait_for(lambda: music_in.states == 2)
    finally:
        sender.close()
        music_in.close()


def test_a_bad_or_taken_address_is_one_sentence():
    with pytest.raises(UserError, match="is not host:port"):
        parse_host_port("9301")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        music_in = OscMusicIn(f"127.0.0.1:{taken.getsockname()[1]}", MonotonicClock(), lambda m: None)
        with pytest.raises(UserError, match="cannot be opened"):
            music_in.open()
