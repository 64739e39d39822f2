"""The domain core: the leaves every other package shares, importing no other product package.

- ``core.settings``: the one settings object, read from the environment once per process.
- ``core.regions``: the region catalogue (``core/regions.toml`` or ``EOPT_REGION_CATALOGUE``): every region as data.
- ``core.markets``: a region's market (its catalogue entry) and its bundled history.
- ``core.metrics``: MAE, rMAE, sMAPE, RMSE, guarded MAPE, Diebold-Mariano, pinball loss, Kupiec coverage test.
- ``core.check_results``: a check's result and the health score.
- ``core.freshness``: how stale a series is and where its gaps are.
- ``core.templating``: the Jinja2 environment each package renders its ``templates/`` with.
"""
