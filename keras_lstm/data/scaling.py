"""Scalers fitted on training rows only, stored as plain JSON numbers.

scikit-learn fits the statistics; we keep only an affine map `(x - center) / scale` per column,
which serialises as JSON (never pickle) and is all a device needs to scale its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scaler:
    """An affine per-column scaler: `transform(x) = (x - center) / scale`.

    Example:
        >>> scaler = Scaler.fit("standard", np.array([[1.0], [3.0]]))
        >>> scaler.transform(np.array([[3.0]])).tolist(), scaler.to_dict()["kind"]
        ([[1.0]], 'standard')
    """

    kind: str
    center: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def fit(cls, kind: str, rows: np.ndarray) -> Scaler:
        """Fit a `standard`, `minmax`, `robust` or `none` scaler on `rows` `(n, columns)`."""
        # scikit-learn is needed only to fit: a device applying fitted scalers never imports it
        from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

        rows = np.asarray(rows, dtype=np.float64)
        width = rows.shape[1]
        if kind == "none":
            center, scale = np.zeros(width), np.ones(width)
        elif kind == "standard":
            fitted = StandardScaler().fit(rows)
            center, scale = fitted.mean_, fitted.scale_
        elif kind == "minmax":
            fitted = MinMaxScaler().fit(rows)
            scale = 1.0 / fitted.scale_
            center = -fitted.min_ * scale
        elif kind == "robust":
            fitted = RobustScaler().fit(rows)
            center, scale = fitted.center_, fitted.scale_
        else:
            raise ValueError(f"Unknown scaler {kind!r}.")
        return cls(kind, tuple(map(float, center)), tuple(map(float, scale)))

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Scale `(..., columns)` values into a new float32 array (one allocation, no temporary
        copies: the peak memory is the result itself)."""
        out = np.array(values, dtype=np.float32)
        out -= np.asarray(self.center, dtype=np.float32)
        out /= np.asarray(self.scale, dtype=np.float32)
        return out

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        """Map scaled `(..., columns)` values back to real units (float64)."""
        return np.asarray(values, dtype=np.float64) * np.asarray(self.scale) + np.asarray(
            self.center
        )

    def to_dict(self) -> dict:
        """JSON-able form."""
        return {"kind": self.kind, "center": list(self.center), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, raw: dict) -> Scaler:
        """Rebuild from `to_dict()` output."""
        return cls(raw["kind"], tuple(map(float, raw["center"])), tuple(map(float, raw["scale"])))
