package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pythonVerify is an independent Standard Webhooks check, written with
// Python's standard library: it recomputes each secret's signature from
// the id, timestamp and body, and requires it at its position in the
// header.
const pythonVerify = `
import base64, hashlib, hmac, sys
msg_id, ts, header = sys.argv[1], sys.argv[2], sys.argv[3]
body = sys.stdin.buffer.read()
sigs = header.split(" ")
secrets = sys.argv[4:]
if len(sigs) != len(secrets):
    sys.exit("want %d signatures, got %d" % (len(secrets), len(sigs)))
for i, secret in enumerate(secrets):
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, msg_id.encode() + b"." + ts.encode() + b"." + body, hashlib.sha256).digest()
    want = "v1," + base64.b64encode(mac).decode()
    if not hmac.compare_digest(want, sigs[i]):
        sys.exit("signature %d: want %s, got %s" % (i, want, sigs[i]))
print("ok")
`

// newSecretText returns a fresh secret as it is written in config.
func newSecretText(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// mustSecrets parses texts or fails the test.
func mustSecrets(t *testing.T, texts ...string) []Secret {
	t.Helper()
	s, err := ParseSecrets(texts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signedHeader returns the headers of a message signed with secrets.
func signedHeader(secrets []Secret, id string, ts time.Time, body []byte) http.Header {
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, Sign(secrets, id, ts, body))
	return h
}

func TestSignMatchesPython(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed to check signatures independently: %v", err)
	}
	one, two := newSecretText(t), newSecretText(t)
	tests := []struct {
		name    string
		secrets []string
		body    string
	}{
		{"one secret", []string{one}, `{"job_id": "j1", "status": "completed"}`},
		{"rotation", []string{one, two}, `{"job_id": "j2", "status": "failed", "note": "ünïcode"}`},
		{"empty body", []string{two}, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := time.Unix(1767225600, 0)
			header := Sign(mustSecrets(t, tt.secrets...), "msg_"+tt.name, ts, []byte(tt.body))
			args := append([]string{"-c", pythonVerify, "msg_" + tt.name, strconv.FormatInt(ts.Unix(), 10), header}, tt.secrets...)
			cmd := exec.Command(python, args...)
			cmd.Stdin = strings.NewReader(tt.body)
			out, err := cmd.CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "ok" {
				t.Fatalf("python's check of %q: %v: %s", header, err, out)
			}
		})
	}
}

// TestSignKnownVector checks the example every Standard Webhooks library
// tests against.
func TestSignKnownVector(t *testing.T) {
	t.Parallel()
	s := mustSecrets(t, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	got := Sign(s, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	oldText, newText, otherText := newSecretText(t), newSecretText(t), newSecretText(t)
	both := mustSecrets(t, newText, oldText)
	now := time.Unix(1767225600, 0)
	body := []byte(`{"job_id": "j1"}`)
	good := signedHeader(both, "msg_1", now, body)
	without := func(name string) http.Header {
		h := good.Clone()
		h.Del(name)
		return h
	}
	withHeader := func(name, value string) http.Header {
		h := good.Clone()
		h.Set(name, value)
		return h
	}
	tests := []struct {
		name    string
		secrets []Secret
		h       http.Header
		body    string
		now     time.Time
		wantErr string // "" for valid
	}{
		{"valid", both, good, string(body), now, ""},
		{"rotation: receiver has only the new secret", mustSecrets(t, newText), good, string(body), now, ""},
		{"rotation: receiver has only the old secret", mustSecrets(t, oldText), good, string(body), now, ""},
		{"within tolerance", both, good, string(body), now.Add(4 * time.Minute), ""},
		{"tampered body", both, good, `{"job_id": "j2"}`, now, "no signature in the webhook-signature header matches"},
		{"wrong secret", mustSecrets(t, otherText), good, string(body), now, "no signature in the webhook-signature header matches"},
		{"tampered id", both, withHeader(HeaderID, "msg_2"), string(body), now, "no signature"},
		{"old timestamp", both, good, string(body), now.Add(6 * time.Minute), "webhook-timestamp is 6m0s old"},
		{"future timestamp", both, good, string(body), now.Add(-6 * time.Minute), "webhook-timestamp is 6m0s in the future"},
		{"timestamp not a number", both, withHeader(HeaderTimestamp, "yesterday"), string(body), now, `webhook-timestamp header "yesterday" is not unix seconds`},
		{"missing id", both, without(HeaderID), string(body), now, "missing webhook-id header"},
		{"missing timestamp", both, without(HeaderTimestamp), string(body), now, "missing webhook-timestamp header"},
		{"missing signature", both, without(HeaderSignature), string(body), now, "missing webhook-signature header"},
		{"other scheme only", both, withHeader(HeaderSignature, "v1a,abc"), string(body), now, "has no v1 signature"},
		{"no secrets", nil, good, string(body), now, "no secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Verify(tt.secrets, tt.h, []byte(tt.body), tt.now, 5*time.Minute)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Verify: %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Verify = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	short := SecretPrefix + base64.StdEncoding.EncodeToString([]byte("fifteen bytes!!"))
	tests := []struct {
		name, in, wantErr string
	}{
		{"valid", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", ""},
		{"empty", "", "secret is empty"},
		{"no prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with whsec_"},
		{"not base64", "whsec_not*base64!", "not standard base64"},
		{"too short", short, "key is 15 bytes, at least 16 are needed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := ParseSecret(tt.in)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ParseSecret: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("ParseSecret = %v, want an error containing %q", err, tt.wantErr)
			case err != nil && len(tt.in) > len(SecretPrefix) && strings.Contains(err.Error(), tt.in[len(SecretPrefix):]):
				t.Errorf("error %q echoes the secret", err)
			case err == nil && strings.Contains(s.String()+s.GoString(), tt.in[len(SecretPrefix):]):
				t.Errorf("Secret's String shows the key: %s", s)
			}
		})
	}
}

func TestParseSecretsNamesIndex(t *testing.T) {
	t.Parallel()
	if _, err := ParseSecrets([]string{newSecretText(t), "whsec_short"}); err == nil || !strings.HasPrefix(err.Error(), "secrets[1]: ") {
		t.Errorf("ParseSecrets = %v, want an error naming secrets[1]", err)
	}
	if _, err := ParseSecrets(nil); err == nil {
		t.Error("ParseSecrets(nil) = nil error, want one")
	}
}
