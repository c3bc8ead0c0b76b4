#!/usr/bin/env python3
"""Write the Node-RED sources of this folder into the flows beside it, or check them.

Node-RED imports a flow as one JSON file, with each function's and template's code as a
string inside it. The code lives here as files, so it is read and changed as code, and
the two flows share one `battery.js` (the liveness rules) instead of two copies:

    python3 examples/node-red/embed.py            # after editing a file here
    python3 examples/node-red/embed.py --check    # exit status 1 when a flow differs

The test suite runs the check, so a flow that has drifted from these files fails it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent

# source file -> the (flow file, node name) pairs that embed it
SOURCES: dict[str, list[tuple[str, str]]] = {
    "battery.js": [("node-red-flow.json", "battery"), ("node-red-dashboard.json", "battery")],
    "gauge-and-chart.js": [("node-red-dashboard.json", "gauge and chart")],
    "chart-window.js": [("node-red-dashboard.json", "chart window")],
    "recent-alerts.js": [("node-red-dashboard.json", "recent alerts")],
    "values.vue": [("node-red-dashboard.json", "battery values")],
    "cells.vue": [("node-red-dashboard.json", "cells")],
    "banner.vue": [("node-red-dashboard.json", "alert banner")],
    "alerts.vue": [("node-red-dashboard.json", "alert list")],
}
FIELD = {"function": "func", "ui-template": "format"}


def dump(flow: list[dict[str, object]]) -> str:
    """A flow file as the repository keeps it (as Node-RED's export writes it, one space)."""
    return json.dumps(flow, indent=1, ensure_ascii=False) + "\n"


def embed(examples: Path = EXAMPLES, write: bool = True) -> list[str]:
    """Put every source into its nodes; return what differed ("flow: node (source)")."""
    flows: dict[str, list[dict[str, object]]] = {}
    differed: list[str] = []
    for source, places in SOURCES.items():
        text = (examples / "node-red" / source).read_text()
        for flow_file, name in places:
            flow = flows.setdefault(flow_file, json.loads((examples / flow_file).read_text()))
            nodes = [n for n in flow if n.get("name") == name and n.get("type") in FIELD]
            if len(nodes) != 1:
                raise SystemExit(f"{flow_file}: expected one function or template named {name!r}, found {len(nodes)}")
            (node,) = nodes
            field = FIELD[str(node["type"])]
            if node.get(field) != text:
                differed.append(f"{flow_file}: {name} ({source})")
                node[field] = text
    if write:
        for flow_file, flow in flows.items():
            path = examples / flow_file
            if path.read_text() != dump(flow):
                path.write_text(dump(flow))
    return differed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a flow differs")
    args = parser.parse_args(argv)
    differed = embed(write=not args.check)
    for line in differed:
        print(("differs: " if args.check else "updated: ") + line)
    return 1 if args.check and differed else 0


if __name__ == "__main__":
    sys.exit(main())
