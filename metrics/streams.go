package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StreamOpened records an event stream that starts; done, called when it
// ends, takes it off the open gauge.
func (m *Metrics) StreamOpened() (done func()) {
	if m == nil {
		return func() {}
	}
	m.streams.WithLabelValues("opened").Inc()
	m.streamsOpen.Inc()
	return m.streamsOpen.Dec
}

// StreamRejected records an event stream refused past
// streaming.max_streams.
func (m *Metrics) StreamRejected() {
	if m == nil {
		return
	}
	m.streams.WithLabelValues("rejected").Inc()
}

// WebhookAttempt records one webhook delivery attempt with its outcome
// and how long it took; sinceEnd, the time since the job ended, is
// recorded for a delivered one.
func (m *Metrics) WebhookAttempt(outcome string, took, sinceEnd time.Duration) {
	if m == nil {
		return
	}
	m.webhookAttempts.WithLabelValues(outcome).Inc()
	if took > 0 {
		m.webhookDuration.Observe(took.Seconds())
	}
	if outcome == "delivered" {
		m.webhookDelivered.Observe(sinceEnd.Seconds())
	}
}

// histogram is a histogram without labels.
func histogram(name, help string, buckets []float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
}
