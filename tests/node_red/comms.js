// Prints every message of Node-RED's debug sidebar as one JSON line on stdout, as the
// editor receives it: the websocket /comms of @node-red/editor-api/lib/editor/comms.js
// (client sends {"subscribe": "debug"}; the server sends arrays of {topic, data}), with
// data.msg encoded by @node-red/nodes/core/common/21-debug.js. Uses the `ws` module
// that Node-RED itself depends on (NODE_PATH points at its node_modules).
const WebSocket = require("ws");
const url = process.argv[2];
const ws = new WebSocket(url);
ws.on("open", () => {
    ws.send(JSON.stringify({subscribe: "debug"}));
    console.log(JSON.stringify({connected: true}));
});
ws.on("message", (data) => {
    let batch;
    try { batch = JSON.parse(data); } catch (e) { return; }
    for (const item of [].concat(batch)) {
        if (item.topic !== "debug") continue;
        const d = item.data || {};
        let value = d.msg;
        if (typeof value === "string" && String(d.format || "").startsWith("Object")) {
            try { value = JSON.parse(value); } catch (e) { /* keep the text */ }
        }
        console.log(JSON.stringify({name: d.name, value: value}));
    }
});
ws.on("close", () => process.exit(0));
ws.on("error", (e) => { console.error(String(e)); process.exit(1); });
