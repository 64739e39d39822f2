"""The region's registered model: the ensemble as ONE MLflow pyfunc, its members as artifacts.

It answers the raw request of ``serving.model_request`` (recent hourly prices, the exogenous
day-ahead forecasts, and the ``origin`` param) and builds the features itself with
``training.features.inference_frame``, the builder training uses: a client sends what it has,
never engineered columns, so no client can skew the features.

The pyfunc is logged "from code" (``ensemble_model_code.py``), so loading it unpickles nothing:
MLflow imports that file, which builds ``EnsemblePyfunc``, and ``load_context`` reads the
members from their own formats (XGBoost JSON, LightGBM text, CNN-LSTM tensors + JSON, LEAR JSON).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import logging
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel
from mlflow.types import ParamSchema, ParamSpec

from core.markets import adopt_market
from serving.model_request import (
    ORIGIN_PARAM,
    ModelRequest,
    RequestError,
    parse_request,
    request_columns,
    to_response,
)
from training.ensemble import EnsembleForecaster
from training.features import HORIZON_HOURS, FeatureError, inference_frame
from training.models import ModelError

log = logging.getLogger(__name__)

MODEL_CODE = Path(__file__).with_name("ensemble_model_code.py")
ARTIFACT_KEY = "ensemble"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Packages the model imports, shipped with it so a server without the product installed loads it.
CODE_PACKAGES = ("core", "training", "serving")
PRODUCT = "electricity-optimizer"  # this package's distribution: never a requirement of the model it logs


@functools.cache
def model_requirements() -> tuple[str, ...]:
    """The model's ``requirements.txt``: every installed distribution the shipped code (:data:`CODE_PACKAGES`)
    imports, pinned to this environment's version (its public part: ``torch==2.13.0``, not ``+cpu``).

    Given to MLflow so that it does not infer them: inferring loads the model in a subprocess and
    records what gets imported (5-6 s per logged model), and it recorded the product itself (not
    installable: the code travels in ``code_paths``) while missing torch, XGBoost and LightGBM. Read
    from the code's import statements, the list cannot miss a library a member imports lazily."""
    imported: set[str] = set()
    for package in CODE_PACKAGES:
        for source in sorted((PROJECT_ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(source.read_text(), str(source))):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    installed = importlib.metadata.packages_distributions()
    names = {d for module in imported - set(CODE_PACKAGES) for d in installed.get(module, []) if d != PRODUCT}
    return tuple(sorted(f"{d}=={importlib.metadata.version(d).split('+')[0]}" for d in names))


# The origin travels as an MLflow param (``"params": {"origin": "..."}``); no default: a request must name it.
PARAMS = ParamSchema([ParamSpec(ORIGIN_PARAM, "string", None)])


class EnsemblePyfunc(PythonModel):
    def load_context(self, context) -> None:
        self.forecaster = EnsembleForecaster.load(Path(context.artifacts[ARTIFACT_KEY]))
        if self.forecaster.market is not None:  # the market it was trained with: any catalogue can serve it
            adopt_market(self.forecaster.market)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """The 24 hours from the ``origin`` param, from the raw request (``serving.model_request``)."""
        region = self.forecaster.region
        try:
            prices, exogenous, origin = parse_request(model_input, params, region, self.forecaster.history_hours)
            return answer(self.forecaster, prices, exogenous, origin)
        except (RequestError, FeatureError, ModelError) as exc:
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

    def predict_features(self, features: pd.DataFrame, prices: pd.Series, exogenous: pd.DataFrame) -> pd.DataFrame:
        """In-process batch forecasts of ready feature rows of any number of origins (evaluation,
        drift), each origin's as the served model answers it (``prices`` and ``exogenous``: the
        history before the origins, for LEAR's recalibration); not part of the served interface,
        which takes the raw request only."""
        return self.forecaster.predict_each_origin(features, prices, exogenous)


def answer(
    forecaster: EnsembleForecaster, prices: pd.Series, exogenous: pd.DataFrame, origin: pd.Timestamp
) -> pd.DataFrame:
    """The response to a parsed request: the members as they forecast from ``origin`` (LEAR recalibrated on
    the days before a local midnight when it recalibrates), on features built as in training."""
    features = inference_frame(prices, exogenous, forecaster.region, origin)
    return to_response(features, forecaster.for_origin(prices, exogenous, origin).predict(features))


def log_ensemble(
    forecaster: EnsembleForecaster, folder: Path, example: ModelRequest, registered_model_name: str | None = None
) -> mlflow.models.model.ModelInfo:
    """Log the saved ensemble in ``folder`` as the active run's ``model``: the response signature,
    the ``origin`` param, and ``example`` (a raw request) as the input example.

    The signature declares no input schema: MLflow enforces one by dropping the columns it does
    not name before the model sees the request, so a misspelt exogenous column would be answered
    200 as if it had not been sent; the model checks the request itself instead
    (``serving.model_request.parse_request``: each problem gets a 400 naming it). The request's
    shape is in the model's metadata (``request``) and shown by the input example.
    """
    prices, exogenous, origin = parse_request(
        example.table, example.params, forecaster.region, forecaster.history_hours
    )
    response = answer(forecaster, prices, exogenous, origin)
    request = {
        "columns": request_columns(forecaster.region),
        "params": {ORIGIN_PARAM: "the forecast origin, an ISO-8601 UTC hour"},
        "hours": f"every hour from origin - {forecaster.history_hours} h to origin + {HORIZON_HOURS - 1} h, "
        "sorted, no gaps",
        "history_hours": forecaster.history_hours,
        "unknown_values": "null (imputed); a missing row is a gap and is refused",
    }
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(MODEL_CODE),
        artifacts={ARTIFACT_KEY: str(folder)},
        signature=ModelSignature(outputs=infer_signature(model_output=response).outputs, params=PARAMS),
        metadata={"request": request},
        input_example=(example.table, example.params),
        code_paths=[str(PROJECT_ROOT / p) for p in CODE_PACKAGES],
        pip_requirements=list(model_requirements()),
        registered_model_name=registered_model_name,
    )
