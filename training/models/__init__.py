"""The four forecasting members behind one interface (``base.ForecastModel``): XGBoost, LightGBM,
the CNN-LSTM and the LEAR linear model (``training.lear``)."""

from __future__ import annotations

from training.models.base import FitResult, ForecastModel, ModelError


def model_class(name: str) -> type[ForecastModel]:
    """The model class of a name in ``training.config.MODEL_NAMES``."""
    if name == "xgboost":
        from training.models.gradient_boosting import XGBoostModel

        return XGBoostModel
    if name == "lightgbm":
        from training.models.gradient_boosting import LightGBMModel

        return LightGBMModel
    if name == "cnn_lstm":
        from training.models.cnn_lstm import CnnLstmModel  # torch loads only when needed

        return CnnLstmModel
    if name == "lear":
        from training.lear import LearMember

        return LearMember
    raise ModelError(f"unknown model {name!r}; known models are xgboost, lightgbm, cnn_lstm, lear")


__all__ = ["FitResult", "ForecastModel", "ModelError", "model_class"]
