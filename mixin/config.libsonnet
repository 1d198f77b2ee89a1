// What a user of the mixin sets: selectors, the HA labels to collapse, thresholds and links.
// The error alert's numbers are the exporter's own (the landing page mirrors them): one file.
local thresholds = import '../agent_session_exporter/serve/thresholds.json';

{
  _config+:: {
    // The scrape job of the exporter (the ExporterDown alert and nothing else select on it).
    exporterSelector: 'job="agent-session-exporter"',
    // Labels that tell replicas of one exporter apart: every rule first takes the max across them,
    // so an HA pair never doubles a count.
    haLabels: 'instance, pod',

    errorRatio: thresholds.error_ratio,
    timeoutRatio: thresholds.timeout_ratio,
    minFinished: thresholds.min_finished,
    window: '%dm' % thresholds.window_minutes,

    costPerHourUSD: 50,
    activeStuck: 100,
    // Task restarts in 15 minutes above which a source's polling is said to crash-loop.
    taskRestarts: 3,
    // Webhook pushes refused for their signature in 15 minutes above which someone should look.
    badSignatures: 5,
    // How long a source's activity stream (push: sse) stays disconnected before someone should look.
    streamDownFor: '15m',

    runbookBase: 'https://github.com/agent-session-exporter/agent-session-exporter/blob/main/README.md#',
    // Grafana's address as people open it (alert links); the compose file's by default.
    grafanaUrl: 'http://localhost:3000',
    dashboardUid: 'agent-sessions',
    dashboardTags: ['agent-session-exporter'],
  },
}
