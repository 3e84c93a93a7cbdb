"""Releasability: marking definitions (TLP 2.0, releasable-to, exercise), audiences, per-reader redaction."""
