package config

import (
	"strings"
	"testing"
	"time"
)

func TestWebhookSettings(t *testing.T) {
	t.Parallel()
	const secret = "whsec_dGFrby1jb25maWctdGVzdC1zZWNyZXQ="
	cfg := mustLoad(t, `
webhooks:
  secret: [`+secret+`, `+secret+`]
  retry_schedule: [1s, 2m]
  allow_http: true
auth:
  api_keys:
    ci: {key: ci-key-0123456789abcdef, callback_url: "http://hooks.example/ci", webhook_secret: "`+secret+`"}
job_types:
  data: {callback_url: "https://hooks.example/data"}
`, nil, nil)
	if got := cfg.RetrySchedule(); len(got) != 2 || got[1] != 2*time.Minute {
		t.Errorf("retry schedule: %v", got)
	}
	if secrets, err := cfg.WebhookSecrets(); err != nil || len(secrets) != 2 {
		t.Errorf("secrets: %v %v", secrets, err)
	}
	keys, err := cfg.APIKeys()
	if err != nil || keys["ci"].CallbackURL != "http://hooks.example/ci" || len(keys["ci"].WebhookSecrets) != 1 {
		t.Errorf("the key's webhook settings: %+v %v", keys["ci"], err)
	}
	reg, err := cfg.Registry()
	if err != nil {
		t.Fatal(err)
	}
	if jt, _ := reg.Get("data"); jt.CallbackURL != "https://hooks.example/data" {
		t.Errorf("the job type's callback: %q", jt.CallbackURL)
	}
	// One secret from the environment is a list of one.
	cfg = mustLoad(t, "", []string{"TAKO_WEBHOOKS_SECRET=" + secret}, nil)
	if len(cfg.Webhooks.Secret) != 1 {
		t.Errorf("webhooks.secret from the environment: %v", cfg.Webhooks.Secret)
	}
}

func TestWebhookSettingErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ yaml, want string }{
		{"webhooks: {secret: not-a-secret}", "webhooks.secret[0]"},
		{"webhooks: {secret: whsec_c2hvcnQ=}", "webhooks.secret[0]"},
		{"webhooks: {retry_schedule: [1s, 0s]}", "webhooks.retry_schedule[1]"},
		{"webhooks: {timeout: 10m}", "webhooks.timeout"},
		{"streaming: {max_streams: 0}", "streaming.max_streams"},
		{"job_types: {data: {callback_url: http://hooks.example/}}", `job_types.data.callback_url: "http://hooks.example/" must use https`},
		{"job_types: {data: {callback_url: ftp://hooks.example/}}", "job_types.data.callback_url"},
		{"job_types: {data: {callback_url: 'https://u:p@hooks.example/'}}", "must not carry a user name"},
		{"auth: {api_keys: {ci: {key: ci-key-0123456789abcdef, callback_url: 'http://x/'}}}", "auth.api_keys.ci.callback_url"},
		{"auth: {api_keys: {ci: {key: ci-key-0123456789abcdef, webhook_secret: nope}}}", "auth.api_keys.ci.webhook_secret"},
	} {
		_, err := load(t, tt.yaml, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error naming %q", tt.yaml, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "whsec_c2hvcnQ=") {
			t.Errorf("%s: the error shows the secret: %v", tt.yaml, err)
		}
	}
}
