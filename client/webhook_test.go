package client

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tako-run/tako/webhook"
)

func TestVerifyWebhook(t *testing.T) {
	t.Parallel()
	key := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	other := "whsec_" + base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	secrets, err := webhook.ParseSecrets([]string{other, key}) // rotating: two signatures
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"job_id":"j1","status":"succeeded"}`)
	signed := func(at time.Time) http.Header {
		h := http.Header{}
		h.Set(webhook.HeaderID, "j1")
		h.Set(webhook.HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
		h.Set(webhook.HeaderSignature, webhook.Sign(secrets, "j1", at, body))
		return h
	}
	now := time.Now()
	for _, tc := range []struct {
		name    string
		secret  string
		header  http.Header
		body    []byte
		wantErr string
	}{
		{"genuine", key, signed(now), body, ""},
		{"the other secret", other, signed(now), body, ""},
		{"four minutes old", key, signed(now.Add(-4 * time.Minute)), body, ""},
		{"tampered body", key, signed(now), []byte(`{"job_id":"j2"}`), "no v1 signature"},
		{"wrong secret", "whsec_" + base64.StdEncoding.EncodeToString([]byte("not the key at all!")), signed(now), body, "no v1 signature"},
		{"replayed", key, signed(now.Add(-6 * time.Minute)), body, "webhook-timestamp"},
		{"from the future", key, signed(now.Add(6 * time.Minute)), body, "webhook-timestamp"},
		{"no signature", key, func() http.Header { h := signed(now); h.Del(webhook.HeaderSignature); return h }(), body, "missing webhook-signature"},
		{"bad secret", "abc", signed(now), body, "whsec_"},
	} {
		err := VerifyWebhook(tc.secret, tc.header, tc.body)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: err = %v, want one with %q", tc.name, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), strings.TrimPrefix(key, "whsec_")) {
			t.Errorf("%s: the error shows the secret", tc.name)
		}
	}
}
