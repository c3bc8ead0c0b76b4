"""chargery: a Chargery BMS8T/16T/24T to MQTT daemon with Home Assistant discovery.

The import name is ``chargerybms`` so that ``chargery`` keeps meaning the script.
"""

__version__ = "0.1.0"
