"""Data checks (schema, range, gaps, freshness) and the health score.

Filled by the ingestion and data-quality pipelines; the store enforces its own write contract
in ``storage.prices`` meanwhile.
"""
