package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
)

// Request field rules, from the original's ExecuteRequest model.
const (
	maxJobTypeLen        = 128
	maxRequirements      = 50
	minStartupTimeout    = 10
	maxStartupTimeout    = 600
	minIdempotencyKeyLen = 8
	maxIdempotencyKeyLen = 255
)

// executeFieldNames are the fields of a POST /execute body, in the order of
// the original's model (and of the "unknown field" message).
var executeFieldNames = []string{"code", "input_data", "job_type", "timeout", "startup_timeout", "requirements", "idempotency_key", "callback_url", "network"}

// emptyExecuteBody is the detail for an empty POST /execute body.
const emptyExecuteBody = "request body is empty; send a JSON object such as {\"code\": \"print(1)\"}"

// bodyFields are the raw values of a request body's known fields, by name;
// an absent field has no entry.
type bodyFields map[string]json.RawMessage

// DecodeExecuteRequest parses and validates the body of POST /execute and
// POST /execute/async against the job types in reg and the limits lim (zero
// fields take their defaults). It returns a Submission with Code,
// IdempotencyKey, InputJSON, JobType, StartupTimeout and Timeout set; the
// Timeout is resolved to the job type's when the body has none, so it is
// never 0. The caller sets Mode and CorrelationID. Errors are *jobs.Error:
// EMALFORMED when body is empty or not JSON, EINVALID with Field set when a
// field breaks a rule. A body that is not JSON is reported before any field
// error. It never panics, whatever the bytes.
func DecodeExecuteRequest(body []byte, reg *jobtypes.Registry, lim Limits) (jobs.Submission, error) {
	lim = lim.withDefaults()
	if len(bytes.TrimSpace(body)) == 0 {
		return jobs.Submission{}, jobs.Errorf(jobs.EMALFORMED, emptyExecuteBody)
	}
	f, err := scanBody(body, executeFieldNames)
	if err != nil {
		return jobs.Submission{}, err
	}
	return f.validateExecute(reg, lim)
}

// scanBody splits a JSON object body into its fields, each of which must be
// one of names exactly. It reads the whole body before it returns a field
// error, so broken JSON is always a 400. The caller handles an empty body.
func scanBody(body []byte, names []string) (bodyFields, error) {
	if !utf8.Valid(body) {
		// encoding/json would quietly turn the bad bytes into U+FFFD; the
		// original rejects such a body.
		return nil, jobs.Errorf(jobs.EMALFORMED, "request body is not valid UTF-8")
	}
	// A token walk rather than a struct decode: encoding/json matches struct
	// fields case-insensitively and stops at the first type error, while the
	// original wants exact names, and every value's type is checked later
	// with a message that names its field.
	dec := json.NewDecoder(bytes.NewReader(body))
	var first error // the first field error, reported if the JSON is sound
	tok, err := dec.Token()
	if err != nil {
		return nil, malformed(err)
	}
	if tok != json.Delim('{') {
		// Check the syntax of the whole body first: broken JSON is a 400
		// whatever its first token.
		if err := json.Unmarshal(body, new(json.RawMessage)); err != nil {
			return nil, malformed(err)
		}
		return nil, jobs.FieldErrorf("body", "must be a JSON object")
	}
	f := bodyFields{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, malformed(err)
		}
		name, _ := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, malformed(err)
		}
		if !slices.Contains(names, name) {
			if first == nil {
				first = jobs.FieldErrorf(fieldName(name), "unknown field; allowed fields are %s", strings.Join(names, ", "))
			}
			continue
		}
		f[name] = raw // a later duplicate wins, as in Python's json
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, malformed(err)
	}
	switch _, err := dec.Token(); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, malformed(err)
	default:
		return nil, jobs.Errorf(jobs.EMALFORMED, "malformed JSON: unexpected data after the top-level object")
	}
	if first != nil {
		return nil, first
	}
	return f, nil
}

// malformed turns a JSON decoding error into EMALFORMED with the position.
func malformed(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return jobs.Errorf(jobs.EMALFORMED, "malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return jobs.Errorf(jobs.EMALFORMED, "malformed JSON: unexpected end of input")
	default:
		return jobs.Errorf(jobs.EMALFORMED, "malformed JSON")
	}
}

// fieldName makes a client-supplied key safe to echo in a detail: quoted
// when it is not a plain identifier, and cut when it is long.
func fieldName(name string) string {
	const max = 64
	plain := name != "" && len(name) <= max
	for _, r := range name {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			plain = false
			break
		}
	}
	if plain {
		return name
	}
	if len(name) > max {
		name = strings.ToValidUTF8(name[:max], "") + "..."
	}
	return strconv.Quote(name)
}

// validateExecute applies the field rules in the order of the original's
// model and returns the first broken one.
func (f bodyFields) validateExecute(reg *jobtypes.Registry, lim Limits) (jobs.Submission, error) {
	var sub jobs.Submission

	code, err := decodeCode(f["code"], lim.MaxCodeBytes)
	if err != nil {
		return sub, err
	}
	sub.Code = code

	if sub.InputJSON, err = decodeInput(f["input_data"], lim.MaxInputBytes); err != nil {
		return sub, err
	}

	jt, err := decodeJobType(f["job_type"], reg)
	if err != nil {
		return sub, err
	}
	if jt == nil {
		def, ok := reg.Get(jobtypes.DefaultName)
		if !ok {
			return sub, jobs.FieldErrorf("job_type", "%s", reg.UnknownError(jobtypes.DefaultName))
		}
		jt = &def
	}
	sub.JobType = jt.Name

	timeout, err := decodeTimeout(f["timeout"], jt, lim.MaxTimeout)
	if err != nil {
		return sub, err
	}
	sub.Timeout = resolveTimeout(timeout, *jt, lim.MaxTimeout)

	if raw := f["startup_timeout"]; !isNull(raw) {
		n, err := decodeInt(raw, "startup_timeout", minStartupTimeout, maxStartupTimeout, "")
		if err != nil {
			return sub, err
		}
		sub.StartupTimeout = time.Duration(n) * time.Second
	}

	if sub.Requirements, err = decodeRequirements(f["requirements"], lim.AdHocDisabled); err != nil {
		return sub, err
	}
	if sub.IdempotencyKey, err = decodeIdempotencyKey(f["idempotency_key"]); err != nil {
		return sub, err
	}
	if sub.CallbackURL, err = decodeCallbackURL(f["callback_url"]); err != nil {
		return sub, err
	}
	if sub.NetworkAllow, err = decodeNetwork(f["network"]); err != nil {
		return sub, err
	}
	return sub, nil
}

// resolveTimeout is the run-time limit of a submission: the requested one,
// else the job type's, else the server's maximum.
func resolveTimeout(requested time.Duration, jt jobtypes.JobType, maxTimeout time.Duration) time.Duration {
	switch {
	case requested > 0:
		return requested
	case jt.Limits.Timeout > 0:
		return jt.Limits.Timeout
	default:
		return maxTimeout
	}
}

// decodeCode decodes the required "code" field: a string that is not blank
// and at most maxBytes long.
func decodeCode(raw json.RawMessage, maxBytes int64) (string, error) {
	code, err := decodeString(raw, "code", true)
	if err != nil {
		return "", err
	}
	switch {
	case strings.TrimSpace(code) == "":
		return "", jobs.FieldErrorf("code", "must not be blank")
	case int64(len(code)) > maxBytes:
		return "", jobs.FieldErrorf("code", "must be at most %d bytes, limits.max_code_bytes (got %d)", maxBytes, len(code))
	}
	return code, nil
}

// decodeJobType decodes an optional "job_type" and looks it up in reg. It
// returns nil when the field is absent or null.
func decodeJobType(raw json.RawMessage, reg *jobtypes.Registry) (*jobtypes.JobType, error) {
	if isNull(raw) {
		return nil, nil
	}
	name, err := decodeString(raw, "job_type", false)
	if err != nil {
		return nil, err
	}
	if len(name) > maxJobTypeLen {
		return nil, jobs.FieldErrorf("job_type", "must be at most %d characters", maxJobTypeLen)
	}
	jt, ok := reg.Get(name)
	if !ok {
		return nil, jobs.FieldErrorf("job_type", "%s", reg.UnknownError(name))
	}
	return &jt, nil
}

// isNull reports whether a raw value is absent or JSON null, which the
// original treats alike for every optional field.
func isNull(raw json.RawMessage) bool {
	return raw == nil || string(raw) == "null"
}

// decodeString decodes a string field. A required field that is absent or
// null is an error; an optional one decodes to "".
func decodeString(raw json.RawMessage, field string, required bool) (string, error) {
	if isNull(raw) {
		if required {
			return "", jobs.FieldErrorf(field, "field required")
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", jobs.FieldErrorf(field, "must be a string, not %s", jsonKind(raw))
	}
	return s, nil
}

// decodeInput returns input_data compacted, "{}" when absent or null.
func decodeInput(raw json.RawMessage, maxBytes int64) ([]byte, error) {
	if isNull(raw) {
		return []byte("{}"), nil
	}
	if raw[0] != '{' {
		return nil, jobs.FieldErrorf("input_data", "must be a JSON object, not %s", jsonKind(raw))
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		// The decoder has already checked the syntax.
		return nil, jobs.FieldErrorf("input_data", "must be a JSON object")
	}
	if int64(buf.Len()) > maxBytes {
		return nil, jobs.FieldErrorf("input_data", "must be at most %d bytes when serialized, limits.max_input_bytes (got %d)", maxBytes, buf.Len())
	}
	return buf.Bytes(), nil
}

// decodeTimeout checks "timeout" against the server's limit and, when jt is
// not nil, the job type's. Absent or null is 0: the job type's timeout.
func decodeTimeout(raw json.RawMessage, jt *jobtypes.JobType, maxTimeout time.Duration) (time.Duration, error) {
	if isNull(raw) {
		return 0, nil
	}
	maxSec := int64(maxTimeout / time.Second)
	n, err := decodeInt(raw, "timeout", 1, maxSec, " (the server's max_timeout)")
	if err != nil {
		return 0, err
	}
	d := time.Duration(n) * time.Second
	if jt != nil {
		if err := checkJobTypeTimeout(d, *jt); err != nil {
			return 0, err
		}
	}
	return d, nil
}

// checkJobTypeTimeout refuses a timeout d over the limit of jt.
func checkJobTypeTimeout(d time.Duration, jt jobtypes.JobType) error {
	if jt.Limits.Timeout > 0 && d > jt.Limits.Timeout {
		return jobs.FieldErrorf("timeout", "must be at most %d seconds, the limit of job type %q", int64(jt.Limits.Timeout/time.Second), jt.Name)
	}
	return nil
}

// decodeInt decodes an integer field in [lo, hi]. Like the original's
// model it takes an integral float such as 30.0, and nothing else: no
// strings, no fractions. why explains hi in the message.
func decodeInt(raw json.RawMessage, field string, lo, hi int64, why string) (int64, error) {
	notInt := func() error {
		return jobs.FieldErrorf(field, "must be an integer, not %s", jsonKind(raw))
	}
	var num json.Number
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, notInt()
	}
	if err := json.Unmarshal(raw, &num); err != nil {
		return 0, notInt()
	}
	n, err := num.Int64()
	if err != nil {
		f, ferr := strconv.ParseFloat(num.String(), 64)
		switch {
		case ferr == nil && f != math.Trunc(f):
			return 0, notInt()
		case f > float64(hi) || math.IsInf(f, 1):
			return 0, jobs.FieldErrorf(field, "must be at most %d%s", hi, unit(field, why))
		case f < float64(lo) || math.IsInf(f, -1):
			return 0, jobs.FieldErrorf(field, "must be at least %d%s", lo, unit(field, ""))
		case ferr != nil:
			return 0, notInt()
		}
		n = int64(f) // integral and in range
	}
	switch {
	case n < lo:
		return 0, jobs.FieldErrorf(field, "must be at least %d%s", lo, unit(field, ""))
	case n > hi:
		return 0, jobs.FieldErrorf(field, "must be at most %d%s", hi, unit(field, why))
	}
	return n, nil
}

// unit names the unit of an integer field in messages.
func unit(field, why string) string {
	if strings.HasSuffix(field, "timeout") {
		return " seconds" + why
	}
	return why
}

// decodeRequirements validates "requirements": at most 50 PEP 508
// requirements (a name, optional extras, version specifiers and marker; no
// URLs, paths, pip options or shell characters). A failing entry is named by
// its index and text.
func decodeRequirements(raw json.RawMessage, disabled bool) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var reqs []string
	if raw[0] != '[' || json.Unmarshal(raw, &reqs) != nil {
		return nil, jobs.FieldErrorf("requirements", "must be a list of strings")
	}
	if len(reqs) > maxRequirements {
		return nil, jobs.FieldErrorf("requirements", "must have at most %d items (got %d)", maxRequirements, len(reqs))
	}
	if len(reqs) > 0 && disabled {
		return nil, &jobs.Error{Code: jobs.ENOTALLOWED, Field: "requirements", Message: "ad-hoc requirements are disabled on this server (requirements.allow_ad_hoc); use a job type that declares them"}
	}
	for i, r := range reqs {
		if err := jobtypes.ValidateRequirement(r); err != nil {
			return nil, jobs.FieldErrorf(fmt.Sprintf("requirements[%d]", i), "%q: %v", jobs.Truncate(r, 100), err)
		}
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	return reqs, nil
}

// maxNetworkAllow bounds the entries of a request's network.allow.
const maxNetworkAllow = 100

// decodeNetwork decodes "network": {"allow": [hosts]}, which narrows the
// job type's egress allowlist. It checks the shape only: the dispatcher
// checks each entry against the job type's list. Absent or null is nil.
func decodeNetwork(raw json.RawMessage) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var n map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &n) != nil {
		return nil, jobs.FieldErrorf("network", "must be an object such as {\"allow\": [\"api.example.com\"]}, not %s", jsonKind(raw))
	}
	for k := range n {
		if k != "allow" {
			return nil, jobs.FieldErrorf("network."+fieldName(k), "unknown field; the only field is allow")
		}
	}
	allow, ok := n["allow"]
	if !ok || isNull(allow) {
		return nil, jobs.FieldErrorf("network.allow", "field required: the hosts this job may reach, within its job type's allowlist")
	}
	var hosts []string
	if allow[0] != '[' || json.Unmarshal(allow, &hosts) != nil {
		return nil, jobs.FieldErrorf("network.allow", "must be a list of strings")
	}
	if len(hosts) > maxNetworkAllow {
		return nil, jobs.FieldErrorf("network.allow", "must have at most %d items (got %d)", maxNetworkAllow, len(hosts))
	}
	for i, h := range hosts {
		if len(h) > 300 {
			return nil, jobs.FieldErrorf(fmt.Sprintf("network.allow[%d]", i), "must be at most 300 characters")
		}
	}
	return slices.Clip(append([]string{}, hosts...)), nil
}

// decodeIdempotencyKey validates "idempotency_key" and returns it, "" when
// absent. The Service decides what a key means for each mode; the original
// honours it for async submissions only.
func decodeIdempotencyKey(raw json.RawMessage) (string, error) {
	key, err := decodeString(raw, "idempotency_key", false)
	if err != nil || isNull(raw) {
		return "", err
	}
	if len(key) < minIdempotencyKeyLen || len(key) > maxIdempotencyKeyLen {
		return "", jobs.FieldErrorf("idempotency_key", "must be %d to %d characters (got %d)", minIdempotencyKeyLen, maxIdempotencyKeyLen, len(key))
	}
	for i := 0; i < len(key); i++ {
		b := key[i]
		if !(b == '_' || b == '-' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9') {
			return "", jobs.FieldErrorf("idempotency_key", "may contain only letters, digits, '_' and '-'")
		}
	}
	return key, nil
}

// maxCallbackURLBytes bounds "callback_url".
const maxCallbackURLBytes = 2048

// decodeCallbackURL decodes the optional "callback_url": a string of at
// most maxCallbackURLBytes. Whether it may be used (scheme, address) is
// the dispatcher's decision, which knows the webhook settings.
func decodeCallbackURL(raw json.RawMessage) (string, error) {
	u, err := decodeString(raw, "callback_url", false)
	if err != nil || isNull(raw) {
		return "", err
	}
	switch {
	case u == "":
		return "", jobs.FieldErrorf("callback_url", "must not be empty; leave the field out for no webhook")
	case len(u) > maxCallbackURLBytes:
		return "", jobs.FieldErrorf("callback_url", "must be at most %d bytes (got %d)", maxCallbackURLBytes, len(u))
	}
	return u, nil
}

// jsonKind names the JSON type of a raw value for messages.
func jsonKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		if bytes.ContainsAny(raw, ".eE") {
			return fmt.Sprintf("the number %s", jobs.Truncate(string(raw), 32))
		}
		return "a number"
	}
}
