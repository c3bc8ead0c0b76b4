"""The subcommands of ``chargery.py`` other than the daemon (decode, record, doctor, health,
dashboard, app): the top layer, beside :mod:`chargerybms.cli`."""
