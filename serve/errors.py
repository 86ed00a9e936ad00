"""Every way a request can be wrong -> a 4xx ``{"status_code", "detail", "field"?, "rule"?}``.

Bodies are decoded by msgspec (400 with the JSON path of the bad field); everything the
library rejects is a ``CandleMLError`` carrying its field and rule, and ``STATUS`` below is the
one place that says which HTTP status each kind gets (the library knows nothing of HTTP). The
errors only a server has (no model loaded, busy, a refused Host) are defined here too.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from candle_ml.errors import (
    AnnotationError,
    CandleError,
    CandleMLError,
    EmptyRange,
    ModelLoadError,
    TimeframeError,
    TooLittleHistory,
    TooManyCandles,
    UnknownAnswer,
    UnknownSeries,
)
from candle_ml.label_studio import LabelConfigError
from candle_ml.opened_charts import ChartConflict, ChartFileError

log = logging.getLogger("candle_ml.serve")


class ServerError(CandleMLError):
    """An error only the server has: the library never raises these."""


class Unavailable(ServerError):
    """Busy, past the time limit, shutting down or without a model: retry after ``retry_after`` s."""

    def __init__(self, message: str, *, rule: str | None = None, retry_after: int = 1):
        super().__init__(message, rule=rule)
        self.retry_after = retry_after


class NoModel(Unavailable):
    """The server has no model loaded (a reload may be under way)."""

    def __init__(self, message: str):
        super().__init__(message, retry_after=5)


class NoHistory(ServerError):
    """The server was started without a prediction history."""


class BadHost(ServerError):
    """A Host header outside ``--allowed-host``."""


class BadQuery(ServerError):
    """A query parameter written as what its type is not (an integer as 0.0)."""


class NotAuthorized(ServerError):
    """Basic Auth is on (the Label Studio backend's) and the request lacks the user and password."""


class UnsupportedMediaType(ServerError):
    """A POST whose body is not JSON."""


# Each kind's status (a subclass takes its nearest listed base's); anything else a user can fix is 400.
STATUS: dict[type[CandleMLError], int] = {
    BadHost: 400,
    BadQuery: 400,
    NotAuthorized: 401,
    UnknownSeries: 404,
    UnknownAnswer: 404,
    ChartConflict: 409,  # a chart's name taken by other candles: nothing overwritten
    ChartFileError: 422,  # DELETE /feedback/{id} of an answer the log does not hold
    EmptyRange: 404,  # a range of a stored series that holds no candle: nothing there to answer
    NoHistory: 404,
    ModelLoadError: 409,
    TooManyCandles: 413,
    UnsupportedMediaType: 415,
    CandleError: 422,
    AnnotationError: 422,
    TooLittleHistory: 422,
    TimeframeError: 422,
    LabelConfigError: 422,
    Unavailable: 503,
}


def status_of(exc: CandleMLError) -> int:
    return next((STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS), 400)


_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def error_response(status: int, detail: str, **extra: Any) -> Response[dict[str, Any]]:
    body = {"status_code": status, "detail": detail, **{k: v for k, v in extra.items() if v is not None}}
    return Response(body, status_code=status, media_type=MediaType.JSON)


def body_invalid(_: Request[Any, Any, Any], exc: msgspec.ValidationError) -> Response[dict[str, Any]]:
    # msgspec: "Expected `int`, got `float` - at `$.candles[3].time`" -> field "candles[3].time"
    msg = str(exc)
    match = _AT.search(msg)
    field = match["path"].lstrip(".") if match else None
    rule = msg[: match.start()] if match else msg
    unknown = re.search(r"unknown field `([^`]*)`", rule)
    if unknown:  # name the offending field itself
        field = f"{field}.{unknown[1]}" if field else unknown[1]
    return error_response(
        400, f"{field}: {rule}" if field else f"request body: {rule}", field=field, rule=rule
    )


def body_malformed(_: Request[Any, Any, Any], exc: msgspec.DecodeError) -> Response[dict[str, Any]]:
    return error_response(400, f"request body is not valid JSON: {exc}", rule="malformed JSON")


def library_error(_: Request[Any, Any, Any], exc: CandleMLError) -> Response[dict[str, Any]]:
    field = exc.field
    if isinstance(exc, CandleError):  # a request candle broke a candle rule: point at it
        field = f"candles[{exc.row}].{exc.field}" if exc.row is not None and exc.field else "candles"
    response = error_response(status_of(exc), str(exc), field=field, rule=exc.rule)
    if isinstance(exc, Unavailable):  # busy, shutting down or no model yet: say when to come back
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def query_invalid(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    """Litestar's own validation (query parameters): the first problem, as field and rule."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    first = extra[0] if extra and isinstance(extra[0], dict) else {}
    field, rule = first.get("key"), first.get("message")
    detail = f"{field}: {rule}" if field and rule else exc.detail
    return error_response(400, detail, field=field, rule=rule)


def unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """A bug, not bad input: logged with its traceback under an id the response carries."""
    if isinstance(exc, HTTPException):  # Litestar's own 4xx (404, 405, 413, ...) keep status and headers
        if exc.status_code == 413:
            limit = request.app.state.settings.max_body_bytes / 1024 / 1024
            response = error_response(
                413,
                f"request body over the {limit:g} MB limit (--max-body-mb); send fewer candles per request",
                rule=f"body at most {limit:g} MB",
            )
        else:
            response = error_response(exc.status_code, exc.detail)
        response.headers.update(exc.headers or {})
        return response
    request_id = uuid.uuid4().hex[:12]
    log.error("request %s %s %s failed", request_id, request.method, request.url.path, exc_info=exc)
    response = error_response(
        500, f"internal error; the server log has it under request id {request_id}", request_id=request_id
    )
    response.headers["X-Request-ID"] = request_id
    return response


EXCEPTION_HANDLERS = {
    Exception: unexpected,
    ValidationException: query_invalid,
    msgspec.ValidationError: body_invalid,
    msgspec.DecodeError: body_malformed,
    CandleMLError: library_error,
}
