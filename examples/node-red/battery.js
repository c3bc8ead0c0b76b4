// The body of the function node "battery" in examples/node-red-flow.json and
// examples/node-red-dashboard.json: both embed this very text (python3
// examples/node-red/embed.py writes it into them; a test fails when they differ).
//
// Keeps the latest `status`, `link` and `state` of chargery and decides what is true now.
// Output 1: the battery summary while it is live, else {live: false, ...} (never the
// last reading dressed up as live). Output 2: the alert, raised and cleared, and each of
// chargery's events (cut-off causes, health warnings) as it comes.
const prefix = env.get("CHARGERY_PREFIX") || "chargerybms";
// chargery sends `state` with every burst of frames and at least every --heartbeat
// seconds (60 by default) while the BMS talks: a document older than this is not live
// (a hung daemon, a lost broker connection). Raise it if you raised --heartbeat.
const maxAge = Number(env.get("CHARGERY_MAX_AGE")) || 60;
const topic = msg.topic || "";
const now = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");

if (topic === prefix + "/event") {
    // One document per event, not retained: passed on once, it changes nothing live.
    const event = msg.payload;
    if (!event || typeof event !== "object" || typeof event.message !== "string") {
        node.warn("Chargery BMS: ignored an event without a message: " + JSON.stringify(event));
        return null;
    }
    const type = typeof event.type === "string" ? event.type : "event";
    node.warn(`Chargery BMS ${type}: ${event.message}`);
    return [null, {topic: prefix + "/alert", payload: {
        alert: true, type: type, reason: event.message, time: event.time || now(), cell: event.cell ?? null, event: event
    }}];
}

const seen = context.get("seen") || {status: null, link: null, state: null, stale: false, count: 0};
if (topic === prefix + "/status") {
    const status = String(msg.payload);
    // A new run of chargery: the retained `link` is the last run's, this run will say its own
    // (at its first frame, or after --stale-after of silence).
    if (status === "online" && seen.status === "offline") seen.link = null;
    seen.status = status;
}
else if (topic === prefix + "/link") seen.link = String(msg.payload);
else if (topic === prefix + "/state" && msg.payload && typeof msg.payload === "object") {
    seen.state = msg.payload;
    seen.stale = false;
    // Forgotten when no newer document has come within maxAge (each document counts;
    // only the timer of the latest one acts).
    const count = seen.count = (seen.count || 0) + 1;
    setTimeout(() => {
        const latest = context.get("seen");
        if (!latest || latest.count !== count || latest.state === null) return;
        latest.state = null;
        latest.stale = true;
        context.set("seen", latest);
        report(latest);
    }, maxAge * 1000);
}
else return null;
// A reading from before the daemon or the BMS went offline is over: only a new `state`
// document makes the battery live again.
if (topic !== prefix + "/state" && msg.payload !== "online") seen.state = null;
context.set("seen", seen);
report(seen);
return null;

function report(seen) {
    // `link` means something only while `status` is online (after a crash only the
    // daemon's Last Will, `status offline`, can speak).
    let problem = null;
    if (seen.status === "offline") problem = "chargery is not running (stopped, crashed or unreachable)";
    else if (seen.status === "online" && seen.link === "offline") problem = "the BMS is silent (no valid frame)";
    else if (seen.status === "online" && seen.state && seen.state.link === "offline") problem = "the BMS is silent (no valid frame)";
    else if (seen.stale) problem = `no data from chargery for ${maxAge} s`;
    const live = problem === null && seen.status === "online" && seen.link === "online" && seen.state !== null;

    let battery;
    const s = seen.state || {};
    if (live) {
        // Values the BMS has not sent are null: shown as such, never as 0.
        battery = {
            live: true,
            soc: s.soc,
            voltage: s.pack_voltage,
            current: s.current,
            power: s.power,
            chargePower: s.charge_power,
            dischargePower: s.discharge_power,
            mode: s.mode,
            cells: s.cell_voltages,
            lowestCellVoltage: s.cell_min,
            lowestCell: s.cell_min_index,
            highestCellVoltage: s.cell_max,
            highestCell: s.cell_max_index,
            cellDelta: s.cell_delta,
            chargeEndVoltage: s.charge_end_voltage,
            dischargeEndVoltage: s.discharge_end_voltage,
            temperature1: s.temperature_1,
            temperature2: s.temperature_2,
            chargedKWh: s.energy_charged,
            dischargedKWh: s.energy_discharged,
            lastFrame: s.last_frame
        };
        node.status({fill: "green", shape: "dot", text: `${s.soc ?? "?"} % ${s.power ?? "?"} W`});
    } else {
        const waiting = seen.status === "online" ? "waiting for the BMS's first frame" : "waiting for chargery";
        battery = {live: false, state: problem ? "offline" : "waiting", reason: problem || waiting, lastFrame: s.last_frame ?? null};
        node.status({fill: problem ? "red" : "grey", shape: "ring", text: problem ? "offline/stale" : "waiting"});
    }

    // Raised when the reason changes; cleared only by live values (while chargery starts
    // and waits for the BMS, the alert stands).
    let alert = null;
    const raised = context.get("alert") || null;
    if (problem && problem !== raised) {
        node.warn("Chargery BMS alert: " + problem);
        alert = {topic: prefix + "/alert", payload: {alert: true, type: "offline", reason: problem, time: now()}};
        context.set("alert", problem);
    } else if (raised && live) {
        node.log("Chargery BMS alert cleared: values are live again");
        alert = {topic: prefix + "/alert", payload: {alert: false, type: "offline", reason: "cleared", was: raised, time: now()}};
        context.set("alert", null);
    }
    node.send([{topic: prefix + "/battery", payload: battery}, alert]);
}
