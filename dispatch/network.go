package dispatch

import (
	"fmt"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/egress"
)

// checkNetwork refuses a submission whose network.allow would widen its job
// type's egress allowlist: each entry must lie within one of the job
// type's, and the job type must have an allowlist at all.
func checkNetwork(sub jobs.Submission, jt jobtypes.JobType) error {
	if sub.NetworkAllow == nil {
		return nil
	}
	if jt.Network != jobtypes.NetworkAllow {
		return jobs.FieldErrorf("network.allow", "job type %q has network %q, not an allowlist: a request may only narrow its job type's allowlist", jt.Name, jt.Network)
	}
	outer := make([]egress.Host, 0, len(jt.Allow))
	for _, entry := range jt.Allow {
		h, err := egress.ParseRule(entry)
		if err != nil {
			return fmt.Errorf("job type %s: network.allow: %w", jt.Name, err) // validated at load
		}
		outer = append(outer, h)
	}
	for i, entry := range sub.NetworkAllow {
		field := fmt.Sprintf("network.allow[%d]", i)
		inner, err := egress.ParseRule(entry)
		if err != nil {
			return jobs.FieldErrorf(field, "%v", err)
		}
		if !coveredBy(inner, outer) {
			return jobs.FieldErrorf(field, "%q widens job type %q's allowlist %q: a request may only narrow it", entry, jt.Name, jt.Allow)
		}
	}
	return nil
}

// coveredBy reports whether one of rules allows everything inner allows.
func coveredBy(inner egress.Host, rules []egress.Host) bool {
	for _, outer := range rules {
		if egress.Covers(outer, inner) {
			return true
		}
	}
	return false
}
