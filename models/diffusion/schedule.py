"""Timestep plans with their constants worked out once, on the host, per (steps, strength).

A frame's plan is a small table, one row per denoising step: sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t),
the two factors that give the step's x0 from the noisy sample and the model's prediction
(x0 = K_X * x - K_PRED * prediction, with the boundary-condition scalings c_skip and c_out and the
prediction type folded in), and the constants of the next step's timestep (used to re-noise the
predicted x0 with the fixed noise). LCM-type families use LCM's timestep
grid and boundary conditions; turbo-type families (SD-Turbo, SDXS, SDXL-Turbo) predict x0 directly
(c_skip 0, c_out 1) on a trailing grid. Strength is quantised to the grid the schedule has anyway,
so plans are cached and no scheduler code runs per frame.
"""
from __future__ import annotations

import numpy as np

A, B, K_X, K_PRED, A_NEXT, B_NEXT = range(6)
COLUMNS = 6


class Schedule:
    def __init__(self, config: dict, kind: str) -> None:
        self.kind = kind
        n = int(config.get("num_train_timesteps", 1000))
        start, end = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
        shape = config.get("beta_schedule", "scaled_linear")
        if shape == "linear":
            betas = np.linspace(start, end, n, dtype=np.float64)
        else:
            betas = np.linspace(start ** 0.5, end ** 0.5, n, dtype=np.float64) ** 2
        self.train_steps = n
        self.alphas_cumprod = np.cumprod(1.0 - betas)
        self.prediction_type = config.get("prediction_type", "epsilon")
        self.original_steps = int(config.get("original_inference_steps", 50) or 50)
        self.timestep_scaling = float(config.get("timestep_scaling", 10.0) or 10.0)
        self.sigma_data = 0.5
        self._tables: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def key(self, steps: int, strength: float) -> int:
        """Strength on the schedule's own grid: LCM's original 50 steps, or percent for turbo."""
        if self.kind == "lcm":
            return int(min(self.original_steps, max(steps, int(self.original_steps * strength))))
        return int(min(100, max(1, round(strength * 100))))

    def all_keys(self, steps: int) -> range:
        return range(steps, self.original_steps + 1) if self.kind == "lcm" else range(1, 101)

    def timesteps(self, steps: int, key: int) -> np.ndarray:
        if self.kind == "lcm":
            stride = self.train_steps // self.original_steps
            origin = (np.arange(1, key + 1) * stride - 1)[::-1]
            index = np.floor(np.linspace(0, len(origin), num=steps, endpoint=False)).astype(np.int64)
            return origin[index]
        top = self.train_steps * key / 100.0
        return np.asarray([max(0, int(round(top * (1.0 - k / steps))) - 1) for k in range(steps)], dtype=np.int64)

    def table(self, steps: int, key: int) -> tuple[np.ndarray, np.ndarray]:
        """(timesteps (steps,), constants (steps, 6)) for one frame's plan; cached."""
        cached = self._tables.get((steps, key))
        if cached is not None:
            return cached
        ts = self.timesteps(steps, key)
        out = np.zeros((steps, COLUMNS), dtype=np.float64)
        alpha = self.alphas_cumprod[ts]
        out[:, A], out[:, B] = np.sqrt(alpha), np.sqrt(1.0 - alpha)
        if self.kind == "lcm":
            scaled = ts * self.timestep_scaling
            c_skip = self.sigma_data ** 2 / (scaled ** 2 + self.sigma_data ** 2)
            c_out = scaled / np.sqrt(scaled ** 2 + self.sigma_data ** 2)
        else:
            c_skip, c_out = np.zeros(steps), np.ones(steps)
        a, b = out[:, A], out[:, B]
        # x0 = c_skip * x + c_out * x0_pred, where x0_pred is linear in x and the prediction:
        if self.prediction_type == "v_prediction":        # x0_pred = a x - b v
            out[:, K_X], out[:, K_PRED] = c_skip + c_out * a, c_out * b
        elif self.prediction_type == "sample":            # x0_pred = prediction
            out[:, K_X], out[:, K_PRED] = c_skip, -c_out
        else:                                             # epsilon: x0_pred = (x - b eps) / a
            out[:, K_X], out[:, K_PRED] = c_skip + c_out / a, c_out * b / a
        out[:-1, A_NEXT], out[:-1, B_NEXT] = out[1:, A], out[1:, B]
        self._tables[(steps, key)] = (ts, out)
        return ts, out
