"""`rnn-monitor text`: the probe text (or the text generated at an epoch) with each token's
background coloured by one unit's activation (johndah's and Karpathy's terminal view), read
from the log, no TensorFlow.

Colour scale: the dashboard's diverging scale (`rnn_monitor.colour_scale`: near-white at 0, red
for positive and blue for negative activations, grey for masked steps), scaled by the largest
|activation| of the shown sequences (or `--scale`), text in the dashboard's readable colour.
Without colour (not a terminal, `--color never`, NO_COLOR) each text line is followed by a line
of markers: ``+``/``#`` positive, ``-``/``=`` negative (``#``, ``=`` above half the scale),
blank near 0.
"""

from __future__ import annotations

import json
import math
from typing import Any, Optional, Sequence

import numpy as np

from rnn_monitor.cli.terminal import Style
from rnn_monitor.colour_scale import diverging_rgb, text_colour

NEAR_ZERO = 0.1  # |value| / scale below this: no marker in plain text


def _show(token: str) -> tuple[str, bool]:
    """How a token prints, and whether it ends the line (newline tokens)."""
    if token == "\n":
        return "↵", True
    if token == "\t":
        return "    ", False
    if token.isprintable():
        return token, False
    return token.encode("unicode_escape").decode("ascii"), False


def render(tokens: Sequence[str], values: np.ndarray, scale: float, style: Style) -> str:
    """One sequence: tokens on coloured backgrounds, or text lines each with a marker line."""
    lines: list[str] = []
    text, marks = [], []
    for token, value in zip(tokens, values):
        shown, newline = _show(str(token))
        if not style.unicode and shown == "↵":
            shown = "\\n"
        value = float(value)
        if style.colour:
            text.append(_coloured(shown, value, scale, style))
        else:
            text.append(shown)
            marks.append(_marker(value, scale) * len(shown))
        if newline:
            lines.append("".join(text))
            if not style.colour:
                lines.append("".join(marks).rstrip())
            text, marks = [], []
    if text:
        lines.append("".join(text))
        if not style.colour:
            lines.append("".join(marks).rstrip())
    return "\n".join(lines)


def _coloured(text: str, value: float, scale: float, style: Style) -> str:
    """`text` on the colour of `value` (grey when masked), in the readable text colour."""
    background = diverging_rgb(value, scale)
    return style.on(text, background, text_colour(background))


def _marker(value: float, scale: float) -> str:
    if not math.isfinite(value) or scale <= 0:
        return " "
    t = value / scale
    if abs(t) < NEAR_ZERO:
        return " "
    if t > 0:
        return "#" if t > 0.5 else "+"
    return "=" if t < -0.5 else "-"


def legend(scale: float, style: Style) -> str:
    """The colour key, one line."""
    if not style.colour:
        return (f"markers: '#' > +{scale / 2:.3g}, '+' > +{NEAR_ZERO * scale:.2g}, "
                f"'-' < -{NEAR_ZERO * scale:.2g}, '=' < -{scale / 2:.3g}")
    cells = [_coloured(f" {v:+.2g} ", v, scale, style) for v in (-scale, -scale / 2, 0.0, scale / 2, scale)]
    return "colour: " + "".join(cells)


def select(run: Any, layer: str, unit: int, state: str, epoch: Optional[int]) -> tuple[np.ndarray, list, int]:
    """``(values [S, T], token rows, epoch)`` of one unit of the probe text; ValueError with what
    exists when the layer, state, unit or epoch is not in the log."""
    if layer not in run.layers:
        raise ValueError(f"no layer {layer!r} in this run; layers: {', '.join(run.layers)}")
    states = run.activation_states(layer)
    if state not in states:
        raise ValueError(f"no activations of state {state!r} for {layer}; states logged: {', '.join(states) or 'none'}")
    try:
        acts = run.activations(layer, state, epoch)
    except KeyError as exc:
        raise ValueError(str(exc).strip("'\"")) from None
    ids = run.unit_ids(layer, state)
    if unit not in ids:
        shown = f"0..{ids[-1]}" if ids == list(range(len(ids))) else ", ".join(map(str, ids))
        raise ValueError(f"unit {unit} of {layer} was not logged; units logged: {shown}")
    values = acts[:, :, ids.index(unit)]
    tokens = run.tokens
    if tokens is None:
        rows = [[f"{t % 10}" for t in range(values.shape[1])] for _ in range(values.shape[0])]
    else:
        rows = [list(r[: values.shape[1]]) for r in tokens[: values.shape[0]]]
    chosen = epoch if epoch is not None else max(run.epochs) if run.epochs else 0
    return values, rows, int(chosen)


def select_generated(run: Any, layer: str, unit: int, state: str, epoch: Optional[int]) -> tuple[np.ndarray, list, int]:
    """Like `select`, for the text generated at `epoch`: one sequence, every unit."""
    try:
        gen = run.generated(epoch)
    except KeyError as exc:
        raise ValueError(str(exc).strip("'\"")) from None
    layers = gen["activations"]
    if layer not in layers:
        raise ValueError(f"no generated activations for layer {layer!r}; layers: {', '.join(layers) or 'none'}")
    if state not in layers[layer]:
        raise ValueError(f"no generated activations of state {state!r} for {layer}; states: {', '.join(layers[layer])}")
    acts = layers[layer][state]
    if not 0 <= unit < acts.shape[1]:
        raise ValueError(f"unit {unit} of {layer} was not logged; units logged: 0..{acts.shape[1] - 1}")
    return acts[None, :, unit], [gen["tokens"]], int(gen["epoch"])


def run_text(run: Any, layer: str, unit: int, state: str, epoch: Optional[int],
             sequences: Optional[Sequence[int]], scale: Optional[float], as_json: bool, style: Style,
             source: str = "probe") -> str:
    """What `rnn-monitor text` prints (`source`: "probe" text or "generated" text)."""
    if source == "generated":
        values, rows, chosen = select_generated(run, layer, unit, state, epoch)
    else:
        values, rows, chosen = select(run, layer, unit, state, epoch)
    picked = list(range(len(rows))) if not sequences else list(sequences)
    bad = [s for s in picked if not 0 <= s < len(rows)]
    if bad:
        raise ValueError(f"--sequence {bad[0]}: the log holds {len(rows)} probe sequence(s), 0..{len(rows) - 1}")
    if scale is None:
        shown = values[picked]
        finite = np.abs(shown[np.isfinite(shown)])
        scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    if as_json:
        return json.dumps({
            "layer": layer, "unit": unit, "state": state, "epoch": chosen, "scale": scale, "source": source,
            "sequences": [
                {"index": s, "tokens": [str(t) for t in rows[s]],
                 "values": [None if not math.isfinite(float(v)) else round(float(v), 5) for v in values[s]]}
                for s in picked
            ],
        }, indent=2)
    out = [f"{layer} unit {unit} ({state}), epoch {chosen}, {source} text; {legend(scale, style)}"]
    for s in picked:
        out.append("")
        out.append(style(f"-- sequence {s}" if source == "probe" else "-- generated", "bold"))
        out.append(render(rows[s], values[s], scale, style))
    return "\n".join(out)
