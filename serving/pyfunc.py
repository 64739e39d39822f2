"""The region's registered model: the ensemble as ONE MLflow pyfunc, its members as artifacts.

The pyfunc is logged "from code" (``ensemble_model_code.py``), so loading it unpickles nothing:
MLflow imports that file, which builds ``EnsemblePyfunc``, and ``load_context`` reads the
members from their own formats (XGBoost JSON, LightGBM text, CNN-LSTM tensors + JSON).
"""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from core.model_input import ModelInputError, from_model_input, to_model_input, to_response
from training.ensemble import EnsembleForecaster
from training.models import ModelError

log = logging.getLogger(__name__)

MODEL_CODE = Path(__file__).with_name("ensemble_model_code.py")
ARTIFACT_KEY = "ensemble"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Packages the model imports, shipped with it so a server without the product installed loads it.
CODE_PACKAGES = ("core", "training", "serving")


class EnsemblePyfunc(PythonModel):
    def load_context(self, context) -> None:
        self.forecaster = EnsembleForecaster.load(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        region = self.forecaster.region
        try:
            frame = from_model_input(model_input, self.forecaster.feature_columns)
            return to_response(frame, self.forecaster.predict(frame))
        except (ModelInputError, ModelError) as exc:
            # a request the model cannot answer is the caller's to fix: the scoring server answers 400
            raise MlflowException(f"{region}: {exc}", error_code=INVALID_PARAMETER_VALUE) from None
        except Exception as exc:
            # Any other failure is the model's: the details go to the server's log, the client gets
            # a 500 with a message only (the scoring server would send it the stack trace).
            log.exception("%s: the model failed on a request", region)
            raise MlflowException(
                f"{region}: the model could not answer this request ({type(exc).__name__}); "
                "the server's log has the details",
                error_code=INTERNAL_ERROR,
            ) from None


def log_ensemble(
    forecaster: EnsembleForecaster, folder: Path, example_frame: pd.DataFrame, registered_model_name: str | None = None
) -> mlflow.models.model.ModelInfo:
    """Log the saved ensemble in ``folder`` as the active run's ``model`` (signature + input example).

    The signature declares the response only. MLflow enforces an input schema by dropping the
    columns it does not name before the model sees the request, so a client's misspelt or
    unknown column would be answered 200 as if it had not been sent; the model checks the
    request itself instead (``core.model_input.from_model_input``: missing, unexpected,
    non-numeric and infinite values each get a 400 naming the columns). The request's columns
    are recorded in the model's metadata (``request_columns``) and shown by the input example.
    """
    request = to_model_input(example_frame, forecaster.feature_columns)
    response = to_response(
        from_model_input(request, forecaster.feature_columns),
        forecaster.predict(from_model_input(request, forecaster.feature_columns)),
    )
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(MODEL_CODE),
        artifacts={ARTIFACT_KEY: str(folder)},
        signature=ModelSignature(outputs=infer_signature(request, response).outputs),
        metadata={"request_columns": [str(c) for c in request.columns]},
        input_example=request,
        code_paths=[str(PROJECT_ROOT / p) for p in CODE_PACKAGES],
        registered_model_name=registered_model_name,
    )
