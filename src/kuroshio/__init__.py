"""Kuroshio: a partner node that shares STIX 2.1 intelligence over TAXII 2.1 under the originator's releasability."""

__version__ = "0.1.0"
