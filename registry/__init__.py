"""The promotion gate, registry aliases (stages mirror them), rollback and the audit trail.

Filled by the registry work that follows training.
"""
