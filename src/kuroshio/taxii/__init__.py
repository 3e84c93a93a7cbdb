"""TAXII 2.1 server: the node's HTTP interface for clients and partner nodes."""

from .app import create_app

__all__ = ["create_app"]
