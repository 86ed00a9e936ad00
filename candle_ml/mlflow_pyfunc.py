"""The file ``train`` logs as the raw-candle MLflow pyfunc ("models from code": MLflow runs it to
build the model, so no pickled Python object is stored; the model's one artifact is the bundle).
The model itself, its signature and params: ``candle_ml/pyfunc_model.py``."""

from mlflow.models import set_model

from candle_ml.pyfunc_model import CandlePatternModel

set_model(CandlePatternModel())
