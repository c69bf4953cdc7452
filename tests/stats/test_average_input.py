"""average_input against a plain loop, and a planted unit that fires on one token."""

import numpy as np
import pytest

from rnn_monitor.stats.average_input import average_input


def naive(x, acts, window, vocab_size=None):
    b, t, units = acts.shape
    depth = vocab_size if vocab_size is not None else x.shape[2]
    out = np.zeros((units, window, depth))
    total = np.zeros(units)
    for i in range(b):
        for pos in range(window - 1, t):
            win = x[i, pos - window + 1 : pos + 1]
            if vocab_size is None and not np.isfinite(win).all():
                continue
            if vocab_size is not None:
                win = np.eye(vocab_size)[win]
            for u in range(units):
                a = acts[i, pos, u]
                if not np.isfinite(a):
                    continue
                w = max(a, 0.0)
                out[u] += w * win
                total[u] += w
    return np.where(total[:, None, None] > 0, out / np.where(total > 0, total, 1)[:, None, None], 0.0)


def test_tokens_match_a_plain_loop_with_masked_steps():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, size=(3, 15))
    acts = rng.normal(size=(3, 15, 4))
    acts[1, 11:] = np.nan  # padding at the end of one sequence
    got = average_input(x, acts, window=4, vocab_size=6)
    np.testing.assert_allclose(got, naive(x, acts, 4, 6), atol=1e-6)
    assert got.shape == (4, 4, 6) and got.dtype == np.float32


def test_continuous_rows_match_a_plain_loop():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 12, 3))
    acts = rng.normal(size=(2, 12, 5))
    np.testing.assert_allclose(average_input(x, acts, window=3), naive(x, acts, 3), atol=1e-6)


def test_a_unit_that_fires_on_one_token_likes_that_token_last():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 8, size=(20, 30))
    acts = np.stack([(x == 5).astype(float), -np.ones(x.shape)], axis=-1)  # unit 1 never fires
    got = average_input(x, acts, window=5, vocab_size=8)
    np.testing.assert_allclose(got[0, -1], np.eye(8)[5], atol=1e-7)  # the token just read is 5
    assert np.all(got[1] == 0)
    # earlier window positions are the token mix before a 5, each a distribution
    np.testing.assert_allclose(got[0].sum(axis=1), np.ones(5), atol=1e-6)


def test_shape_errors_say_what_is_expected():
    with pytest.raises(ValueError, match=r"\[batch, time, units\]"):
        average_input(np.zeros((2, 5)), np.zeros((2, 5)), vocab_size=3)
    with pytest.raises(ValueError, match="x has shape"):
        average_input(np.zeros((2, 4), int), np.zeros((2, 5, 1)), vocab_size=3)
