"""The HTTP routes, one module per part of the API; ``ROUTES`` is what the app mounts."""

from serve.routes.health import HealthController
from serve.routes.model import ModelController
from serve.routes.predict import PredictController

ROUTES = [PredictController, ModelController, HealthController]
