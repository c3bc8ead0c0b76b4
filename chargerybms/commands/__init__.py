"""The subcommands of ``chargery.py`` other than the daemon (decode, record, doctor, health,
dashboard): the top layer, beside :mod:`chargerybms.cli`."""
