"""Models-from-code entry of the registered pyfunc: MLflow imports this file to build the model."""

from mlflow.models import set_model

from serving.pyfunc import EnsemblePyfunc

set_model(EnsemblePyfunc())
