"""The flows the DAGs and the ``eopt`` commands share: one module per pipeline.

- ``pipelines.model_retraining``: extract, check, tune, train, evaluate, register, gate and deploy
  one region's model.
"""
