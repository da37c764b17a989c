package config

import (
	"fmt"
	"net/url"
	"time"

	"github.com/tako-run/tako/webhook"
)

// validateStreaming checks the streaming block.
func (c *Config) validateStreaming(p *problems) {
	if c.Streaming.MaxStreams < 1 {
		p.add("streaming.max_streams", "%d must be at least 1", c.Streaming.MaxStreams)
	}
}

// validateWebhooks checks the webhooks block: every secret parses, the
// schedule's waits are positive, the timeout is sane.
func (c *Config) validateWebhooks(p *problems) {
	w := c.Webhooks
	for i, s := range w.Secret {
		if _, err := webhook.ParseSecret(s); err != nil {
			p.add(fmt.Sprintf("webhooks.secret[%d]", i), "%v", err)
		}
	}
	if len(w.RetrySchedule) > 20 {
		p.add("webhooks.retry_schedule", "has %d steps; at most 20", len(w.RetrySchedule))
	}
	for i, d := range w.RetrySchedule {
		if d <= 0 || d > Duration(24*time.Hour) {
			p.add(fmt.Sprintf("webhooks.retry_schedule[%d]", i), "%s must be more than 0 and at most 24h", seconds(d))
		}
	}
	if w.Timeout < Duration(100*time.Millisecond) || w.Timeout > Duration(5*time.Minute) {
		p.add("webhooks.timeout", "%s must be between 100ms and 5m", seconds(w.Timeout))
	}
}

// callbackURL checks a configured default callback URL: an absolute
// https URL (http too when webhooks.allow_http), without credentials.
// Whether its address may be reached is decided when a job uses it.
func (c *Config) callbackURL(p *problems, key, value string) {
	if value == "" {
		return
	}
	if why := c.callbackURLProblem(value); why != "" {
		p.add(key, "%q %s", value, why)
	}
}

// callbackURLProblem says what is wrong with a configured callback URL,
// or "" when nothing is; webhooks.secret must be set for one to be used.
func (c *Config) callbackURLProblem(value string) string {
	u, err := url.Parse(value)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return "is not an absolute http(s) URL"
	case u.Scheme == "http" && !c.Webhooks.AllowHTTP:
		return "must use https (or set webhooks.allow_http)"
	case u.User != nil:
		return "must not carry a user name or password"
	}
	return ""
}

// WebhookSecrets returns webhooks.secret parsed. Validate has checked it.
func (c *Config) WebhookSecrets() ([]webhook.Secret, error) {
	return webhook.ParseSecrets(c.Webhooks.Secret)
}

// RetrySchedule returns webhooks.retry_schedule as durations.
func (c *Config) RetrySchedule() []time.Duration {
	out := make([]time.Duration, len(c.Webhooks.RetrySchedule))
	for i, d := range c.Webhooks.RetrySchedule {
		out[i] = d.Std()
	}
	return out
}
