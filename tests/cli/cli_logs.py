"""Logs like RNNMonitor's for the command-line tests, written with the real SummaryWriter and
AlertEngine (no TensorFlow), and a helper that runs the command in process."""

import os

import numpy as np

from rnn_monitor.alerts import AlertEngine
from rnn_monitor.cli import main as cli
from rnn_monitor.config import Thresholds
from rnn_monitor.logdir import metadata
from rnn_monitor.logdir.writer import SummaryWriter
from rnn_monitor.record import EpochRecord


def write_run(log_dir, horizons, layer="simple_rnn", T=100, gates=("h",), dead=0.0, learning=True):
    """A log like RNNMonitor's: manifest, per-gate l2 and health scalars, alerts per epoch.

    The flow is 1 up to the horizon and 1e-6 beyond; a run that is not `learning` keeps its
    probe loss at the constant-prediction loss (the vanishing alert needs both)."""
    writer = SummaryWriter(os.path.join(log_dir, metadata.RUN_SUBDIR))
    manifest = {
        "version": metadata.CONTENT_VERSION,
        "layers": [{"name": layer, "class": "SimpleRNN", "units": 8, "gates": list(gates)}],
        "thresholds": {},
    }
    writer.json_tensor(metadata.MANIFEST, manifest, 0)
    engine = AlertEngine(writer=writer, thresholds=Thresholds())
    for epoch, horizon in enumerate(horizons):
        record = EpochRecord(epoch)
        record.set_scalar(layer, "grad_horizon", horizon)
        record.set_scalar(layer, "dead_ratio", dead)
        record.set_scalar(layer, "saturated_ratio", 0.25)
        record.set_scalar(layer, "grad_norm", 0.01 * (epoch + 1))
        for role in metadata.WEIGHT_ROLES:
            for gate in gates:
                record.set_scalar(layer, metadata.gate_scalar_name(role, gate, "l2"), 1.0 + 0.1 * epoch)
        record.set_array(layer, "timesteps", np.array(T))
        flow = np.where(np.arange(T) <= horizon, 1.0, 1e-6).astype(np.float32)
        record.constant_loss = 1.0
        record.probe_loss = 0.5 / (epoch + 1) if learning else 1.0
        record.set_array(layer, "temporal_flow", flow)
        writer.plugin_tensor(metadata.TEMPORAL_FLOW, flow, epoch, layer=layer)
        for name, value in record.scalars[layer].items():
            writer.scalar(metadata.scalar_tag(layer, name), value, epoch)
        engine.evaluate(epoch, record, None)
    writer.close()
    return log_dir


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
