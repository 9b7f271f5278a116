"""A show log -> one self-contained HTML page: VA over time, scenes, captions, plans, operator
commands, faults and thumbnails (plots as inline SVG, thumbnails as base64 JPEG).

`python run.py report DIR|LOG [-o FILE]`
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from installation.errors import UserError
from installation.showlog import read_show_log

MAX_THUMBNAILS = 120
MAX_ROWS = 2000


def find_log(path: Path) -> Path:
    """A log file as given, or the show log inside a recording folder."""
    path = Path(path)
    if path.is_dir():
        for name in ("show.jsonl",):
            if (path / name).is_file():
                return path / name
        logs = sorted(path.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
        if not logs:
            raise UserError(f"{path} holds no show log (show.jsonl); give the folder a run recorded into, or the .jsonl itself.")
        return logs[-1]
    if not path.is_file():
        raise UserError(f"{path} does not exist; give a show log (show.jsonl) or the folder holding it.")
    return path


def _va(record: dict, key: str) -> tuple[float, float] | None:
    value = record.get(key)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(x, (int, float)) for x in value):
        return float(value[0]), float(value[1])
    if isinstance(value, dict) and isinstance(value.get("valence"), (int, float)) and isinstance(value.get("arousal"), (int, float)):
        return float(value["valence"]), float(value["arousal"])
    return None


def _clock(t_s: float, t0_s: float) -> str:
    seconds = max(0, int(t_s - t0_s))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _va_plot_svg(records: list[dict], t0_s: float) -> str:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    status = [r for r in records if r.get("kind") == "status" and isinstance(r.get("t_s"), (int, float))]
    fig, axes = plt.subplots(2, 1, figsize=(11, 5.2), sharex=True, constrained_layout=True)
    hours = (max((r["t_s"] for r in records if isinstance(r.get("t_s"), (int, float))), default=t0_s) - t0_s) > 2 * 3600
    scale, unit = (3600.0, "hours") if hours else (60.0, "minutes")
    for key, label, colour in (("music_va", "music", "#1f6fb2"), ("image_va", "image", "#d2691e")):
        points = [(r["t_s"], va) for r in status if (va := _va(r, key)) is not None]
        if not points:
            continue
        xs = [(t - t0_s) / scale for t, _ in points]
        axes[0].plot(xs, [va[0] for _, va in points], color=colour, lw=1.2, label=label)
        axes[1].plot(xs, [va[1] for _, va in points], color=colour, lw=1.2, label=label)
    for record in records:
        if record.get("kind") == "scene" and isinstance(record.get("t_s"), (int, float)):
            for ax in axes:
                ax.axvline((record["t_s"] - t0_s) / scale, color="#888", lw=0.8, ls="--")
            axes[0].annotate(str(record.get("scene", "")), ((record["t_s"] - t0_s) / scale, 1.0), fontsize=8,
                             color="#555", xytext=(2, -10), textcoords="offset points")
    for ax, name in zip(axes, ("valence", "arousal")):
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel(name)
        ax.axhline(0, color="#ccc", lw=0.6)
        ax.grid(alpha=0.25)
    axes[0].legend(loc="lower right", fontsize=8)
    axes[1].set_xlabel(f"time since start ({unit})")
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.find("<svg"):]


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "<p class=none>none</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows[:MAX_ROWS])
    more = f"<p class=none>{len(rows) - MAX_ROWS} more rows not shown</p>" if len(rows) > MAX_ROWS else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _reasons(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "; ".join(map(str, value))
    return "" if value is None else str(value)


def build_report(log_path: Path) -> str:
    """The HTML page for one show log."""
    log_path = Path(log_path)
    records = [r for r in read_show_log(log_path) if isinstance(r.get("t_s"), (int, float))]
    if not records:
        raise UserError(f"{log_path} holds no records; was the show stopped before it started?")
    t0_s = records[0]["t_s"]
    t1_s = records[-1]["t_s"]
    kinds = Counter(r.get("kind", "?") for r in records)
    status = [r for r in records if r.get("kind") == "status"]
    fps = [r["fps"] for r in status if isinstance(r.get("fps"), (int, float))]
    last = status[-1] if status else {}
    summary = [
        ["started", records[0].get("time", "")], ["ended", records[-1].get("time", "")],
        ["duration", _clock(t1_s, t0_s)], ["records", len(records)],
        ["scene changes", kinds.get("scene", 0)], ["captions", kinds.get("caption", 0)],
        ["plans", kinds.get("plan", 0)], ["operator commands", kinds.get("command", 0)],
        ["faults", kinds.get("fault", 0)],
        ["frames per second (median)", f"{statistics.median(fps):.1f}" if fps else "n/a"],
        ["dropped frames (last)", last.get("drops", "n/a")], ["worker restarts (last)", last.get("restarts", "n/a")],
    ]
    captions = [[_clock(r["t_s"], t0_s), r.get("prompt", ""), _reasons(r.get("reasons"))]
                for r in records if r.get("kind") == "caption"]
    plans = [[_clock(r["t_s"], t0_s), r.get("abc", ""), _reasons(r.get("reasons"))]
             for r in records if r.get("kind") == "plan"]
    scenes = [[_clock(r["t_s"], t0_s), r.get("scene", ""), r.get("crossfade_s", ""), r.get("sender", "")]
              for r in records if r.get("kind") == "scene"]
    commands = [[_clock(r["t_s"], t0_s), r.get("address", ""), " ".join(map(str, r.get("args", []))),
                 r.get("sender", ""), "ok" if r.get("ok") else f"refused: {r.get('reason', '')}"]
                for r in records if r.get("kind") == "command"]
    faults = [[_clock(r["t_s"], t0_s), r.get("worker", ""), r.get("error", "")]
              for r in records if r.get("kind") == "fault"]
    known = {"status", "caption", "plan", "scene", "command", "fault", "thumbnail"}
    others = [[_clock(r["t_s"], t0_s), r.get("kind", "?"),
               ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("t_s", "time", "kind"))]
              for r in records if r.get("kind") not in known]

    thumbs = [r for r in records if r.get("kind") == "thumbnail" and isinstance(r.get("path"), str)]
    if len(thumbs) > MAX_THUMBNAILS:  # spread the ones we show evenly over the show
        step = len(thumbs) / MAX_THUMBNAILS
        thumbs = [thumbs[int(i * step)] for i in range(MAX_THUMBNAILS)]
    figures = []
    for record in thumbs:
        image = (log_path.parent / record["path"]).resolve()
        if not image.is_file():
            continue
        data = base64.b64encode(image.read_bytes()).decode("ascii")
        figures.append(f'<figure><img src="data:image/jpeg;base64,{data}" alt="frame">'
                       f"<figcaption>{_clock(record['t_s'], t0_s)}</figcaption></figure>")

    name = html.escape(str(records[0].get("name") or log_path.stem))
    generated = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chromesthesia show report: {name}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; padding: 0 1em; }}
h1 {{ font-size: 1.5em; }} h2 {{ font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ text-align: left; padding: 3px 8px; vertical-align: top; border-bottom: 1px solid #eee; }}
th {{ background: #f6f6f6; }} .none {{ color: #888; }}
.thumbs {{ display: flex; flex-wrap: wrap; gap: 8px; }} figure {{ margin: 0; }} figure img {{ width: 160px; display: block; }}
figcaption {{ font-size: 11px; color: #666; }} svg {{ width: 100%; height: auto; }}
</style></head><body>
<h1>Chromesthesia show report</h1>
<p>Show log <code>{html.escape(str(log_path))}</code>; report made {generated}.</p>
<h2>Summary</h2>{_table(["", ""], summary)}
<h2>Valence and arousal over time</h2>{_va_plot_svg(records, t0_s)}
<h2>Projected frames</h2><div class=thumbs>{"".join(figures) or "<p class=none>none recorded</p>"}</div>
<h2>Scenes</h2>{_table(["time", "scene", "cross-fade (s)", "sender"], scenes)}
<h2>Captions</h2>{_table(["time", "prompt", "reasons"], captions)}
<h2>Musical plans</h2>{_table(["time", "ABC", "reasons"], plans)}
<h2>Operator commands</h2>{_table(["time", "address", "arguments", "sender", "result"], commands)}
<h2>Faults</h2>{_table(["time", "worker", "error"], faults)}
<h2>Other events</h2>{_table(["time", "kind", "fields"], others)}
</body></html>
"""


def write_report(source: Path, output: Path | None = None) -> Path:
    log_path = find_log(Path(source))
    if output is None:
        output = log_path.with_suffix(".html")
    page = build_report(log_path)
    try:
        Path(output).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write the report to {output} ({exc.strerror}); choose another file with -o.") from None
    return Path(output)
