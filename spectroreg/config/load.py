"""
Load a Distribution configuration file, apply ``REGISTRY_*`` overrides and
validate it into L{spectroreg.config.settings.Settings}.

    settings = load_settings("/etc/spectro/config.yml")
    print(effective_config("/etc/spectro/config.yml"))  # `spectroreg config PATH`

Every failure is a L{ConfigError} whose text is one line naming the cause.
"""

import os

from spectroreg.config.environment import apply_environment, normalise_one_of
from spectroreg.config.errors import ConfigError
from spectroreg.config.tree import Provenance, load_tree

CONFIGURATION_PATH_VARIABLE = "REGISTRY_CONFIGURATION_PATH"


def _read(path, environ, data=None):
    if environ is None:
        environ = os.environ
    if path is None:
        path = environ.get(CONFIGURATION_PATH_VARIABLE) or None
    if path is None:
        raise ConfigError(
            "no configuration file: give its path or set {}".format(CONFIGURATION_PATH_VARIABLE)
        )
    path = os.fspath(path)
    if data is None:
        try:
            with open(path, "rb") as stream:
                data = stream.read()
        except OSError as error:
            raise ConfigError(
                "{}: cannot read the configuration file: {}".format(path, error.strerror or error)
            ) from None
    warnings = []
    provenance = Provenance(path)
    tree = load_tree(data, path, provenance, warnings)
    if tree is None:
        raise ConfigError("{}: the file is empty; a configuration needs at least version: 0.1 and storage".format(path))
    if not isinstance(tree, dict):
        raise ConfigError(
            "{}: the configuration must be a mapping of sections (version, storage, http, ...)".format(
                provenance.where(())
            )
        )
    normalise_one_of(tree)
    apply_environment(tree, environ, provenance, warnings)
    return path, tree, provenance, warnings, data


def _load(path, environ, data=None):
    import dataclasses

    from spectroreg.config.validate import build_settings

    path, tree, provenance, warnings, data = _read(path, environ, data)
    settings = build_settings(tree, provenance, warnings, path)
    return dataclasses.replace(settings, source_data=data), tree


def load_settings(path=None, environ=None, data=None):
    """
    The validated settings of configuration file C{path} (default: the file
    named by C{REGISTRY_CONFIGURATION_PATH}) with the C{REGISTRY_*} variables
    of C{environ} (default: C{os.environ}) applied.

    @param data: the file's content, already read (C{path} then only names
        it in messages).
    @raise ConfigError: the file cannot be read or parsed, or a value is wrong.
    """
    settings, _ = _load(path, environ, data)
    return settings


def effective_config(path=None, environ=None):
    """
    The effective configuration (file plus overrides) as YAML, with secrets
    masked, preceded by comment lines for the source and every warning.

    @raise ConfigError: as L{load_settings}.
    """
    import yaml

    from spectroreg.config.masking import mask

    settings, tree = _load(path, environ)
    lines = ["# effective configuration of {} after REGISTRY_* overrides; secrets masked".format(settings.source)]
    for warning in settings.warnings:
        lines.append("# warning: " + " ".join(warning.split()))
    body = yaml.dump(
        mask(tree),
        Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
        default_flow_style=False,
        sort_keys=False,
        allow_unicode=True,
    )
    return "\n".join(lines) + "\n" + body
