"""The HTTP routes, one module per part of the API; ``ROUTES`` is what the app mounts."""

from typing import Any

from serve.routes.charts import ChartsController
from serve.routes.feedback import FeedbackController
from serve.routes.health import HealthController
from serve.routes.history import HistoryController
from serve.routes.label_studio import LabelStudioController
from serve.routes.mlflow_scoring import MlflowScoringController
from serve.routes.model import ModelController
from serve.routes.page import PageController, static_files
from serve.routes.predict import PredictController
from serve.routes.review import ReviewController
from serve.routes.series import SeriesController

ROUTES: list[Any] = [
    PredictController,
    ModelController,
    HealthController,
    SeriesController,
    ChartsController,
    FeedbackController,
    ReviewController,
    HistoryController,
    LabelStudioController,
    MlflowScoringController,
    PageController,
    static_files,
]
