"""The "RNN Monitor" TensorBoard dashboard: a dynamic (iframe, ES module) plugin.

Registered through the ``tensorboard_plugins`` entry point. Reads only through
``context.data_provider`` (works with ``--load_fast=true`` and ``false``) and never imports
TensorFlow. Routes (relative to ``/data/plugin/rnn_monitor``):

==========================  ===================================================================
``/static/app.js``          the ES module TensorBoard loads into the iframe (``render()``);
                            it imports ``/static/views/*.js`` and ``/static/lib/*.js``
``/static/style.css``       its style sheet
``/runs``                   runs with RNN Monitor data, their layers, states and what they hold
``/gradients``              ``run, layer``: g[t] per epoch (timestep x epoch)
``/gradient_units``         ``run, layer[, epoch, kind]``: G[t, u] at one epoch
``/flow``                   ``run, layer``: temporal flow F[k] per epoch and the horizon
``/activations``            ``run, layer[, state, epoch, unit, source]``: tokens + activations;
                            source ``probe`` (default), ``generated`` or ``importance``
``/units``                  ``run, layer[, epoch]``: Fourier heat surface and periodic units
``/unit``                   ``run, layer, unit[, epoch, regex]``: one unit's card across epochs
``/health``                 ``run, layer``: the layer's standard scalars (health, per gate)
``/alerts``                 ``run``: alert records, and finding records with the epochs each stayed active
``/colour_scale``           the colour scales' stops and text colours (``rnn_monitor/colour_scale.json``)
==========================  ===================================================================

Errors are JSON ``{"error": message}`` with status 400 (bad parameter) or 404 (unknown run,
layer, state or epoch); messages never contain file paths or tracebacks.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any, Callable, Optional

from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from rnn_monitor import colour_scale
from rnn_monitor.logdir import metadata
from tb_plugin import cache, data_source, params
from tb_plugin.prefetch import ReadAhead
from tb_plugin.responses import alerts, gradients, health, runs, text, units

logger = logging.getLogger(__name__)

_STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}


def _static_files() -> dict[str, tuple[str, str]]:
    """The only files served: route -> (path under static/, content type), listed once at import:
    the front end's ES modules (app.js, views/, lib/) and its style sheet."""
    files = {}
    for folder, _dirs, names in os.walk(_STATIC_DIR):
        for name in sorted(names):
            kind = _CONTENT_TYPES.get(os.path.splitext(name)[1])
            if kind:
                rel = os.path.relpath(os.path.join(folder, name), _STATIC_DIR).replace(os.sep, "/")
                files[f"/static/{rel}"] = (rel, kind)
    return files


STATIC_FILES = _static_files()


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _json_response(request: Any, payload: Any, code: int = 200) -> Any:
    try:
        body = json.dumps(payload, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError):
        body = json.dumps(_clean(payload), allow_nan=False, separators=(",", ":"), default=str)
    return http_util.Respond(request, body, "application/json", code=code)


# Route handlers: parse the request's parameters (params.py), call the route's *_impl.
def _run_and_layer(args: Any) -> tuple[Optional[str], Optional[str]]:
    return params.text_param(args, "run"), params.text_param(args, "layer")


def _gradient_units(src: data_source.Source, args: Any) -> dict:
    run, layer = _run_and_layer(args)
    return gradients.gradient_units_impl(src, run, layer, params.int_param(args, "epoch", required=False),
                                         params.text_param(args, "kind", required=False))


def _flow(src: data_source.Source, args: Any) -> dict:
    return gradients.flow_impl(src, *_run_and_layer(args))


def _activations(src: data_source.Source, args: Any) -> dict:
    run, layer = _run_and_layer(args)
    state = params.text_param(args, "state", required=False)
    epoch = params.int_param(args, "epoch", required=False)
    source = params.text_param(args, "source", required=False) or "probe"
    if source == "probe":
        return text.activations_impl(src, run, layer, state, epoch, params.int_param(args, "unit", required=False))
    return text.text_source_impl(src, run, layer, source, state, epoch)


def _units(src: data_source.Source, args: Any) -> dict:
    run, layer = _run_and_layer(args)
    return units.units_impl(src, run, layer, params.int_param(args, "epoch", required=False))


def _unit(src: data_source.Source, args: Any) -> dict:
    run, layer = _run_and_layer(args)
    return units.unit_impl(src, run, layer, params.int_param(args, "unit"),
                           params.int_param(args, "epoch", required=False),
                           params.text_param(args, "regex", required=False))


def _health(src: data_source.Source, args: Any) -> dict:
    return health.health_impl(src, *_run_and_layer(args))


def _alerts(src: data_source.Source, args: Any) -> dict:
    return alerts.alerts_impl(src, params.text_param(args, "run"))


class RNNMonitorPlugin(base_plugin.TBPlugin):
    """Gradient over time, activation-highlighted text and layer health for RNNs."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._provider = context.data_provider
        hints = getattr(context, "sampling_hints", None) or {}
        self._sampling_hint = hints.get(self.plugin_name)
        self._cache = cache.SeriesCache()
        self._read_ahead = ReadAhead()

    # ------------------------------------------------------------------ TensorBoard hooks
    def is_active(self) -> bool:
        # TensorBoard's core marks the plugin active when the provider lists rnn_monitor data.
        return False

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(
            es_module_path="/static/app.js", tab_name="RNN Monitor"
        )

    def get_plugin_apps(self) -> dict[str, Callable]:
        apps: dict[str, Callable] = {route: self._static_app(route) for route in STATIC_FILES}
        apps.update({
            "/runs": self._route(self._runs),
            "/gradients": self._route(self._gradients),
            "/gradient_units": self._route(_gradient_units),
            "/flow": self._route(_flow),
            "/activations": self._route(_activations),
            "/units": self._route(_units),
            "/unit": self._route(_unit),
            "/health": self._route(_health),
            "/alerts": self._route(_alerts),
            "/colour_scale": self._route(lambda src, args: colour_scale.DEFINITION),
        })
        return apps

    # ------------------------------------------------------------------ routes that read ahead
    def _runs(self, src: data_source.Source, args: Any) -> dict:
        body = runs.runs_impl(src)
        self._read_ahead.request(src)  # each run's first layer comes next
        return body

    def _gradients(self, src: data_source.Source, args: Any) -> dict:
        run, layer = _run_and_layer(args)
        body = gradients.gradients_impl(src, run, layer)
        self._read_ahead.request(src, run, layer)  # this layer's G and activations come next
        return body

    # ------------------------------------------------------------------ plumbing
    def _source(self, request: Any) -> data_source.Source:
        from tensorboard import plugin_util

        ctx = plugin_util.context(request.environ)
        eid = plugin_util.experiment_id(request.environ)
        return data_source.Source(self._provider, ctx, eid, self._cache, self._sampling_hint)

    def _route(self, handler: Callable[[data_source.Source, Any], Any]) -> Callable:
        @wrappers.Request.application
        def app(request: Any) -> Any:
            if request.method not in ("GET", "HEAD"):
                return _json_response(request, {"error": "only GET is supported"}, 405)
            try:
                payload = handler(self._source(request), request.args)
            except params.RequestError as exc:
                return _json_response(request, {"error": exc.message}, exc.status)
            except Exception:  # never leak a traceback or a path to the page
                logger.exception("rnn_monitor plugin: request %s failed", request.path)
                return _json_response(
                    request, {"error": "internal error in the RNN Monitor plugin (see the TensorBoard log)"}, 500
                )
            return _json_response(request, payload)

        return app

    def _static_app(self, route: str) -> Callable:
        filename, content_type = STATIC_FILES[route]

        @wrappers.Request.application
        def app(request: Any) -> Any:
            try:
                with open(os.path.join(_STATIC_DIR, filename), "rb") as f:
                    body = f.read()
            except OSError:
                return _json_response(request, {"error": "static file missing from the install"}, 404)
            return http_util.Respond(request, body, content_type)

        return app
