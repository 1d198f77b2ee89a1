// The agent-sessions dashboard in plain jsonnet: panels on a 24-column grid, two per row.
function(c)
  local ds = { type: 'prometheus', uid: '${datasource}' };
  local ha(expr) = 'max without (%s) (%s)' % [c.haLabels, expr];
  local sumBy(by, expr) = 'sum by (%s) (%s)' % [by, ha(expr)];
  local sel = 'source=~"$source", provider=~"$provider", workflow=~"$workflow"';
  local exporterSel = 'source=~"$source", provider=~"$provider"';
  local rate(metric, extra='') = 'rate(%s{%s%s}[$__rate_interval])' % [metric, sel, extra];
  local ratio(by, numerator) = '%s / %s' % [sumBy(by, numerator), sumBy(by, rate('agent_sessions_finished_total'))];
  // A workflow's display name joined from agent_session_workflow_info where the provider names
  // workflows; workflows without one keep their id alone (the `or on` keeps them).
  local named(expr) =
    '(%s) * on (source, workflow) group_left (workflow_name) max by (source, workflow, workflow_name) (agent_session_workflow_info{source=~"$source"})\n  or on (source, workflow) (%s)'
    % [expr, expr];
  local target(refId, expr, legend, exemplar=false) =
    { refId: refId, datasource: ds, expr: expr, legendFormat: legend } + (if exemplar then { exemplar: true } else {});
  // pos: [x, y, width] on Grafana's 24-column grid; every panel is 8 rows high.
  local panel(id, pos, title, unit, targets, type='timeseries', description='', defaults={}) = {
    id: id,
    type: type,
    title: title,
    description: description,
    datasource: ds,
    gridPos: { x: pos[0], y: pos[1], w: pos[2], h: 8 },
    fieldConfig: { defaults: { unit: unit } + defaults, overrides: [] },
    targets: [target(std.char(65 + i), targets[i][0], targets[i][1], std.length(targets[i]) > 2 && targets[i][2])
              for i in std.range(0, std.length(targets) - 1)],
  };
  local variable(name, label, query) = {
    name: name,
    type: 'query',
    datasource: ds,
    label: label,
    query: { query: query, refId: name },
    definition: query,
    includeAll: true,
    multi: true,
    allValue: '.*',
    refresh: 2,
    current: { text: 'All', value: '$__all' },
  };
  {
    uid: c.dashboardUid,
    title: 'Agent sessions',
    tags: c.dashboardTags,
    timezone: 'browser',
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    templating: { list: [
      { name: 'datasource', type: 'datasource', query: 'prometheus', label: 'Data source',
        current: { text: 'Prometheus', value: 'prometheus' } },
      variable('provider', 'Provider', 'label_values(agent_session_exporter_source_up, provider)'),
      variable('source', 'Source', 'label_values(agent_session_exporter_source_up{provider=~"$provider"}, source)'),
      variable('workflow', 'Workflow', 'label_values(agent_sessions_finished_total{source=~"$source", provider=~"$provider"}, workflow)'),
    ] },
    annotations: { list: [
      { name: 'Alerts', type: 'dashboard', builtIn: 1, enable: true, datasource: { type: 'grafana', uid: '-- Grafana --' } },
    ] },
    panels: [
      panel(1, [0, 0, 12], 'Finished sessions by outcome (per minute)', 'short',
            [[sumBy('source, outcome', rate('agent_sessions_finished_total')) + ' * 60', '{{source}} {{outcome}}']],
            description='agent_sessions_finished_total: each session counted once, when it first reaches a terminal status.'),
      panel(2, [12, 0, 12], 'Error and timeout ratio', 'percentunit', [
        [ratio('source', rate('agent_session_errors_total')), '{{source}} error'],
        [ratio('source', rate('agent_sessions_finished_total', ', outcome="timeout"')), '{{source}} timeout'],
      ]),
      panel(3, [0, 8, 12], 'Active sessions', 'short',
            [[sumBy('source, status', 'agent_sessions_active{%s}' % sel), '{{source}} {{status}}']]),
      panel(4, [12, 8, 12], 'Session duration p50 / p95 / p99 (dots: exemplar sessions, click to open)', 's', [
        ['histogram_quantile(%g, %s)' % [q, sumBy('source, le', rate('agent_session_duration_seconds_bucket'))],
         '{{source}} p%d' % (q * 100), true]
        for q in [0.5, 0.95, 0.99]
      ]),
      panel(5, [0, 16, 12], 'Tokens by type (per hour)', 'short',
            [[sumBy('source, token_type', rate('agent_session_tokens_total')) + ' * 3600', '{{source}} {{token_type}}']]),
      panel(6, [12, 16, 12], 'Cost by model (USD per hour)', 'currencyUSD',
            [[sumBy('source, model', rate('agent_session_cost_usd_total')) + ' * 3600', '{{source}} {{model}}']]),
      panel(7, [0, 24, 12], 'Sessions with errors and warnings (per minute)', 'short', [
        [sumBy('source', rate('agent_session_errors_total')) + ' * 60', '{{source}} errors'],
        [sumBy('source', rate('agent_session_warnings_total')) + ' * 60', '{{source}} warnings'],
      ]),
      panel(8, [12, 24, 6], 'Exporter: sources up', 'short',
            [[ha('agent_session_exporter_source_up{%s}' % exporterSel), '{{source}}']], type='stat'),
      panel(9, [18, 24, 6], 'Exporter: seconds since last success', 's',
            [['time() - ' + ha('agent_session_exporter_last_success_timestamp_seconds{%s}' % exporterSel), '{{source}}']], type='stat'),
      panel(10, [0, 32, 12], 'Exporter: upstream requests by code (per minute)', 'short', [
        [sumBy('source, code', 'rate(agent_session_exporter_requests_total{%s}[$__rate_interval])' % exporterSel) + ' * 60', '{{source}} {{code}}'],
        [sumBy('source', 'rate(agent_session_exporter_retries_total{%s}[$__rate_interval])' % exporterSel) + ' * 60', '{{source}} retries'],
      ]),
      panel(11, [12, 32, 12], 'Exporter: collection cycle p90', 's', [
        ['histogram_quantile(0.9, %s)' % sumBy('source, le', 'rate(agent_session_exporter_collect_duration_seconds_bucket{%s}[$__rate_interval])' % exporterSel), '{{source}}'],
      ]),
      panel(12, [0, 40, 12], 'Exporter: pending sessions and tracked ids', 'short', [
        [ha('agent_session_exporter_pending_sessions{%s}' % exporterSel), '{{source}} pending'],
        [ha('agent_session_exporter_tracked_session_ids{%s}' % exporterSel), '{{source}} tracked ids'],
      ]),
      panel(13, [12, 40, 12], 'Error and timeout ratio by workflow', 'percentunit', [
        [named(ratio('source, workflow', rate('agent_session_errors_total'))), '{{source}} {{workflow_name}} ({{workflow}})'],
      ], description='Per workflow (Kapso workflow.id, Syntropic137 workflow_id, Whatabot flowId; empty where the provider has none), with its name where the provider gives one (agent_session_workflow_info).',
         defaults={ min: 0 }),
    ],
  }
