"""Shared maritime picture: AIS input, vessel tracks, anomaly detectors, maritime intelligence in STIX."""
