// Everything the chargery dashboard page shows, read from its DOM (evaluated in the page by
// tests/test_node_red_dashboard.py with [gauge node id, chart node id]). The page's own
// elements carry data-chargery attributes; the gauge and the chart are the dashboard's.
([gaugeId, chartId]) => {
    const all = (selector) => Array.from(document.querySelectorAll(selector));
    const one = (selector) => document.querySelector(selector);
    const text = (element) => element ? element.textContent.trim() : null;
    const gauge = one('#nrdb-ui-widget-' + gaugeId);
    const banner = one('[data-chargery=alert-banner]');
    const app = one('#app') && one('#app').__vue_app__;
    const store = app ? app.config.globalProperties.$store : null;
    const points = store && store.state.data.messages[chartId];
    // The chart's time axis as drawn, in milliseconds: the extent of its ECharts instance, which
    // the chart component (ui/src/widgets/ui-chart/UIChart.vue) holds as `chart` and lists in
    // window.uiCharts when window.Cypress is set (the dashboard's own test hook; the test sets it).
    const chartAxis = (() => {
        const component = window.uiCharts && window.uiCharts[chartId];
        const model = component && component.chart && component.chart.getModel();
        const axis = model && model.getComponent('xAxis', 0);
        return axis ? axis.axis.scale.getExtent() : null;
    })();
    return {
        state: one('[data-chargery=battery]') ? one('[data-chargery=battery]').dataset.state : null,
        statusReason: text(one('[data-chargery=status-reason]')),
        values: Object.fromEntries(all('[data-chargery=value]').map((e) => [e.dataset.key,
            {raw: e.dataset.value, text: text(e.querySelector('[data-chargery=value-text]'))}])),
        cellsState: one('[data-chargery=cells]') ? one('[data-chargery=cells]').dataset.state : null,
        cells: all('[data-chargery=cell]').map((e) => {
            const bar = e.querySelector('[data-chargery=cell-bar]');
            return {number: Number(e.dataset.cell), voltage: e.dataset.voltage,
                    text: text(e.querySelector('[data-chargery=cell-voltage]')),
                    highest: e.dataset.highest === 'true', lowest: e.dataset.lowest === 'true',
                    height: bar.getBoundingClientRect().height, percent: Number(bar.dataset.percent)};
        }),
        spread: one('[data-chargery=spread]') ? one('[data-chargery=spread]').dataset.mv : null,
        gaugeShown: !!gauge && !gauge.classList.contains('d-none') && gauge.getBoundingClientRect().height > 0,
        gaugeText: gauge ? text(gauge.querySelector('.nrdb-ui-gauge-battery--bglabel')) : null,
        banner: banner ? {type: banner.dataset.type,
                          reason: text(banner.querySelector('[data-chargery=alert-reason]'))} : null,
        noAlert: !!one('[data-chargery=no-alert]'),
        alerts: all('[data-chargery=alert-item]').map((e) => ({type: e.dataset.type, raised: e.dataset.raised === 'true',
            reason: text(e.querySelector('[data-chargery=alert-reason]'))})),
        notifications: all('.nrdb-ui-notification').map((e) => e.textContent),
        chart: Array.isArray(points) ? points.map((m) => [m._datapoint.category, m._datapoint.y]) : null,
        chartTimes: Array.isArray(points) ? points.map((m) => m._datapoint.x) : null,
        chartAxis,
    };
}
