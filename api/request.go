package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner"
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

// errAdHocRequirements is the answer to a request with requirements until
// ad-hoc requirement images are implemented.
const errAdHocRequirements = "ad-hoc requirements are not supported by this server yet; declare them in a job type in tako.yaml"

// executeFields are the raw values of a POST /execute body, one per known
// field; nil means absent.
type executeFields struct {
	code           json.RawMessage
	idempotencyKey json.RawMessage
	inputData      json.RawMessage
	jobType        json.RawMessage
	requirements   json.RawMessage
	startupTimeout json.RawMessage
	timeout        json.RawMessage
}

// field returns where the raw value of the known field name goes, or nil
// for an unknown name. Names match exactly, unlike encoding/json's
// case-insensitive struct matching: the original rejects "Code".
func (f *executeFields) field(name string) *json.RawMessage {
	switch name {
	case "code":
		return &f.code
	case "idempotency_key":
		return &f.idempotencyKey
	case "input_data":
		return &f.inputData
	case "job_type":
		return &f.jobType
	case "requirements":
		return &f.requirements
	case "startup_timeout":
		return &f.startupTimeout
	case "timeout":
		return &f.timeout
	}
	return nil
}

// DecodeExecuteRequest parses and validates the body of POST /execute
// against the job types in reg and the limits lim (zero fields take their
// defaults). It returns a Request with everything but ExecutionID set, or a
// *jobs.Error: EMALFORMED when body is empty or not JSON, EINVALID with
// Field set when a field breaks a rule. A body that is not JSON is reported
// before any field error. It never panics, whatever the bytes.
func DecodeExecuteRequest(body []byte, reg *jobtypes.Registry, lim Limits) (runner.Request, error) {
	lim = lim.withDefaults()
	f, err := scanExecuteBody(body)
	if err != nil {
		return runner.Request{}, err
	}
	return f.validate(reg, lim)
}

// scanExecuteBody splits body into its fields. It reads the whole body
// before it returns a field error, so broken JSON is always a 400.
func scanExecuteBody(body []byte) (*executeFields, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, jobs.Errorf(jobs.EMALFORMED, "request body is empty; send a JSON object such as {\"code\": \"print(1)\"}")
	}
	if !utf8.Valid(body) {
		// encoding/json would quietly turn the bad bytes into U+FFFD; the
		// original rejects such a body.
		return nil, jobs.Errorf(jobs.EMALFORMED, "request body is not valid UTF-8")
	}
	// A token walk rather than a struct decode: encoding/json matches struct
	// fields case-insensitively and stops at the first type error, while the
	// original wants exact names, and every value's type is checked below
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
	f := &executeFields{}
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
		dst := f.field(name)
		if dst == nil {
			if first == nil {
				first = jobs.FieldErrorf(fieldName(name), "unknown field; allowed fields are code, input_data, job_type, timeout, startup_timeout, requirements, idempotency_key")
			}
			continue
		}
		*dst = raw // a later duplicate wins, as in Python's json
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

// validate applies the field rules in the order of the original's model and
// returns the first broken one.
func (f *executeFields) validate(reg *jobtypes.Registry, lim Limits) (runner.Request, error) {
	var req runner.Request

	code, err := decodeString(f.code, "code", true)
	if err != nil {
		return req, err
	}
	switch {
	case strings.TrimSpace(code) == "":
		return req, jobs.FieldErrorf("code", "must not be blank")
	case int64(len(code)) > lim.MaxCodeBytes:
		return req, jobs.FieldErrorf("code", "must be at most %d bytes (got %d)", lim.MaxCodeBytes, len(code))
	}
	req.Code = code

	if req.InputJSON, err = decodeInput(f.inputData, lim.MaxInputBytes); err != nil {
		return req, err
	}

	name, err := decodeString(f.jobType, "job_type", false)
	if err != nil {
		return req, err
	}
	if isNull(f.jobType) {
		name = jobtypes.DefaultName
	}
	if len(name) > maxJobTypeLen {
		return req, jobs.FieldErrorf("job_type", "must be at most %d characters", maxJobTypeLen)
	}
	jt, ok := reg.Get(name)
	if !ok {
		return req, jobs.FieldErrorf("job_type", "%s", reg.UnknownError(name))
	}
	req.JobType = jt

	if req.Timeout, err = decodeTimeout(f.timeout, jt, lim.MaxTimeout); err != nil {
		return req, err
	}

	if !isNull(f.startupTimeout) {
		n, err := decodeInt(f.startupTimeout, "startup_timeout", minStartupTimeout, maxStartupTimeout, "")
		if err != nil {
			return req, err
		}
		req.StartupTimeout = time.Duration(n) * time.Second
	}

	if err := checkRequirements(f.requirements); err != nil {
		return req, err
	}
	if err := checkIdempotencyKey(f.idempotencyKey); err != nil {
		return req, err
	}
	return req, nil
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
		return nil, jobs.FieldErrorf("input_data", "must be at most %d bytes when serialized (got %d)", maxBytes, buf.Len())
	}
	return buf.Bytes(), nil
}

// decodeTimeout checks "timeout" against the server's and the job type's
// limits. Absent or null means the job type's timeout (0).
func decodeTimeout(raw json.RawMessage, jt jobtypes.JobType, maxTimeout time.Duration) (time.Duration, error) {
	if isNull(raw) {
		return 0, nil
	}
	maxSec := int64(maxTimeout / time.Second)
	n, err := decodeInt(raw, "timeout", 1, maxSec, " (the server's max_timeout)")
	if err != nil {
		return 0, err
	}
	d := time.Duration(n) * time.Second
	if jt.Limits.Timeout > 0 && d > jt.Limits.Timeout {
		return 0, jobs.FieldErrorf("timeout", "must be at most %d seconds, the limit of job type %q", int64(jt.Limits.Timeout/time.Second), jt.Name)
	}
	return d, nil
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

// checkRequirements validates "requirements" and then refuses a non-empty
// list: ad-hoc requirement images come in a later version.
func checkRequirements(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var reqs []string
	if raw[0] != '[' || json.Unmarshal(raw, &reqs) != nil {
		return jobs.FieldErrorf("requirements", "must be a list of strings")
	}
	switch {
	case len(reqs) > maxRequirements:
		return jobs.FieldErrorf("requirements", "must have at most %d items (got %d)", maxRequirements, len(reqs))
	case len(reqs) > 0:
		return jobs.FieldErrorf("requirements", errAdHocRequirements)
	}
	return nil
}

// checkIdempotencyKey validates "idempotency_key". Sync executions accept
// it and do not use it, as in the original.
func checkIdempotencyKey(raw json.RawMessage) error {
	key, err := decodeString(raw, "idempotency_key", false)
	if err != nil || isNull(raw) {
		return err
	}
	if len(key) < minIdempotencyKeyLen || len(key) > maxIdempotencyKeyLen {
		return jobs.FieldErrorf("idempotency_key", "must be %d to %d characters (got %d)", minIdempotencyKeyLen, maxIdempotencyKeyLen, len(key))
	}
	for i := 0; i < len(key); i++ {
		b := key[i]
		if !(b == '_' || b == '-' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9') {
			return jobs.FieldErrorf("idempotency_key", "may contain only letters, digits, '_' and '-'")
		}
	}
	return nil
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
			return fmt.Sprintf("the number %s", truncate(string(raw), 32))
		}
		return "a number"
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
