"""Unit ranking by a text feature: planted units that fire inside quotes are found first."""

import numpy as np

from rnn_monitor.stats.relevance import feature_mask, rank_units, relevance


def test_feature_mask_marks_tokens_covered_by_the_regex():
    tokens = [list("x = 'ab'\n  y")]
    mask = feature_mask(tokens, r"'[^']*'")
    assert "".join(c if m else "." for c, m in zip(tokens[0], mask[0])) == "....'ab'...."
    indent = feature_mask(tokens, r"^ +")
    assert indent[0].tolist() == [False] * 9 + [True, True, False]


def test_multi_character_tokens_are_marked_when_they_overlap_a_match():
    mask = feature_mask([["def", " ", "foo", "(", ")"]], r"fo+")
    assert mask[0].tolist() == [False, False, True, False, False]


def test_planted_quote_unit_ranks_first_and_masked_steps_are_ignored():
    rng = np.random.default_rng(0)
    text = "a = 'hello' + b\nc = \"x y\" # z\n" * 3
    tokens = [list(text)]
    inside = feature_mask(tokens, r"'[^'\n]*'|\"[^\"\n]*\"")
    acts = rng.normal(scale=0.1, size=(1, len(text), 6))
    acts[0, :, 4] += np.where(inside[0], 0.8, -0.2)  # unit 4 tracks quotes
    acts[0, :, 1] -= np.where(inside[0], 0.5, 0.0)  # unit 1 switches off in quotes
    ranked = rank_units(acts, tokens, r"'[^'\n]*'|\"[^\"\n]*\"", top=2)
    assert [u for u, _ in ranked] == [4, 1]
    assert ranked[0][1] > 0.9 and ranked[1][1] < -0.4
    # Padding: NaN steps (whatever their token) change nothing.
    padded = np.concatenate([acts, np.full((1, 5, 6), np.nan)], axis=1)
    mask = feature_mask([tokens[0] + ["'"] * 5], r"'[^'\n]*'|\"[^\"\n]*\"")
    np.testing.assert_allclose(relevance(padded, mask), relevance(acts, inside))
