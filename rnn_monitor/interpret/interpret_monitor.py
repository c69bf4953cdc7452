"""The interpretability part of the monitor, each logged epoch: token importance for classifiers
(occlusion and prediction as read, on the text-view sequences) and generated text with every
layer's activations (``RNNMonitor(generate={...})``). The methods are `rnn_monitor.interpret`'s;
this part decides when they apply, prepares their inputs and writes their results (layout in
`rnn_monitor.logdir.metadata`).
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import numpy as np

from rnn_monitor.config import GenerateConfig
from rnn_monitor.distribute import cluster_size
from rnn_monitor.logdir import metadata
from rnn_monitor.probe.data import blame_the_data, first_array, unpack_probe_data

logger = logging.getLogger("rnn_monitor")


def encode_seed(seed: Any, vocabulary: Optional[Sequence[str]]) -> list[int]:
    """Token ids of the generation seed: ids as given, or a string split into the vocabulary's
    tokens (longest match first); a ValueError names a character the vocabulary lacks."""
    if not isinstance(seed, str):
        return [int(t) for t in seed]
    if vocabulary is None:
        raise ValueError("generate: a text seed needs RNNMonitor(vocabulary=...) to encode it; or pass token ids")
    index = {str(tok): i for i, tok in enumerate(vocabulary)}
    longest = max((len(t) for t in index), default=1)
    ids, pos = [], 0
    while pos < len(seed):
        for size in range(min(longest, len(seed) - pos), 0, -1):
            piece = seed[pos : pos + size]
            if piece in index:
                ids.append(index[piece])
                pos += size
                break
        else:
            raise ValueError(f"generate: the seed's character {seed[pos]!r} is not in the vocabulary")
    return ids


def output_kind(model: Any, vocabulary: Optional[Sequence[str]] = None) -> tuple[bool, Optional[float]]:
    """``(classifier, decision point)``: a classifier's output is one vector per sequence
    ([batch, classes], not per timestep), and not one score per vocabulary token (that is a
    windowed next-token model). The decision point is where the prediction-as-read scale is
    white: 0.5 for a sigmoid unit, 1/K for softmax, 0 for logits."""
    try:
        shape = tuple(model.outputs[0].shape) if len(model.outputs) == 1 else None
    except Exception:
        shape = None
    if shape is None or len(shape) != 2:
        return False, None
    classes = shape[-1] or 1
    if vocabulary is not None and classes == len(vocabulary) and classes > 2:
        return False, None
    activation = getattr(getattr(model.layers[-1], "activation", None), "__name__", None)
    if activation == "sigmoid":
        return True, 0.5
    if activation == "softmax":
        return True, 1.0 / classes
    return True, 0.0


def padding_mask(model: Any, x: np.ndarray) -> np.ndarray:
    """[B, T] True where a token is real: with an `Embedding(mask_zero=True)`, id 0 is padding."""
    import keras

    masked = any(isinstance(layer, keras.layers.Embedding) and getattr(layer, "mask_zero", False)
                 for layer in _all_layers(model))
    valid = np.ones(x.shape[:2], dtype=bool)
    if masked and np.issubdtype(x.dtype, np.integer):
        valid = x != 0
    return valid


MIN_COPIES = 32  # below this, per-call overhead dominates and memory is no concern
# With importance="auto", model inputs token importance may predict per logged epoch, on average:
# longer sequences x text_samples run it every k-th logged epoch (k = the smallest that fits).
AUTO_IMPORTANCE_INPUTS = 1024


def importance_every(samples: int, timesteps: int, budget: int = AUTO_IMPORTANCE_INPUTS) -> int:
    """Logged epochs per token-importance run under ``importance="auto"``: occlusion and
    prediction as read predict ``2 x samples x timesteps`` inputs a run (3,200 at T = 400 with 4
    samples; about twice the probe's own time at 3 x LSTM 256), so above `budget` they run every
    k-th logged epoch, k = ceil(inputs / budget), the first logged epoch included."""
    return max(1, -(-2 * int(samples) * int(timesteps) // int(budget)))


def copies_for(probe_rows: int) -> int:
    """Default input copies per model call of token importance: the probe batch's size (at
    least `MIN_COPIES`, at most `DEFAULT_MAX_COPIES`). The training step holds a batch's forward
    *and* backward; an inference call on as many rows holds less, so importance never raises
    the run's peak memory much above the training step's (at T = 400 x 3 LSTM 256, 1024 copies
    a call added +1.4 GB; 64 add +0.12 GB)."""
    from rnn_monitor.interpret.scoring import DEFAULT_MAX_COPIES

    return int(min(DEFAULT_MAX_COPIES, max(MIN_COPIES, probe_rows)))


def _all_layers(model: Any) -> list:
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(_all_layers(layer))
    return out


class InterpretMonitor:
    """Token importance (classifiers) and generated text, written each logged epoch."""

    def __init__(
        self,
        model: Any,
        writer: Any,
        probe_data: Any,
        vocabulary: Optional[Sequence[str]],
        text_samples: int,
        generate: Optional[GenerateConfig],
        importance: Any = "auto",
        max_copies: Optional[int] = None,
    ) -> None:
        self.model = model
        self.writer = writer
        self.vocabulary = vocabulary
        self.generate_config = generate
        self.max_copies = max_copies
        self.x: Optional[np.ndarray] = None
        self.importance = False
        self.decision: Optional[float] = None
        self.seed_ids: Optional[list[int]] = None
        self.importance_every = 1  # logged epochs per importance run (see `importance_every`)
        self._logged = 0  # logged epochs so far
        self.last_generation: Any = None
        classifier, self.decision = output_kind(model, vocabulary)
        if cluster_size() > 1 and (importance or generate is not None):
            # Model calls on the chief alone would interleave with the workers' collective ops.
            logger.warning("rnn_monitor: token importance and text generation are off in a "
                           "multi-worker cluster; the probe, weights and alerts still run")
            importance, generate = False, None
            self.generate_config = None
        if any(getattr(layer, "stateful", False) for layer in _all_layers(model)):
            # Occlusion copies change the batch size, and every forward pass would move the
            # user's carried states: neither can run on a stateful model.
            if importance is True or generate is not None:
                logger.warning("rnn_monitor: token importance and text generation are off for a "
                               "model with stateful layers (its batch size and states are fixed); "
                               "the probe, weights and alerts still run")
            importance, generate = False, None
            self.generate_config = None
        if probe_data is not None and importance and (importance is True or classifier):
            x = unpack_probe_data(probe_data)[0]
            rows = first_array(x)
            if isinstance(x, (dict, list)) and len(x) != 1:
                logger.warning("rnn_monitor: token importance needs a model with one sequence input; it is off")
            elif importance is True and not classifier:
                raise ValueError("importance=True needs a classifier: a model whose output is one vector per sequence")
            else:
                self.x = np.asarray(rows)[: max(1, text_samples)]
                self.importance = True
                if max_copies is None:
                    self.max_copies = copies_for(len(rows))
                if importance == "auto" and self.x.ndim >= 2:
                    self.importance_every = importance_every(len(self.x), self.x.shape[1])
                if self.importance_every > 1:
                    logger.info(
                        "rnn_monitor: token importance predicts %d inputs a run (2 x %d sequences x %d "
                        "steps), so with importance='auto' it runs every %d logged epochs, from the first; "
                        "importance=True runs it at every logged epoch, fewer text_samples make it cheaper",
                        2 * self.x.shape[0] * self.x.shape[1], self.x.shape[0], self.x.shape[1],
                        self.importance_every,
                    )
        if generate is not None:
            self.seed_ids = encode_seed(generate.seed, vocabulary)

    def describe(self) -> dict:
        """JSON-ready settings for the manifest."""
        config = self.generate_config
        return {
            "importance": self.importance,
            "importance_every": self.importance_every,
            "decision": self.decision,
            "generate": None if config is None else {
                "seed": config.seed if isinstance(config.seed, str) else [int(t) for t in config.seed],
                "steps": config.steps, "temperature": config.temperature, "random_seed": config.random_seed,
            },
        }

    @property
    def active(self) -> bool:
        return self.importance or self.generate_config is not None

    def log_epoch(self, epoch: int, record: Any = None) -> None:
        if self.importance and self._logged % self.importance_every == 0:
            try:
                self._log_importance(epoch)
            except Exception as exc:
                blame_the_data(self.model, self.x, exc)
                raise
        self._logged += 1
        if self.generate_config is not None:
            self._log_generation(epoch)

    def _log_importance(self, epoch: int) -> None:
        from rnn_monitor.interpret import occlusion, prediction_as_read
        from rnn_monitor.interpret.scoring import predict

        x = self.x
        full = predict(self.model, x, self.max_copies)  # the traced forward the methods use
        target = np.zeros(len(x), dtype=int) if full.shape[-1] == 1 else np.argmax(full, axis=-1)
        valid = padding_mask(self.model, x)
        importance = np.asarray(occlusion(self.model, x, fill=0, window=1, max_copies=self.max_copies), np.float32)
        reading = np.asarray(prediction_as_read(self.model, x, fill=0, max_copies=self.max_copies), np.float32)
        importance = np.where(valid, importance, np.nan)
        reading = np.where(valid, reading, np.nan)
        self.writer.plugin_tensor(metadata.TOKEN_IMPORTANCE, importance, epoch)
        self.writer.plugin_tensor(metadata.PREDICTION_AS_READ, reading, epoch)
        info = {
            "target": [int(t) for t in target],
            "score": [float(v) if np.isfinite(v) else None for v in (full[i, t] for i, t in enumerate(target))],
            "decision": self.decision,
            "fill": 0,
            "window": 1,
        }
        self.writer.json_tensor(metadata.IMPORTANCE_INFO, info, epoch)

    def _log_generation(self, epoch: int) -> None:
        from rnn_monitor.interpret import generate

        config = self.generate_config
        rng = np.random.default_rng(config.random_seed)
        result = generate(self.model, self.seed_ids, steps=config.steps, temperature=config.temperature,
                          vocabulary=self.vocabulary, rng=rng)
        self.last_generation = result
        tokens = [str(self.vocabulary[t]) if self.vocabulary is not None and 0 <= t < len(self.vocabulary)
                  else f"<{int(t)}>" for t in result.tokens]
        self.writer.plugin_tensor(metadata.GENERATED_TOKENS,
                                  np.array([t.encode("utf-8") for t in tokens], dtype=object), epoch)
        for layer, states in result.activations.items():
            for state, values in states.items():
                with np.errstate(over="ignore"):
                    data = np.asarray(values, dtype=np.float32).astype(np.float16)
                self.writer.plugin_tensor(metadata.GENERATED_ACTIVATIONS, data, epoch, layer=layer, state=state)
