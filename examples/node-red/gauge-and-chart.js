// The body of the function node "gauge and chart" in examples/node-red-dashboard.json
// (python3 examples/node-red/embed.py writes it there). In: the battery summary of
// "battery". Out 1: the state of charge gauge, hidden while nothing is live (a gauge
// cannot say "no value": it would show 0 % or the last reading). Out 2: the lowest and
// highest cell for the chart, one point per series every 30 s while live (six hours are
// 720 points a line), the first at once.
const battery = msg.payload || {};
if (!battery.live) {
    context.set("plotted", 0);
    return [{visible: false}, null];
}
const gauge = battery.soc == null ? {visible: false} : {payload: battery.soc, visible: true};
let points = null;
const now = Date.now();
if (now - (context.get("plotted") || 0) >= 30000 && battery.lowestCellVoltage != null && battery.highestCellVoltage != null) {
    context.set("plotted", now);
    points = [
        {topic: "highest cell", payload: battery.highestCellVoltage},
        {topic: "lowest cell", payload: battery.lowestCellVoltage}
    ];
}
return [gauge, points];
