"""The examples a newcomer runs: they train, write what the README says, and look right."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "examples"))

import classifier  # noqa: E402


def test_classifier_shows_both_directions_and_blanks_padded_steps(log_dir):
    history = classifier.train(log_dir, epochs=2, n=512, verbose=0)
    assert len(history.history["loss"]) == 2
    from rnn_monitor import load_run

    run = load_run(log_dir)
    assert run.layers == ["bi_gru/forward", "bi_gru/backward"]
    probe, _ = classifier.probe_batch()
    padded_everywhere = (probe == 0).all(axis=0)  # steps where no probe sequence has a token
    assert padded_everywhere.any(), "the generated probe must contain fully padded steps"
    for layer in run.layers:
        grads = run.timestep_gradients(layer)[-1]  # [T, units] at the last epoch
        assert np.isnan(grads[padded_everywhere]).all(), layer
        assert np.isfinite(grads[~padded_everywhere]).all(), layer
        acts = run.activations(layer, "h")  # text samples: NaN exactly at their padding
        samples = probe[: acts.shape[0]]
        assert np.isnan(acts[samples == 0]).all() and np.isfinite(acts[samples != 0]).all()
    tokens = run.tokens
    assert "".join(tokens[0][: (probe[0] != 0).sum()]) == "".join(classifier.VOCABULARY[i] for i in probe[0] if i)
    for layer in run.layers:
        for name in ("grad_horizon", "dead_ratio", "saturated_ratio"):
            epochs, values = run.scalar(layer, name)
            assert list(epochs) == [0, 1] and np.isfinite(values).all(), (layer, name)
