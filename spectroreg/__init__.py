"""spectroreg: a container registry daemon (OCI Distribution / Docker Registry HTTP API v2)."""

__version__ = "0.1.0"
