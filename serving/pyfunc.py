"""The region's registered model: the ensemble as ONE MLflow pyfunc, its members as artifacts.

The pyfunc is logged "from code" (``ensemble_model_code.py``), so loading it unpickles nothing:
MLflow imports that file, which builds ``EnsemblePyfunc``, and ``load_context`` reads the
members from their own formats (XGBoost JSON, LightGBM text, CNN-LSTM tensors + JSON).
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from core.model_input import ModelInputError, from_model_input, to_model_input, to_response
from training.ensemble import EnsembleForecaster
from training.models import ModelError

MODEL_CODE = Path(__file__).with_name("ensemble_model_code.py")
ARTIFACT_KEY = "ensemble"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Packages the model imports, shipped with it so a server without the product installed loads it.
CODE_PACKAGES = ("core", "training", "serving")


class EnsemblePyfunc(PythonModel):
    def load_context(self, context) -> None:
        self.forecaster = EnsembleForecaster.load(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        try:
            frame = from_model_input(model_input, self.forecaster.feature_columns)
            return to_response(frame, self.forecaster.predict(frame))
        except (ModelInputError, ModelError) as exc:
            # a request the model cannot answer is the caller's to fix: the scoring server answers 400
            raise MlflowException(f"{self.forecaster.region}: {exc}", error_code=INVALID_PARAMETER_VALUE) from None


def log_ensemble(
    forecaster: EnsembleForecaster, folder: Path, example_frame: pd.DataFrame, registered_model_name: str | None = None
) -> mlflow.models.model.ModelInfo:
    """Log the saved ensemble in ``folder`` as the active run's ``model`` (signature + input example)."""
    request = to_model_input(example_frame, forecaster.feature_columns)
    response = to_response(
        from_model_input(request, forecaster.feature_columns),
        forecaster.predict(from_model_input(request, forecaster.feature_columns)),
    )
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(MODEL_CODE),
        artifacts={ARTIFACT_KEY: str(folder)},
        signature=infer_signature(request, response),
        input_example=request,
        code_paths=[str(PROJECT_ROOT / p) for p in CODE_PACKAGES],
        registered_model_name=registered_model_name,
    )
