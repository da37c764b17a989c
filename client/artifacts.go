package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
)

// Artifact downloads the file name that job id left in /output (GET
// /jobs/{id}/artifacts/{name}). The caller closes body. etag is the file's
// ETag (its quoted SHA-256), to pass back later: when etag is given and the
// file has not changed, notModified is true, body is nil and the download
// is skipped (If-None-Match, 304). An unknown job or file is a 404
// *APIError.
func (c *Client) Artifact(ctx context.Context, id, name, etag string) (body io.ReadCloser, newETag string, notModified bool, err error) {
	var h http.Header
	if etag != "" {
		h = http.Header{"If-None-Match": {etag}}
	}
	r := call{method: http.MethodGet, path: jobPath(id, "/artifacts/"+url.PathEscape(name)), header: h, retry: retrySafe}
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, "", false, err
	}
	newETag = resp.Header.Get("ETag")
	if resp.StatusCode == http.StatusNotModified {
		resp.Body.Close()
		if newETag == "" {
			newETag = etag
		}
		return nil, newETag, true, nil
	}
	return resp.Body, newETag, false, nil
}
