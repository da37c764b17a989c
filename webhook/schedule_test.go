package webhook

import (
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	sched := []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute}
	tests := []struct {
		name    string
		attempt int
		a       Attempt
		want    Decision
	}{
		{"200 delivered", 1, Attempt{StatusCode: 200}, Decision{Outcome: Delivered}},
		{"204 on the last attempt", 4, Attempt{StatusCode: 204}, Decision{Outcome: Delivered}},
		{"410 stops at once", 1, Attempt{StatusCode: 410}, Decision{Outcome: Stopped}},
		{"500 retries after step 1", 1, Attempt{StatusCode: 500}, Decision{Retry, 5 * time.Second}},
		{"no answer retries", 2, Attempt{Error: "timed out after 15s"}, Decision{Retry, 30 * time.Second}},
		{"302 retries", 1, Attempt{StatusCode: 302}, Decision{Retry, 5 * time.Second}},
		{"404 retries", 1, Attempt{StatusCode: 404}, Decision{Retry, 5 * time.Second}},
		{"last step", 3, Attempt{StatusCode: 503}, Decision{Retry, 2 * time.Minute}},
		{"schedule used up", 4, Attempt{StatusCode: 503}, Decision{Outcome: Failed}},
		{"Retry-After longer than the step", 1, Attempt{StatusCode: 429, RetryAfter: 60 * time.Second}, Decision{Retry, 60 * time.Second}},
		{"Retry-After shorter than the step", 2, Attempt{StatusCode: 429, RetryAfter: time.Second}, Decision{Retry, 30 * time.Second}},
		{"Retry-After capped at the longest step", 1, Attempt{StatusCode: 503, RetryAfter: 24 * time.Hour}, Decision{Retry, 2 * time.Minute}},
		{"attempt 0 counts as 1", 0, Attempt{StatusCode: 500}, Decision{Retry, 5 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Decide(tt.attempt, tt.a, sched); got != tt.want {
				t.Errorf("Decide(%d, %+v) = %+v, want %+v", tt.attempt, tt.a, got, tt.want)
			}
		})
	}
}

// TestDecideDefaultSchedule checks the default: 8 attempts in all.
func TestDecideDefaultSchedule(t *testing.T) {
	t.Parallel()
	fail := Attempt{StatusCode: 500}
	attempts := 1
	for Decide(attempts, fail, DefaultSchedule).Outcome == Retry {
		attempts++
	}
	if attempts != 8 {
		t.Errorf("a failing receiver gets %d attempts, want 8", attempts)
	}
	if got := Decide(1, Attempt{StatusCode: 500}, nil); got.Outcome != Failed {
		t.Errorf("Decide with no schedule = %+v, want failed after one attempt", got)
	}
}

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	got, err := ParseSchedule([]string{"5s", "2m", "1h30m"})
	want := []time.Duration{5 * time.Second, 2 * time.Minute, 90 * time.Minute}
	if err != nil || len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("ParseSchedule = %v, %v, want %v", got, err, want)
	}
	for _, tt := range []struct {
		in      []string
		wantErr string
	}{
		{[]string{"5s", "soon"}, `schedule[1]: "soon" is not a duration`},
		{[]string{"0s"}, `schedule[0]: "0s" must be positive`},
		{[]string{"5s", "2m", "-1m"}, `schedule[2]: "-1m" must be positive`},
	} {
		if _, err := ParseSchedule(tt.in); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseSchedule(%q) = %v, want an error containing %q", tt.in, err, tt.wantErr)
		}
	}
}
