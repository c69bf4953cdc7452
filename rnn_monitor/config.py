"""Thresholds and sizes, with the defaults of DESIGN.md ("Definitions"). Every field is documented
in the README and can be set through `RNNMonitor(thresholds={...})`."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

# What one logged epoch may write by default: keeps the reference model (Embedding 32 ->
# LSTM 128 -> LSTM 128, T = 100) under 2 MB an epoch with everything included.
DEFAULT_MAX_BYTES_PER_EPOCH = 1_900_000


@dataclasses.dataclass(frozen=True)
class Thresholds:
    dead_std: float = 1e-3  # dead unit: std of its output over valid (b, t) below this
    exploding_state: float = 1e2  # exploding unit: max |state| above this (unbounded states)
    saturation_tanh: float = 0.99  # tanh output saturated when |h| above this
    saturation_sigmoid_low: float = 0.1  # sigmoid gate left-saturated below this
    saturation_sigmoid_high: float = 0.9  # sigmoid gate right-saturated above this
    saturation_fraction: float = 0.95  # saturated unit: saturated in more than this share of valid positions
    flow_floor: float = 1e-3  # grad_horizon: largest k with F[j] >= flow_floor for all j <= k
    horizon_fraction: float = 0.1  # vanishing when grad_horizon < max(horizon_min, horizon_fraction * T)
    horizon_min: float = 2.0
    vanishing_grad_norm: float = 1e-7  # vanishing when the weight-gradient norm is below this
    exploding_flow: float = 1e3  # exploding when any F[k] is above this
    exploding_grad_norm: float = 1e3  # exploding when the weight-gradient norm is above this
    dead_alert_ratio: float = 0.5  # dead-unit alert when dead_ratio is above this
    saturation_alert_ratio: float = 0.5  # saturation alert when saturated_ratio is above this
    patience: int = 2  # consecutive logged epochs a vanishing condition must hold

    @classmethod
    def from_mapping(cls, values: Optional[Mapping[str, Any]]) -> "Thresholds":
        """Defaults overridden by `values`; an unknown name is an error that lists the known ones."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown threshold(s) {unknown}; known thresholds: {sorted(known)}"
            )
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    """`RNNMonitor(generate={...})`: text generated from a next-token model each logged epoch."""

    seed: Any  # a string (encoded with the vocabulary) or a sequence of token ids
    steps: int = 200  # tokens generated after the seed
    temperature: float = 0.0  # 0: greedy; otherwise softmax sampling at this temperature
    random_seed: int = 0  # sampling is repeatable: the same seed every logged epoch

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "GenerateConfig":
        """Checked settings; an unknown or missing key, or a bad value, is a ValueError."""
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"generate: unknown key(s) {unknown}; known keys: {sorted(known)}")
        if "seed" not in values or values["seed"] is None or len(values["seed"]) == 0:
            raise ValueError('generate needs a non-empty "seed": the text (or token ids) to start from')
        config = cls(**values)
        if not isinstance(config.steps, int) or config.steps < 1:
            raise ValueError(f"generate: steps must be a positive integer, got {config.steps!r}")
        if not isinstance(config.temperature, (int, float)) or config.temperature < 0:
            raise ValueError(f"generate: temperature must be >= 0, got {config.temperature!r}")
        return config


def check_generate_config(values: Optional[Mapping[str, Any]]) -> Optional[GenerateConfig]:
    """None when generation is off, else the checked `GenerateConfig`."""
    if values is None:
        return None
    if isinstance(values, GenerateConfig):
        return values
    if not isinstance(values, Mapping):
        raise ValueError(f'generate must be a dict like {{"seed": "def ", "steps": 200}}, got {type(values).__name__}')
    return GenerateConfig.from_mapping(values)
