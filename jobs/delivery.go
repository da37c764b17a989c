package jobs

import "time"

// Delivery is one attempt to deliver an execution's webhook.
type Delivery struct {
	Attempt     int
	URL         string
	AttemptedAt time.Time
	Duration    time.Duration
	// StatusCode is the receiver's answer; 0 when it gave none.
	StatusCode int
	// Outcome is delivered, retry, stopped (the receiver answered 410),
	// failed (the schedule is used up) or refused (the address may not
	// be reached).
	Outcome string
	// Error says why there was no answer; "" when there was one.
	Error string
	// Response is the first bytes of the receiver's answer.
	Response string
	// NextAttemptAt is when the next attempt goes, for outcome retry.
	NextAttemptAt *time.Time
}
