"""Thresholds, the generation settings and the argument checks (`rnn_monitor.config`): every bad
value is a ValueError that names the argument; numpy numbers count as numbers, bools do not."""

import numpy as np
import pytest

from rnn_monitor.config import (
    GenerateConfig, Thresholds, check_count, check_flag, check_generate_config, check_units,
)


def test_thresholds_override_the_defaults_and_reject_unknown_or_non_numbers():
    th = Thresholds.from_mapping({"dead_std": 1e-2, "patience": np.int64(3)})
    assert th.dead_std == 1e-2 and th.patience == 3 and th.vanishing_flow == Thresholds().vanishing_flow
    with pytest.raises(ValueError, match=r"unknown threshold\(s\) \['dead'\]; known thresholds: .*dead_std"):
        Thresholds.from_mapping({"dead": 0.1})
    for bad in (True, float("nan"), "0.1", None):
        with pytest.raises(ValueError, match="threshold dead_std must be a finite number"):
            Thresholds.from_mapping({"dead_std": bad})


def test_counts_flags_and_units():
    assert check_count("n", np.int32(4), minimum=1) == 4 and type(check_count("n", np.int32(4), 1)) is int
    for bad in (0, True, 2.0, "3"):
        with pytest.raises(ValueError, match="n must be a positive integer or None, got"):
            check_count("n", bad, minimum=1, none="None")
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        check_count("n", -1, minimum=0)
    assert check_flag("images", np.bool_(False)) is False
    with pytest.raises(ValueError, match="images must be True or False, got 1"):
        check_flag("images", 1)
    assert check_units(None) is None and check_units((np.int64(2), 0)) == [2, 0]
    for bad, message in ((3, "list of unit indices"), ("abc", "list of unit indices"), ([1, 1], "not repeat"),
                         ([-1], r"units\[...\] must be an integer >= 0")):
        with pytest.raises(ValueError, match=message):
            check_units(bad)


def test_generate_settings_are_checked_like_the_other_arguments():
    assert check_generate_config(None) is None
    config = check_generate_config({"seed": "def ", "steps": np.int64(20), "temperature": 0.5})
    assert config == GenerateConfig("def ", 20, 0.5, 0) and type(config.steps) is int
    for values, message in (
        ({"seed": ""}, 'non-empty "seed"'),
        ({"seed": "a", "steps": 0}, "generate: steps must be a positive integer, got 0"),
        ({"seed": "a", "steps": True}, "generate: steps must be a positive integer, got True"),
        ({"seed": "a", "temperature": -1.0}, "temperature must be a finite number >= 0"),
        ({"seed": "a", "temperature": float("inf")}, "temperature must be a finite number >= 0"),
        ({"seed": "a", "random_seed": -2}, "random_seed must be an integer >= 0"),
        ({"seed": "a", "beams": 2}, r"unknown key\(s\) \['beams'\]"),
    ):
        with pytest.raises(ValueError, match=message):
            check_generate_config(values)
    with pytest.raises(ValueError, match="generate must be a dict"):
        check_generate_config("def ")
