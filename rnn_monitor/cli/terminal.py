"""Terminal rendering shared by the commands: colour, sparklines, number formatting, wrapping.

Nothing here reads logs. Colour only when the caller asks (`Style(colour=...)`), as ANSI codes
written by rich for the terminal's colour system (16, 256 or 24-bit colours).
"""

from __future__ import annotations

import math
import os
import textwrap
from typing import Any, Optional, Sequence, Union

from rich.color import Color, ColorSystem
from rich.console import COLOR_SYSTEMS, Console
from rich.style import Style as RichStyle

WIDTH = 80
SPARK_UNICODE = "▁▂▃▄▅▆▇█"
SPARK_ASCII = "_.-:=+*#"
MAX_SPARK = 30  # epochs shown in a trend; older ones are left out (marked with "…")

_STYLES = {name: RichStyle.parse(name) for name in ("red", "yellow", "green", "bold", "dim", "cyan")}
# --color always where rich finds no colour system (TERM=dumb): the 16 standard colours
_FORCED_SYSTEM = ColorSystem.STANDARD
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
    """How to print: in colour or not, Unicode or ASCII.

    `colour`: a rich colour system (``ColorSystem.STANDARD``, ``EIGHT_BIT`` or ``TRUECOLOR``:
    16, 256 or 24-bit colours), True for 24-bit colour, or False / None for none.
    """

    def __init__(self, colour: Union[bool, ColorSystem, None], unicode: bool = True) -> None:
        self.system: Optional[ColorSystem] = ColorSystem.TRUECOLOR if colour is True else (colour or None)
        self.colour = self.system is not None
        self.unicode = unicode
        self.spark_chars = SPARK_UNICODE if unicode else SPARK_ASCII
        self.ellipsis = "…" if unicode else "..."
        self.arrow = "→" if unicode else "->"

    def __call__(self, text: str, colour: str) -> str:
        """`text` in a named style (red, yellow, green, cyan, bold, dim); unknown names plain."""
        if self.system is None or colour not in _STYLES:
            return text
        return _STYLES[colour].render(text, color_system=self.system)

    def on(self, text: str, background: tuple[int, int, int], foreground: tuple[int, int, int]) -> str:
        """`text` in `foreground` on `background` (RGB; the nearest colours the terminal has)."""
        if self.system is None:
            return text
        style = RichStyle(color=Color.from_rgb(*foreground), bgcolor=Color.from_rgb(*background))
        return style.render(text, color_system=self.system)


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


def colour_system(choice: str, stream: Any) -> Optional[ColorSystem]:
    """The colour system for `--color auto|always|never`, None for no colour.

    auto: rich's reading of the stream and the environment (a terminal, or FORCE_COLOR set;
    never with NO_COLOR; 16, 256 or 24-bit colours from COLORTERM and TERM). always: colour
    even off a terminal or with NO_COLOR, in the colours the environment names.
    """
    if choice == "never" or (choice == "auto" and os.environ.get("NO_COLOR")):
        return None
    console = Console(file=stream, force_terminal=True if choice == "always" else None, no_color=False)
    if console.color_system is not None:
        return COLOR_SYSTEMS[console.color_system]
    return _FORCED_SYSTEM if choice == "always" else None


def can_unicode(stream: Any) -> bool:
    """True when the stream's encoding can print the sparkline and arrow characters."""
    encoding = getattr(stream, "encoding", None) or ""
    try:
        "▁█→…".encode(encoding or "ascii")
        return True
    except (LookupError, UnicodeEncodeError):
        return False
