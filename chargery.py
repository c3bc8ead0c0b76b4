#!/usr/bin/env python3
"""chargery: read a Chargery BMS8T/16T/24T on its RS-232 port and publish it to MQTT.

python3 chargery.py --demo          a simulated BMS, printed (no hardware, no broker)
python3 chargery.py                 the daemon, with the settings below
python3 chargery.py --help          every flag
python3 chargery.py dashboard       a Home Assistant dashboard for this BMS (YAML to paste)
python3 chargery.py health          which cell is failing, and why the BMS cut off
python3 chargery.py bank --member P1 --member P2   several packs in parallel as one battery
python3 chargery.py decode|record|doctor|dashboard|health --help
"""

# ---------------------------------------------------------------------------------------
# Settings. Uncomment a line and edit it, or set CHARGERY_<NAME> in the environment (for
# systemd's EnvironmentFile=), or pass a flag (--port, --mqtt-host, ...). A flag wins over
# the environment, which wins over this block. Each line shows the default (None: unset,
# and the comment says what that means); a name here that is not a setting stops the
# daemon with a message naming the closest one. Installed as a service (install.sh), this
# file is replaced by every upgrade: your settings go into /etc/chargery/chargery.env
# (see docs/upgrading.md).
# ---------------------------------------------------------------------------------------
# PORT = "/dev/ttyUSB0"  # serial device, or a pyserial URL: socket://host:port, rfc2217://...
# BAUD = 115200

# MQTT_HOST = None  # the broker, e.g. "192.168.1.10"; unset: "127.0.0.1"
# MQTT_PORT = None  # unset: 1883
# MQTT_USERNAME = None
# MQTT_PASSWORD = None  # better: CHARGERY_MQTT_PASSWORD, MQTT_PASSWORD_FILE or a systemd credential
# MQTT_PASSWORD_FILE = None
# MQTT_TLS = False
# MQTT_CA_FILE = None  # unset: the system's CA certificates
# MQTT_CLIENT_ID = None  # unset: chargery-<device id>

# TOPIC_PREFIX = "chargerybms"
# CELLS = None  # cells really in series; unset (or 0): every slot the BMS sends
# PUBLISH_CELLS = False  # cellvolt1..N and cellimped1..N topics
# STALE_AFTER = 10.0  # seconds without a valid frame before <prefix>/link goes offline

# HA_DISCOVERY = True  # Home Assistant MQTT discovery
# DEVICE_NAME = "Chargery BMS"
# HA_MAX_AGE = 300.0  # seconds a value may be held back from Home Assistant (0: none held)

# VICTRON = None  # a document for a Victron GX driver: "serialbattery" or "mqtt-battery"
# CAPACITY_AH = None  # the battery's capacity in Ah (needed by VICTRON = "serialbattery")

# The bank (python3 chargery.py bank; docs/several-packs.md): several packs in parallel as one battery
# BANK_MEMBERS = None  # the members' topic prefixes, e.g. "chargerybms/house,chargerybms/shed=280"
# BANK_PREFIX = "chargerybank"  # the bank's own topic prefix
# BANK_VICTRON = None  # the bank as one battery for a Victron GX: "serialbattery" or "mqtt-battery"
# ---------------------------------------------------------------------------------------

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chargerybms.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], constants=globals()))
