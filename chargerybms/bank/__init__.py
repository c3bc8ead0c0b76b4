"""Several packs in parallel as one battery: the bank.

``python3 chargery.py bank --member P1 --member P2`` subscribes to the ``state``,
``link`` and ``status`` of each member (a chargery daemon, on this host or another) and
publishes the bank under its own prefix: a ``state`` document of its own, Home Assistant
discovery for a "Battery bank" device, and optionally a Victron GX document.

- :mod:`.rules`: pure: members' documents and liveness in, the bank's document out.
- :mod:`.ha`: pure: the bank's Home Assistant entities and its dashboard.
- :mod:`.victron`: pure: the bank as one battery for the two Venus OS drivers.
- :mod:`.process`: the process: MQTT in and out, a clock, signals.
"""
