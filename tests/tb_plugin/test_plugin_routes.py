"""The RNN Monitor plugin's JSON routes, through a real TensorBoard data provider.

Logs come from `RNNMonitor` itself (weights, manifest, alerts) and, for the probe kinds, from
`benchmarks/make_synthetic_log.py`, which writes every plugin tensor exactly as
`rnn_monitor.logdir.metadata` lays it out. The app is TensorBoard's own WSGI app with the plugin
mounted, queried with werkzeug's test client, as the browser would.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import pathlib
import sys

import numpy as np
import pytest
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_ingester
from tensorboard.backend.event_processing import data_provider as mux_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
from tensorboard.plugins import base_plugin
from werkzeug import test as wtest

from rnn_monitor.logdir import metadata
from tb_plugin import cache as plugin_cache
from tb_plugin.responses import gradients
from tb_plugin.plugin import RNNMonitorPlugin

ROOT = pathlib.Path(__file__).resolve().parents[2]
BASE = "/data/plugin/rnn_monitor"


def _load_synthetic():
    spec = importlib.util.spec_from_file_location(
        "make_synthetic_log", ROOT / "benchmarks" / "make_synthetic_log.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


synthetic = _load_synthetic()


def make_client(logdir: str, samples: int | None = 0) -> wtest.Client:
    """TensorBoard's WSGI app over `logdir`; `samples` = tensors kept per series (0: all)."""
    guidance = {} if samples is None else {"rnn_monitor": samples}
    # Exactly what `tensorboard --logdir` (Python loader) does, --samples_per_plugin included.
    mux = pem.EventMultiplexer(
        size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
        tensor_size_guidance=dict(data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE, **guidance),
    )
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    provider = mux_provider.MultiplexerDataProvider(mux, logdir)
    ctx = base_plugin.TBContext(
        logdir=logdir, data_provider=provider, multiplexer=mux,
        sampling_hints=guidance or None,
    )
    app = application.TensorBoardWSGI([RNNMonitorPlugin(ctx)], data_provider=provider)
    return wtest.Client(app)


def grid(field: dict) -> np.ndarray:
    """A route's exact float32 grid (base64, little-endian) as numpy."""
    assert field["encoding"] == "float32-le-base64"
    return np.frombuffer(base64.b64decode(field["data"]), dtype="<f4").reshape(field["shape"])


def get(client, route, **params):
    resp = client.get(BASE + route, query_string=params)
    body = resp.get_data(as_text=True)
    return resp.status_code, (json.loads(body) if resp.mimetype == "application/json" else body)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    synthetic.write_log(str(d), epochs=5, n_layers=3, timesteps=24, units=8, text_samples=2)
    return str(d)


@pytest.fixture(scope="module")
def client(synth_dir):
    return make_client(synth_dir)


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory):
    """A log written by RNNMonitor during a real (tiny) fit."""
    import keras

    from rnn_monitor import RNNMonitor

    keras.utils.set_random_seed(0)
    d = str(tmp_path_factory.mktemp("real"))
    model = keras.Sequential([
        keras.Input((12,)), keras.layers.Embedding(20, 6),
        keras.layers.LSTM(8, return_sequences=True, name="lstm"),
        keras.layers.Bidirectional(keras.layers.GRU(4)), keras.layers.Dense(20),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.randint(0, 20, (32, 12))
    y = np.random.randint(0, 20, (32,))
    model.fit(x, y, epochs=2, verbose=0, callbacks=[RNNMonitor(d)])
    return d


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    """A log written by RNNMonitor with probe data and a vocabulary (the real probe)."""
    import keras

    from rnn_monitor import RNNMonitor

    keras.utils.set_random_seed(0)
    d = str(tmp_path_factory.mktemp("probe"))
    vocab = list("abcdefgh \n")
    x = np.random.randint(0, len(vocab), (24, 10))
    y = np.random.randint(0, len(vocab), (24, 10))
    model = keras.Sequential([
        keras.Input((10,)), keras.layers.Embedding(len(vocab), 4),
        keras.layers.LSTM(6, return_sequences=True, name="lstm"),
        keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True), name="bi"),
        keras.layers.Dense(len(vocab)),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    monitor = RNNMonitor(d, probe_data=(x[:4], y[:4]), vocabulary=vocab, text_samples=2, raise_errors=True)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[monitor])
    return d


def test_routes_on_a_real_probe_log(probe_dir):
    c = make_client(probe_dir)
    code, body = get(c, "/runs")
    assert code == 200
    (run,) = body["runs"]
    layers = {l["name"]: l for l in run["layers"]}
    assert set(layers) == {"lstm", "bi/forward", "bi/backward"}
    has = layers["lstm"]["has"]
    assert not has.pop("generated_activations")  # logged only with RNNMonitor(generate=...)
    assert not has.pop("average_input_ids")  # only for vocabularies of more than 12 tokens
    assert all(has.values()) and "h" in layers["lstm"]["states"]
    for name, units in (("lstm", 6), ("bi/backward", 3)):
        code, g = get(c, "/gradients", run="rnn_monitor", layer=name)
        assert code == 200 and g["epochs"] == [0, 1] and g["timesteps"] == 10
        code, gu = get(c, "/gradient_units", run="rnn_monitor", layer=name, epoch="0")
        assert code == 200 and (gu["timesteps"], gu["units"]) == (10, units)
        code, f = get(c, "/flow", run="rnn_monitor", layer=name)
        assert code == 200 and grid(f["flow"]).shape[0] == 2 and len(f["horizon"]) == 2
        code, h = get(c, "/health", run="rnn_monitor", layer=name)
        assert code == 200 and set(h["health"]) >= {"grad_norm", "grad_horizon", "dead_ratio"}
    code, act = get(c, "/activations", run="rnn_monitor", layer="lstm")
    assert code == 200 and act["shape"][1:] == [10, 6]
    assert act["tokens"] and set(act["tokens"][0]) <= set("abcdefgh \n")


def test_a_torn_record_and_a_run_continued_in_a_new_file(tmp_path):
    """After a fault of the disk a file can end in a torn record, and the run goes on in a new
    file that starts with the manifest again: the plugin shows every complete epoch of both."""
    from rnn_monitor import load_run
    from rnn_monitor.logdir.event_file import record
    from rnn_monitor.logdir.events import event_files
    from rnn_monitor.logdir.writer import SummaryWriter

    run_dir = synthetic.write_log(str(tmp_path), epochs=3, n_layers=1, timesteps=6, units=3, text_samples=1)
    (first,) = event_files(run_dir)
    with open(first, "ab") as handle:  # half of one more record
        torn = record(b"x" * 64)
        handle.write(torn[: len(torn) // 2])
    writer = SummaryWriter(run_dir)
    writer.json_tensor(metadata.MANIFEST, load_run(str(tmp_path)).manifest, 0)
    writer.scalar("lstm/dead_ratio", 0.25, 3)
    writer.close()
    c = make_client(str(tmp_path))
    code, body = get(c, "/runs")
    assert code == 200 and [l["name"] for l in body["runs"][0]["layers"]] == ["lstm"]
    code, g = get(c, "/gradients", run="rnn_monitor", layer="lstm")
    assert code == 200 and g["epochs"] == [0, 1, 2]
    code, h = get(c, "/health", run="rnn_monitor", layer="lstm")
    assert code == 200 and h["series"]["dead_ratio"]["epochs"][-1] == 3
    assert load_run(str(tmp_path)).epochs == [0, 1, 2, 3]


@pytest.mark.parametrize("probe, why", [
    (None, "the run was logged without probe data"),
    ({"states": {"lstm": ["h", "c"]}}, "the probe part was switched off during training"),
    ({"states": {}}, "the probe does not cover this layer"),
])
def test_a_layer_without_probe_data_says_why_and_keeps_its_weights(tmp_path, probe, why):
    """A layer the manifest lists but nothing was probed for (no probe data, the probe part
    switched off, a layer the probe cannot step): every layer route answers with the reason,
    never 'unknown layer', and the Health view has its weights."""
    from rnn_monitor.logdir.writer import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "rnn_monitor"))
    writer.json_tensor(metadata.MANIFEST, {"layers": [{"name": "lstm", "gates": ["i", "f", "c", "o"]}],
                                           "probe": probe}, 0)
    for epoch in range(2):
        writer.scalar(metadata.scalar_tag("lstm", "kernel/i/l2"), 1.0 + epoch, epoch)
    writer.close()
    c = make_client(str(tmp_path))
    code, body = get(c, "/runs")
    (layer,) = body["runs"][0]["layers"]
    assert code == 200 and layer["missing"].startswith(why) and not any(layer["has"].values())
    for route, extra in (("/gradients", {}), ("/gradient_units", {"epoch": "0"}), ("/flow", {}),
                         ("/activations", {}), ("/units", {}), ("/unit", {"unit": "0"})):
        code, answer = get(c, route, run="rnn_monitor", layer="lstm", **extra)
        assert code == 404 and why in answer["error"] and "unknown layer" not in answer["error"], (route, answer)
    code, health = get(c, "/health", run="rnn_monitor", layer="lstm")
    assert code == 200 and health["series"]["kernel/i/l2"]["values"] == [1.0, 2.0]
    code, answer = get(c, "/gradients", run="rnn_monitor", layer="gru")
    assert code == 404 and "unknown layer" in answer["error"]


# --------------------------------------------------------------------------- runs
def test_runs_lists_layers_states_and_kinds(client):
    code, body = get(client, "/runs")
    assert code == 200
    (run,) = body["runs"]
    assert run["run"] == "rnn_monitor"
    names = [l["name"] for l in run["layers"]]
    assert names == ["lstm", "bi_gru/forward", "bi_gru/backward"]
    lstm = run["layers"][0]
    assert lstm["gates"] == ["i", "f", "c", "o"]
    assert lstm["states"][:2] == ["h", "c"] and set(lstm["states"]) >= {"i", "f", "o"}
    gradient_kinds = ("timestep_gradients", "output_gradients", "timestep_grad_norm", "temporal_flow")
    assert all(lstm["has"][k] for k in gradient_kinds) and not lstm["has"]["average_input"]  # synthetic: none
    assert run["has_tokens"] and run["has_alerts"]
    assert body["samples_flag"] == "--samples_per_plugin rnn_monitor=0"


def test_runs_from_real_callback_log(real_dir):
    c = make_client(real_dir)
    code, body = get(c, "/runs")
    assert code == 200
    (run,) = body["runs"]
    names = [l["name"] for l in run["layers"]]
    assert names[0] == "lstm" and any(n.endswith("/backward") for n in names)
    assert run["layers"][0]["gates"] == ["i", "f", "c", "o"]
    # Health comes from standard scalars, which the weight part always writes.
    code, health = get(c, "/health", run="rnn_monitor", layer="lstm")
    assert code == 200
    assert health["series"]["kernel/i/l2"]["epochs"] == [0, 1]
    assert all(v > 0 for v in health["series"]["kernel/i/l2"]["values"])
    code, alerts = get(c, "/alerts", run="rnn_monitor")
    assert code == 200 and alerts["enabled"] is True and isinstance(alerts["alerts"], list)


def test_empty_logdir_is_a_friendly_empty_state(tmp_path):
    c = make_client(str(tmp_path))
    code, body = get(c, "/runs")
    assert code == 200 and body["runs"] == [] and body["notes"] == []


def test_log_without_manifest_is_noted_not_listed(tmp_path):
    from rnn_monitor.logdir.writer import SummaryWriter

    w = SummaryWriter(str(tmp_path / "old" / "rnn_monitor"))
    w.plugin_tensor("timestep_grad_norm", np.ones(4, np.float32), 0, layer="lstm")
    w.close()
    code, body = get(make_client(str(tmp_path)), "/runs")
    assert code == 200 and body["runs"] == []
    assert any("no manifest" in n for n in body["notes"])


def test_newer_content_version_is_skipped_with_a_note(tmp_path):
    from rnn_monitor.logdir.writer import SummaryWriter

    w = SummaryWriter(str(tmp_path / "rnn_monitor"))
    w.plugin_tensor("timestep_grad_norm", np.ones(4, np.float32), 0, layer="lstm", version=99)
    w.close()
    code, body = get(make_client(str(tmp_path)), "/runs")
    assert code == 200 and body["runs"] == []
    assert any("newer rnn-monitor" in n for n in body["notes"])


# --------------------------------------------------------------------------- gradients
def test_gradients_matrix_is_timestep_by_epoch(client, synth_dir):
    code, body = get(client, "/gradients", run="rnn_monitor", layer="lstm")
    assert code == 200
    assert body["epochs"] == [0, 1, 2, 3, 4] and body["timesteps"] == 24
    m = grid(body["matrix"])
    assert m.shape == (24, 5)
    assert 0 < body["min_positive"] <= body["max"]
    # forward layer: gradient largest at the last step
    assert m[-3:, -1].mean() > 3 * m[:3, -1].mean()
    assert body["sampling"] is None
    assert body["unit_kinds"] == ["timestep_gradients", "output_gradients"]


def test_gradient_units_at_epoch(client):
    code, body = get(client, "/gradient_units", run="rnn_monitor", layer="bi_gru/backward", epoch="2")
    assert code == 200
    assert body["epoch"] == 2 and body["timesteps"] == 24 and body["units"] == 8
    vals = grid(body["values"])
    assert vals.shape == (24, 8) and np.all(vals > 0)
    code, last = get(client, "/gradient_units", run="rnn_monitor", layer="lstm", kind="output_gradients")
    assert code == 200 and last["epoch"] == 4 and last["kind"] == "output_gradients"


def test_gradient_units_say_their_time_bin(tmp_path):
    """Per-unit gradients written as means over 4 steps: the route says so (time_bin) and sends
    ceil(T / 4) columns; g[t] keeps every step."""
    synthetic.write_log(str(tmp_path), epochs=2, n_layers=1, timesteps=10, units=3, text_samples=1,
                        gradients_float32=True, time_bin=4)
    c = make_client(str(tmp_path))
    code, body = get(c, "/gradient_units", run="rnn_monitor", layer="lstm")
    assert code == 200 and body["time_bin"] == 4 and grid(body["values"]).shape == (3, 3)
    code, g = get(c, "/gradients", run="rnn_monitor", layer="lstm")
    assert grid(g["matrix"]).shape == (10, 2)
    plain = tmp_path / "plain"
    synthetic.write_log(str(plain), epochs=1, n_layers=1, timesteps=5, units=2, text_samples=1)
    code, body = get(make_client(str(plain)), "/gradient_units", run="rnn_monitor", layer="lstm")
    assert body["time_bin"] == 1


def test_gradient_values_are_exact_and_nan_stays_out_of_the_json(tmp_path):
    from rnn_monitor.logdir.writer import SummaryWriter

    synthetic.write_log(str(tmp_path), epochs=2, n_layers=1, timesteps=5, units=3, text_samples=1)
    w = SummaryWriter(str(tmp_path / "rnn_monitor"))
    arr = np.ones((5, 3), np.float16)
    arr[0, :] = np.nan  # masked step
    arr[1, 1] = np.inf
    w.plugin_tensor("timestep_gradients", arr, 7, layer="lstm")
    w.close()
    c = make_client(str(tmp_path))
    resp = c.get(BASE + "/gradient_units", query_string={"run": "rnn_monitor", "layer": "lstm", "epoch": "7"})
    text = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "NaN" not in text and "Infinity" not in text
    body = json.loads(text)
    vals = grid(body["values"])
    assert np.isnan(vals[0]).all() and vals[1, 1] == np.inf  # masked step; an overflow
    assert (vals[2] == 1.0).all()
    # float32 values arrive exactly as written (JSON numbers were rounded to 3 digits)
    w = SummaryWriter(str(tmp_path / "rnn_monitor"))
    exact = np.array([[1.2345678e-20, 3.1415927], [2.7182817, 6.0e-8]], np.float32)
    w.plugin_tensor("timestep_gradients", exact, 8, layer="lstm")
    w.close()
    code, body = get(make_client(str(tmp_path)), "/gradient_units", run="rnn_monitor", layer="lstm", epoch="8")
    np.testing.assert_array_equal(grid(body["values"]), exact)


def test_flow_and_horizon(client):
    code, body = get(client, "/flow", run="rnn_monitor", layer="lstm")
    assert code == 200
    flow = grid(body["flow"])
    assert flow.shape == (5, 24) and flow[0, 0] == pytest.approx(1.0)
    assert body["floor"] == pytest.approx(1e-3)
    for row, h in zip(flow, body["horizon"]):
        assert h is not None and np.all(row[: h + 1] >= 1e-3)
        assert h == len(row) - 1 or row[h + 1] < 1e-3
    # horizon grows as the synthetic layer learns
    assert body["horizon"][-1] >= body["horizon"][0]


def test_horizon_definition():
    assert gradients.horizon(np.array([1.0, 0.1, 1e-4, 1.0]), 1e-3) == 1
    assert gradients.horizon(np.array([1e-5, 1.0]), 1e-3) is None
    assert gradients.horizon(np.array([1.0, np.nan]), 1e-3) == 0
    assert gradients.horizon(np.array([1.0, 1.0]), 1e-3) == 1


# --------------------------------------------------------------------------- activations
def test_activations_tokens_ranking_and_blob(client):
    code, body = get(client, "/activations", run="rnn_monitor", layer="lstm", state="h", epoch="4")
    assert code == 200
    S, T, U = body["shape"]
    assert (S, T, U) == (2, 24, 8)
    assert len(body["tokens"]) == 2 and len(body["tokens"][0]) == 24
    assert "".join(body["tokens"][0]).startswith('"""')  # json/encoder.py source
    assert sorted(body["ranking"]) == list(range(8))
    var = np.array(body["variance"], dtype=float)
    assert np.all(np.diff(var[body["ranking"]]) <= 1e-9)
    blob = np.frombuffer(base64.b64decode(body["data"]), dtype="<f2").reshape(S, T, U)
    unit = body["unit"]
    assert unit == body["ranking"][0]
    np.testing.assert_allclose(np.array(body["values"], dtype=float), blob[:, :, unit], rtol=1e-3, atol=1e-3)
    assert set(body["states"]) >= {"h", "c", "i", "f", "c", "o"}
    code, other = get(client, "/activations", run="rnn_monitor", layer="lstm", state="f", epoch="1", unit="3")
    assert code == 200 and other["unit"] == 3 and other["epoch"] == 1
    assert np.nanmin(np.array(other["values"], dtype=float)) >= 0  # sigmoid gate


def test_activations_default_state_and_epoch(client):
    code, body = get(client, "/activations", run="rnn_monitor", layer="bi_gru/forward")
    assert code == 200 and body["state"] == "h" and body["epoch"] == 4


# --------------------------------------------------------------------------- health, alerts
def test_health_series_per_gate(client):
    code, body = get(client, "/health", run="rnn_monitor", layer="bi_gru/forward")
    assert code == 200
    assert body["gates"] == ["z", "r", "h"]
    assert body["health"] == list(metadata.HEALTH_SCALARS)
    s = body["series"]["recurrent_kernel/z/l2"]
    assert s["epochs"] == [0, 1, 2, 3, 4] and len(s["values"]) == 5
    # "bi_gru/forward" must not pick up "bi_gru/backward" scalars
    assert all(not k.startswith("backward") for k in body["series"])


def test_alerts_list(client):
    code, body = get(client, "/alerts", run="rnn_monitor")
    assert code == 200
    kinds = [(a["epoch"], a["kind"]) for a in body["alerts"]]
    assert kinds == [(1, "vanishing"), (3, "dead")]
    assert all(set(a) >= {"epoch", "layer", "kind", "message"} for a in body["alerts"])
    # The finding raised at epoch 0 is active at logged epochs 0-2 (its 0/1 scalar), not after.
    assert body["findings_enabled"] is True
    [finding] = body["findings"]
    assert (finding["layer"], finding["kind"], finding["epoch"]) == ("lstm", "saturation", 0)
    assert finding["epochs"] == [0, 1, 2] and finding["last"] == 2
    assert "not an alert" in finding["message"]


def test_findings_without_their_scalars_are_their_raising_epoch(tmp_path):
    """A log with finding records but no 0/1 scalars (e.g. scalars left out): each finding
    spans the epoch it was raised at, nothing is invented."""
    from rnn_monitor.logdir.writer import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "run"))
    writer.json_tensor(metadata.MANIFEST, {"layers": [{"name": "gru"}]}, 0)
    for epoch in range(3):
        writer.json_tensor(metadata.ALERTS, [], epoch)
        records = [{"epoch": 1, "layer": "model", "kind": "stalled", "message": "m"}] if epoch == 1 else []
        writer.json_tensor(metadata.FINDINGS, records, epoch)
    writer.close()
    code, body = get(make_client(str(tmp_path)), "/alerts", run="run")
    assert code == 200 and body["alerts"] == []
    assert [(f["layer"], f["kind"], f["epochs"]) for f in body["findings"]] == [("model", "stalled", [1])]


# --------------------------------------------------------------------------- sampling
def test_sampling_is_reported_with_the_flag(tmp_path):
    synthetic.write_log(str(tmp_path), epochs=14, n_layers=1, timesteps=6, units=3, text_samples=1)
    c = make_client(str(tmp_path), samples=None)  # TensorBoard's default: 10 tensors per series
    code, body = get(c, "/gradients", run="rnn_monitor", layer="lstm")
    assert code == 200
    assert len(body["epochs"]) == 10
    s = body["sampling"]
    assert s["shown"] == 10 and s["logged"] == 14
    assert "--samples_per_plugin rnn_monitor=0" in s["message"]
    code, alerts = get(c, "/alerts", run="rnn_monitor")
    assert alerts["sampling"] is not None
    # With every epoch kept, no note.
    code, full = get(make_client(str(tmp_path), samples=0), "/gradients", run="rnn_monitor", layer="lstm")
    assert len(full["epochs"]) == 14 and full["sampling"] is None


class _SizeLimitedProvider:
    """The Python loader's provider with the Rust data server's gRPC size limit: an answer of
    more than `limit` bytes fails as grpc's client fails ("Received message larger than max")."""

    def __init__(self, inner, limit: int) -> None:
        self.inner, self.limit, self.asked = inner, limit, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read_tensors(self, ctx, *, experiment_id, plugin_name, downsample, run_tag_filter):
        self.asked.append(downsample)
        result = self.inner.read_tensors(ctx, experiment_id=experiment_id, plugin_name=plugin_name,
                                         downsample=downsample, run_tag_filter=run_tag_filter)
        size = sum(d.numpy.nbytes for tags in result.values() for data in tags.values() for d in data)
        if size > self.limit:
            raise RuntimeError(f"<_InactiveRpcError: status = StatusCode.RESOURCE_EXHAUSTED, details = "
                               f'"Received message larger than max ({size} vs. {self.limit})">')
        return result


def test_a_series_over_the_data_servers_size_limit_is_read_downsampled(tmp_path):
    """Issue 13: a series larger than the data server sends at once (256 MB) was an HTTP 500;
    it is read evenly downsampled instead, and the page is told how many epochs it shows."""
    synthetic.write_log(str(tmp_path), epochs=12, n_layers=1, timesteps=40, units=16, text_samples=2)
    mux = pem.EventMultiplexer(tensor_size_guidance={"rnn_monitor": 0})
    mux.AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    one_epoch = 2 * 40 * 16 * 2  # float16 [S, T, U] of one state
    provider = _SizeLimitedProvider(mux_provider.MultiplexerDataProvider(mux, str(tmp_path)), 5 * one_epoch + 100)
    ctx = base_plugin.TBContext(logdir=str(tmp_path), data_provider=provider, multiplexer=mux,
                                sampling_hints={"rnn_monitor": 0})
    c = wtest.Client(application.TensorBoardWSGI([RNNMonitorPlugin(ctx)], data_provider=provider))
    code, body = get(c, "/activations", run="rnn_monitor", layer="lstm", state="h")
    assert code == 200, body
    assert len(body["epochs"]) <= 5 and body["epochs"][-1] == 11 and body["epoch"] == 11
    assert body["sampling"]["shown"] == len(body["epochs"]) and body["sampling"]["logged"] == 12
    assert body["sampling"]["flag"] is None and "data server" in body["sampling"]["message"]
    # A series that fits is read whole, with no note.
    code, grads = get(c, "/gradients", run="rnn_monitor", layer="lstm")
    assert code == 200 and len(grads["epochs"]) == 12 and grads["sampling"] is None
    # Any other provider error is still an error.
    assert _fewer_steps_of(RuntimeError("unavailable")) is None


def _fewer_steps_of(exc):
    from tb_plugin.data_source import _fewer_steps

    class Meta:
        max_step = 99

    return _fewer_steps(exc, Meta(), 1_000_000)


# --------------------------------------------------------------------------- hostile input
@pytest.mark.parametrize(
    "route, params, status",
    [
        ("/gradients", {}, 400),
        ("/gradients", {"run": "rnn_monitor"}, 400),
        ("/gradients", {"run": "nope", "layer": "lstm"}, 404),
        ("/gradients", {"run": "../../etc/passwd", "layer": "lstm"}, 404),
        ("/gradients", {"run": "rnn_monitor", "layer": "../lstm"}, 404),
        ("/gradients", {"run": "rnn_monitor", "layer": "lstm/_rnn_monitor/timestep_grad_norm"}, 404),
        ("/gradients", {"run": "rnn_monitor", "layer": "x" * 5000}, 400),
        ("/gradient_units", {"run": "rnn_monitor", "layer": "lstm", "epoch": "99999999999999999999999"}, 400),
        ("/gradient_units", {"run": "rnn_monitor", "layer": "lstm", "epoch": "1e9"}, 400),
        ("/gradient_units", {"run": "rnn_monitor", "layer": "lstm", "epoch": "--5"}, 400),
        ("/gradient_units", {"run": "rnn_monitor", "layer": "lstm", "epoch": "\u0663"}, 400),
        ("/gradient_units", {"run": "rnn_monitor", "layer": "lstm", "epoch": " 1"}, 400),
        ("/gradient_units", {"run": "rnn_monitor", "layer": "lstm", "epoch": "123456789"}, 404),
        ("/gradient_units", {"run": "rnn_monitor", "layer": "lstm", "epoch": "-1"}, 404),
        ("/gradient_units", {"run": "rnn_monitor", "layer": "lstm", "kind": "../../secret"}, 400),
        ("/activations", {"run": "rnn_monitor", "layer": "lstm", "state": "../h"}, 404),
        ("/activations", {"run": "rnn_monitor", "layer": "lstm", "unit": "100000"}, 404),
        ("/activations", {"run": "rnn_monitor", "layer": "lstm", "unit": "abc"}, 400),
        ("/activations", {"run": "rnn_monitor", "layer": "lstm", "state": "h\x00"}, 400),
        ("/health", {"run": "rnn_monitor", "layer": "nope"}, 404),
        ("/alerts", {}, 400),
        ("/alerts", {"run": "/etc"}, 404),
    ],
)
def test_bad_and_hostile_parameters(client, synth_dir, route, params, status):
    resp = client.get(BASE + route, query_string=params)
    assert resp.status_code == status
    assert resp.mimetype == "application/json"
    text = resp.get_data(as_text=True)
    body = json.loads(text)
    assert set(body) == {"error"} and body["error"]
    assert "Traceback" not in text and synth_dir not in text and os.sep + "tmp" not in text


def test_unknown_routes_and_static_files(client):
    assert client.get(BASE + "/static/../plugin.py").status_code == 404
    assert client.get(BASE + "/static/responses.py").status_code == 404
    assert client.get(BASE + "/../../etc/passwd").status_code == 404
    js = client.get(BASE + "/static/app.js")
    assert js.status_code == 200 and js.mimetype == "text/javascript"
    app = js.get_data(as_text=True)
    assert "export async function render" in app
    # every module the entry imports (and they import) is served, as JavaScript
    import re

    pending, seen = ["app.js"], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        resp = client.get(BASE + "/static/" + name)
        assert resp.status_code == 200 and resp.mimetype == "text/javascript", name
        base = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
        for rel in re.findall(r'from "\./([^"]+)"', resp.get_data(as_text=True)):
            pending.append(base + rel)
        for rel in re.findall(r'from "\.\./([^"]+)"', resp.get_data(as_text=True)):
            pending.append(rel)
    assert {"views/gradients.js", "views/text.js", "views/health.js", "lib/heatmap.js"} <= seen
    assert client.get(BASE + "/static/views/../../plugin.py").status_code == 404
    css = client.get(BASE + "/static/style.css")
    assert css.status_code == 200 and css.mimetype == "text/css"


def test_post_is_refused(client):
    resp = client.post(BASE + "/runs")
    assert resp.status_code == 405 and "error" in json.loads(resp.get_data(as_text=True))


def test_plugin_metadata_and_no_tensorflow_import():
    code = (
        "import sys; from tb_plugin import cache, data_source, encoding, lookup, params, plugin, prefetch; "
        "from tb_plugin.responses import alerts, gradients, health, runs, text, units; "
        "md = plugin.RNNMonitorPlugin.frontend_metadata(None); "
        "assert md.es_module_path == '/static/app.js' and md.tab_name == 'RNN Monitor'; "
        "assert 'tensorflow' not in sys.modules, 'plugin imported TensorFlow'"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_entry_point_registered():
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="tensorboard_plugins") if ep.name == "rnn_monitor"]
    assert eps and eps[0].load() is RNNMonitorPlugin


def test_read_ahead_after_gradients_fills_the_cache(synth_dir):
    """After /gradients names a layer, its G and activations are read in the background."""
    import time as _time

    c = make_client(synth_dir)
    plugin = c.application._plugins[0] if hasattr(c.application, "_plugins") else None
    code, _ = get(c, "/gradients", run="rnn_monitor", layer="bi_gru/backward")
    assert code == 200
    if plugin is None:
        pytest.skip("cannot reach the plugin instance through this TensorBoard version")
    deadline = _time.time() + 20
    while plugin._read_ahead.busy and _time.time() < deadline:
        _time.sleep(0.05)
    keys = {k[2] for k in plugin._cache._items}
    assert "bi_gru/backward/_rnn_monitor/timestep_gradients" in keys
    assert "bi_gru/backward/_rnn_monitor/activations/h" in keys
    code, body = get(c, "/activations", run="rnn_monitor", layer="bi_gru/backward")
    assert code == 200 and body["state"] == "h"


def test_series_cache_is_bounded():
    cache = plugin_cache.SeriesCache(max_bytes=100)
    for i in range(10):
        cache.put(("k", i), 1, [i], 30)
    assert cache._bytes <= 100 and len(cache._items) == 3
    assert cache.get(("k", 9), 1) == [9] and cache.get(("k", 9), 2) is None
    assert cache.get(("k", 0), 1) is None


def test_unit_ids_follow_the_units_option():
    manifest = {"layers": [{"name": "lstm", "units": 8}], "probe": {"units": [5, 2, 40]}}
    assert metadata.activation_unit_ids(manifest, "lstm", 2) == [5, 2]  # 40 is outside the layer
    assert metadata.activation_unit_ids(manifest, "lstm", 3) == [0, 1, 2]  # does not fit: positions
    assert metadata.activation_unit_ids({"probe": None}, "lstm", 2) == [0, 1]
