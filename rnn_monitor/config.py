"""Thresholds and sizes, with their defaults (docs/reference.md, "Scalars"). Every field is documented
in docs/reference.md and can be set through `RNNMonitor(thresholds={...})`."""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Mapping, Optional

import numpy as np

# What one logged epoch may write by default: keeps the reference model (Embedding 32 ->
# LSTM 128 -> LSTM 128, T = 100) under 2 MB an epoch with everything included.
DEFAULT_MAX_BYTES_PER_EPOCH = 1_900_000


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Definitions of the measurements (docs/reference.md, "Scalars") and the alert rules' thresholds.

    The rule thresholds were chosen on the labelled benchmark (benchmarks/alert_benchmark.py,
    tune split); docs/alerts.md gives the figures each value sits between.
    """

    # Measurements
    dead_std: float = 1e-3  # dead unit: std of its output over valid (b, t) below this
    exploding_state: float = 1e2  # exploding unit: max |state| above this (unbounded states)
    saturation_tanh: float = 0.99  # tanh output saturated when |h| above this
    saturation_sigmoid_low: float = 0.1  # sigmoid gate left-saturated below this
    saturation_sigmoid_high: float = 0.9  # sigmoid gate right-saturated above this
    saturation_fraction: float = 0.95  # saturated unit: saturated in more than this share of valid positions
    flow_floor: float = 1e-3  # grad_horizon: largest k with F[j] >= flow_floor for all j <= k
    # Findings
    horizon_fraction: float = 0.1  # short-memory finding when grad_horizon < max(horizon_min, horizon_fraction * T)
    horizon_min: float = 2.0
    exploding_units_ratio: float = 0.5  # exploding-units finding when exploding_ratio is above this
    # Alert rules (benchmark figures in docs/alerts.md)
    vanishing_flow: float = 1e-4  # the gradient does not reach back: F[T/2] below this
    learned_ratio: float = 0.9  # not learning: probe loss >= this x the constant-prediction loss
    stall_improvement: float = 0.03  # stalled: Keras loss improved less than this share since the last logged epoch
    patience: int = 2  # logged epochs in a row the loss must stay unlearned (vanishing, saturated) or diverged
    diverged_ratio: float = 10.0  # exploding: probe loss above this x the constant-prediction loss
    exploding_flow: float = 1e3  # exploding: any F[k] above this
    exploding_grad_growth: float = 100.0  # exploding: grad_norm above this x the median of earlier logged epochs
    starvation_grad: float = 1e-3  # starved layer: grad_norm below this x the probe loss
    dead_alert_ratio: float = 0.5  # dead-unit alert when dead_ratio is above this
    saturation_alert_ratio: float = 0.5  # saturated: saturated_ratio above this (an alert only with starvation or no learning)

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
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"threshold {name} must be a finite number, got {value!r}")
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
        if "steps" in values:
            values["steps"] = check_count("generate: steps", values["steps"], minimum=1)
        if "random_seed" in values:
            values["random_seed"] = check_count("generate: random_seed", values["random_seed"], minimum=0)
        temperature = values.get("temperature", 0.0)
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
                or not math.isfinite(temperature) or temperature < 0:
            raise ValueError(f"generate: temperature must be a finite number >= 0, got {temperature!r}")
        return cls(**values)


def check_generate_config(values: Optional[Mapping[str, Any]]) -> Optional[GenerateConfig]:
    """None when generation is off, else the checked `GenerateConfig`."""
    if values is None:
        return None
    if isinstance(values, GenerateConfig):
        return values
    if not isinstance(values, Mapping):
        raise ValueError(f'generate must be a dict like {{"seed": "def ", "steps": 200}}, got {type(values).__name__}')
    return GenerateConfig.from_mapping(values)


def check_count(name: str, value: Any, minimum: int, none: str = "") -> int:
    """`value` as an int when it is a whole number >= `minimum` (numpy integers too, not bools),
    else a ValueError that names the argument (`none`: what else it may be, e.g. "None")."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}{' or ' + none if none else ''}, got {value!r}")
    return int(value)


def check_flag(name: str, value: Any) -> bool:
    """`value` as a bool when it is True or False (numpy's too), else a ValueError naming it."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name} must be True or False, got {value!r}")


def check_units(units: Any) -> Optional[list[int]]:
    """Unit indices (distinct whole numbers >= 0) as a list, or None for every unit."""
    if units is None:
        return None
    if isinstance(units, (str, bytes)) or not hasattr(units, "__iter__"):
        raise ValueError(f"units must be a list of unit indices or None, got {units!r}")
    out = [check_count("units[...]", u, minimum=0) for u in units]
    if len(set(out)) != len(out):
        raise ValueError(f"units must not repeat an index, got {list(units)!r}")
    return out
