"""Records keep VA in [-1, 1] once built, so no consumer clamps again."""
import math

from installation.records import Caption, ImageState, MusicState, Plan


def test_records_clamp_valence_and_arousal_when_built():
    assert MusicState(0.0, valence=3.0, arousal=math.nan).va == (1.0, 0.0)
    assert MusicState(0.0, valence=0.2, valence_short=-7.0).valence_short == -1.0
    assert (Caption(0.0, "x", valence=-5.0, arousal=0.5).valence, Caption(0.0, "x", arousal=9.0).arousal) == (-1.0, 1.0)
    assert ImageState(0.0, valence=math.inf, arousal=-2.0).va == (0.0, -1.0)
    plan = Plan((), 0.0, 1.0, 120.0, "C", "major", "", (), valence=1.5, arousal=-1.5)
    assert (plan.valence, plan.arousal) == (1.0, -1.0)
