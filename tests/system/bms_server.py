#!/usr/bin/env python3
"""A BMS behind a network bridge (ser2net, ESP-Link) for the system test: serves real
frames on a TCP port, for ``--port socket://127.0.0.1:PORT``. SIGUSR1: the BMS goes
silent; SIGUSR2: it talks again. Standard library only (runs in the bare container)."""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
import time
from pathlib import Path


def frames() -> bytes:
    """A1 (a V1.25 status frame: charging, 23.0 A) and A4 (a BMS16T cells frame, 53.294 V)
    from the test vectors, each followed by the BMS's spacer text."""
    path = Path(__file__).resolve().parents[1] / "data" / "frames.json"
    vectors = {v["id"]: bytes.fromhex(v["hex"]) for v in json.loads(path.read_text())}
    return vectors["A1"] + b"h::3\r\n" + vectors["A4"] + b"h::3\r\n"


def main() -> None:
    port = int(sys.argv[1])
    payload = frames()
    talking = threading.Event()
    talking.set()
    signal.signal(signal.SIGUSR1, lambda *_: talking.clear())
    signal.signal(signal.SIGUSR2, lambda *_: talking.set())
    server = socket.create_server(("127.0.0.1", port))

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                while True:
                    if talking.is_set():
                        conn.sendall(payload)
                    time.sleep(0.5)
            except OSError:
                pass  # the daemon went away; it will connect again

    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
