"""The OpenAPI document at ``/schema/openapi.json``, made to say exactly what the server does.

Litestar generates it from the routes. Three things are then set right:

- **Request bodies** are msgspec's own JSON Schema of the Struct the server decodes with
  (``serve.schemas.strict_json``): patterns, ``minItems``/``maxItems``, bounds and
  ``additionalProperties: false`` exactly as enforced. Litestar's DTO rendering drops them.
- **Statuses**: every operation lists every status it can answer, with the real error body:
  a Host outside ``--allowed-host`` (400) and a bug (500, with its request id) anywhere,
  a body over the limit (413) or not JSON (415) on every POST.
- **Examples that succeed**: the ``/predict`` example is real candles of a stored series,
  enough for the served model's history; ``/predict/batch`` and ``/feedback`` name a stored
  series and its real candle times. Built when the document is first asked for, again after a
  reload changes the model or the series.
"""

from __future__ import annotations

from typing import Any

import msgspec
import polars as pl
from litestar import Litestar, Request
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, SwaggerRenderPlugin

from serve.series_cache import SeriesCache

REF = "#/components/schemas/{name}"
EVERYWHERE = {
    400: "bad input, or a Host header that is not an allowed host (--allowed-host)",
    500: "a bug: logged with its traceback under the request id this body carries",
}
ON_POST = {
    413: "request body larger than --max-body-mb",
    415: "Content-Type is not application/json",
}


def request_bodies(app: Litestar) -> dict[tuple[str, str], Any]:
    """(path, method) -> the Struct each strictly decoded route takes (``opt["body"]`` where the
    route decodes it itself), or ``opt["request_body"]``: a requestBody written out (/invocations)."""
    bodies = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            model = (
                getattr(handler.dto, "model", None)
                or handler.opt.get("body")
                or handler.opt.get("request_body")
            )
            if model is not None:
                for method in handler.http_methods:
                    bodies[(route.path, method.lower())] = model
    return bodies


def error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(name="ErrorBody")}}},
    }


def truthful(document: dict[str, Any], bodies: dict[tuple[str, str], type], examples: dict) -> dict:
    """Litestar's document with msgspec's body schemas, every status, and working examples."""
    document = msgspec.json.decode(msgspec.json.encode(document))  # a copy to edit
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    structs = [b for b in bodies.values() if isinstance(b, type)]
    _, components = msgspec.json.schema_components(structs, ref_template=REF)
    schemas.update(components)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            extra = EVERYWHERE | (ON_POST if method == "post" else {})
            for status, description in extra.items():
                if str(status) in responses:
                    if status == 400 and "Host" not in responses["400"]["description"]:
                        responses["400"]["description"] += "; or a Host header that is not allowed"
                    continue
                responses[str(status)] = error_response(description)
            model = bodies.get((path, method))
            if isinstance(model, dict):
                operation["requestBody"] = model
            elif model is not None:
                media: dict[str, Any] = {"schema": {"$ref": REF.format(name=model.__name__)}}
                if (path, method) in examples:
                    media["examples"] = {"stored": examples[(path, method)]}
                operation["requestBody"] = {"required": True, "content": {"application/json": media}}
            operation["responses"] = dict(sorted(responses.items()))
    return document


def live_examples(app: Litestar) -> dict[tuple[str, str], dict[str, Any]]:
    """Request examples on the data being served: they succeed against this server as it is."""
    cache: SeriesCache = app.state.series_cache
    model = app.state.store.current
    if not cache.stored.candles:
        return {}
    (pair, timeframe), frame = sorted(cache.stored.candles.items())[0]
    times = frame["time"].cast(pl.Int64)
    out: dict[tuple[str, str], dict[str, Any]] = {
        ("/predict/batch", "post"): {
            "summary": f"the last 500 stored candles of {pair} {timeframe}",
            "value": {"pair": pair, "timeframe": timeframe, "start": times[max(0, times.len() - 500)]},
        },
    }
    if model is not None:
        need = model.bundle.meta.min_history + 5
        rows = frame.tail(need).select("time", "open", "high", "low", "close", "volume").to_dicts()
        out[("/predict", "post")] = {
            "summary": f"{len(rows)} {pair} {timeframe} candles, oldest first: the model's "
            f"{model.bundle.meta.min_history} of history, then the last 5 get labels",
            "value": {
                "candles": [{**r, "time": int(r["time"])} for r in rows],
                "pair": pair,
                "timeframe": timeframe,
                "min_confidence": 0.5,
            },
        }
        label = next((x.name for x in model.bundle.meta.labels if x.name != "O"), "O")
        out[("/feedback", "post")] = {
            "summary": "a trader marks two stored candles as a pattern",
            "value": {
                "annotations": [
                    {
                        "pair": pair,
                        "timeframe": timeframe,
                        "start_time": times[-3],
                        "end_time": times[-2],
                        "label": label,
                        "source": "human",
                    }
                ]
            },
        }
    return out


class Truthful:
    """A render plugin mixin: the document it renders is ``truthful(...)``, rebuilt after a reload."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        app = request.app
        model = app.state.store.current
        key = (model.version if model else None, app.state.series_cache.generation)
        built = app.state.setdefault("openapi", {})
        if key not in built:
            built.clear()
            built[key] = truthful(openapi_schema, request_bodies(app), live_examples(app))
        return super().render(request, built[key])  # type: ignore[misc]


class TruthfulJson(Truthful, JsonRenderPlugin):
    """``/schema/openapi.json``."""


class TruthfulSwagger(Truthful, SwaggerRenderPlugin):
    """``/schema`` and ``/schema/swagger``: the document, browsable."""


def render_plugins() -> list[OpenAPIRenderPlugin]:
    return [TruthfulSwagger(path=["/", "/swagger"]), TruthfulJson()]
