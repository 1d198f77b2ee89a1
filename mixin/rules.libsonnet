// Recording rules: level:metric:operations; every series keeps `source` and `provider`.
// HA-safe: `max without (<haLabels>)` across replicas first, then sums.
{
  local c = $._config,
  local ha(expr) = 'max without (%s) (%s)' % [c.haLabels, expr],
  local sumBy(by, expr) = 'sum by (%s) (%s)' % [by, ha(expr)],

  prometheusRules+:: {
    groups+: [{
      name: 'agent-sessions.rules',
      rules: [
        { record: 'source:agent_sessions_finished:rate5m',
          expr: sumBy('source, provider', 'rate(agent_sessions_finished_total[5m])') },
        { record: 'source_outcome:agent_sessions_finished:rate5m',
          expr: sumBy('source, provider, outcome', 'rate(agent_sessions_finished_total[5m])') },
        { record: 'source:agent_sessions_finished:increase%s' % c.window,
          expr: sumBy('source, provider', 'increase(agent_sessions_finished_total[%s])' % c.window) },
        { record: 'source:agent_sessions_error_ratio:rate%s' % c.window,
          expr: '%s\n  / %s\n' % [sumBy('source, provider', 'rate(agent_session_errors_total[%s])' % c.window),
                                  sumBy('source, provider', 'rate(agent_sessions_finished_total[%s])' % c.window)] },
        { record: 'source:agent_sessions_timeout_ratio:rate%s' % c.window,
          expr: '%s\n  / %s\n' % [sumBy('source, provider', 'rate(agent_sessions_finished_total{outcome="timeout"}[%s])' % c.window),
                                  sumBy('source, provider', 'rate(agent_sessions_finished_total[%s])' % c.window)] },
      ] + [
        { record: 'source:agent_session_duration_seconds:p%d_rate%s' % [q * 100, c.window],
          expr: 'histogram_quantile(%.2f, %s)' % [q, sumBy('source, provider, le', 'rate(agent_session_duration_seconds_bucket[%s])' % c.window)] }
        for q in [0.5, 0.95, 0.99]
      ] + [
        { record: 'source_token_type:agent_session_tokens:increase1h',
          expr: sumBy('source, provider, token_type', 'increase(agent_session_tokens_total[1h])') },
        { record: 'source_model:agent_session_cost_usd:increase1h',
          expr: sumBy('source, provider, model', 'increase(agent_session_cost_usd_total[1h])') },
        { record: 'source:agent_session_cost_usd:increase1h',
          expr: sumBy('source, provider', 'increase(agent_session_cost_usd_total[1h])') },
        { record: 'source:agent_sessions_active:sum',
          expr: sumBy('source, provider', 'agent_sessions_active') },
      ],
    }],
  },
}
