package runner

import (
	"strings"
	"testing"

	"github.com/tako-run/tako/jobs"
)

// TestBlameEgress: a program that failed after the proxy refused it is a
// network_error naming the refusal; other endings keep their error.
func TestBlameEgress(t *testing.T) {
	t.Parallel()
	refused := []jobs.EgressAttempt{
		{Host: "api.example.com", Port: 443, Result: jobs.EgressAllowed},
		{Host: "evil.example.com", Port: 443, Result: jobs.EgressRefused, Reason: "evil.example.com:443 is not in this job's allowlist"},
	}
	for _, tt := range []struct {
		name     string
		res      jobs.Result
		wantType string
	}{
		{"failed after a refusal", jobs.Result{Status: jobs.StatusFailed, Error: &jobs.ExecError{Type: "os_error", Message: "URLError: tunnel failed"}, Egress: refused}, jobs.ErrNetwork},
		{"failed with only allowed attempts", jobs.Result{Status: jobs.StatusFailed, Error: &jobs.ExecError{Type: "value_error"}, Egress: refused[:1]}, "value_error"},
		{"succeeded despite a refusal", jobs.Result{Status: jobs.StatusSucceeded, Egress: refused}, ""},
		{"timed out", jobs.Result{Status: jobs.StatusTimeout, Error: &jobs.ExecError{Type: jobs.ErrTimeout}, Egress: refused}, jobs.ErrTimeout},
		{"bad output", jobs.Result{Status: jobs.StatusFailed, Error: &jobs.ExecError{Type: jobs.ErrOutputError}, Egress: refused}, jobs.ErrOutputError},
	} {
		res := tt.res
		if res.Error != nil {
			e := *res.Error
			res.Error = &e
		}
		blameEgress(&res)
		got := ""
		if res.Error != nil {
			got = res.Error.Type
		}
		if got != tt.wantType {
			t.Errorf("%s: error type %q, want %q", tt.name, got, tt.wantType)
		}
		if got == jobs.ErrNetwork && !strings.Contains(res.Error.Message, "evil.example.com:443") {
			t.Errorf("%s: message %q does not name the refused host", tt.name, res.Error.Message)
		}
	}
}
