// The body of the function node "chart window" in examples/node-red-dashboard.json
// (python3 examples/node-red/embed.py writes it there). Started once a minute by the
// inject node "every minute". Out: the chart's time axis, pinned to the last six hours.
// The chart drops points older than six hours only when a new point comes, and its axis
// otherwise spans whatever points it holds: once chargery is offline, no point comes, and
// a page opened the next day showed yesterday's points on an axis two days wide. Now the
// axis is always the last six hours (older points fall outside it, and go with the next
// point), and it moves on whether points come or not. Its right end is a minute ahead:
// a point comes every 30 s while live and must never land beyond it before the next move.
const hours = 6;
const ahead = 60 * 1000;
const max = Date.now() + ahead;
return {ui_update: {chartOptions: {xAxis: {min: max - hours * 3600 * 1000, max: max}}}};
