"""Electricity Optimizer: the settings object and the `eopt` command line."""
