// Alerts, with the monitoring-mixins annotations: summary, description, runbook_url (a README
// runbook section), and dashboard_url where a dashboard view helps.
{
  local c = $._config,
  local ha(expr) = 'max without (%s) (%s)' % [c.haLabels, expr],
  local sumBy(by, expr) = 'sum by (%s) (%s)' % [by, ha(expr)],
  local runbook(anchor) = c.runbookBase + anchor,
  local percent(ratio) = '%g %%' % (ratio * 100),

  prometheusAlerts+:: {
    groups+: [{
      name: 'agent-sessions.alerts',
      rules: [
        // Errors as the README defines them. The guard of a minimum of finished sessions keeps one
        // failure in a quiet hour from paging anyone (1 of 3 is 33 % but means little).
        {
          alert: 'AgentSessionsHighErrorRatio',
          expr: 'source:agent_sessions_error_ratio:rate%(w)s > %(r)g\n  and source:agent_sessions_finished:increase%(w)s >= %(n)d\n'
                % { w: c.window, r: c.errorRatio, n: c.minFinished },
          'for': '10m',
          labels: { severity: 'critical' },
          annotations: {
            summary: '{{ $labels.source }}: {{ $value | humanizePercentage }} of sessions end in error',
            description: 'More than %s of the sessions of {{ $labels.source }} ({{ $labels.provider }}) finished as errors (outcome error or timeout, or an error text) over the last %s, with at least %d finished sessions.'
                         % [percent(c.errorRatio), std.strReplace(c.window, 'm', ' minutes'), c.minFinished],
            runbook_url: runbook('runbook-high-error-ratio'),
            dashboard_url: '%s/d/%s/agent-sessions?var-source={{ $labels.source }}' % [c.grafanaUrl, c.dashboardUid],
          },
        },
        // Timeouts are rarer than errors and often mean a stuck tool or model.
        {
          alert: 'AgentSessionsHighTimeoutRatio',
          expr: 'source:agent_sessions_timeout_ratio:rate%(w)s > %(r)g\n  and source:agent_sessions_finished:increase%(w)s >= %(n)d\n'
                % { w: c.window, r: c.timeoutRatio, n: c.minFinished },
          'for': '10m',
          labels: { severity: 'warning' },
          annotations: {
            summary: '{{ $labels.source }}: {{ $value | humanizePercentage }} of sessions time out',
            description: 'More than %s of the sessions of {{ $labels.source }} ({{ $labels.provider }}) timed out over the last %s, with at least %d finished sessions.'
                         % [percent(c.timeoutRatio), std.strReplace(c.window, 'm', ' minutes'), c.minFinished],
            runbook_url: runbook('runbook-high-timeout-ratio'),
            dashboard_url: '%s/d/%s/agent-sessions?var-source={{ $labels.source }}' % [c.grafanaUrl, c.dashboardUid],
          },
        },
        // The source's last cycle failed for 5 minutes (10 cycles at the default 30 s interval).
        {
          alert: 'AgentSessionSourceDown',
          expr: '%s == 0' % ha('agent_session_exporter_source_up'),
          'for': '5m',
          labels: { severity: 'warning' },
          annotations: {
            summary: '{{ $labels.source }}: the exporter cannot read the {{ $labels.provider }} API',
            description: 'Every collection cycle of {{ $labels.source }} failed for 5 minutes. The exporter\'s log names the cause (credentials refused, timeouts, HTTP status).',
            runbook_url: runbook('runbook-source-down'),
          },
        },
        // No successful cycle for 15 minutes: the data on the dashboards is stale, whatever `up` says.
        {
          alert: 'AgentSessionSourceStale',
          expr: 'time() - %s > 900' % ha('agent_session_exporter_last_success_timestamp_seconds'),
          'for': '5m',
          labels: { severity: 'warning' },
          annotations: {
            summary: '{{ $labels.source }}: no fresh data for {{ $value | humanizeDuration }}',
            description: 'The last successful collection of {{ $labels.source }} is older than 15 minutes.',
            runbook_url: runbook('runbook-source-down'),
          },
        },
        // A source's polling task ended by a fault and was restarted (with backoff) again and again:
        // a bug, or state the exporter cannot handle. Counting goes on between restarts, but slowly.
        {
          alert: 'AgentSessionSourceTaskRestarting',
          expr: 'sum by (source, provider) (%s) > %d' % [ha('increase(agent_session_exporter_source_task_restarts_total[15m])'), c.taskRestarts],
          'for': '5m',
          labels: { severity: 'warning' },
          annotations: {
            summary: '{{ $labels.source }}: its polling task keeps failing and being restarted',
            description: 'The polling task of {{ $labels.source }} ({{ $labels.provider }}) was restarted more than %d times in 15 minutes after unexpected errors; the exporter\'s log has each traceback.' % c.taskRestarts,
            runbook_url: runbook('runbook-source-task-restarting'),
          },
        },
        // A source's label values passed its series budget (max_series_per_family): new values of
        // `workflow`, then `model`, then `status` are counted under `other`. Totals stay exact;
        // the breakdown by that label no longer is.
        {
          alert: 'AgentSessionSeriesFolded',
          expr: 'sum by (source, provider, family, label) (%s) > 0' % ha('increase(agent_session_exporter_series_folded_total[1h])'),
          'for': '5m',
          labels: { severity: 'info' },
          annotations: {
            summary: '{{ $labels.source }}: {{ $labels.label }} values of {{ $labels.family }} fold into "other"',
            description: 'The series budget of {{ $labels.source }} ({{ $labels.provider }}) is spent for {{ $labels.family }}: new {{ $labels.label }} values are counted as "other". Raise max_series_per_family, or lower max_label_values.',
            runbook_url: runbook('runbook-series-folded'),
          },
        },
        // Pushes to a source's webhook URL keep failing their signature: the secret changed in Kapso
        // (or the URL names another source), a proxy rewrites the body, or somebody else posts there.
        // Nothing is counted from them; the polls go on counting.
        {
          alert: 'AgentSessionWebhookBadSignatures',
          expr: 'sum by (source, provider) (%s) > %d' % [ha('increase(agent_session_exporter_pushes_total{outcome="bad_signature"}[15m])'), c.badSignatures],
          'for': '5m',
          labels: { severity: 'warning' },
          annotations: {
            summary: '{{ $labels.source }}: webhooks keep arriving with a wrong signature',
            description: 'More than %d pushes to the webhook URL of {{ $labels.source }} ({{ $labels.provider }}) had a missing or wrong signature in 15 minutes and were refused; failures are counted at the next poll instead of within seconds.' % c.badSignatures,
            runbook_url: runbook('runbook-webhook-bad-signatures'),
          },
        },
        // A source's activity stream (push: sse) has not been connected at all for a while (on no
        // replica of an HA pair): sessions are still counted, at the poll interval instead of within
        // seconds. Why it keeps ending is in push_stream_reconnects_total{reason}.
        {
          alert: 'AgentSessionPushStreamDown',
          expr: '%s == 0' % sumBy('source, provider', 'max_over_time(agent_session_exporter_push_stream_connected[%s])' % c.streamDownFor),
          'for': '5m',
          labels: { severity: 'warning' },
          annotations: {
            summary: '{{ $labels.source }}: its activity stream is not connected',
            description: 'The activity stream of {{ $labels.source }} ({{ $labels.provider }}) has not been connected for %s; sessions are counted at the next poll instead of within seconds. agent_session_exporter_push_stream_reconnects_total{reason} says why it keeps ending.' % c.streamDownFor,
            runbook_url: runbook('runbook-activity-stream-down'),
          },
        },
        // The exporter itself is not scraped.
        {
          alert: 'AgentSessionExporterDown',
          expr: 'up{%s} == 0' % c.exporterSelector,
          'for': '5m',
          labels: { severity: 'critical' },
          annotations: {
            summary: 'agent-session-exporter {{ $labels.instance }} is down',
            description: 'Prometheus cannot scrape {{ $labels.instance }}; no session metrics are collected.',
            runbook_url: runbook('runbook-exporter-down'),
          },
        },
        // The provider keeps answering 429 for 15 minutes.
        {
          alert: 'AgentSessionUpstreamRateLimited',
          expr: '%s > 0' % sumBy('source, provider', 'rate(agent_session_exporter_requests_total{code="429"}[10m])'),
          'for': '15m',
          labels: { severity: 'warning' },
          annotations: {
            summary: '{{ $labels.source }}: the {{ $labels.provider }} API keeps rate limiting the exporter',
            description: 'HTTP 429 for 15 minutes; consider a longer interval or max_requests_per_second.',
            runbook_url: runbook('runbook-upstream-errors'),
          },
        },
        // More than 10 % of upstream requests answered 5xx for 15 minutes (retries hide single blips).
        {
          alert: 'AgentSessionUpstreamServerErrors',
          expr: '%s\n  / %s > 0.10\n' % [sumBy('source, provider', 'rate(agent_session_exporter_requests_total{code=~"5.."}[10m])'),
                                         sumBy('source, provider', 'rate(agent_session_exporter_requests_total[10m])')],
          'for': '15m',
          labels: { severity: 'warning' },
          annotations: {
            summary: '{{ $labels.source }}: {{ $value | humanizePercentage }} of requests to {{ $labels.provider }} fail with 5xx',
            description: "The provider's API is failing; the exporter retries with backoff meanwhile.",
            runbook_url: runbook('runbook-upstream-errors'),
          },
        },
        // A cost guard, not a health check: tune costPerHourUSD to your budget.
        {
          alert: 'AgentSessionCostHigh',
          expr: 'source:agent_session_cost_usd:increase1h > %g' % c.costPerHourUSD,
          'for': '15m',
          labels: { severity: 'warning' },
          annotations: {
            summary: '{{ $labels.source }}: {{ $value | printf "%.2f" }} USD spent in the last hour',
            description: 'The LLM cost of finished sessions of {{ $labels.source }} exceeds %g USD per hour.' % c.costPerHourUSD,
            runbook_url: runbook('runbook-cost'),
          },
        },
        // Sessions piling up: stuck workflows, a human handoff queue nobody works, a provider that
        // never closes sessions.
        {
          alert: 'AgentSessionsActiveStuckHigh',
          expr: 'min_over_time(source:agent_sessions_active:sum[30m]) > %d' % c.activeStuck,
          'for': '15m',
          labels: { severity: 'warning' },
          annotations: {
            summary: '{{ $labels.source }}: {{ $value }} sessions stay active',
            description: 'At least %d sessions of {{ $labels.source }} have been active for 30 minutes without dipping.' % c.activeStuck,
            runbook_url: runbook('runbook-stuck-sessions'),
          },
        },
      ],
    }],
  },
}
