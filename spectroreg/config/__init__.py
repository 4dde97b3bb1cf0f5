"""Configuration: Distribution's YAML format plus ``REGISTRY_*`` overrides, validated into ``settings``."""
