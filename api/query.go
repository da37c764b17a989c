package api

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/tako-run/tako/jobs"
)

// Query parameter rules, from the original.
const (
	defaultWait  = 30 * time.Second  // GET /jobs/:id/result?timeout=
	maxWait      = 300 * time.Second // the cap, "to prevent slowloris"
	defaultLimit = 100               // GET /executions?limit=
	maxLimit     = 1000
)

// resultQuery is the query of GET /jobs/:id/result.
type resultQuery struct {
	wait    bool
	timeout time.Duration
}

// parseResultQuery reads wait (a boolean, default false) and timeout
// (seconds, 1 to 300, default 30). Both are checked even when timeout is
// unused, as the original does; a bad one is EINVALID naming it.
func parseResultQuery(c *fiber.Ctx) (resultQuery, error) {
	q := resultQuery{timeout: defaultWait}
	if err := checkView(c); err != nil {
		return q, err
	}
	if raw, ok := query(c, "wait"); ok {
		b, err := parseBool(raw)
		if err != nil {
			return q, jobs.FieldErrorf("wait", "must be true or false, not %s", quoteParam(raw))
		}
		q.wait = b
	}
	if raw, ok := query(c, "timeout"); ok {
		sec, err := strconv.ParseFloat(raw, 64)
		if err != nil || !plainDecimal(raw) {
			return q, jobs.FieldErrorf("timeout", "must be a number of seconds, not %s", quoteParam(raw))
		}
		if sec < 1 || sec > maxWait.Seconds() {
			return q, jobs.FieldErrorf("timeout", "must be from 1 to %d seconds", int(maxWait.Seconds()))
		}
		q.timeout = time.Duration(sec * float64(time.Second))
	}
	return q, nil
}

// parseListQuery reads the filter of GET /executions: status (a known
// status), job_type, start (warm or cold), parent_id (an execution id),
// limit (1 to 1000, default 100), offset (0 or more,
// the original's paging) and cursor (a positive integer from a previous
// page's next_cursor). view is accepted as the original takes it.
func parseListQuery(c *fiber.Ctx) (jobs.ExecutionFilter, error) {
	f := jobs.ExecutionFilter{Limit: defaultLimit}
	if raw, ok := query(c, "status"); ok {
		st := jobs.Status(raw)
		if !knownStatus(st) {
			return f, jobs.FieldErrorf("status", "must be one of %s, not %s", strings.Join(statusNames(), ", "), quoteParam(raw))
		}
		f.Status = st
	}
	if raw, ok := query(c, "job_type"); ok {
		// Not checked against the registry: history keeps job types that
		// the configuration has since dropped.
		if raw == "" || len(raw) > maxJobTypeLen {
			return f, jobs.FieldErrorf("job_type", "must be 1 to %d characters", maxJobTypeLen)
		}
		f.JobType = raw
	}
	if raw, ok := query(c, "start"); ok {
		st := jobs.Start(raw)
		if st != jobs.StartWarm && st != jobs.StartCold {
			return f, jobs.FieldErrorf("start", "must be warm or cold, not %s", quoteParam(raw))
		}
		f.Start = st
	}
	if raw, ok := query(c, "parent_id"); ok {
		if _, err := uuid.Parse(raw); err != nil || len(raw) != 36 {
			return f, jobs.FieldErrorf("parent_id", "must be an execution id, not %s", quoteParam(raw))
		}
		f.ParentID = raw
	}
	if raw, ok := query(c, "api_key"); ok {
		// A key's name, as configured; never the key itself.
		if !validToken(raw) {
			return f, jobs.FieldErrorf("api_key", "must be the name of an API key, not %s", quoteParam(raw))
		}
		f.APIKey = raw
	}
	var err error
	if f.Limit, err = intParam(c, "limit", 1, maxLimit, defaultLimit); err != nil {
		return f, err
	}
	if f.Offset, err = intParam(c, "offset", 0, maxInt, 0); err != nil {
		return f, err
	}
	if err := checkView(c); err != nil {
		return f, err
	}
	if raw, ok := query(c, "cursor"); ok {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || !plainDigits(raw) || n < 1 {
			return f, jobs.FieldErrorf("cursor", "must be a positive integer from next_cursor, not %s", quoteParam(raw))
		}
		f.Before = n
	}
	return f, nil
}

// intParam reads the integer query parameter name, from lo to hi, or def
// when it is absent; anything else is EINVALID naming it.
func intParam(c *fiber.Ctx, name string, lo, hi, def int) (int, error) {
	raw, ok := query(c, name)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || !plainDigits(raw) || n < lo || n > hi {
		if hi == maxInt {
			return 0, jobs.FieldErrorf(name, "must be an integer from %d, not %s", lo, quoteParam(raw))
		}
		return 0, jobs.FieldErrorf(name, "must be an integer from %d to %d, not %s", lo, hi, quoteParam(raw))
	}
	return n, nil
}

// checkView checks the view query parameter of the record routes. The
// original answers "full" with its extended record and anything else with
// its slim one; tako's record always holds every field of the full one, so
// both are accepted, and any other value is a mistake worth naming.
func checkView(c *fiber.Ctx) error {
	raw, ok := query(c, "view")
	if !ok || raw == "full" || raw == "slim" || raw == "" {
		return nil
	}
	return jobs.FieldErrorf("view", "must be full or slim, not %s", quoteParam(raw))
}

// query returns the first value of the query parameter name, decoded, and
// whether it is present at all (an empty value is present).
func query(c *fiber.Ctx, name string) (string, bool) {
	args := c.Context().QueryArgs()
	if !args.Has(name) {
		return "", false
	}
	return string(args.Peek(name)), true
}

// parseBool takes what the original's boolean query parameters take in
// practice: true/false and 1/0, in any case.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, strconv.ErrSyntax
}

// plainDigits reports whether s is one or more ASCII digits: no sign, no
// spaces, no underscores.
func plainDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// plainDecimal reports whether s is digits with an optional fraction, such
// as "30" or "2.5": no sign, exponent, hex, "inf" or "nan".
func plainDecimal(s string) bool {
	whole, frac, hasDot := strings.Cut(s, ".")
	if !plainDigits(whole) {
		return false
	}
	return !hasDot || plainDigits(frac)
}

// quoteParam quotes a client's query value for a detail, cut when long.
func quoteParam(s string) string {
	return strconv.Quote(jobs.Truncate(strings.ToValidUTF8(s, "\uFFFD"), 32))
}

// allStatuses lists every status, in the order of an execution's life.
var allStatuses = []jobs.Status{
	jobs.StatusQueued, jobs.StatusRunning, jobs.StatusSucceeded, jobs.StatusFailed,
	jobs.StatusTimeout, jobs.StatusOOM, jobs.StatusCancelled,
}

// knownStatus reports whether st is one of allStatuses.
func knownStatus(st jobs.Status) bool { return slices.Contains(allStatuses, st) }

// statusNames returns allStatuses as strings.
func statusNames() []string {
	out := make([]string, len(allStatuses))
	for i, s := range allStatuses {
		out[i] = string(s)
	}
	return out
}
