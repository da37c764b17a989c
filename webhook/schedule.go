package webhook

import (
	"fmt"
	"slices"
	"time"
)

// DefaultSchedule is how long tako waits before each retry of a message
// that was not delivered: 7 retries, 8 attempts in all, over about 4 hours.
// Callers must not modify it; ParseSchedule makes a schedule from config.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute,
	30 * time.Minute, time.Hour, 2 * time.Hour,
}

// ParseSchedule reads a retry schedule written as durations ("5s", "2m",
// "1h"). Each step must be positive; the error names the index of the
// first that is not. An empty list is a schedule without retries.
func ParseSchedule(steps []string) ([]time.Duration, error) {
	out := make([]time.Duration, len(steps))
	for i, s := range steps {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			return nil, fmt.Errorf("schedule[%d]: %q is not a duration such as 30s or 2m", i, s)
		case d <= 0:
			return nil, fmt.Errorf("schedule[%d]: %q must be positive", i, s)
		}
		out[i] = d
	}
	return out, nil
}

// Outcome is where a message stands after an attempt.
type Outcome string

// The outcomes Decide returns.
const (
	// Delivered: the receiver answered 2xx; the message is done.
	Delivered Outcome = "delivered"
	// Retry: try again after Decision.Delay.
	Retry Outcome = "retry"
	// Stopped: the receiver answered 410 Gone, asking for no more
	// messages; the message is not retried.
	Stopped Outcome = "stopped"
	// Failed: the schedule is used up; the message is not retried.
	Failed Outcome = "failed"
)

// Decision is what to do after an attempt.
type Decision struct {
	Outcome Outcome
	Delay   time.Duration // before the next attempt; set only for Retry
}

// Decide says what follows attempt number attempt (1 for the first) of a
// message, which went as a says, under schedule. A 2xx is Delivered and a
// 410 Stopped. Anything else, a 3xx included, or no answer at all, is
// retried while attempt <= len(schedule), so a message gets
// len(schedule)+1 attempts, then Failed. The delay of retry n is
// schedule[n-1], or the receiver's Retry-After when that is longer; a
// Retry-After is capped at the schedule's longest step, so a receiver
// cannot park a message for days, but it can slow early retries down.
// Decide is pure: it reads no clock. An attempt below 1 counts as 1.
func Decide(attempt int, a Attempt, schedule []time.Duration) Decision {
	switch {
	case a.StatusCode >= 200 && a.StatusCode < 300:
		return Decision{Outcome: Delivered}
	case a.StatusCode == 410:
		return Decision{Outcome: Stopped}
	}
	attempt = max(attempt, 1)
	if attempt > len(schedule) {
		return Decision{Outcome: Failed}
	}
	delay := max(schedule[attempt-1], min(a.RetryAfter, slices.Max(schedule)))
	return Decision{Outcome: Retry, Delay: delay}
}
