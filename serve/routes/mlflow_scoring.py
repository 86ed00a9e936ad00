"""MLflow's scoring protocol on candle-ml's server: ``POST /invocations``, ``GET /ping``, ``GET
/version``, answering as ``mlflow models serve`` of the bundle's raw-candle pyfunc does, so a
client written for MLflow's server switches by changing its URL.

The request is parsed, checked against the pyfunc's signature and answered by MLflow's own
scoring code (``mlflow.pyfunc.scoring_server.invocations``) around the pyfunc built on the
model this server has loaded: the same JSON formats (``dataframe_split``, ``dataframe_records``,
``instances``, ``inputs``, with ``params``) and ``text/csv``, the same ``{"predictions": ...}``,
the same error bodies (``error_code``, ``message``) and 415s. One difference: where the model
refuses its input (two series, too few candles), MLflow's server says "Encountered an
unexpected error" with a traceback; this one gives the reason (``message``) and no traceback.
"""

from __future__ import annotations

import threading
from typing import Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_200_OK

from candle_ml.errors import CandleMLError
from candle_ml.loading import LoadedModel
from serve.limits import WorkLimiter

_pyfuncs: dict[tuple[str, str], Any] = {}  # (source, version) -> the PyFuncModel around that bundle
_pyfuncs_lock = threading.Lock()


def pyfunc_for(model: LoadedModel) -> Any:
    """The MLflow ``PyFuncModel`` of the bundle the server serves (built once per model version)."""
    key = (model.source, model.version)
    with _pyfuncs_lock:
        if key not in _pyfuncs:
            from mlflow.models import Model
            from mlflow.pyfunc import PyFuncModel
            from mlflow.pyfunc.model import PythonModelContext, _PythonModelPyfuncWrapper

            from candle_ml.pyfunc_model import CandlePatternModel, signature

            sig = signature()
            impl = _PythonModelPyfuncWrapper(
                CandlePatternModel(model.bundle), PythonModelContext({}, None), sig
            )
            _pyfuncs.clear()  # only the current model is asked for
            _pyfuncs[key] = PyFuncModel(model_meta=Model(signature=sig), model_impl=impl)
        return _pyfuncs[key]


def score(model: LoadedModel, body: bytes, content_type: str) -> Response[bytes]:
    """MLflow's ``invocations`` on ``body``: its response, or its error body for an MlflowException."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc.scoring_server import invocations

    pyfunc = pyfunc_for(model)
    try:
        result = invocations(body, content_type, pyfunc, pyfunc.metadata.get_input_schema())
    except MlflowException as exc:
        cause = exc.__context__
        if isinstance(cause, CandleMLError):  # the model refused the input: say why, as MLflow's shape
            from mlflow.protos.databricks_pb2 import BAD_REQUEST

            exc = MlflowException(str(cause), error_code=BAD_REQUEST)
        return Response(
            exc.serialize_as_json().encode(),
            status_code=exc.get_http_status_code(),
            media_type="application/json",
        )
    body_out = result.response.encode() if isinstance(result.response, str) else result.response
    return Response(body_out, status_code=result.status, media_type=result.mimetype)


class MlflowError(msgspec.Struct):
    error_code: str
    message: str
    stack_trace: str | None = None


_ROW = {"type": "object", "additionalProperties": True}
INVOCATIONS_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "description": "one of dataframe_split, dataframe_records, instances, inputs; params",
                "type": "object",
                "properties": {
                    "dataframe_split": {"type": "object"},
                    "dataframe_records": {"type": "array", "items": _ROW},
                    "instances": {"type": "array", "items": _ROW},
                    "inputs": {"type": "object"},
                    "params": {"type": "object"},
                },
            }
        },
        "text/csv": {"schema": {"type": "string", "description": "a header, then one candle per row"}},
    },
}


class MlflowScoringController(Controller):
    tags = ["mlflow"]

    @post(
        "/invocations",
        status_code=HTTP_200_OK,
        opt={"any_content_type": True, "request_body": INVOCATIONS_BODY},  # MLflow's own 415s
        responses={
            400: ResponseSpec(
                MlflowError, description="input the pyfunc's signature refuses (MLflow's shape)"
            ),
            415: ResponseSpec(str, media_type=MediaType.TEXT, description="neither JSON nor CSV in UTF-8"),
        },
        summary="MLflow's scoring protocol: the raw-candle pyfunc, as `mlflow models serve` answers",
        description="JSON (`dataframe_split`, `dataframe_records`, `instances`, `inputs`; optional `params`: "
        '`{"output": "spans"}` for the spans, `min_confidence`) or `text/csv` of one series\' candles, '
        'oldest first. Answers `{"predictions": [...]}`: one row per candle (time, label, confidence, '
        "has_history), or per span.",
    )
    async def invocations(
        self,
        request: Request[Any, Any, Any],
        model: NamedDependency[LoadedModel],
        work: NamedDependency[WorkLimiter],
    ) -> Response[bytes]:
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        return await work.run(lambda _checkpoint: score(model, body, content_type))

    @get(
        ["/ping"],
        sync_to_thread=False,
        media_type=MediaType.TEXT,
        responses={503: ResponseSpec(str, media_type=MediaType.JSON, description="no model loaded")},
        summary="MLflow's health check: 200 with a model loaded (body: a newline)",
    )
    def ping(self, model: NamedDependency[LoadedModel]) -> Response[bytes]:
        return Response(b"\n", media_type=MediaType.TEXT)  # MLflow's body; its type says JSON

    @get(
        "/version",
        sync_to_thread=False,
        media_type=MediaType.TEXT,
        summary="The MLflow version whose scoring protocol this speaks",
    )
    def version(self) -> Response[bytes]:
        import mlflow

        return Response(mlflow.__version__.encode(), media_type=MediaType.TEXT)
