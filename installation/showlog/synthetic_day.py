"""A day of show log without a day of show (`bench report`, the report's tests): written from a model
of a day, or tiled from a real run's log."""
from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path

import numpy as np


def write_synthetic_day(folder: Path, day: _dt.date, hours: float = 24.0, status_s: float = 5.0,
                        gap: tuple[_dt.time, float] | None = (_dt.time(13, 0), 20 * 60.0),
                        thumbnail_width: int = 240, seed: int = 0,
                        open_hours: tuple[_dt.time, _dt.time] | None = None) -> Path:
    """A show log as ShowLog writes it, for `hours` from local midnight of `day`: status records
    (music, camera and projected VA that drift through the day), captions, plans, scene changes,
    thumbnails (dark at the start, like a fade-in), commands (some refused), faults late in the
    day, and a silence of `gap` (start time, seconds) as a power cut leaves it. With `open_hours`
    the rest of the day is closed: `schedule` records, the schedule's /blackout, black frames."""
    import cv2

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    thumbs = folder / "show.thumbs"
    thumbs.mkdir(exist_ok=True)
    path = folder / "show.jsonl"
    start = _dt.datetime.combine(day, _dt.time()).astimezone()
    gap_from = _dt.datetime.combine(day, gap[0]).astimezone() if gap else None
    gap_s = gap[1] if gap else 0.0
    lines = []

    def write(when: _dt.datetime, kind: str, **fields) -> None:
        record = {"t_s": round((when - start).total_seconds() + 3.0, 4),
                  "time": when.isoformat(timespec="milliseconds"), "kind": kind, **fields}
        lines.append(json.dumps(record, separators=(",", ":")))

    t_s, n = 0.0, 0
    scenes = ("nocturne", "pulse", "gallery")
    write(start, "start", name="Gallery 3", scene="nocturne")
    was_open: bool | None = None
    while t_s < hours * 3600:
        when = start + _dt.timedelta(seconds=t_s)
        is_open = open_hours is None or open_hours[0] <= when.time() < open_hours[1]
        if open_hours is not None and is_open != was_open:
            was_open = is_open
            write(when, "schedule", state="open" if is_open else "closed")
            write(when, "command", address="/blackout", args=[0 if is_open else 1], sender="schedule", ok=True)
        if gap_from is not None and gap_from <= when < gap_from + _dt.timedelta(seconds=gap_s):
            t_s = (gap_from - start).total_seconds() + gap_s
            write(start + _dt.timedelta(seconds=t_s), "start", name="Gallery 3", scene="nocturne")
            continue
        phase = 2 * math.pi * t_s / 86400
        music = [math.sin(phase) + rng.normal(0, 0.15), math.cos(phase * 3) * 0.8 + rng.normal(0, 0.15)]
        camera = [0.5 * math.cos(phase) + rng.normal(0, 0.05), 0.3 + rng.normal(0, 0.05)]
        projected = [0.6 * music[0] + rng.normal(0, 0.05), 0.6 * music[1] + rng.normal(0, 0.05)]
        if not is_open:
            projected = [-0.93, -0.9]  # what the VA model makes of a black frame
        write(when, "status", installation="Gallery 3", scene=scenes[(n // 2000) % 3],
              music_va=[round(float(np.clip(v, -1, 1)), 3) for v in music],
              image_va=[round(float(np.clip(v, -1, 1)), 3) for v in camera],
              projected_va=[round(float(np.clip(v, -1, 1)), 3) for v in projected],
              tempo_bpm=96.0, key="A minor", caption="a slow blue tide", reasons={"mood": "calm"},
              render="procedural", fps=29.8, notes_per_s=3.2,
              drops={"music": 0, "captions": 0, "frames": n // 500, "commands": 0}, failures=0, restarts=0,
              blackout=not is_open, freeze=False)
        if n % max(1, int(30 / status_s)) == 0:
            write(when, "caption", prompt=f"a slow blue tide, hour {int(t_s // 3600)}", reasons={"mood": "calm", "tempo": "slow"})
        if n % max(1, int(10 / status_s)) == 0:
            write(when, "plan", abc="X:1\nK:Am\nA2c2e2|", reasons=["image is calm"], start_s=t_s, end_s=t_s + 8)
        if n % max(1, int(60 / status_s)) == 0:
            level = 0 if t_s < 120 or not is_open else 60 + int(120 * (0.5 + 0.5 * math.sin(phase * 5)))
            image = np.full((thumbnail_width * 9 // 16, thumbnail_width, 3), level, np.uint8)
            image[:, : thumbnail_width // 3, 2] = min(255, level + 80)
            name = f"{when:%Y%m%d-%H%M%S-%f}.jpg"
            cv2.imwrite(str(thumbs / name), image)
            write(when, "thumbnail", path=f"show.thumbs/{name}")
        if n and n % 2000 == 0:
            write(when, "command", address="/scene", args=[scenes[(n // 2000) % 3]], sender="192.168.1.20:9000", ok=True)
            write(when, "scene", scene=scenes[(n // 2000) % 3], crossfade_s=3.0, sender="192.168.1.20:9000")
        if n and n % 3000 == 0:
            write(when, "command", address="/param/brightness", args=[3], sender="192.168.1.20:9000", ok=False,
                  reason="value 3 is out of range 0..1")
        if t_s >= hours * 3600 - 1800 and n % 60 == 0:
            write(when, "fault", worker="renderer", error="CUDA out of memory; stepped down to 384 px")
        t_s += status_s
        n += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tile_show_log(source: Path, folder: Path, day: _dt.date, hours: float = 24.0) -> Path:
    """A day of show log from local midnight of `day`, made by repeating the records of a real
    run's log (`source`) back to back, each copy shifted by the run's length; its thumbnails are
    copied beside it. The records are the run's own: the day is as big as that run, repeated."""
    import shutil

    from installation.showlog.writer import read_show_log

    records = [r for r in read_show_log(source) if isinstance(r.get("t_s"), (int, float))]
    if len(records) < 2:
        raise ValueError(f"{source} holds too few records to tile")
    first_s = float(records[0]["t_s"])
    span_s = max(1.0, float(records[-1]["t_s"]) - first_s)
    folder.mkdir(parents=True, exist_ok=True)
    thumbs = source.parent / f"{source.stem}.thumbs"
    if thumbs.is_dir():
        shutil.copytree(thumbs, folder / thumbs.name, dirs_exist_ok=True)
    start = _dt.datetime.combine(day, _dt.time()).astimezone()
    path = folder / "show.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for copy in range(math.ceil(hours * 3600 / span_s)):
            for record in records:
                offset_s = copy * span_s + float(record["t_s"]) - first_s
                if offset_s >= hours * 3600:
                    break
                when = start + _dt.timedelta(seconds=offset_s)
                shifted = {**record, "t_s": round(offset_s + 3.0, 4), "time": when.isoformat(timespec="milliseconds")}
                if shifted.get("kind") == "start" and copy:
                    continue  # one start for the day, as a day without restarts has
                out.write(json.dumps(shifted, separators=(",", ":")) + "\n")
    return path
