package api

import (
	"embed"
	"io/fs"
	"net/http"
	"path"

	"github.com/gofiber/fiber/v2"
	swaggerfiles "github.com/swaggo/files/v2"
)

// docsFiles are tako's page for GET /docs and the script that starts
// Swagger UI on /openapi.json.
//
//go:embed docs/index.html docs/tako-docs.js
var docsFiles embed.FS

// docsAssets are the files GET /docs/{name} serves, by name: tako's
// script, and Swagger UI's bundle, styles and icon from the swaggo/files
// module, embedded in the binary so the page works without internet.
var docsAssets = map[string]struct {
	fsys fs.FS
	name string
}{
	"tako-docs.js":         {docsFiles, "docs/tako-docs.js"},
	"swagger-ui-bundle.js": {swaggerfiles.FS, "swagger-ui-bundle.js"},
	"swagger-ui.css":       {swaggerfiles.FS, "swagger-ui.css"},
	"favicon-32x32.png":    {swaggerfiles.FS, "favicon-32x32.png"},
}

// docsCSP is the Content-Security-Policy of the docs page and its assets:
// everything from this server, nothing inline but the styles Swagger UI
// sets on its elements, and no other origin.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// handleRoot is GET /: the original redirects its users to the docs.
func (s *Server) handleRoot(c *fiber.Ctx) error {
	return c.Redirect("/docs", http.StatusTemporaryRedirect)
}

// handleDocs is GET /docs: an interactive page for /openapi.json.
func (s *Server) handleDocs(c *fiber.Ctx) error {
	return serveDocsFile(c, docsFiles, "docs/index.html")
}

// handleDocsAsset is GET /docs/{name}: one of docsAssets.
func (s *Server) handleDocsAsset(c *fiber.Ctx) error {
	a, ok := docsAssets[c.Params("*")]
	if !ok {
		return fiber.ErrNotFound
	}
	return serveDocsFile(c, a.fsys, a.name)
}

// serveDocsFile sends name from fsys with its media type, the docs' CSP
// and a day of caching: the assets change only with the binary.
func serveDocsFile(c *fiber.Ctx, fsys fs.FS, name string) error {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return err // embedded: a missing file is a bug
	}
	c.Type(path.Ext(name))
	c.Set(fiber.HeaderContentSecurityPolicy, docsCSP)
	c.Set(fiber.HeaderCacheControl, "public, max-age=86400")
	return c.Send(b)
}
