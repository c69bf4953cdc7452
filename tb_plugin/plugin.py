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
==========================  ===================================================================

Errors are JSON ``{"error": message}`` with status 400 (bad parameter) or 404 (unknown run,
layer, state or epoch); messages never contain file paths or tracebacks.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from typing import Any, Callable, Optional

from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from rnn_monitor.logdir import metadata
from tb_plugin import cache, data_source, params, responses

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
        self._cache = cache.SeriesCache()
        self._prefetch_lock = threading.Lock()
        self._prefetching: Optional[threading.Thread] = None
        self._prefetch_next: Optional[tuple] = None

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
            "/gradient_units": self._route(
                lambda src, a: responses.gradient_units_response(
                    src,
                    params.text_param(a, "run"),
                    params.text_param(a, "layer"),
                    params.int_param(a, "epoch", required=False),
                    params.text_param(a, "kind", required=False),
                )
            ),
            "/flow": self._route(
                lambda src, a: responses.flow_response(
                    src, params.text_param(a, "run"), params.text_param(a, "layer")
                )
            ),
            "/activations": self._route(self._activations),
            "/units": self._route(
                lambda src, a: responses.units_response(
                    src,
                    params.text_param(a, "run"),
                    params.text_param(a, "layer"),
                    params.int_param(a, "epoch", required=False),
                )
            ),
            "/unit": self._route(
                lambda src, a: responses.unit_response(
                    src,
                    params.text_param(a, "run"),
                    params.text_param(a, "layer"),
                    params.int_param(a, "unit"),
                    params.int_param(a, "epoch", required=False),
                    params.text_param(a, "regex", required=False),
                )
            ),
            "/health": self._route(
                lambda src, a: responses.health_response(
                    src, params.text_param(a, "run"), params.text_param(a, "layer")
                )
            ),
            "/alerts": self._route(
                lambda src, a: responses.alerts_response(src, params.text_param(a, "run"))
            ),
        })
        return apps

    def _runs(self, src: data_source.Source, args: Any) -> dict:
        body = responses.runs_response(src)
        self._prefetch(src)
        return body

    def _activations(self, src: data_source.Source, args: Any) -> dict:
        run, layer = params.text_param(args, "run"), params.text_param(args, "layer")
        state = params.text_param(args, "state", required=False)
        epoch = params.int_param(args, "epoch", required=False)
        source = params.text_param(args, "source", required=False) or "probe"
        if source == "probe":
            return responses.activations_response(src, run, layer, state, epoch, params.int_param(args, "unit", required=False))
        return responses.text_source_response(src, run, layer, source, state, epoch)

    def _gradients(self, src: data_source.Source, args: Any) -> dict:
        run, layer = params.text_param(args, "run"), params.text_param(args, "layer")
        body = responses.gradients_response(src, run, layer)
        self._prefetch(src, run, layer)  # this layer's G and activations come next
        return body

    def _prefetch(self, src: data_source.Source, run: Optional[str] = None, layer: Optional[str] = None) -> None:
        """Read ahead, in one background thread, what the page will ask for next.

        Decoding a long float16 series costs the data provider up to a second or so; reading
        it while the user looks at the first heatmap hides that. A request for a series being
        read waits for that read instead of starting another (`SeriesCache.loading`).
        """
        with self._prefetch_lock:
            if self._prefetching is not None and self._prefetching.is_alive():
                if layer is None:
                    return
                self._prefetch_next = (src, run, layer)  # run after the current one
                return

            def work(src=src, run=run, layer=layer) -> None:
                while True:
                    try:
                        for run_index, tag in responses.prefetch_targets(src, run, layer):
                            src.series(run_index, tag)
                    except Exception:  # a prefetch failure only costs speed
                        logger.debug("rnn_monitor plugin: prefetch failed", exc_info=True)
                    with self._prefetch_lock:
                        if self._prefetch_next is None:
                            self._prefetching = None
                            return
                        src, run, layer = self._prefetch_next
                        self._prefetch_next = None

            self._prefetching = threading.Thread(target=work, name="rnn_monitor-prefetch", daemon=True)
            self._prefetching.start()

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
