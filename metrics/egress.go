package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tako-run/tako/jobs"
)

// egressMetrics count what jobs asked the egress proxy for. Labels stay
// bounded: job type and result, never the host a job named.
type egressMetrics struct {
	connections *prometheus.CounterVec
	bytes       *prometheus.CounterVec
}

func newEgressMetrics() egressMetrics {
	return egressMetrics{
		connections: counterVec("tako_egress_connections_total",
			"Connections jobs asked the egress proxy for, by job type and result: allowed, refused (not in the allowlist, or a private or metadata address), failed (allowed, but unreachable).",
			"job_type", "result"),
		bytes: counterVec("tako_egress_bytes_total",
			"Bytes through the egress proxy, by job type and direction: sent (job to host) or received.",
			"job_type", "direction"),
	}
}

func (e egressMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{e.connections, e.bytes}
}

// EgressAttempts counts the egress attempts of one job of jobType.
func (m *Metrics) EgressAttempts(jobType string, attempts []jobs.EgressAttempt) {
	if m == nil {
		return
	}
	for _, a := range attempts {
		m.egress.connections.WithLabelValues(jobType, a.Result).Inc()
		if a.BytesSent > 0 {
			m.egress.bytes.WithLabelValues(jobType, "sent").Add(float64(a.BytesSent))
		}
		if a.BytesReceived > 0 {
			m.egress.bytes.WithLabelValues(jobType, "received").Add(float64(a.BytesReceived))
		}
	}
}
