package api

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/tako-run/tako/jobs"
)

// The artifact route's details.
const (
	invalidArtifactPath = "Invalid artifact path"
	artifactNotFound    = "Artifact not found"
)

// maxArtifactName is the longest artifact name: a file name in /output.
const maxArtifactName = 255

// handleArtifact is GET and HEAD /jobs/:id/artifacts/:name: one stored
// artifact with its ETag (the quoted sha256), a Content-Type from its
// extension and a Content-Disposition that makes browsers save it. A
// matching If-None-Match gets 304 without a body; HEAD gets the headers
// only. A name that is not a plain file name is 400 before any lookup.
func (s *Server) handleArtifact(c *fiber.Ctx) error {
	id, err := pathID(c, jobNotFound)
	if err != nil {
		return err
	}
	name, err := artifactName(c.Params("*"))
	if err != nil {
		return err
	}
	ctx, cancel := s.opContext()
	defer cancel()
	art, err := s.service.Artifact(ctx, callerOf(c), id, name)
	switch {
	case jobs.ErrorCodeOf(err) == jobs.ENOTFOUND:
		// The original tells a job it does not know from an artifact the
		// job does not have; another key's job is one it does not know.
		if _, gerr := s.service.Get(ctx, callerOf(c), id); jobs.ErrorCodeOf(gerr) == jobs.ENOTFOUND {
			return &jobs.Error{Code: jobs.ENOTFOUND, Message: jobNotFound}
		}
		return &jobs.Error{Code: jobs.ENOTFOUND, Message: artifactNotFound}
	case err != nil:
		return err
	case art == nil:
		return fmt.Errorf("service returned no artifact and no error for %s", id)
	}

	sum := art.SHA256
	if sum == "" {
		h := sha256.Sum256(art.Content)
		sum = hex.EncodeToString(h[:])
	}
	etag := strconv.Quote(sum)
	c.Set(fiber.HeaderETag, etag)
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), etag) {
		c.Status(http.StatusNotModified)
		c.Response().ResetBody()
		return nil
	}
	c.Set(fiber.HeaderContentType, artifactContentType(name))
	c.Set(fiber.HeaderContentDisposition, contentDisposition(name))
	// Artifacts are user output: never let a browser run them as a page.
	c.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'; sandbox")
	// fasthttp sends Content-Length from the body and drops the body for
	// HEAD.
	return c.Send(art.Content)
}

// artifactName decodes the raw name from the path and checks that it is a
// plain file name, as the collector stores them: not empty, not "." or
// "..", no "/", "\", NUL or other control characters, not hidden (".x"),
// valid UTF-8 and at most 255 bytes. Anything else is EMALFORMED with the
// original's detail.
func artifactName(raw string) (string, error) {
	bad := &jobs.Error{Code: jobs.EMALFORMED, Message: invalidArtifactPath}
	// The router matched the raw path, so "%2F" and "%2e%2e" arrive
	// encoded; decode once and judge what the client means.
	name, err := url.PathUnescape(raw)
	if err != nil || name == "" || len(name) > maxArtifactName || !utf8.ValidString(name) || strings.HasPrefix(name, ".") {
		return "", bad
	}
	for _, r := range name {
		if r == '/' || r == '\\' || unicode.IsControl(r) {
			return "", bad
		}
	}
	return name, nil
}

// artifactContentType is the media type for name's extension, or
// application/octet-stream.
func artifactContentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return fiber.MIMEOctetStream
}

// contentDisposition is an attachment header for name: a quoted ASCII
// filename and, when name is not ASCII, the exact name as filename*
// (RFC 6266, RFC 5987).
func contentDisposition(name string) string {
	var ascii strings.Builder
	isASCII := true
	for _, r := range name {
		switch {
		case r >= utf8.RuneSelf:
			isASCII = false
			ascii.WriteByte('_')
		case r == '"' || r == '\\':
			ascii.WriteByte('\\')
			ascii.WriteRune(r)
		default:
			ascii.WriteRune(r)
		}
	}
	v := `attachment; filename="` + ascii.String() + `"`
	if !isASCII {
		v += "; filename*=UTF-8''" + rfc5987Escape(name)
	}
	return v
}

// rfc5987Escape percent-encodes every byte of s that is not an attr-char.
func rfc5987Escape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < utf8.RuneSelf && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0x0f])
	}
	return b.String()
}

// etagMatches reports whether an If-None-Match header matches etag: "*", or
// a comma-separated list with etag in it, compared weakly (a W/ prefix on
// either side is ignored), as RFC 9110 says for If-None-Match.
func etagMatches(header, etag string) bool {
	header = strings.TrimSpace(header)
	if header == "" {
		return false
	}
	if header == "*" {
		return true
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == want {
			return true
		}
	}
	return false
}
