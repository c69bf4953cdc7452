"""The `rnn-monitor` command line: `report LOGDIR`, `check LOGDIR` and `text LOGDIR` (see `--help`).

Reads logs with `rnn_monitor.logdir.reader` only: it never imports TensorFlow, so it starts fast and
runs where TensorFlow is not installed (a CI job that only checks logs).

Exit status: 0 success (`check`: no alert), 1 (`check` only) at least one alert was raised,
2 the path holds no rnn-monitor data or cannot be read (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

EXIT_OK = 0
EXIT_ALERTS = 1
EXIT_NO_DATA = 2


class CLIError(Exception):
    """A problem to report on one stderr line, with exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnn-monitor",
        description="Summaries and CI checks of the logs written by rnn_monitor.RNNMonitor.",
    )
    from rnn_monitor import __version__

    parser.add_argument("--version", action="version", version=f"rnn-monitor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{report,check,text}")
    sub.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "logdir", metavar="LOGDIR",
        help="a log_dir given to RNNMonitor, or a directory holding several of them",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument(
        "--color", "--colour", dest="color", choices=("auto", "always", "never"), default="auto",
        help="colour the text output (default: auto: on a terminal or with FORCE_COLOR, not with "
        "NO_COLOR; 16, 256 or 24-bit colours as COLORTERM and TERM say)",
    )
    sub.add_parser(
        "report", parents=[common],
        help="per run and layer: latest ratios, gradient-horizon and gate-norm trends, alerts, findings",
        description="Per run and layer: latest unit ratios, gradient-horizon trend, per-gate "
        "weight-norm trend over epochs, the alerts, and the findings (unusual numbers that are "
        "not alerts).",
    )
    check = sub.add_parser(
        "check", parents=[common],
        help="print the alerts; exit 1 if any was raised (0 if none, 2 if no data); findings are "
             "not counted (see report)",
        description="Print the alerts of every run; exit status 1 when any alert was raised, "
        "0 when none, 2 when LOGDIR holds no rnn-monitor data. Only alerts count: findings "
        "(saturation, short gradient reach, a stalled loss, large states without another sign) "
        "never fail the check; `rnn-monitor report` lists them.",
    )
    check.add_argument(
        "--ignore", metavar="KINDS", default="",
        help="comma-separated alert kinds that do not fail the check (e.g. saturated,dead)",
    )
    text = sub.add_parser(
        "text", parents=[common],
        help="the probe text coloured by one unit's activation",
        description="Print the probe sequences with each token's background coloured by one "
        "unit's activation (diverging: blue negative, white 0, red positive). LOGDIR is one run.",
    )
    text.add_argument("--layer", required=True, help="layer name as in the report, e.g. lstm or bi/forward")
    text.add_argument("--unit", required=True, type=int, help="the layer's unit index")
    text.add_argument("--state", default="h", help="h (default), c, or a gate: i f g o (LSTM), z r hh (GRU)")
    text.add_argument("--epoch", type=int, default=None, help="logged epoch (default: the last)")
    text.add_argument("--source", choices=("probe", "generated"), default="probe",
                      help="the probe text (default) or the text generated at that epoch "
                      "(RNNMonitor(generate={...}))")
    text.add_argument("--sequence", type=int, action="append", default=None,
                      help="probe sequence index to show (repeatable; default: all kept ones)")
    text.add_argument("--scale", type=float, default=None,
                      help="|activation| shown at full colour (default: the largest shown)")
    return parser


def _load_runs(logdir: str) -> list[tuple[str, object]]:
    """``(name, Run)`` for every run under `logdir` (itself a log_dir, or a parent of several)."""
    from rnn_monitor.logdir import reader

    if not os.path.exists(logdir):
        raise CLIError(f"{logdir}: no such file or directory")
    if not os.path.isdir(logdir):
        raise CLIError(f"{logdir}: not a directory (give the log_dir passed to RNNMonitor)")
    try:
        run_dirs = [reader.find_run_dir(logdir)]
    except reader.NoRunError:
        run_dirs = reader.find_run_dirs(logdir)
    if not run_dirs:
        raise CLIError(
            f"{logdir}: no rnn-monitor data found (expected {os.path.join(logdir, 'rnn_monitor')} "
            "with event files, written by RNNMonitor(log_dir=...))"
        )
    runs, problems = [], []
    base = os.path.abspath(logdir)
    for run_dir in run_dirs:
        parent = os.path.dirname(os.path.abspath(run_dir))
        if os.path.basename(os.path.abspath(run_dir)) != "rnn_monitor":
            parent = os.path.abspath(run_dir)
        name = os.path.relpath(parent, base) if parent != base else os.path.basename(base) or base
        if parent != base and name.startswith(".."):
            name = parent
        try:
            runs.append((name, reader.Run(run_dir)))
        except reader.NoRunError as exc:
            problems.append(str(exc))
        except Exception as exc:  # a corrupt or half-written file: say which, go on
            problems.append(f"{run_dir}: cannot read ({type(exc).__name__}: {exc})")
    if not runs:
        raise CLIError(f"{logdir}: no readable rnn-monitor run ({problems[0]})")
    for problem in problems:
        print(f"rnn-monitor: warning: skipped {problem}", file=sys.stderr)
    return runs


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except CLIError as exc:
        print(f"rnn-monitor: error: {exc}", file=sys.stderr)
        return EXIT_NO_DATA
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `rnn-monitor report runs | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except Exception as exc:  # never a traceback for the user; say what failed
        print(f"rnn-monitor: error: {args.logdir}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_NO_DATA


def _run(args: argparse.Namespace) -> int:
    from rnn_monitor.cli import check, report, terminal

    style = terminal.Style(terminal.colour_system(args.color, sys.stdout), terminal.can_unicode(sys.stdout))
    if args.command == "text":
        return _text(args, style)
    runs = _load_runs(args.logdir)
    summaries = [report.summarize_run(run, name) for name, run in runs]
    if not any(s["epochs"] for s in summaries):
        raise CLIError(
            f"{args.logdir}: no epoch logged yet (RNNMonitor writes at the end of each logged epoch)"
        )
    if args.command == "report":
        if args.json:
            n_alerts = sum(len(s["alerts"]) for s in summaries)
            print(json.dumps({"runs": summaries, "alerts": n_alerts}, indent=2, allow_nan=False))
        else:
            print(report.format_report(summaries, style))
        return EXIT_OK
    try:
        n_alerts, text = check.run_check(summaries, args.ignore, args.json, style)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(text)
    return EXIT_ALERTS if n_alerts else EXIT_OK


def _text(args: argparse.Namespace, style: object) -> int:
    from rnn_monitor.cli import text

    runs = _load_runs(args.logdir)
    if len(runs) > 1:
        raise CLIError(
            f"{args.logdir} holds {len(runs)} runs; give one of them: "
            + ", ".join(os.path.join(args.logdir, name) for name, _ in runs)
        )
    try:
        print(text.run_text(runs[0][1], args.layer, args.unit, args.state, args.epoch,
                            args.sequence, args.scale, args.json, style, source=args.source))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
