"""Features, the XGBoost / LightGBM / CNN-LSTM models, Optuna tuning, the ensemble and MLflow logging.

Filled by the training pipeline (model_retraining).
"""
