package dispatch

import (
	"errors"
	"testing"
	"time"

	"github.com/tako-run/tako/jobs"
)

// TestReuse: a taken idempotency key gives back its execution for the same
// payload and refuses another payload.
func TestReuse(t *testing.T) {
	t.Parallel()
	existing := &jobs.Execution{ID: "first", Fingerprint: "aaa"}
	got, err := reuse(existing, &jobs.Execution{ID: "second", Fingerprint: "aaa"})
	if err != nil || got != existing {
		t.Errorf("same payload: %v, %v; want the first execution", got, err)
	}
	got, err = reuse(existing, &jobs.Execution{ID: "second", Fingerprint: "bbb"})
	var e *jobs.Error
	if got != nil || !errors.As(err, &e) || e.Code != jobs.ECONFLICT || e.Message != "Idempotency key reused with different payload" {
		t.Errorf("another payload: %v, %v; want ECONFLICT", got, err)
	}
}

// TestFingerprint: what makes two submissions with one idempotency key the
// same job.
func TestFingerprint(t *testing.T) {
	t.Parallel()
	base := jobs.Submission{
		Code: "print(1)", InputJSON: []byte(`{"a":1,"b":[1,2]}`), JobType: "default",
		Requirements: []string{"numpy"}, StartupTimeout: 5 * time.Second, Timeout: 30 * time.Second,
	}
	for _, tc := range []struct {
		name   string
		change func(*jobs.Submission)
		same   bool
	}{
		{"nothing changed", func(*jobs.Submission) {}, true},
		{"input keys in another order", func(s *jobs.Submission) { s.InputJSON = []byte(`{"b":[1,2],"a":1}`) }, true},
		{"input spaced out", func(s *jobs.Submission) { s.InputJSON = []byte("{ \"a\": 1,\n \"b\": [1, 2] }") }, true},
		{"another correlation id", func(s *jobs.Submission) { s.CorrelationID = "corr-2" }, true},
		{"other code", func(s *jobs.Submission) { s.Code = "print(2)" }, false},
		{"other input", func(s *jobs.Submission) { s.InputJSON = []byte(`{"a":2,"b":[1,2]}`) }, false},
		{"input items in another order", func(s *jobs.Submission) { s.InputJSON = []byte(`{"a":1,"b":[2,1]}`) }, false},
		{"another job type", func(s *jobs.Submission) { s.JobType = "heavy" }, false},
		{"other requirements", func(s *jobs.Submission) { s.Requirements = []string{"pandas"} }, false},
		{"another timeout", func(s *jobs.Submission) { s.Timeout = 31 * time.Second }, false},
		{"another startup timeout", func(s *jobs.Submission) { s.StartupTimeout = 6 * time.Second }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			other := base
			tc.change(&other)
			if got := fingerprint(other) == fingerprint(base); got != tc.same {
				t.Errorf("same fingerprint = %v, want %v", got, tc.same)
			}
		})
	}
	// Input that is not JSON is fingerprinted by its bytes, stably.
	bad := base
	bad.InputJSON = []byte(`{"a":`)
	if fingerprint(bad) == fingerprint(base) || fingerprint(bad) != fingerprint(bad) {
		t.Error("input that is not JSON: fingerprint not stable or not its own")
	}
}

// TestQueueFull: queue.max_pending counts the execution being admitted.
func TestQueueFull(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		queued, maxPending int
		message            string // "" when there is room
	}{
		{0, 2, ""},
		{2, 2, ""},
		{3, 2, "the queue is full (2 jobs pending); try again later"},
		{1, 0, "the queue is full (0 jobs pending); try again later"},
	} {
		err := queueFull(tc.queued, tc.maxPending)
		if tc.message == "" {
			if err != nil {
				t.Errorf("queueFull(%d, %d) = %v, want nil", tc.queued, tc.maxPending, err)
			}
			continue
		}
		var e *jobs.Error
		if !errors.As(err, &e) || e.Code != jobs.EUNAVAILABLE || e.RetryAfter != 5 || e.Message != tc.message {
			t.Errorf("queueFull(%d, %d) = %v, want EUNAVAILABLE %q with a Retry-After of 5", tc.queued, tc.maxPending, err, tc.message)
		}
	}
}

// TestNearLimit: counts far from a limit need no lock; within lockMargin
// of it they do.
func TestNearLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n, limit int
		want     bool
	}{
		{0, 1000, false},
		{1000 - lockMargin, 1000, false},
		{1000 - lockMargin + 1, 1000, true},
		{1001, 1000, true},
		{0, lockMargin - 1, true},
	} {
		if got := nearLimit(tc.n, tc.limit); got != tc.want {
			t.Errorf("nearLimit(%d, %d) = %v, want %v", tc.n, tc.limit, got, tc.want)
		}
	}
}
