"""STIX 2.1: parse, validate, canonical JSON, identifiers, timestamps and patterns."""
