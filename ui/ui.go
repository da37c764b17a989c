// Package ui is tako's web console at GET /ui: a few server-rendered pages
// (html/template) and one plain script that fills them from the JSON API
// with the key the user pasted. Every asset is embedded in the binary; the
// pages load nothing from another origin and run no inline script, which
// their Content-Security-Policy enforces.
//
// The pages themselves hold nothing of any caller's: they are shells that
// need no key. Everything they show comes from the API, scoped by the key
// exactly as the API scopes it.
package ui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"

	"github.com/gofiber/fiber/v2"
)

// assets are the page templates and the static files: the script and the
// style sheet.
//
//go:embed assets/templates/*.html assets/static/*
var assets embed.FS

// Prefix is the path the console is served under. Every path below it is
// the console's: a page, a static file or its 404 page.
const Prefix = "/ui"

// CSP is the Content-Security-Policy of every console response: scripts,
// styles, images and requests from this server only, no inline script or
// style attribute, no plugins, no framing, no form posted anywhere.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Options configure the console.
type Options struct {
	// KeyHeader is the header the API takes a key in (auth.header);
	// default "X-API-Key".
	KeyHeader string
	// Version is tako's version, shown in the footer.
	Version string
}

// page is one of the console's pages: its template and its title.
type page struct {
	name  string // the template file, without .html; also the nav entry
	title string
}

// pageData is what every template gets.
type pageData struct {
	Page      string // name of the page, for the script and the nav
	Title     string
	KeyHeader string
	Version   string
	ID        string // the execution id of the execution page
}

// console serves the pages from its parsed templates.
type console struct {
	pages     map[string]*template.Template
	keyHeader string
	version   string
}

// Register adds the console's routes under Prefix to r. It fails only when
// an embedded template does not parse, which is a bug in the build.
func Register(r fiber.Router, opts Options) error {
	c := &console{pages: map[string]*template.Template{}, keyHeader: opts.KeyHeader, version: opts.Version}
	if c.keyHeader == "" {
		c.keyHeader = "X-API-Key"
	}
	for _, name := range []string{"executions", "execution", "run", "jobtypes", "health", "notfound"} {
		t, err := template.ParseFS(assets, "assets/templates/layout.html", "assets/templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("parse console template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	r.Get(Prefix, c.render(page{"executions", "Executions"}))
	r.Get(Prefix+"/", c.render(page{"executions", "Executions"}))
	r.Get(Prefix+"/executions/:id", c.render(page{"execution", "Execution"}))
	r.Get(Prefix+"/run", c.render(page{"run", "Run"}))
	r.Get(Prefix+"/job-types", c.render(page{"jobtypes", "Job types"}))
	r.Get(Prefix+"/health", c.render(page{"health", "Health"}))
	r.Get(Prefix+"/static/:name", c.static)
	r.All(Prefix+"/*", c.notFound)
	return nil
}

// IsConsolePath reports whether p is served by the console: Prefix or
// anything below it. Such paths need no key (see the package comment).
func IsConsolePath(p string) bool {
	return p == Prefix || len(p) > len(Prefix) && p[:len(Prefix)+1] == Prefix+"/"
}

// render returns the handler of pg.
func (c *console) render(pg page) fiber.Handler {
	return func(ctx *fiber.Ctx) error {
		return c.write(ctx, http.StatusOK, pg, ctx.Params("id"))
	}
}

// notFound answers any other path under Prefix with the 404 page, which
// links back to the list.
func (c *console) notFound(ctx *fiber.Ctx) error {
	return c.write(ctx, http.StatusNotFound, page{"notfound", "Not found"}, "")
}

// write renders pg with status and the console's headers.
func (c *console) write(ctx *fiber.Ctx, status int, pg page, id string) error {
	var buf bytes.Buffer
	data := pageData{Page: pg.name, Title: pg.title, KeyHeader: c.keyHeader, Version: c.version, ID: id}
	if err := c.pages[pg.name].ExecuteTemplate(&buf, "layout", data); err != nil {
		return fmt.Errorf("render console page %s: %w", pg.name, err)
	}
	setHeaders(ctx)
	ctx.Set(fiber.HeaderCacheControl, "no-store")
	ctx.Type("html", "utf-8")
	return ctx.Status(status).Send(buf.Bytes())
}

// static serves a file of assets/static by its name.
func (c *console) static(ctx *fiber.Ctx) error {
	name := ctx.Params("name")
	b, err := fs.ReadFile(assets, "assets/static/"+name)
	if err != nil || path.Base(name) != name {
		return c.notFound(ctx)
	}
	setHeaders(ctx)
	ctx.Set(fiber.HeaderCacheControl, "no-cache")
	ctx.Type(path.Ext(name), "utf-8")
	return ctx.Send(b)
}

// setHeaders sets the console's security headers on a response.
func setHeaders(ctx *fiber.Ctx) {
	ctx.Set(fiber.HeaderContentSecurityPolicy, CSP)
	ctx.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	ctx.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	ctx.Set(fiber.HeaderXFrameOptions, "DENY")
}
