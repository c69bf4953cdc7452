"""`EpochRecord`: what one logged epoch measured, as the alert rules and the writer read it."""

import math

import numpy as np

from rnn_monitor.record import EpochRecord


def test_logs_keep_numbers_only_and_the_loss_reads_from_them():
    record = EpochRecord(3)
    record.set_logs({"loss": np.float32(0.25), "accuracy": 1, "name": "run", "lr": None})
    assert record.logs == {"loss": 0.25, "accuracy": 1.0} and record.loss == 0.25
    assert EpochRecord(0).loss is None


def test_loss_is_finite_looks_at_the_keras_and_the_probe_loss():
    record = EpochRecord(0)
    assert record.loss_is_finite()  # nothing reported: nothing wrong
    record.set_logs({"loss": 1.0})
    record.probe_loss = float("nan")
    assert not record.loss_is_finite()
    record.probe_loss = 0.5
    record.set_logs({"loss": math.inf})
    assert not record.loss_is_finite()


def test_scalars_are_floats_by_layer_and_arrays_kept_as_given():
    record = EpochRecord(0)
    record.set_scalar("lstm", "dead_ratio", np.float32(0.5))
    flow = np.array([1.0, 0.5])
    record.set_array("lstm", "temporal_flow", flow)
    assert type(record.scalars["lstm"]["dead_ratio"]) is float and record.arrays["lstm"]["temporal_flow"] is flow
