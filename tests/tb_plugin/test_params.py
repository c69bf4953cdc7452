"""Request parameters: parsed strictly, bad ones a 400 with the parameter's name, never a
traceback."""

import pytest

from tb_plugin.params import BadRequest, NotFound, int_param, text_param


def test_text_parameters():
    assert text_param({"run": "train"}, "run") == "train"
    assert text_param({}, "run", required=False) is None and text_param({"run": ""}, "run", required=False) is None
    with pytest.raises(BadRequest, match="missing parameter 'run'") as err:
        text_param({}, "run")
    assert err.value.status == 400
    for bad in ("x" * 513, "a\x00b"):
        with pytest.raises(BadRequest, match="parameter 'layer' is not a valid name"):
            text_param({"layer": bad}, "layer")


def test_integer_parameters():
    assert int_param({"epoch": "-3"}, "epoch") == -3 and int_param({"epoch": "9" * 18}, "epoch") == int("9" * 18)
    assert int_param({}, "epoch", required=False) is None
    for bad in ("1.5", "9" * 19, "3 ", "0x10", "+1"):
        with pytest.raises(BadRequest, match="must be an integer of at most 18 digits"):
            int_param({"epoch": bad}, "epoch")
    assert NotFound("no such layer").status == 404
