package client

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

// WebhookTolerance is how far a webhook's timestamp may be from the
// receiver's clock before VerifyWebhook refuses it as a replay.
const WebhookTolerance = 5 * time.Minute

// VerifyWebhook checks a webhook tako sent (Standard Webhooks): header
// must carry webhook-id, webhook-timestamp (within WebhookTolerance of
// now) and a webhook-signature with a v1 HMAC-SHA256 of
// "id.timestamp.body" under secret, written "whsec_" + base64 as in
// webhooks.secret. body is the raw request body, the job's result. It
// returns nil when the webhook is genuine; the error says which check
// failed and never contains the secret.
func VerifyWebhook(secret string, header http.Header, body []byte) error {
	return verifyWebhook(secret, header, body, time.Now())
}

// verifyWebhook is VerifyWebhook at the time now.
func verifyWebhook(secret string, header http.Header, body []byte, now time.Time) error {
	enc, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return errors.New("webhook secret must start with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(key) == 0 {
		return errors.New("webhook secret: the part after whsec_ is not standard base64")
	}
	id, ts, sigs := header.Get("webhook-id"), header.Get("webhook-timestamp"), header.Get("webhook-signature")
	switch {
	case id == "":
		return errors.New("missing webhook-id header")
	case ts == "":
		return errors.New("missing webhook-timestamp header")
	case sigs == "":
		return errors.New("missing webhook-signature header")
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not unix seconds", ts)
	}
	if age := now.Sub(time.Unix(unix, 0)); age > WebhookTolerance || -age > WebhookTolerance {
		return fmt.Errorf("webhook-timestamp is %s from now, more than %s", age.Round(time.Second), WebhookTolerance)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, field := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(field, ",")
		if !ok || version != "v1" {
			continue // another scheme
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no v1 signature in webhook-signature matches the secret")
}
