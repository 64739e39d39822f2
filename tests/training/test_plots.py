"""The forecast-vs-actual picture: the fan of the quantiles around the point forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.image import imread

from training.plots import fan_bands, forecast_vs_actual


def forecast_frame(hours: int = 72) -> pd.DataFrame:
    target = pd.date_range("2018-12-01", periods=hours, freq="h", tz="UTC")
    yhat = 40 + 10 * np.sin(np.arange(hours) / 4)
    frame = pd.DataFrame({"target_ts": target, "price": yhat + 2, "yhat": yhat, "lower": yhat - 9, "upper": yhat + 9})
    for column, shift in {"q05": -9, "q10": -7, "q25": -3, "q50": 0, "q75": 3, "q90": 7, "q95": 9}.items():
        frame[column] = yhat + shift
    return frame


def test_fan__shades_the_90_and_50_percent_bands_else_the_interval_else_nothing(tmp_path):
    frame = forecast_frame()
    assert fan_bands(frame) == [
        ("90% interval (q05..q95)", "q05", "q95", 0.15),
        ("50% interval (q25..q75)", "q25", "q75", 0.3),
    ]
    older = frame.assign(**dict.fromkeys(["q05", "q10", "q25", "q50", "q75", "q90", "q95"], np.nan))
    assert fan_bands(older) == [("forecast interval", "lower", "upper", 0.18)]  # a model from before the quantiles
    assert fan_bands(older.assign(lower=np.nan, upper=np.nan)) == []  # the seasonal-naive fallback

    fan = forecast_vs_actual(frame, tmp_path / "fan.png", "NP")
    band = forecast_vs_actual(older, tmp_path / "band.png", "NP")
    # the 50% band is drawn over the 90% band: the fan has one more shade of blue than the single band
    shades = [len(np.unique(imread(path)[..., :3].reshape(-1, 3).round(2), axis=0)) for path in (fan, band)]
    assert shades[0] > shades[1]
