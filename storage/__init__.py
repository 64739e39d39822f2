"""The store: schema and migrations, prices and exogenous series, the latest-values cache."""
