"""Outputs: one module per kind of publication, each with a factory
``output(settings, topics) -> Output | None`` (types in :mod:`chargerybms.base`), listed
in :func:`chargerybms.registry.registry`. Nothing here imports the daemon or the registry."""
