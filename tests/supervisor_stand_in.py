"""A stand-in for the one part of the Home Assistant Supervisor that cannot run here: its
``GET /services/mqtt`` endpoint, as supervisor/api/services.py answers it (home-assistant/
supervisor at 80f790bf): with a broker app, ``{"result": "ok", "data": {...}}`` (the data
as supervisor/services/modules/mqtt.py keeps it); without one, HTTP 400 with
``{"result": "error", "message": "Service not enabled"}``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Supervisor:
    """A stand-in for http://supervisor/services/mqtt (supervisor/api/services.py): with a
    broker app, ``{"result": "ok", "data": {...}}``; without one, HTTP 400 with
    ``{"result": "error", "message": "Service not enabled"}``. Only the app's token is let in."""

    TOKEN = "app-token"

    def __init__(self, service: dict[str, Any] | None, port: int = 0) -> None:
        self.service = service
        self.requests: list[tuple[str, str | None]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.requests.append((self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != f"Bearer {Supervisor.TOKEN}":
                    self._answer(401, {"result": "error", "message": "Unauthorized"})
                elif self.path != "/services/mqtt":
                    self._answer(404, {"result": "error", "message": "Service does not exist"})
                elif stand_in.service is None:
                    self._answer(400, {"result": "error", "message": "Service not enabled"})
                else:
                    self._answer(200, {"result": "ok", "data": stand_in.service})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def mosquitto_service(port: int, password: str = "pw") -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "ssl": False, "protocol": "3.1.1", "username": "addons",
            "password": password, "addon": "core_mosquitto"}  # fmt: skip
