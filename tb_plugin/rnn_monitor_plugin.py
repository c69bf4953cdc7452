"""The "RNN Monitor" TensorBoard dashboard: a dynamic (iframe, ES module) plugin.

Registered through the ``tensorboard_plugins`` entry point. Reads only through
``context.data_provider`` (works with ``--load_fast=true`` and ``false``) and never imports
TensorFlow. Routes (relative to ``/data/plugin/rnn_monitor``):

==========================  ===================================================================
``/static/index.js``        the ES module TensorBoard loads into the iframe (``render()``)
``/static/style.css``       its style sheet
``/runs``                   runs with RNN Monitor data, their layers, states and what they hold
``/gradients``              ``run, layer``: g[t] per epoch (timestep x epoch)
``/gradient_units``         ``run, layer[, epoch, kind]``: G[t, u] at one epoch
``/flow``                   ``run, layer``: temporal flow F[k] per epoch and the horizon
``/activations``            ``run, layer[, state, epoch, unit]``: tokens + activations
``/health``                 ``run, layer``: the layer's standard scalars (health, per gate)
``/alerts``                 ``run``: alert records
==========================  ===================================================================

Errors are JSON ``{"error": message}`` with status 400 (bad parameter) or 404 (unknown run,
layer, state or epoch); messages never contain file paths or tracebacks.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any, Callable

from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from rnn_monitor import metadata
from tb_plugin import data

logger = logging.getLogger(__name__)

_STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
# The only files served: route -> (file name, content type).
STATIC_FILES = {
    "/static/index.js": ("index.js", "text/javascript"),
    "/static/style.css": ("style.css", "text/css"),
}


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
        text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError):
        text = json.dumps(_clean(payload), allow_nan=False, separators=(",", ":"), default=str)
    return http_util.Respond(request, text, "application/json", code=code)


class RNNMonitorPlugin(base_plugin.TBPlugin):
    """Gradient over time, activation-highlighted text and layer health for RNNs."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._provider = context.data_provider
        hints = getattr(context, "sampling_hints", None) or {}
        self._sampling_hint = hints.get(self.plugin_name)
        self._cache = data.SeriesCache()

    # ------------------------------------------------------------------ TensorBoard hooks
    def is_active(self) -> bool:
        # TensorBoard's core marks the plugin active when the provider lists rnn_monitor data.
        return False

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(
            es_module_path="/static/index.js", tab_name="RNN Monitor"
        )

    def get_plugin_apps(self) -> dict[str, Callable]:
        apps: dict[str, Callable] = {route: self._static_app(route) for route in STATIC_FILES}
        apps.update({
            "/runs": self._route(lambda src, a: data.runs_response(src)),
            "/gradients": self._route(
                lambda src, a: data.gradients_response(
                    src, data.text_param(a, "run"), data.text_param(a, "layer")
                )
            ),
            "/gradient_units": self._route(
                lambda src, a: data.gradient_units_response(
                    src,
                    data.text_param(a, "run"),
                    data.text_param(a, "layer"),
                    data.int_param(a, "epoch", required=False),
                    data.text_param(a, "kind", required=False),
                )
            ),
            "/flow": self._route(
                lambda src, a: data.flow_response(
                    src, data.text_param(a, "run"), data.text_param(a, "layer")
                )
            ),
            "/activations": self._route(
                lambda src, a: data.activations_response(
                    src,
                    data.text_param(a, "run"),
                    data.text_param(a, "layer"),
                    data.text_param(a, "state", required=False),
                    data.int_param(a, "epoch", required=False),
                    data.int_param(a, "unit", required=False),
                )
            ),
            "/health": self._route(
                lambda src, a: data.health_response(
                    src, data.text_param(a, "run"), data.text_param(a, "layer")
                )
            ),
            "/alerts": self._route(
                lambda src, a: data.alerts_response(src, data.text_param(a, "run"))
            ),
        })
        return apps

    # ------------------------------------------------------------------ plumbing
    def _source(self, request: Any) -> data.Source:
        from tensorboard import plugin_util

        ctx = plugin_util.context(request.environ)
        eid = plugin_util.experiment_id(request.environ)
        return data.Source(self._provider, ctx, eid, self._cache, self._sampling_hint)

    def _route(self, handler: Callable[[data.Source, Any], Any]) -> Callable:
        @wrappers.Request.application
        def app(request: Any) -> Any:
            if request.method not in ("GET", "HEAD"):
                return _json_response(request, {"error": "only GET is supported"}, 405)
            try:
                payload = handler(self._source(request), request.args)
            except data.RequestError as exc:
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
