"""One class per stage of the show. Each takes its inputs (mailboxes, models, devices), its
outputs (mailboxes, schedulers) and the clock in `__init__`, does one unit of work in `step()`,
and keeps its state in attributes. None holds a reference back to the installation: the
composition root (installation.app) builds them and a supervised Worker calls `step()` in a loop.

Tests drive a stage with installation.clock.ManualClock and call `step()` by hand.
"""
from installation.stages.base import Stage
from installation.stages.camera import CameraStage
from installation.stages.captioner import CaptionerStage
from installation.stages.composer import ComposerStage
from installation.stages.listener import ListenerStage
from installation.stages.onsets import OnsetStage
from installation.stages.renderer import RendererStage
from installation.stages.watcher import WatcherStage

__all__ = ["Stage", "CameraStage", "CaptionerStage", "ComposerStage", "ListenerStage", "OnsetStage", "RendererStage",
           "WatcherStage"]
