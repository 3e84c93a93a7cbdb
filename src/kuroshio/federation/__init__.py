"""Federation: partner links, signed pull and push over TAXII 2.1 between sovereign nodes (docs/federation.md)."""
