package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tako-run/tako/webhook"
)

// webhookSecretText returns a fresh secret as it is written.
func webhookSecretText(t *testing.T) string {
	t.Helper()
	key := make([]byte, 24)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return webhook.SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// rawWebhookRequest is a request as a receiver's 'nc -l' would capture
// it, signed with secrets at ts over body; sentBody replaces the body
// after signing, to tamper with it.
func rawWebhookRequest(t *testing.T, secrets []string, ts time.Time, body, sentBody, eol string) string {
	t.Helper()
	parsed, err := webhook.ParseSecrets(secrets)
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{
		"POST /hooks/tako HTTP/1.1",
		"Host: receiver.example",
		"User-Agent: tako-webhook/1",
		"Content-Type: application/json",
		fmt.Sprintf("Content-Length: %d", len(sentBody)),
		"webhook-id: msg_2f9",
		fmt.Sprintf("webhook-timestamp: %d", ts.Unix()),
		"webhook-signature: " + webhook.Sign(parsed, "msg_2f9", ts, []byte(body)),
		"", "",
	}
	return strings.Join(lines, eol) + sentBody
}

func TestWebhookVerify(t *testing.T) {
	t.Parallel()
	current, old, other := webhookSecretText(t), webhookSecretText(t), webhookSecretText(t)
	now := time.Now()
	body := `{"job_id": "j1", "status": "completed"}`
	signed := rawWebhookRequest(t, []string{current, old}, now, body, body, "\r\n")
	tests := []struct {
		name    string
		request string
		args    []string
		want    string // in stdout when valid, in the error otherwise
		usage   bool   // the error is a usage error
	}{
		{"valid", signed, []string{"--secret", current}, "valid: webhook-id msg_2f9, signed ", false},
		{"rotation: the old secret still verifies", signed, []string{"--secret", old}, "valid: webhook-id msg_2f9", false},
		{"several secrets", signed, []string{"--secret", other, "--secret", current}, "valid: ", false},
		{"LF line endings", rawWebhookRequest(t, []string{current}, now, body, body, "\n"), []string{"--secret", current}, "valid: ", false},
		{"tampered body", rawWebhookRequest(t, []string{current}, now, body, strings.Replace(body, "j1", "j2", 1), "\r\n"), []string{"--secret", current}, "invalid webhook: no signature in the webhook-signature header matches", false},
		{"wrong secret", signed, []string{"--secret", other}, "invalid webhook: no signature", false},
		{"too old", rawWebhookRequest(t, []string{current}, now.Add(-10*time.Minute), body, body, "\r\n"), []string{"--secret", current}, "old, more than the 5m0s tolerance", false},
		{"too old, wider tolerance", rawWebhookRequest(t, []string{current}, now.Add(-10*time.Minute), body, body, "\r\n"), []string{"--secret", current, "--tolerance", "1000h"}, "valid: ", false},
		{"not a request", "hello\n", []string{"--secret", current}, "read request: ", false},
		{"bad secret", signed, []string{"--secret", "whsec_short"}, "--secret number 1: secret: the part after whsec_ is not standard base64", true},
		{"bad second secret", signed, []string{"--secret", current, "--secret", "c2VjcmV0"}, "--secret number 2: secret must start with whsec_", true},
		{"no secret", signed, nil, "--secret is required", true},
		{"bad tolerance", signed, []string{"--secret", current, "--tolerance", "soon"}, "-tolerance", true},
		{"negative tolerance", signed, []string{"--secret", current, "--tolerance", "-1m"}, "--tolerance must be positive", true},
		{"argument", signed, []string{"--secret", current, "request.txt"}, `unexpected argument "request.txt"`, true},
	}
	// Not parallel: a parallel subtest waits for a slot among the
	// package's other tests, minutes on a loaded machine, while the
	// requests' timestamps age.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runWebhook(append([]string{"verify"}, tt.args...), strings.NewReader(tt.request), &stdout, &stderr)
			valid := strings.HasPrefix(tt.want, "valid: ")
			switch {
			case valid && (err != nil || !strings.Contains(stdout.String(), tt.want)):
				t.Fatalf("verify: %v, stdout %q, want %q", err, stdout.String(), tt.want)
			case !valid && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("verify = %v, want an error containing %q", err, tt.want)
			case !valid && errors.Is(err, errUsage) != tt.usage:
				t.Errorf("verify = %v: a usage error is %v, want %v", err, errors.Is(err, errUsage), tt.usage)
			}
			for _, secret := range []string{"whsec_short", "c2VjcmV0"} {
				if strings.Contains(stdout.String()+stderr.String()+fmt.Sprint(err), secret) {
					t.Errorf("output or error echoes the secret %q", secret)
				}
			}
		})
	}
}

// TestWebhookCommand runs tako webhook through run, as main does, with
// the request in a file.
func TestWebhookCommand(t *testing.T) {
	t.Parallel()
	secret := webhookSecretText(t)
	path := filepath.Join(t.TempDir(), "request.txt")
	body := `{"job_id": "j1"}`
	if err := os.WriteFile(path, []byte(rawWebhookRequest(t, []string{secret}, time.Now(), body, body, "\r\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"tako", "webhook", "verify", "--secret", secret, "--request", path}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("tako webhook verify: %v (stderr %q)", err, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "valid: webhook-id msg_2f9, signed ") {
		t.Errorf("stdout %q, want the valid line", stdout.String())
	}

	for _, args := range [][]string{{"webhook", "-h"}, {"webhook", "verify", "-h"}} {
		stdout.Reset()
		stderr.Reset()
		if err := run(context.Background(), append([]string{"tako"}, args...), nil, &stdout, &stderr); err != nil {
			t.Errorf("tako %s: %v, want nil", strings.Join(args, " "), err)
		}
		if help := stdout.String() + stderr.String(); !strings.Contains(help, "usage: tako webhook verify --secret") {
			t.Errorf("tako %s printed %q, want the help", strings.Join(args, " "), help)
		}
	}
	stdout.Reset()
	if err := run(context.Background(), []string{"tako", "webhook", "sign"}, nil, &stdout, &stderr); !errors.Is(err, errUsage) {
		t.Errorf("tako webhook sign = %v, want a usage error", err)
	}
	if err := run(context.Background(), []string{"tako", "webhook", "verify", "--secret", secret, "--request", filepath.Join(t.TempDir(), "missing")}, nil, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "open request") {
		t.Errorf("verify of a missing file = %v, want an error opening it", err)
	}
}
