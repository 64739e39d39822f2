"""The promotion gate, registry stages and aliases kept in step, rollback and the audit trail.

Filled by the registry work that follows training.
"""
