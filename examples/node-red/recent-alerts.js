// The body of the function node "recent alerts" in examples/node-red-dashboard.json
// (python3 examples/node-red/embed.py writes it there). In: the alerts of "battery"
// (offline raised and cleared, chargery's events) and {topic: "dismiss"} from the banner.
// Out 1: {banner, alerts} for the banner and the list: the banner is the offline alert
// while it is raised, else the latest event until it is dismissed; the list holds the
// last 20, newest first. Out 2: a notification for each.
const keep = 20;
const memory = context.get("alerts") || {offline: null, notice: null, recent: []};
let note = null;
if (msg.topic === "dismiss") {
    memory.notice = null;
} else {
    const alert = msg.payload;
    if (!alert || typeof alert !== "object" || typeof alert.alert !== "boolean") return null;
    const time = alert.time || new Date().toISOString().replace(/\.\d+Z$/, "Z");
    const type = alert.type || "offline";
    if (type === "offline" && alert.alert) {
        memory.offline = {type, reason: alert.reason, time};
        note = "Battery offline: " + alert.reason;
    } else if (type === "offline") {
        memory.offline = null;
        note = "Battery values are live again";
    } else {
        memory.notice = {type, reason: alert.reason, time, cell: alert.cell ?? null};
        note = alert.reason;
    }
    // A cleared alert keeps the reason it was raised for.
    memory.recent.unshift({time, type, raised: alert.alert, reason: alert.alert ? alert.reason : (alert.was || "")});
    memory.recent = memory.recent.slice(0, keep);
}
context.set("alerts", memory);
return [{payload: {banner: memory.offline || memory.notice, alerts: memory.recent}}, note === null ? null : {payload: note}];
