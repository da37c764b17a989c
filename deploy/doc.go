// Package deploy holds tako's deployment recipes (Kubernetes manifests,
// Nomad jobs, the server image's configuration, Prometheus and Grafana
// files) and the tests that keep them in step with what tako expects. It
// has no code of its own.
package deploy
