"""The learned composer (`compose.head = "learned"`): a small melody model conditioned on mood and content.

The Emotion-Guided Image-to-Music mechanism at this machine's scale: a GRU writes a four-bar
melody token by token (scale degree or rest, and duration in sixteenths), conditioned on the
target (valence, arousal), the metre, the mode class and a content vector: what the tune is about
(its imagery themes, models.composing.tune_imagery) in training, what the picture shows (the
content words of its description) when playing. Both texts are embedded with the sentence model the
corpus index uses and reduced to CONTENT_DIM numbers by a projection (the principal axes of the
tunes' imagery texts) saved with the weights; a tune without imagery has the zero vector, which
the model also sees for a fifth of the others, so zero means "content unknown". Training
(`python run.py train composer`, CPU, one thread) minimises the token cross-entropy on the corpus
phrases (models/data/corpus_table.json) plus a VA loss: the mean absolute error between the target VA and what a differentiable VA
predictor reads from the model's own output distributions. The predictor is trained first, on the
same phrases, to reproduce the rule-of-thumb VA of a melody (models.composing.index.tune_va: mode,
register, density, leaps, rising lines); it is frozen while the melody model learns, so the model
learns to write melodies whose features carry the asked-for mood.
Weights are the user's file (`compose.learned_weights`); nothing is downloaded. Weights written
before the content vector (version 1) still load and write melodies from VA, metre and mode alone.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from installation.errors import UserError
from models.composing.corpus import METRES, PHRASE_BARS, Phrase

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEGREES = tuple(range(-7, 15))  # scale degrees the model writes; index len(DEGREES) = rest
REST = len(DEGREES)
DURATIONS = (1, 2, 3, 4, 6, 8, 12, 16)
METRE_NAMES = tuple(METRES)
MAX_EVENTS = 40
BOS = REST + 1  # start token on the pitch stream
WEIGHTS_VERSION = 2
OLD_VERSIONS = (1,)
"""Versions that still load: 1 has no content vector (conditioned on VA, metre and mode only)."""
CONTENT_DIM = 16
CONTENT_DROP = 0.2
"""Share of training phrases whose content vector is zeroed, so zero reads as "content unknown"."""
STATIC = 2 + len(METRE_NAMES) + 1
"""The condition before the content vector: valence, arousal, metre one-hot, major."""


def phrase_features(events: Sequence[tuple[int | None, int]], mode_class: str, metre: str) -> dict[str, float]:
    degrees = [d for d, _ in events if d is not None]
    steps = [b - a for a, b in zip(degrees, degrees[1:])]
    moving = [s for s in steps if s]
    return {"major": float(mode_class == "major"), "mean_pitch": 66.0 + 1.7 * ((float(np.mean(degrees)) if degrees else 3) - 3),
            "notes_per_bar": len(degrees) / PHRASE_BARS, "pitch_range": float(np.ptp(degrees)) * 1.7 if degrees else 0.0,
            "mean_step": float(np.mean(np.abs(steps))) if steps else 0.0,
            "leaps": float(np.mean([abs(s) >= 3 for s in steps])) if steps else 0.0,
            "rising": float(np.mean([s > 0 for s in moving])) if moving else 0.5,
            "rise": float(degrees[-1] - degrees[0]) if degrees else 0.0}


def phrase_va(events, mode_class: str, metre: str) -> tuple[float, float]:
    from models.composing.index import tune_va
    return tune_va(phrase_features(events, mode_class, metre), metre)


def encode(events) -> tuple[list[int], list[int]] | None:
    pitches, durations = [], []
    for d, r in events:
        if r not in DURATIONS or (d is not None and d not in DEGREES):
            return None
        pitches.append(REST if d is None else DEGREES.index(d))
        durations.append(DURATIONS.index(r))
    return (pitches, durations) if 4 <= len(pitches) <= MAX_EVENTS else None


def _torch():
    import torch
    return torch


def _modules(hidden: int, content_dim: int = CONTENT_DIM):
    torch = _torch()
    nn = torch.nn
    module: Any = nn.Module  # torch is untyped here

    class MelodyModel(module):
        def __init__(self) -> None:
            super().__init__()
            self.pitch_in = nn.Embedding(BOS + 1, 32)
            self.dur_in = nn.Embedding(len(DURATIONS) + 1, 16)
            self.content_dim = content_dim
            self.cond = nn.Linear(STATIC + content_dim + 1, hidden)  # VA, metre, major, content, position share
            self.gru = nn.GRU(48 + hidden, hidden, batch_first=True)
            self.pitch_out = nn.Linear(hidden, REST + 1)
            self.dur_out = nn.Linear(hidden + REST + 1, len(DURATIONS))

        def forward(self, pitch_prev, dur_prev, cond, pitch_now, h=None):
            """Teacher-forced step(s): logits of the next pitch, then of its duration given the pitch."""
            c = torch.tanh(self.cond(cond))
            x = torch.cat([self.pitch_in(pitch_prev), self.dur_in(dur_prev), c], dim=-1)
            out, h = self.gru(x, h)
            pitch_logits = self.pitch_out(out)
            onehot = torch.nn.functional.one_hot(pitch_now, REST + 1).float()
            dur_logits = self.dur_out(torch.cat([out, onehot], dim=-1))
            return pitch_logits, dur_logits, out, h

    class VaPredictor(module):
        """Reads VA from soft (probability) sequences, so its gradient reaches the melody model."""

        def __init__(self) -> None:
            super().__init__()
            self.pitch = nn.Linear(REST + 1, 24)
            self.dur = nn.Linear(len(DURATIONS), 8)
            self.mlp = nn.Sequential(nn.Linear(2 * 32 + 1 + REST, 64), nn.Tanh(), nn.Linear(64, 2))

        def forward(self, pitch_p, dur_p, mask, major):
            x = torch.cat([self.pitch(pitch_p), self.dur(dur_p)], dim=-1) * mask[..., None]
            n = mask.sum(1, keepdim=True).clamp(min=1)
            mean = x.sum(1) / n
            var = ((x - mean[:, None]) ** 2 * mask[..., None]).sum(1) / n
            steps = (pitch_p[:, 1:, :REST] - pitch_p[:, :-1, :REST]).abs() * mask[:, 1:, None]
            return torch.tanh(self.mlp(torch.cat([mean, var, major[:, None], steps.sum(1) / n], dim=-1)))

    return MelodyModel(), VaPredictor()


@dataclass
class Batch:
    pitch: torch.Tensor
    dur: torch.Tensor
    mask: torch.Tensor
    cond_static: torch.Tensor
    va: torch.Tensor
    major: torch.Tensor


def tune_themes(source: str) -> tuple[str, ...]:
    """A corpus tune's imagery themes (keys of tune_imagery.IMAGERY) from its title and `R:` header."""
    from models.composing.tune_imagery import headers, themes_of
    heads = headers(source)
    return themes_of(heads.get("T", ""), heads.get("R", ""), source.split("/")[0])


def themes_text(themes: Sequence[str]) -> str:
    """The text a tune's content vector is made from: its themes in the descriptions' words ("" for none)."""
    from models.composing.tune_imagery import IMAGERY
    return ("A song of " + "; ".join(IMAGERY[t] for t in themes[:4]) + ".") if themes else ""


def content_text(description: str) -> str:
    """The content words of a picture's description (models.seeing.content.describe): what follows
    "picture of", the mood words before it being the VA the model is given apart."""
    _, found, seen = description.partition(" picture of ")
    return seen.strip() if found else description.strip()


@dataclass(frozen=True)
class ContentProjection:
    """Sentence embedding (384) -> content vector: (embedding - mean) @ axes, the principal axes of
    the training tunes' imagery texts, scaled so the vectors' entries have unit spread."""

    mean: np.ndarray
    axes: np.ndarray

    @classmethod
    def fit(cls, embeddings: np.ndarray, dim: int) -> "ContentProjection":
        mean = embeddings.mean(0)
        _, _, vt = np.linalg.svd(embeddings - mean, full_matrices=False)
        axes = vt[:dim].T
        if axes.shape[1] < dim:  # fewer distinct texts than dimensions: pad with silent axes
            axes = np.pad(axes, ((0, 0), (0, dim - axes.shape[1])))
        spread = float(((embeddings - mean) @ axes).std()) or 1.0
        return cls(mean.astype(np.float32), (axes / spread).astype(np.float32))

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        return ((np.asarray(embeddings, dtype=np.float32) - self.mean) @ self.axes).astype(np.float32)


def _embed(encoder, texts: Sequence[str]) -> np.ndarray:
    if encoder is None:
        from models.composing.index import TextEncoder
        encoder = TextEncoder()
    return np.asarray(encoder.encode(list(texts)), dtype=np.float32)


def _dataset(table, encoder=None, dim: int = CONTENT_DIM) -> tuple[list[tuple], ContentProjection]:
    """(rows of (pitches, durations, mode class, metre, VA, content vector, themes), the projection)."""
    themes = {src: tune_themes(src) for src in {ph.source for phrases in table.phrases.values() for ph in phrases}}
    texts = sorted({themes_text(t) for t in themes.values()} - {""})
    if not texts:
        raise UserError("no corpus tune has imagery to learn content from (music21's corpus files are missing?); "
                        "reinstall music21 and rebuild the table with `python run.py train corpus`.")
    embedded = _embed(encoder, texts)
    projection = ContentProjection.fit(embedded, dim)
    vectors = dict(zip(texts, projection(embedded)))
    zero = np.zeros(dim, dtype=np.float32)
    rows = []
    for phrases in table.phrases.values():
        for ph in phrases:
            enc = encode(ph.events)
            if enc is not None:
                own = themes.get(ph.source, ())
                rows.append((enc[0], enc[1], ph.mode_class, ph.metre, phrase_va(ph.events, ph.mode_class, ph.metre),
                             vectors.get(themes_text(own), zero), own))
    return rows, projection


def _batch(rows, va_override=None, content_override=None) -> Batch:
    torch = _torch()
    n, t = len(rows), max(len(r[0]) for r in rows)
    dim = len(rows[0][5])
    pitch = torch.full((n, t), REST, dtype=torch.long)
    dur = torch.zeros((n, t), dtype=torch.long)
    mask = torch.zeros((n, t))
    cond = torch.zeros((n, STATIC + dim))
    for i, (p, d, mode_class, metre, va, content, _) in enumerate(rows):
        pitch[i, :len(p)] = torch.tensor(p)
        dur[i, :len(d)] = torch.tensor(d)
        mask[i, :len(p)] = 1
        v, a = va if va_override is None else va_override[i]
        cond[i, 0], cond[i, 1] = v, a
        cond[i, 2 + METRE_NAMES.index(metre)] = 1
        cond[i, STATIC - 1] = float(mode_class == "major")
        cond[i, STATIC:] = torch.from_numpy(np.asarray(content if content_override is None else content_override[i]))
    return Batch(pitch, dur, mask, cond, cond[:, :2].clone(), cond[:, STATIC - 1].clone())


def _step_inputs(b: Batch, durations_t):
    """Previous tokens (shifted right, BOS first) and the per-step condition with the position share."""
    torch = _torch()
    n, t = b.pitch.shape
    pitch_prev = torch.cat([torch.full((n, 1), BOS, dtype=torch.long), b.pitch[:, :-1]], dim=1)
    dur_prev = torch.cat([torch.full((n, 1), len(DURATIONS), dtype=torch.long), b.dur[:, :-1]], dim=1)
    lengths = durations_t[b.dur] * b.mask
    elapsed = torch.cumsum(lengths, dim=1) - lengths
    bar_total = torch.tensor([[METRES[m] * PHRASE_BARS] for m in (METRE_NAMES[int(i)] for i in
                                                                  b.cond_static[:, 2:2 + len(METRE_NAMES)].argmax(1))],
                             dtype=torch.float32)
    position = (elapsed / bar_total)[..., None]
    cond = torch.cat([b.cond_static[:, None, :].expand(n, t, -1), position], dim=-1)
    return pitch_prev, dur_prev, cond


def train(table, out: Path, minutes: float = 10.0, max_epochs: int = 200, hidden: int = 96, va_weight: float = 1.0,
          seed: int = 0, progress: Callable[[str], None] | None = None, eval_n: int = 48,
          max_phrases: int | None = None, encoder=None, content_per_theme: int = 24) -> dict:
    """Train the predictor, then the melody model; save to `out`; return the figures (`content`:
    evaluate_content's). `encoder` embeds texts (models.composing.index.TextEncoder by default)."""
    torch = _torch()
    say = progress or log.info
    torch.manual_seed(seed)
    rng = random.Random(seed)
    rows, projection = _dataset(table, encoder)
    if len(rows) < 20:
        raise UserError("the corpus table has too few phrases to learn from; rebuild it with `python run.py train corpus`.")
    rng.shuffle(rows)
    rows = rows[:max_phrases] if max_phrases else rows
    held = rows[: max(8, len(rows) // 10)]
    rows = rows[len(held):]
    model, predictor = _modules(hidden)
    durations_t = torch.tensor(DURATIONS, dtype=torch.float32)
    started = time.monotonic()
    budget_s = minutes * 60.0

    # 1) the VA predictor, on one-hot sequences with their rule-of-thumb VA
    epochs_p, predictor_mae = _train_predictor(predictor, rows, held, rng, started + 0.25 * budget_s, max_epochs)
    say(f"VA predictor: {epochs_p} epochs, held-out MAE {predictor_mae:.3f}")
    for p in predictor.parameters():
        p.requires_grad_(False)

    # 2) the melody model: token loss + VA loss through the frozen predictor
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    epochs = 0
    history = []
    while epochs < 1 or (time.monotonic() - started < budget_s and epochs < max_epochs):
        history.append(_melody_epoch(model, predictor, opt, rows, rng, durations_t, va_weight))
        epochs += 1
        if epochs % 5 == 1:
            say(f"epoch {epochs}: token loss {history[-1][0]:.3f}, VA loss {history[-1][1]:.3f}, "
                f"{time.monotonic() - started:.0f} s")
    state = {"version": WEIGHTS_VERSION, "hidden": hidden, "model": model.state_dict(),
             "predictor": predictor.state_dict(), "epochs": epochs, "predictor_mae": predictor_mae,
             "content_dim": CONTENT_DIM, "content_mean": torch.from_numpy(projection.mean),
             "content_axes": torch.from_numpy(projection.axes)}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, str(out))
    figures: dict[str, Any] = {"phrases": len(rows), "held_out": len(held), "with_imagery": sum(bool(r[6]) for r in rows),
               "epochs": epochs, "predictor_epochs": epochs_p,
               "predictor_mae": predictor_mae, "token_loss": history[-1][0] if history else None,
               "va_loss": history[-1][1] if history else None, "seconds": time.monotonic() - started}
    melody = LearnedMelody(out, seed=seed, encoder=encoder)
    figures.update(evaluate(melody, n=eval_n, seed=seed))
    figures["content"] = evaluate_content(melody, table, per_theme=content_per_theme, seed=seed)
    return figures


def _train_predictor(predictor, rows, held, rng: random.Random, until: float, max_epochs: int) -> tuple[int, float]:
    """Trains the VA predictor at least three epochs, then until the monotonic time `until`;
    (epochs, held-out mean absolute error)."""
    torch = _torch()
    opt = torch.optim.Adam(predictor.parameters(), lr=3e-3)
    epochs = 0
    while epochs < min(3, max_epochs) or (time.monotonic() < until and epochs < max_epochs):
        rng.shuffle(rows)
        for i in range(0, len(rows), 64):
            b = _batch(rows[i:i + 64])
            est = predictor(torch.nn.functional.one_hot(b.pitch, REST + 1).float(),
                            torch.nn.functional.one_hot(b.dur, len(DURATIONS)).float(), b.mask, b.major)
            loss = (est - b.va).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        epochs += 1
    with torch.no_grad():
        b = _batch(held)
        est = predictor(torch.nn.functional.one_hot(b.pitch, REST + 1).float(),
                        torch.nn.functional.one_hot(b.dur, len(DURATIONS)).float(), b.mask, b.major)
        return epochs, float((est - b.va).abs().mean())


def _melody_epoch(model, predictor, opt, rows, rng: random.Random, durations_t,
                  va_weight: float) -> tuple[float, float]:
    """One epoch of the melody model; its mean (token loss, VA loss)."""
    torch = _torch()
    rng.shuffle(rows)
    total = [0.0, 0.0, 0]
    for i in range(0, len(rows), 32):
        chunk = rows[i:i + 32]
        # Half the batch asks for a different mood than the phrase has: only the VA loss speaks there.
        asked = [r[4] if rng.random() < 0.5 else (rng.uniform(-1, 1), rng.uniform(-1, 1)) for r in chunk]
        content = [r[5] * 0.0 if rng.random() < CONTENT_DROP else r[5] for r in chunk]
        b = _batch(chunk, asked, content)
        own = torch.tensor([[float(asked[k] == chunk[k][4])] for k in range(len(chunk))])
        pitch_prev, dur_prev, cond = _step_inputs(b, durations_t)
        pl, dl, _, _ = model(pitch_prev, dur_prev, cond, b.pitch)
        ce_p = torch.nn.functional.cross_entropy(pl.transpose(1, 2), b.pitch, reduction="none")
        ce_d = torch.nn.functional.cross_entropy(dl.transpose(1, 2), b.dur, reduction="none")
        token = (((ce_p + ce_d) * b.mask).sum(1) / b.mask.sum(1) * own[:, 0]).sum() / own.sum().clamp(min=1)
        est = predictor(torch.softmax(pl, -1), torch.softmax(dl, -1), b.mask, b.major)
        va_loss = (est - b.va).abs().mean()
        loss = token + va_weight * va_loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        total[0] += float(token.detach()) * len(chunk)
        total[1] += float(va_loss.detach()) * len(chunk)
        total[2] += len(chunk)
    return total[0] / total[2], total[1] / total[2]


def evaluate(melody: "LearnedMelody", n: int = 48, seed: int = 0) -> dict:
    """How well the written melodies carry the asked-for mood: MAE between the target VA and the
    rule-of-thumb VA of what was written, against the same melodies scored on shuffled targets."""
    rng = random.Random(seed)
    targets = [(rng.uniform(-0.9, 0.9), rng.uniform(-0.9, 0.9)) for _ in range(n)]
    written = []
    for i, (v, a) in enumerate(targets):
        metre = METRE_NAMES[i % len(METRE_NAMES)]
        mode_class = "major" if v > 0 else "minor"
        events = melody.write(mode_class, metre, (v, a))
        written.append(phrase_va(events, mode_class, metre))
    got = np.array(written)
    want = np.array(targets)
    shuffled = want[np.random.default_rng(seed).permutation(n)]
    from models.stats import rank_correlation as spearman
    return {"va_mae": float(np.abs(got - want).mean()), "va_mae_shuffled": float(np.abs(got - shuffled).mean()),
            "arousal_spearman": spearman(want[:, 1], got[:, 1]), "valence_spearman": spearman(want[:, 0], got[:, 0])}


CONTENT_THEMES = ("sea", "forest", "dance", "night", "field", "mountain", "love", "death")
"""Themes the content check asks for: corpus themes with enough tunes and clearly different imagery."""
FEATURE_KEYS = ("major", "mean_pitch", "notes_per_bar", "pitch_range", "mean_step", "leaps", "rising", "rise")


def evaluate_content(melody: "LearnedMelody", table, themes: Sequence[str] = CONTENT_THEMES, per_theme: int = 24,
                     k: int = 15, seed: int = 0) -> dict:
    """Does the content vector steer the melody towards tunes of that theme? For each theme, melodies
    are written from the theme's imagery text on one shared list of (VA, metre, mode) targets and
    seeds; each is compared (standardised phrase features) with the corpus phrases of its metre and
    mode class. Figures: `share_asked` / `share_other` = share of a theme's phrases among the k nearest
    corpus phrases of melodies asked for that theme / for the other themes (`share_corpus`: the
    theme's share of the corpus); `centroid_hits` = share of melodies whose nearest theme centroid is
    the theme asked (chance 1 / len(themes); `centroid_hits_corpus`: the corpus phrases' own score);
    `changed` = share of melodies that differ from the same seed's melody without content."""
    if melody.projection is None:
        raise UserError(f"learned composer weights {melody.name} have no content vector; train them again with "
                        f"`python run.py train composer`.")
    corpus = [(ph, tune_themes(ph.source)) for phrases in table.phrases.values() for ph in phrases
              if encode(ph.events) is not None]
    feats = np.array([[phrase_features(ph.events, ph.mode_class, ph.metre)[f] for f in FEATURE_KEYS]
                      for ph, _ in corpus])
    mu, sd = feats.mean(0), feats.std(0) + 1e-6
    z = (feats - mu) / sd
    has = {t: np.array([t in th for _, th in corpus]) for t in themes}
    centroids = np.stack([z[has[t]].mean(0) if has[t].any() else np.full(len(FEATURE_KEYS), np.inf) for t in themes])
    rng = random.Random(seed)
    targets = []
    for i in range(per_theme):
        v, a = rng.uniform(-0.9, 0.9), rng.uniform(-0.9, 0.9)
        targets.append((v, a, METRE_NAMES[i % len(METRE_NAMES)], "major" if v > 0 else "minor"))

    def written(content):
        out = []
        for i, (v, a, metre, mode_class) in enumerate(targets):
            melody.generator.manual_seed(seed + i)
            out.append((melody.write(mode_class, metre, (v, a), content), metre, mode_class))
        return out
    plain = written(None)
    # theme -> [its shares when asked for it, its shares when asked for another]
    shares: dict[str, list[list[float]]] = {t: [[], []] for t in themes}
    hits, changed = 0, 0
    for ti, asked in enumerate(themes):
        content = melody.text_content(themes_text((asked,)))
        for (events, metre, mode_class), (bare, _, _) in zip(written(content), plain):
            changed += events != bare
            f = (np.array([phrase_features(events, mode_class, metre)[f] for f in FEATURE_KEYS]) - mu) / sd
            pool = np.flatnonzero([ph.metre == metre and ph.mode_class == mode_class for ph, _ in corpus])
            near = pool[np.argsort(np.linalg.norm(z[pool] - f, axis=1))[:k]]
            for t in themes:
                shares[t][0 if t == asked else 1].append(float(has[t][near].mean()))
            hits += int(np.argmin(np.linalg.norm(centroids - f, axis=1)) == ti)
    total = len(themes) * per_theme
    tagged = [i for i in range(len(corpus)) if any(has[t][i] for t in themes)]
    own_hits = [has[themes[int(np.argmin(np.linalg.norm(centroids - z[i], axis=1)))]][i] for i in tagged]
    return {"themes": {t: {"share_asked": float(np.mean(shares[t][0])), "share_other": float(np.mean(shares[t][1])),
                           "share_corpus": float(has[t].mean()), "tunes_phrases": int(has[t].sum())} for t in themes},
            "share_asked": float(np.mean([np.mean(shares[t][0]) for t in themes])),
            "share_other": float(np.mean([np.mean(shares[t][1]) for t in themes])),
            "centroid_hits": hits / total, "centroid_chance": 1 / len(themes),
            "centroid_hits_corpus": float(np.mean(own_hits)) if own_hits else 0.0,
            "changed": changed / total, "melodies": total}


def describe_weights(path: str | Path) -> str:
    """What `run.py check` says of the learned composer's weights; UserError when they do not load."""
    melody = LearnedMelody(path)
    if melody.projection is None:
        return (f"weights {path} are the old format without a content vector: melodies follow VA, metre and mode "
                f"only; train them again with `python run.py train composer --out {path}` to condition them on the "
                f"picture's content")
    return f"weights {path} conditioned on VA, metre, mode and the picture's content ({melody.content_dim} numbers)"


class LearnedMelody:
    """The trained model as a Composer.melody_source. Owned by the composer thread.
    `encoder` embeds the picture's words (models.composing.index.TextEncoder by default); with
    `wait_for_words` False (live) a phrase never waits for the sentence model to load: it is written
    without content until then."""

    def __init__(self, path: str | Path, seed: int = 0, temperature: float = 0.9, encoder=None,
                 wait_for_words: bool = True) -> None:
        torch = _torch()
        p = Path(path).expanduser()
        if not str(path) or not p.is_file():
            raise UserError(f"learned composer weights '{path}' (compose.learned_weights) do not exist; train them "
                            f"with `python run.py train composer` or set compose.head = \"corpus\".")
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
            if state.get("version") != WEIGHTS_VERSION and state.get("version") not in OLD_VERSIONS:
                raise ValueError(f"version {state.get('version')}")
            self.content_dim = int(state.get("content_dim", 0))
            self.model, _ = _modules(int(state["hidden"]), self.content_dim)
            self.model.load_state_dict(state["model"])
            self.projection = (ContentProjection(state["content_mean"].numpy(), state["content_axes"].numpy())
                               if self.content_dim else None)
        except Exception as exc:
            raise UserError(f"learned composer weights {p} do not load ({type(exc).__name__}: {str(exc)[:100]}); "
                            f"train them again with `python run.py train composer`.") from None
        self.model.eval()
        self.name = p.name
        self.temperature = temperature
        self.generator = torch.Generator().manual_seed(int(seed))
        self.encoder = encoder
        self.wait_for_words = wait_for_words

    def text_content(self, text: str) -> np.ndarray | None:
        """The content vector of a text (None for weights without one, or an empty text)."""
        if self.projection is None or not text:
            return None
        if self.encoder is None:
            from models.composing.index import TextEncoder
            self.encoder = TextEncoder()
        return self.projection(self.encoder.encode([text]))[0]

    def picture_content(self, description: str) -> tuple[np.ndarray | None, str]:
        """The content vector of a picture's description, and what the melody was conditioned on, in words."""
        if self.projection is None:
            return None, ("conditioned on VA, metre and mode only (weights without a content vector: train them "
                          "again to follow the picture's content)")
        words = content_text(description)
        if not words:
            return None, "conditioned on VA, metre and mode (no picture words, so no content)"
        if not self.wait_for_words:
            from models.composing.index import TextEncoder
            if self.encoder is None:
                self.encoder = TextEncoder()
            if isinstance(self.encoder, TextEncoder) and not self.encoder.ready():
                self.encoder.warm_up()
                return None, "conditioned on VA, metre and mode (no content while the sentence model loads)"
        return self.text_content(words), f"conditioned on VA, metre, mode and the picture's content \"{words}\""

    def write(self, mode_class: str, metre: str, va: tuple[float, float],
              content: np.ndarray | None = None) -> tuple[tuple[int | None, int], ...]:
        """Four bars of (degree or None, sixteenths), sampled token by token; durations that would run
        past the phrase are masked out, so the phrase always fills exactly four bars. `content`: the
        content vector (None = unknown, the zero vector)."""
        torch = _torch()
        want = METRES[metre] * PHRASE_BARS
        cond_static = torch.zeros(STATIC + self.content_dim)
        cond_static[0], cond_static[1] = float(va[0]), float(va[1])
        cond_static[2 + METRE_NAMES.index(metre)] = 1
        cond_static[STATIC - 1] = float(mode_class == "major")
        if content is not None and self.content_dim:
            cond_static[STATIC:] = torch.from_numpy(np.asarray(content, dtype=np.float32))
        events: list[tuple[int | None, int]] = []
        pitch_prev, dur_prev, h, at = BOS, len(DURATIONS), None, 0
        with torch.inference_mode():
            while at < want and len(events) < MAX_EVENTS:
                cond = torch.cat([cond_static, torch.tensor([at / want])])[None, None]
                x_p, x_d = torch.tensor([[pitch_prev]]), torch.tensor([[dur_prev]])
                c = torch.tanh(self.model.cond(cond))
                out, h_next = self.model.gru(torch.cat([self.model.pitch_in(x_p), self.model.dur_in(x_d), c], -1), h)
                logits = self.model.pitch_out(out)[0, 0] / self.temperature
                if not events:
                    logits[REST] = -1e9  # a phrase starts on a note
                pitch = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=self.generator))
                onehot = torch.nn.functional.one_hot(torch.tensor([[pitch]]), REST + 1).float()
                dl = self.model.dur_out(torch.cat([out, onehot], -1))[0, 0] / self.temperature
                fits = torch.tensor([at + d <= want for d in DURATIONS])
                dl = torch.where(fits, dl, torch.full_like(dl, -1e9))
                dur = int(torch.multinomial(torch.softmax(dl, -1), 1, generator=self.generator))
                events.append((None if pitch == REST else DEGREES[pitch], DURATIONS[dur]))
                at += DURATIONS[dur]
                pitch_prev, dur_prev, h = pitch, dur, h_next
        if at < want:
            events.append((None, want - at))
        return tuple(events)

    def __call__(self, source: Phrase, mode_class: str, metre: str, va: tuple[float, float], words: str = ""):
        content, conditioned = self.picture_content(words)
        events = self.write(mode_class, metre, va, content)
        got = phrase_va(events, mode_class, metre)
        return (Phrase(f"learned:{self.name}", mode_class, metre, events),
                f"melody written by the learned composer {self.name} for V{va[0]:+.2f} A{va[1]:+.2f} "
                f"({len([e for e in events if e[0] is not None])} notes; its features read V{got[0]:+.2f} "
                f"A{got[1]:+.2f}); {conditioned}; the retrieved tune {source.source} was not used")
