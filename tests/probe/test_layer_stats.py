"""`layer_stats`: one layer's probe accumulators -> the record's numbers and what is written,
checked against numpy on the full arrays the accumulators were built from (planted dead units,
masked steps, a backward layer, a gate check that fails)."""

import types

import numpy as np
import pytest

from rnn_monitor.config import Thresholds
from rnn_monitor.probe.layer_stats import layer_stats, recon_tolerance
from rnn_monitor.probe.results import CellFacts
from rnn_monitor.record import EpochRecord
from rnn_monitor.stats import unit_health

B, T, U = 5, 7, 4


def lstm_states(rng, valid):
    """h, c and the four gates [B, T, U] in processing order; units 0 and 1 planted dead."""
    c = rng.normal(size=(B, T, U))
    h = np.tanh(c) * 0.8
    h[:, :, :2] = 0.25  # constant output: dead
    gates = {g: 1 / (1 + np.exp(-rng.normal(size=(B, T, U)))) for g in ("i", "f", "o")}
    gates["g"] = np.tanh(rng.normal(size=(B, T, U)))
    h[~valid] = 40.0  # masked steps must not count
    return {"h": h, "c": c, **gates}


def probe_result(states, valid, recon=0.0, dh=None, rng=None):
    acc = unit_health.accumulate(states, valid, sigmoid_gates=("i", "f", "o"), tanh_output=np.tanh(states["c"]))
    acc["recon"] = np.float64(recon)
    res = {"acc": acc, "valid": valid, "samples": {k: v.astype(np.float32) for k, v in states.items()}}
    if dh is not None:
        vm = valid[:, :, None]
        res.update(
            grad_abs_sum=np.where(vm, np.abs(dh), 0).sum(axis=0), count_t=valid.sum(axis=0).astype(np.float64),
            out_abs_sum=np.where(vm, np.abs(2 * dh), 0).sum(axis=0),
            grad_norm_sum=np.where(valid, np.linalg.norm(dh, axis=-1), 0).sum(axis=0),
            flow_norm=np.abs(rng.normal(size=(B, T))) * valid, v_norm=np.full(B, 2.0),
            weight_grad_norm=np.float32(0.75), grad_nonfinite=0, weight_grad_nonfinite=0,
        )
    return res


def run(res, kind="lstm", direction="forward", gradients=False, units=None, said=None):
    info = types.SimpleNamespace(name="lstm", kind=kind, direction=direction)
    record = EpochRecord(0)
    said = [] if said is None else said
    facts = CellFacts(h_bounded=True, tanh_output=True, direct=True, recurrent=True, positions=1,
                      dtype_eps=float(np.finfo(np.float32).eps))
    out = layer_stats(info, res, record, facts, thresholds=Thresholds(), units=units, text_samples=3,
                      gradients=gradients, say_once=lambda key, *a, **k: said.append(key))
    return out, record


def masked_valid():
    valid = np.ones((B, T), dtype=bool)
    valid[1, 4:] = False
    valid[3, 2:] = False
    return valid


def test_unit_health_and_activations_of_a_backward_layer():
    rng = np.random.default_rng(0)
    valid = masked_valid()
    states = lstm_states(rng, valid)
    out, record = run(probe_result(states, valid), direction="backward")
    h = np.where(valid[:, :, None], states["h"], np.nan)
    std = np.nanstd(h.reshape(-1, U), axis=0)
    assert record.scalars["lstm"]["dead_ratio"] == pytest.approx(np.mean(std < 1e-3)) == 0.5
    assert out.dead.tolist() == [True, True, False, False]
    low = np.where(valid[:, :, None], states["f"] < 0.1, False).sum() / (valid.sum() * U)
    assert record.scalars["lstm"]["gate/f/saturation_left"] == pytest.approx(low)
    # input order: the backward layer's time axis reversed; masked steps NaN
    np.testing.assert_allclose(out.activations["c"], np.where(valid, 1, np.nan)[:3, ::-1, None]
                               * states["c"][:3, ::-1], rtol=1e-6)
    assert set(out.activations) == {"h", "c", "i", "f", "g", "o"} and out.h_rows.shape == (B, T, U)
    assert np.isnan(out.h_rows[3, :T - 2]).all() and np.isfinite(out.h_rows[3, T - 2:]).all()


def test_gates_left_out_when_the_rebuilt_gates_do_not_match():
    rng = np.random.default_rng(1)
    valid = np.ones((B, T), dtype=bool)
    said = []
    out, record = run(probe_result(lstm_states(rng, valid), valid, recon=2 * recon_tolerance(0.0)), said=said)
    assert not out.gates_ok and set(out.activations) == {"h", "c"} and said == ["recon:lstm"]
    assert not any(k.startswith("gate/") for k in record.scalars["lstm"])


def test_gradients_through_time_in_input_order():
    rng = np.random.default_rng(2)
    valid = masked_valid()
    dh = rng.normal(size=(B, T, U))
    res = probe_result(lstm_states(rng, valid), valid, dh=dh, rng=rng)
    out, record = run(res, direction="backward", gradients=True)
    mean_abs = np.nanmean(np.where(valid[:, :, None], np.abs(dh), np.nan), axis=0)  # processing order
    np.testing.assert_allclose(out.G, mean_abs[::-1], rtol=1e-12)
    np.testing.assert_allclose(out.O, 2 * mean_abs[::-1], rtol=1e-12)
    # F[k]: over the rows with a valid step k steps before their last one, sum |flow| / sum |v|
    expected = []
    for k in range(T):
        rows = [(b, np.nonzero(valid[b])[0][-1 - k]) for b in range(B) if valid[b].sum() > k]
        expected.append(sum(res["flow_norm"][b, t] for b, t in rows) / (2.0 * len(rows)))
    np.testing.assert_allclose(out.F, expected, rtol=1e-12)
    np.testing.assert_allclose(record.arrays["lstm"]["unit_grad"], mean_abs.mean(axis=0), rtol=1e-12)
    assert record.scalars["lstm"]["grad_norm"] == pytest.approx(0.75)
    assert int(record.arrays["lstm"]["timesteps"]) == T


def test_units_keeps_only_the_chosen_indices_and_says_which_were_ignored():
    rng = np.random.default_rng(3)
    valid = np.ones((B, T), dtype=bool)
    states = lstm_states(rng, valid)
    said = []
    out, _ = run(probe_result(states, valid), units=[3, 1, 9], said=said)
    np.testing.assert_allclose(out.activations["h"], states["h"][:3][..., [3, 1]], rtol=1e-6)
    assert set(said) == {"units:lstm"}  # said once per key by the real say_once
