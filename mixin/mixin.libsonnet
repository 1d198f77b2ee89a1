// The monitoring mixin of agent-session-exporter: the one source of its recording rules, alerts and
// Grafana dashboard (deploy/ holds their rendered forms: python mixin/render.py).
// Use it as kube-prometheus and Grafana's monitoring stack use mixins:
//   (import 'mixin/mixin.libsonnet') + { _config+:: { grafanaUrl: 'https://grafana.example' } }
(import 'config.libsonnet') +
(import 'rules.libsonnet') +
(import 'alerts.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
