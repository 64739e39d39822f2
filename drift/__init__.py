"""Evidently drift reports and their machine-readable summary.

- ``drift.monitor.region_drift``: a region's drift check (what the data-quality pipeline calls):
  its last ``quality_window_days`` against the same season of its champion's training window,
  plus its served forecasts against the champion's own test window; one ``CheckResult`` named
  ``drift`` and the HTML/JSON reports.
- ``drift.reports``: the pure part: drift columns, the Evidently reports, and the numbers read
  back from them.
"""
