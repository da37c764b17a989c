package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a Standard Webhooks message.
const (
	// HeaderID carries the message's unique id, the same on every attempt.
	HeaderID = "webhook-id"
	// HeaderTimestamp carries when the message was signed, in unix seconds.
	HeaderTimestamp = "webhook-timestamp"
	// HeaderSignature carries one "v1,<base64>" signature per secret,
	// separated by spaces.
	HeaderSignature = "webhook-signature"
)

const (
	// SecretPrefix begins every secret as it is written down.
	SecretPrefix = "whsec_"
	// MinSecretBytes is the shortest key ParseSecret accepts.
	MinSecretBytes = 16
	// DefaultTolerance is how far a message's timestamp may be from the
	// verifier's clock when Verify is given no tolerance.
	DefaultTolerance = 5 * time.Minute
)

// signatureVersion marks an HMAC-SHA256 signature in HeaderSignature.
const signatureVersion = "v1"

// Secret is one signing key. Its String hides the key, so a Secret that
// ends up in a log or an error message does not leak it.
type Secret struct {
	key []byte
}

// ParseSecret reads a secret written as "whsec_" and the standard base64
// of a key of at least MinSecretBytes bytes. Its error says what is wrong
// and never contains the secret.
func ParseSecret(s string) (Secret, error) {
	rest, ok := strings.CutPrefix(s, SecretPrefix)
	switch {
	case s == "":
		return Secret{}, errors.New("secret is empty")
	case !ok:
		return Secret{}, fmt.Errorf("secret must start with %s", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return Secret{}, fmt.Errorf("secret: the part after %s is not standard base64", SecretPrefix)
	}
	if len(key) < MinSecretBytes {
		return Secret{}, fmt.Errorf("secret: key is %d bytes, at least %d are needed", len(key), MinSecretBytes)
	}
	return Secret{key: key}, nil
}

// ParseSecrets reads several secrets (the current one and those being
// rotated out) with ParseSecret. It needs at least one, and its error
// names the index of the first bad one, as secrets[1].
func ParseSecrets(ss []string) ([]Secret, error) {
	if len(ss) == 0 {
		return nil, errors.New("no secret given")
	}
	out := make([]Secret, len(ss))
	for i, s := range ss {
		sec, err := ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secrets[%d]: %w", i, err)
		}
		out[i] = sec
	}
	return out, nil
}

// String returns the prefix and a mask, never the key.
func (s Secret) String() string { return SecretPrefix + "[redacted]" }

// GoString is String, so %#v does not show the key either.
func (s Secret) GoString() string { return s.String() }

// Sign returns the HeaderSignature value of a message: one "v1,<base64>"
// HMAC-SHA256 signature of id.timestamp.body per secret, in the order of
// secrets, separated by spaces. The timestamp is ts in unix seconds, which
// the caller sends in HeaderTimestamp.
func Sign(secrets []Secret, id string, ts time.Time, body []byte) string {
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		sigs[i] = signatureVersion + "," + base64.StdEncoding.EncodeToString(s.mac(id, ts.Unix(), body))
	}
	return strings.Join(sigs, " ")
}

// mac is the HMAC-SHA256 of a message under s.
func (s Secret) mac(id string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte(id))
	h.Write([]byte("."))
	h.Write([]byte(strconv.FormatInt(unix, 10)))
	h.Write([]byte("."))
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a received message: its headers h must be present, its
// timestamp no further than tolerance (DefaultTolerance when zero or
// less) from now, and one of its v1 signatures must be that of one of
// secrets over body. Signatures are compared in constant time. The error
// says which check failed, naming the header at fault.
func Verify(secrets []Secret, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secrets) == 0 {
		return errors.New("no secret to verify with")
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	id, tsText, sigText := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	for _, hv := range []struct{ name, value string }{{HeaderID, id}, {HeaderTimestamp, tsText}, {HeaderSignature, sigText}} {
		if hv.value == "" {
			return fmt.Errorf("missing %s header", hv.name)
		}
	}
	unix, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%s header %q is not unix seconds", HeaderTimestamp, tsText)
	}
	ts := time.Unix(unix, 0)
	if age := now.Sub(ts); age > tolerance {
		return fmt.Errorf("%s is %s old, more than the %s tolerance", HeaderTimestamp, age.Round(time.Second), tolerance)
	} else if -age > tolerance {
		return fmt.Errorf("%s is %s in the future, more than the %s tolerance", HeaderTimestamp, (-age).Round(time.Second), tolerance)
	}
	want := make([][]byte, len(secrets))
	for i, s := range secrets {
		want[i] = s.mac(id, unix, body)
	}
	checked := 0
	for _, field := range strings.Fields(sigText) {
		version, enc, ok := strings.Cut(field, ",")
		if !ok || version != signatureVersion {
			continue // another scheme, which the spec says to skip
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			continue
		}
		checked++
		for _, w := range want {
			if hmac.Equal(got, w) {
				return nil
			}
		}
	}
	if checked == 0 {
		return fmt.Errorf("%s header has no v1 signature", HeaderSignature)
	}
	return fmt.Errorf("no signature in the %s header matches (%s checked against %s)", HeaderSignature, plural(checked, "signature"), plural(len(secrets), "secret"))
}

// plural is "1 secret" or "2 secrets".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
