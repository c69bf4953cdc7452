"""load_run: reads every value without TensorFlow, survives truncated files, says clearly what is missing."""

import os
import subprocess
import sys

import numpy as np
import pytest

from rnn_monitor import load_run
from rnn_monitor.logdir import metadata
from rnn_monitor.logdir.reader import NoRunError
from rnn_monitor.logdir.writer import SummaryWriter


def _write(log_dir, epochs=3):
    writer = SummaryWriter(os.path.join(log_dir, metadata.RUN_SUBDIR))
    writer.json_tensor(metadata.MANIFEST, {"layers": [{"name": "bi/forward"}, {"name": "bi"}]}, 0)
    for epoch in range(epochs):
        writer.scalar("bi/forward/dead_ratio", 0.25 * epoch, epoch)
        writer.scalar("bi/dead_ratio", 1.0, epoch)
        writer.plugin_tensor(metadata.TIMESTEP_GRADIENTS, np.full((4, 2), epoch, np.float16), epoch, layer="bi/forward")
    writer.close()
    return writer


def test_scalars_split_by_the_longest_layer_name_and_tensors_stack_by_epoch(log_dir):
    _write(log_dir)
    run = load_run(log_dir)
    assert run.layers == ["bi/forward", "bi"] and run.epochs == [0, 1, 2]
    assert run.scalar_names("bi/forward") == ["dead_ratio"]
    epochs, values = run.scalar("bi/forward", "dead_ratio")
    np.testing.assert_array_equal(epochs, [0, 1, 2])
    np.testing.assert_allclose(values, [0.0, 0.25, 0.5])
    grads = run.timestep_gradients("bi/forward")
    assert grads.shape == (3, 4, 2) and grads[2, 0, 0] == 2
    with pytest.raises(KeyError, match="no layer 'nope'.*bi/forward"):
        run.scalar("nope", "dead_ratio")
    with pytest.raises(KeyError, match="scalar_names"):
        run.scalar("bi", "grad_horizon")


def test_a_truncated_event_file_keeps_what_was_written_before(log_dir):
    _write(log_dir)
    (path,) = [os.path.join(r, f) for r, _, fs in os.walk(log_dir) for f in fs if "tfevents" in f]
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-7])  # cut the last record in the middle
    run = load_run(log_dir)
    assert run.epochs == [0, 1, 2]
    assert len(run.scalar("bi", "dead_ratio")[0]) == 3  # the cut record was the last tensor


def test_missing_or_empty_log_dirs_say_what_was_expected(tmp_path):
    with pytest.raises(NoRunError, match="is not a directory"):
        load_run(str(tmp_path / "missing"))
    with pytest.raises(NoRunError, match="no rnn-monitor data.*RNNMonitor"):
        load_run(str(tmp_path))


def test_load_run_does_not_import_tensorflow(log_dir):
    _write(log_dir)
    code = (
        "import sys; from rnn_monitor import load_run; "
        f"r = load_run({log_dir!r}); assert r.epochs == [0, 1, 2]; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported TF'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_json_tensors_write_non_finite_numbers_as_null(tmp_path):
    """A diverged model puts NaN into what is written as JSON (importance scores, alert values)."""
    import json

    import numpy as np

    from rnn_monitor.logdir import metadata
    from rnn_monitor.logdir.reader import load_run
    from rnn_monitor.logdir.writer import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "rnn_monitor"))
    writer.json_tensor(metadata.MANIFEST, {"version": 1, "layers": [{"name": "rnn"}], "x": float("inf")}, 0)
    payload = [{"score": [1.5, float("nan"), np.float32("inf")], "arr": np.array([np.nan, 2.0])}]
    writer.json_tensor(metadata.ALERTS, payload, 0)
    writer.close()
    run = load_run(str(tmp_path))
    assert run.manifest["x"] is None
    assert run.alerts == [{"score": [1.5, None, None], "arr": [None, 2.0], "epoch": 0}]
    json.dumps(run.alerts, allow_nan=False)
