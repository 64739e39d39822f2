"""The pyfunc ensemble model, forecast generation and the seasonal-naive fallback.

Filled by the forecast pipeline (forecast_generation).
"""
