"""The ``catalog`` section."""

from dataclasses import dataclass

from spectroreg.config.declare import INT, key


@dataclass(frozen=True)
class CatalogSettings:
    maxentries: int = key(INT, 1000, minimum=1)


def catalog_settings(check, tree):
    """The checked C{catalog} section (L{CatalogSettings})."""
    path = ("catalog",)
    section_values = check.mapping(tree.get("catalog"), path)
    check.known(section_values, path)
    return CatalogSettings(**check.read_keys(CatalogSettings, section_values, path))
