"""Terminal rendering shared by the commands: colour, sparklines, number formatting, wrapping.

Nothing here reads logs; ANSI colour only when the caller asks (`Style(colour=True)`).
"""

from __future__ import annotations

import math
import os
import textwrap
from typing import Any, Optional, Sequence

WIDTH = 80
SPARK_UNICODE = "▁▂▃▄▅▆▇█"
SPARK_ASCII = "_.-:=+*#"
MAX_SPARK = 30  # epochs shown in a trend; older ones are left out (marked with "…")

_COLOURS = {"red": "31", "yellow": "33", "green": "32", "bold": "1", "dim": "2", "cyan": "36"}
_KIND_COLOUR = {
    "nonfinite": "red",
    "exploding": "red",
    "vanishing": "yellow",
    "dead": "yellow",
    "saturated": "yellow",
}


def number(value: Any) -> Optional[float]:
    """A float for JSON, None when missing or non-finite."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class Style:
    """How to print: ANSI colour or not, Unicode or ASCII."""

    def __init__(self, colour: bool, unicode: bool = True) -> None:
        self.colour = colour
        self.unicode = unicode
        self.spark_chars = SPARK_UNICODE if unicode else SPARK_ASCII
        self.ellipsis = "…" if unicode else "..."
        self.arrow = "→" if unicode else "->"

    def __call__(self, text: str, colour: str) -> str:
        if not self.colour or colour not in _COLOURS:
            return text
        return f"\033[{_COLOURS[colour]}m{text}\033[0m"


def sparkline(
    values: Sequence[Optional[float]],
    chars: str = SPARK_UNICODE,
    log: bool = False,
    lo: Optional[float] = None,
    hi: Optional[float] = None,
    min_rel_span: float = 0.0,
) -> str:
    """One character per value, " " for missing.

    Scaled between `lo` and `hi` (default the series' min and max). `min_rel_span` keeps noise
    flat: the scale spans at least that fraction of the largest magnitude, centred on the data.
    """
    vals = []
    for v in values:
        v = number(v)
        if v is not None and log:
            v = math.log10(v) if v > 0 else None
        vals.append(v)
    finite = [v for v in vals if v is not None]
    if not finite:
        return " " * len(vals)
    lo = min(finite) if lo is None else lo
    hi = max(finite) if hi is None else hi
    span = hi - lo
    wanted = min_rel_span * max(abs(hi), abs(lo))
    if span < wanted:
        lo, hi = lo - (wanted - span) / 2, hi + (wanted - span) / 2
    out = []
    for v in vals:
        if v is None:
            out.append(" ")
        elif hi - lo <= 1e-12 * max(1.0, abs(hi)):
            out.append(chars[len(chars) // 2])
        else:
            frac = min(1.0, max(0.0, (v - lo) / (hi - lo)))
            out.append(chars[int(round(frac * (len(chars) - 1)))])
    return "".join(out)


def fmt(value: Optional[float]) -> str:
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.1e}"
    if value == int(value) and abs(value) < 1e4:
        return str(int(value))
    return f"{value:.3g}"


def wrap(text: str, indent: str, width: int = WIDTH) -> list[str]:
    return textwrap.wrap(
        text, width=width, initial_indent=indent, subsequent_indent=indent + "  ",
        break_long_words=True, break_on_hyphens=False,
    ) or [indent]


def alert_lines(alerts: list[dict], style: Style, indent: str = "    ") -> list[str]:
    lines = []
    for a in alerts:
        kind = str(a.get("kind", "?"))
        layer = str(a.get("layer", "?"))
        message = str(a.get("message", "")) or kind
        if layer not in message:
            message = f"{layer}: {message}"
        body = wrap(f"epoch {a.get('epoch', '?')}: {message}", indent)
        # colour the first mention of the kind (after wrapping, so the widths stay right)
        i = body[0].find(kind)
        if i >= 0:
            body[0] = body[0][:i] + style(kind, _KIND_COLOUR.get(kind, "")) + body[0][i + len(kind):]
        lines.extend(body)
    return lines


def use_colour(choice: str, stream: Any) -> bool:
    """ANSI colour for `--color auto|always|never` (auto: only on a terminal, never with NO_COLOR)."""
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def can_unicode(stream: Any) -> bool:
    """True when the stream's encoding can print the sparkline and arrow characters."""
    encoding = getattr(stream, "encoding", None) or ""
    try:
        "▁█→…".encode(encoding or "ascii")
        return True
    except (LookupError, UnicodeEncodeError):
        return False
