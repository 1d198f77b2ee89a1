// The Grafana dashboards of the mixin: one, `agent-sessions`.
{
  local mixin = self,
  grafanaDashboards+:: {
    'agent-sessions.json': (import 'agent-sessions.libsonnet')(mixin._config),
  },
}
