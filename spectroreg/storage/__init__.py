"""Storage drivers: byte storage by path (``IStorageDriver``) and its implementations."""
