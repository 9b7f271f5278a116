"""Rolling musical descriptors over a live window, updated incrementally.

`FeatureTracker.push()` takes mono float32 at any rate, resamples once to ANALYSIS_RATE_HZ and
computes one spectral frame per ANALYSIS_HOP samples (23 ms): level, K-weighted power, spectral
flux, centroid, band energies, chroma and a small log-mel spectrum. Only new frames are computed,
so the cost per second of audio is constant however often `snapshot()` is asked for.
`snapshot()` summarises the frame history: tempo and beat phase from the autocorrelation of the
onset envelope (so they follow tempo changes within one window), key and mode from
Krumhansl-Kessler profiles, harmonic/percussive balance by median filtering, novelty as the
distance between the last seconds and the seconds before them.

Called from the listener thread only; not thread-safe.
"""
from __future__ import annotations

import math

import numpy as np

# Descriptors live on the ground floor (installation.records): MusicState carries them.
from installation.records import Descriptors

# Triad templates (root, third, fifth) and interval-class weights for dissonance: seconds and the
# tritone rough, thirds/sixths and fourths/fifths smooth (after Huron 1994's consonance ranking).
_MAJOR_TRIAD = np.zeros(12)
_MAJOR_TRIAD[[0, 4, 7]] = 1.0
_MINOR_TRIAD = np.zeros(12)
_MINOR_TRIAD[[0, 3, 7]] = 1.0
_TRIADS = np.stack([np.roll(_MAJOR_TRIAD, k) for k in range(12)] + [np.roll(_MINOR_TRIAD, k) for k in range(12)])
_IC_ROUGH = {1: 1.0, 2: 0.5, 6: 0.7}
_IC_SMOOTH = {3: 0.6, 4: 0.7, 5: 1.0}
CHORD_SEGMENT_S = 0.5

ANALYSIS_RATE_HZ = 22050
N_FFT = 2048
ANALYSIS_HOP = 512
FRAME_RATE_HZ = ANALYSIS_RATE_HZ / ANALYSIS_HOP
N_MELS = 48
PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Krumhansl & Kessler (1982) probe-tone profiles.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MIN_BPM, MAX_BPM = 50.0, 200.0
FLUX_FLOOR_DB = -25.0
"""Floor of the flux spectrum's mel bands relative to the recent mean power."""
RECENT_S = 1.5
"""Span of the fast descriptors (loudness, brightness, onset density) that arousal reacts to."""


def ramp(x: float, lo: float, hi: float) -> float:
    """Linear map of [lo, hi] to [-1, 1], clipped: how the VA heads turn a descriptor into a cue."""
    return float(np.clip(2.0 * (x - lo) / (hi - lo) - 1.0, -1.0, 1.0))


def tempo_cue(d: Descriptors) -> float:
    """Tempo as a cue in [-1, 1] (60..160 BPM), trusted by beat confidence; -0.3 when no beat is heard."""
    return ramp(d.tempo_bpm, 60.0, 160.0) * min(1.0, d.beat_confidence * 2.0) if d.tempo_bpm else -0.3


def sanitize(samples: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Mono float32 with NaN/inf zeroed and clipped to [-1, 1]; returns (samples, bad, clipped)."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    finite = np.isfinite(x)
    bad = int(x.size - np.count_nonzero(finite))
    if bad:
        x = np.where(finite, x, np.float32(0.0))
    over = np.abs(x) >= 1.0
    clipped = int(np.count_nonzero(over))
    if clipped:
        x = np.clip(x, -1.0, 1.0)
    return x, bad, clipped


def _k_weighting_power(freqs_hz: np.ndarray, rate_hz: float) -> np.ndarray:
    """|H|^2 of the ITU-R BS.1770 K-weighting (high shelf + high pass) at the given bin frequencies."""
    from scipy.signal import freqz

    def shelf():
        g_db, f0, q = 4.0, 1681.97, 0.7072
        a = 10 ** (g_db / 40)
        w0 = 2 * math.pi * f0 / rate_hz
        alpha = math.sin(w0) / (2 * q)
        c = math.cos(w0)
        b = [a * ((a + 1) + (a - 1) * c + 2 * math.sqrt(a) * alpha), -2 * a * ((a - 1) + (a + 1) * c),
             a * ((a + 1) + (a - 1) * c - 2 * math.sqrt(a) * alpha)]
        den = [(a + 1) - (a - 1) * c + 2 * math.sqrt(a) * alpha, 2 * ((a - 1) - (a + 1) * c),
               (a + 1) - (a - 1) * c - 2 * math.sqrt(a) * alpha]
        return b, den

    def highpass():
        f0, q = 38.13, 0.5003
        w0 = 2 * math.pi * f0 / rate_hz
        alpha = math.sin(w0) / (2 * q)
        c = math.cos(w0)
        return [(1 + c) / 2, -(1 + c), (1 + c) / 2], [1 + alpha, -2 * c, 1 - alpha]

    power = np.ones_like(freqs_hz)
    for b, a in (shelf(), highpass()):
        _, h = freqz(b, a, worN=freqs_hz, fs=rate_hz)
        power = power * np.abs(h) ** 2
    return power


class FeatureTracker:
    """Incremental descriptors over the last `window_s` seconds of one mono stream."""

    def __init__(self, sample_rate_hz: int, window_s: float = 6.0, silence_dbfs: float = -55.0) -> None:
        import librosa
        import soxr

        if sample_rate_hz < 1000:
            raise ValueError(f"sample rate {sample_rate_hz} Hz is too low for analysis")
        self.sample_rate_hz = int(sample_rate_hz)
        self.window_s = float(window_s)
        self.silence_dbfs = float(silence_dbfs)
        self._resampler = (None if self.sample_rate_hz == ANALYSIS_RATE_HZ else
                           soxr.ResampleStream(self.sample_rate_hz, ANALYSIS_RATE_HZ, 1, dtype="float32",
                                               quality="LQ"))
        self._window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        freqs = np.fft.rfftfreq(N_FFT, 1.0 / ANALYSIS_RATE_HZ)
        self._freqs = freqs
        self._kweight = _k_weighting_power(freqs, ANALYSIS_RATE_HZ).astype(np.float32)
        # librosa's stub imports its submodules without re-exporting them, hence the ignores
        self._mel = librosa.filters.mel(  # type: ignore[attr-defined]
            sr=ANALYSIS_RATE_HZ, n_fft=N_FFT, n_mels=N_MELS, fmin=30.0, fmax=8000.0, norm=None).astype(np.float32)
        self._mel_centres = librosa.mel_frequencies(n_mels=N_MELS + 2, fmin=30.0, fmax=8000.0)[1:-1]
        chroma_mask = (freqs >= 60.0) & (freqs <= 5000.0)
        self._chroma = (librosa.filters.chroma(  # type: ignore[attr-defined]
            sr=ANALYSIS_RATE_HZ, n_fft=N_FFT, tuning=0.0, norm=None, base_c=True) * chroma_mask).astype(np.float32)
        self._band_masks = ((freqs < 250.0), (freqs >= 250.0) & (freqs < 4000.0), freqs >= 4000.0)
        self._win_norm = float(np.sum(self._window ** 2))
        # History of per-frame values, newest last, capped at the window.
        self._cap = max(16, int(round(self.window_s * FRAME_RATE_HZ)))
        self._n = 0
        self._ms = np.zeros(self._cap, np.float64)        # mean square (dBFS)
        self._kms = np.zeros(self._cap, np.float64)       # K-weighted mean square (LUFS)
        self._flux = np.zeros(self._cap, np.float64)
        self._centroid = np.zeros(self._cap, np.float64)
        self._bands = np.zeros((self._cap, 3), np.float64)
        self._chroma_hist = np.zeros((self._cap, 12), np.float64)
        self._mel_hist = np.zeros((self._cap, N_MELS), np.float32)
        self._prev_logmel = np.zeros(N_MELS, np.float32)
        self._flux_ref = 0.0
        self._novelty_hist: list[float] = []
        self._last_change_frame = -10**9
        self._tempo_bpm = 0.0
        self.frames_total = 0
        self.bad_samples = 0
        self.clipped_samples = 0

    # --- input --------------------------------------------------------------------------------
    def push(self, samples: np.ndarray) -> None:
        """Append mono samples at `sample_rate_hz`; NaN/inf and clipped samples are counted."""
        x, bad, clipped = sanitize(samples)
        self.bad_samples += bad
        self.clipped_samples += clipped
        if x.size == 0:
            return
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x)
        self._pending = np.concatenate([self._pending, x]) if self._pending.size else x.astype(np.float32)
        n_new = (self._pending.size - N_FFT) // ANALYSIS_HOP + 1 if self._pending.size >= N_FFT else 0
        if n_new <= 0:
            return
        idx = np.arange(N_FFT)[None, :] + ANALYSIS_HOP * np.arange(n_new)[:, None]
        frames = self._pending[idx] * self._window
        self._pending = self._pending[n_new * ANALYSIS_HOP:].copy()
        self._add_frames(frames)

    def _add_frames(self, frames: np.ndarray) -> None:
        spec = np.fft.rfft(frames, axis=1)
        power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32) / (self._win_norm * N_FFT / 2)
        total = power.sum(axis=1) + 1e-20
        ms = total  # Parseval: the scaled half-spectrum sums to the frame's mean square
        kms = (power * self._kweight).sum(axis=1)
        centroid = (power * self._freqs).sum(axis=1) / total
        bands = np.stack([power[:, m].sum(axis=1) for m in self._band_masks], axis=1) / total[:, None]
        chroma = power @ self._chroma.T
        melpower = power @ self._mel.T
        logmel = np.log1p(1e4 * melpower).astype(np.float32)
        # Flux on a log scale whose floor follows the level (FLUX_FLOOR_DB under the last second's
        # mean power): a soft instrument's onsets count as much as a loud one's (a fixed floor
        # flattens them to zero), and a quiet recording's noise floor does not turn into onsets.
        level = float(ms.mean())
        if self._flux_ref <= 0.0:
            self._flux_ref = level
        else:
            self._flux_ref += (1.0 - math.exp(-len(frames) / FRAME_RATE_HZ)) * (level - self._flux_ref)
        floor = max(self._flux_ref * 10 ** (FLUX_FLOOR_DB / 10), 1e-11)
        fluxmel = np.log1p(melpower / floor).astype(np.float32)
        prev = np.vstack([self._prev_logmel[None, :], fluxmel[:-1]])
        flux = np.maximum(fluxmel - prev, 0.0).mean(axis=1)
        self._prev_logmel = fluxmel[-1].copy()
        for name, values in (("_ms", ms), ("_kms", kms), ("_flux", flux), ("_centroid", centroid),
                             ("_bands", bands), ("_chroma_hist", chroma), ("_mel_hist", logmel)):
            self._append(name, values)
        self._n = min(self._cap, self._n + len(frames))
        self.frames_total += len(frames)

    def _append(self, name: str, values: np.ndarray) -> None:
        buf = getattr(self, name)
        k = len(values)
        if k >= self._cap:
            buf[:] = values[-self._cap:]
        else:
            buf[:-k] = buf[k:]
            buf[-k:] = values

    # --- summary ------------------------------------------------------------------------------
    def snapshot(self) -> Descriptors:
        """Descriptors of the current window (neutral and silent before the first frame)."""
        n = self._n
        if n < 4:
            return Descriptors()
        recent = max(2, min(n, int(RECENT_S * FRAME_RATE_HZ)))
        momentary = max(2, min(n, int(0.4 * FRAME_RATE_HZ)))
        dbfs = 10 * math.log10(float(self._ms[-momentary:].mean()) + 1e-15)
        dbfs = max(-120.0, min(0.0, dbfs + 3.01))  # +3 dB: a full-scale sine reads 0 dBFS
        lufs = max(-120.0, min(10.0, -0.691 + 10 * math.log10(float(self._kms[-recent:].mean()) + 1e-12)))
        # Silence over the recent span, not the momentary one: sparse music has gaps between notes.
        recent_dbfs = 10 * math.log10(float(self._ms[-recent:].mean()) + 1e-15) + 3.01
        silent = recent_dbfs < self.silence_dbfs
        flux = self._flux[-n:]
        k = min(9, n)
        onset_env = np.maximum(flux - np.convolve(flux, np.ones(k) / k, mode="same"), 0.0)  # minus local mean
        onset_strength = float(min(1.0, flux[-momentary:].mean() / 0.5))
        onset_rate = self._onset_rate(onset_env[-recent:], recent)
        tempo, phase, beat_conf = self._tempo(onset_env)
        key, mode, key_conf, mode_strength, consonance = self._key()
        weights = self._ms[-recent:] + 1e-12
        centroid = float(np.sum(self._centroid[-recent:] * weights) / weights.sum())
        bands = (self._bands[-recent:] * weights[:, None]).sum(axis=0) / weights.sum()
        brightness = float(np.clip(math.log2(max(centroid, 100.0) / 250.0) / math.log2(5000.0 / 250.0), 0, 1))
        harmonic = self._harmonic_ratio()
        major_chords, minor_chords, dissonance = self._chords()
        register = self._register()
        novelty, change = self._novelty()
        if silent:
            onset_rate, beat_conf, key_conf = 0.0, 0.0, 0.0
        return Descriptors(
            loudness_dbfs=dbfs, loudness_lufs=lufs, onset_strength=onset_strength, onset_rate_hz=onset_rate,
            tempo_bpm=tempo, beat_phase=phase, beat_confidence=beat_conf, key=key, mode=mode,
            key_confidence=key_conf, mode_strength=mode_strength, consonance=consonance,
            centroid_hz=centroid, brightness=brightness, band_low=float(bands[0]), band_mid=float(bands[1]),
            band_high=float(bands[2]), harmonic_ratio=harmonic, flux=float(flux[-recent:].mean()),
            major_chords=major_chords, minor_chords=minor_chords, dissonance=dissonance, register_hz=register,
            silent=silent, novelty=novelty, section_change=change and not silent, frames=self.frames_total)

    @staticmethod
    def _onset_rate(env: np.ndarray, n_frames: int) -> float:
        if env.size < 3 or env.max() <= 1e-6:
            return 0.0
        threshold = max(0.05, 0.3 * float(env.max()))
        peaks = (env[1:-1] > env[:-2]) & (env[1:-1] >= env[2:]) & (env[1:-1] > threshold)
        return float(np.count_nonzero(peaks) * FRAME_RATE_HZ / n_frames)

    def _tempo(self, env: np.ndarray) -> tuple[float, float, float]:
        n = env.size
        min_lag = int(FRAME_RATE_HZ * 60.0 / MAX_BPM)
        max_lag = int(FRAME_RATE_HZ * 60.0 / MIN_BPM)
        if n < 2 * max_lag or env.std() < 1e-6:
            return self._tempo_bpm, 0.0, 0.0
        e = env - env.mean()
        spec = np.fft.rfft(e, 2 * n)
        ac = np.fft.irfft(spec * np.conj(spec))[:max_lag + 2]
        if ac[0] <= 0:
            return self._tempo_bpm, 0.0, 0.0
        ac = ac / ac[0]
        lags = np.arange(min_lag, max_lag + 1)
        bpm = 60.0 * FRAME_RATE_HZ / lags
        # Log-normal prior around 120 BPM (as in librosa's beat tracker) settles octave ambiguity.
        prior = np.exp(-0.5 * (np.log2(bpm / 120.0) / 1.0) ** 2)
        score = ac[lags] * prior
        best = int(np.argmax(score))
        lag = lags[best]
        confidence = float(np.clip(ac[lag], 0.0, 1.0))
        # Parabolic interpolation for a sub-frame period.
        if 0 < lag < len(ac) - 1:
            y0, y1, y2 = ac[lag - 1], ac[lag], ac[lag + 1]
            denom = y0 - 2 * y1 + y2
            # Clamped: when the prior picks a lag that is not a local peak the parabola can run off.
            offset = 0.5 * (y0 - y2) / denom if abs(denom) > 1e-9 else 0.0
            period = lag + float(np.clip(offset, -0.5, 0.5))
        else:
            period = float(lag)
        tempo = 60.0 * FRAME_RATE_HZ / period
        self._tempo_bpm = tempo
        # Beat phase: the comb offset that best lines up with the last few periods' onsets.
        span = min(n, int(period * 4))
        tail = env[-span:]
        offsets = np.arange(int(period))
        pos = (span - 1 - offsets[:, None] - period * np.arange(4)[None, :]).round().astype(int)
        valid = pos >= 0
        scores = np.where(valid, tail[np.clip(pos, 0, span - 1)], 0.0).sum(axis=1)
        since_beat = int(np.argmax(scores))  # frames since the last beat
        phase = float((since_beat / period) % 1.0)
        return float(tempo), phase, confidence

    def _key(self) -> tuple[str, str, float, float, float]:
        n = self._n
        chroma = self._chroma_hist[-n:].sum(axis=0)
        if chroma.sum() <= 1e-9:
            return "C", "major", 0.0, 0.0, 0.5
        # Compress so a few loud notes do not decide the key alone.
        c = np.sqrt(chroma / chroma.max())
        cz = (c - c.mean()) / (c.std() + 1e-9)
        scores = np.zeros((2, 12))
        for mode_index, profile in enumerate((KK_MAJOR, KK_MINOR)):
            pz = (profile - profile.mean()) / profile.std()
            for shift in range(12):
                scores[mode_index, shift] = float(np.dot(cz, np.roll(pz, shift)) / 12)
        m, k = np.unravel_index(int(np.argmax(scores)), scores.shape)
        best = scores[m, k]
        second = np.partition(scores.ravel(), -2)[-2]
        confidence = float(np.clip(best, 0, 1) * np.clip((best - second) * 5 + 0.5, 0, 1))
        mode_strength = float(np.clip((scores[0].max() - scores[1].max()) * 4, -1, 1))
        major_scale = np.array([0, 2, 4, 5, 7, 9, 11])
        minor_scale = np.array([0, 2, 3, 5, 7, 8, 10, 11])  # harmonic + natural seventh
        scale = (major_scale if m == 0 else minor_scale) + k
        share = chroma[scale % 12].sum() / chroma.sum()
        return PITCH_CLASSES[k], ("major" if m == 0 else "minor"), confidence, mode_strength, float(share)

    def _chords(self) -> tuple[float, float, float]:
        """Per ~0.5 s segment of the window: the best-matching triad (major/minor, or neither when the
        match is weak) and the interval-class dissonance; returns the shares and the mean dissonance."""
        seg = max(1, int(CHORD_SEGMENT_S * FRAME_RATE_HZ))
        k = self._n // seg
        if k < 1:
            return 0.0, 0.0, 0.5
        chroma = self._chroma_hist[-k * seg:].reshape(k, seg, 12).sum(axis=1)
        energy = chroma.sum(axis=1)
        keep = energy > 1e-9 * max(1.0, float(energy.max()))
        if not keep.any():
            return 0.0, 0.0, 0.5
        c = np.sqrt(chroma[keep] / chroma[keep].max(axis=1, keepdims=True))  # compressed, per segment
        c = c / (np.linalg.norm(c, axis=1, keepdims=True) + 1e-9)
        match = c @ (_TRIADS / np.sqrt(3.0)).T  # cosine with each triad
        best = match.argmax(axis=1)
        strength = match.max(axis=1)
        clear = strength > 0.55
        major = float(np.mean(clear & (best < 12)))
        minor = float(np.mean(clear & (best >= 12)))
        rough = sum(w * (c * np.roll(c, -ic, axis=1)).sum(axis=1) for ic, w in _IC_ROUGH.items())
        smooth = sum(w * (c * np.roll(c, -ic, axis=1)).sum(axis=1) for ic, w in _IC_SMOOTH.items())
        dissonance = float(np.mean(rough / (rough + smooth + 1e-9)))
        return major, minor, dissonance

    def _register(self) -> float:
        n = min(self._n, int(RECENT_S * 2 * FRAME_RATE_HZ))
        if n < 2:
            return 0.0
        power = np.expm1(self._mel_hist[-n:]).mean(axis=0)
        centres = self._mel_centres
        band = (centres >= 80.0) & (centres <= 2000.0)
        w = power[band]
        if w.sum() <= 1e-12:
            return 0.0
        return float(np.exp(np.sum(w * np.log(centres[band])) / w.sum()))

    def _harmonic_ratio(self) -> float:
        """H/(H+P) energy by median filtering the recent log-mel spectrogram along time and frequency."""
        from scipy.ndimage import median_filter

        n = min(self._n, int(2.0 * FRAME_RATE_HZ))
        if n < 9:
            return 0.5
        s = np.expm1(self._mel_hist[-n:])
        h = median_filter(s, size=(9, 1), mode="nearest")
        p = median_filter(s, size=(1, 9), mode="nearest")
        eh, ep = float((h ** 2).sum()), float((p ** 2).sum())
        return eh / (eh + ep) if eh + ep > 1e-12 else 0.5

    def _novelty(self) -> tuple[float, bool]:
        """Cosine distance of the last 1.5 s of log-mel from the 3 s before; peaks mark sections."""
        near = int(1.5 * FRAME_RATE_HZ)
        far = int(3.0 * FRAME_RATE_HZ)
        if self._n < near + far:
            return 0.0, False
        a = self._mel_hist[-near:].mean(axis=0)
        b = self._mel_hist[-(near + far):-near].mean(axis=0)
        denom = float(np.linalg.norm(a) * np.linalg.norm(b))
        dist = 0.0 if denom < 1e-9 else float(np.clip(1.0 - np.dot(a, b) / denom, 0.0, 1.0))
        # Level change counts too: a loud tutti after a quiet verse has a similar spectrum shape.
        level = abs(float(a.mean() - b.mean())) / (float(max(a.mean(), b.mean())) + 1e-6)
        novelty = float(np.clip(4.0 * dist + 0.5 * level, 0.0, 1.0))
        hist = self._novelty_hist
        hist.append(novelty)
        if len(hist) > 600:
            del hist[:100]
        baseline = np.array(hist[-300:])
        threshold = max(0.3, float(baseline.mean() + 2.5 * baseline.std()))
        change = novelty > threshold and (self.frames_total - self._last_change_frame) > 4 * FRAME_RATE_HZ
        if change:
            self._last_change_frame = self.frames_total
        return novelty, change
