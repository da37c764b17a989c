package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tako-run/tako/ui"
)

// The console's browser tests drive headless Chromium (Debian's chromium
// package) through the Chrome DevTools Protocol against a real tako with
// real jobs. Each test records every request the page makes and every
// dialog a script opens: the console must load nothing from another
// origin and run nothing a job printed.

// consoleWait bounds one wait for the page: generous, for a loaded 2-core
// machine.
const consoleWait = 90 * time.Second

// chrome is one headless browser tab and what it saw.
type chrome struct {
	ctx    context.Context
	origin string // the tako it talks to, such as http://127.0.0.1:8123
	out    string // where its screenshots go

	mu       sync.Mutex
	requests []string // every URL the page asked for
	dialogs  []string // the message of every dialog a script opened
}

// newChrome starts Chromium for the test against the tako at origin. A
// machine without chromium fails the test: CI installs it (make
// testbrowser).
func newChrome(t *testing.T, origin string) *chrome {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the console tests need Debian's headless Chromium: run 'make testbrowser' or 'apt-get install chromium' (%v)", err)
	}
	out := os.Getenv("TAKO_TEST_OUTPUT")
	if out == "" {
		out = t.TempDir()
	}
	out = filepath.Join(out, "console", t.Name())
	if err := os.MkdirAll(filepath.Join(out, "downloads"), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in CI; the page is tako's own
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	c := &chrome{origin: origin, out: out}
	dialogs := make(chan struct{}, 16)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		// The listener runs in the tab's read loop: it records, and
		// leaves commands to the goroutine below.
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			c.mu.Lock()
			c.requests = append(c.requests, e.Request.URL)
			c.mu.Unlock()
		case *page.EventJavascriptDialogOpening:
			c.mu.Lock()
			c.dialogs = append(c.dialogs, e.Message)
			c.mu.Unlock()
			select {
			case dialogs <- struct{}{}:
			default:
			}
		}
	}))
	c.ctx = ctx
	// A dialog blocks the page: dismiss each, so the test goes on to
	// report it instead of hanging.
	handled := make(chan struct{})
	go func() {
		defer close(handled)
		for {
			select {
			case <-dialogs:
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		<-handled
	})
	// The first call starts the browser and must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	c.run(t, "record the network",
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{})
			return err
		}),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: filepath.Join(out, "downloads")})
			return err
		}))
	t.Cleanup(func() { c.checkSafe(t) })
	return c
}

// run runs steps, failing the test with what on error.
func (c *chrome) run(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, consoleWait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// open loads path of the console and waits for sel to be visible.
func (c *chrome) open(t *testing.T, path, sel string) {
	t.Helper()
	c.run(t, "open "+path, chromedp.Navigate(c.origin+path), chromedp.WaitVisible(chromedp.CSS(sel)))
}

// evalJS evaluates a JavaScript expression in c's page.
func evalJS[T any](t *testing.T, c *chrome, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, consoleWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitText waits until the text of sel contains want, and returns it. A
// navigation on the way (a form that moves to the job's page) ends a poll
// early; the wait then polls the new page.
func (c *chrome) waitText(t *testing.T, sel, want string) string {
	t.Helper()
	text := fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)
	deadline := time.Now().Add(consoleWait)
	for {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`(%s).includes(%q)`, text, want), chromedp.WithPollingInterval(100*time.Millisecond)))
		cancel()
		if err == nil {
			if got, err := chromedp.Run(c.ctx, chromedp.Evaluate[string](text)); err == nil && strings.Contains(got, want) {
				return got
			}
		}
		if time.Now().After(deadline) {
			got := evalJS[string](t, c, `(`+text+`) + " | message: " + ((document.getElementById("message") || {}).textContent || "")`)
			t.Fatalf("%s never showed %q: %v; it shows %q", sel, want, err, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves the page at 1280 and 390 px wide under the test's
// output directory; with TAKO_TEST_CONSOLE_DOCS set it also writes the 1280 px
// one to docs/console, the README's.
func (c *chrome) screenshot(t *testing.T, name string) {
	t.Helper()
	for _, w := range []struct {
		width, height int64
		opts          []chromedp.EmulateViewportOption
	}{{1280, 900, nil}, {390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile}}} {
		c.run(t, "resize for "+name, chromedp.EmulateViewport(w.width, w.height, w.opts...))
		// Nothing may push the page sideways: at either width it fits.
		if sw := evalJS[int64](t, c, `document.documentElement.scrollWidth`); sw > w.width {
			t.Errorf("%s at %d px is %d px wide: it scrolls sideways", name, w.width, sw)
		}
		ctx, cancel := context.WithTimeout(c.ctx, consoleWait)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		file := filepath.Join(c.out, fmt.Sprintf("%s-%d.png", name, w.width))
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
		if w.width == 1280 && os.Getenv("TAKO_TEST_CONSOLE_DOCS") != "" {
			if err := os.WriteFile(filepath.Join("..", "..", "docs", "console", name+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.run(t, "reset the viewport", chromedp.ResetViewport())
	t.Logf("screenshots of %s in %s", name, c.out)
}

// checkSafe fails the test when a script opened a dialog or the page
// asked for anything but the tako it came from.
func (c *chrome) checkSafe(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.dialogs) > 0 {
		t.Errorf("a script on the page opened dialogs %q: the page ran what a job printed", c.dialogs)
	}
	if len(c.requests) == 0 {
		t.Errorf("no request was recorded: the network log is not working")
	}
	for _, u := range c.requests {
		if !strings.HasPrefix(u, c.origin+"/") && !strings.HasPrefix(u, "blob:"+c.origin+"/") {
			t.Errorf("the page asked for %s, outside its origin %s", u, c.origin)
		}
	}
}

// submit sends a job to tako over HTTP, with key when it is not "", and
// returns the decoded answer.
func submit(t *testing.T, s *testServer, path, key string, req map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	hr, err := http.NewRequest(http.MethodPost, s.url+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	if key != "" {
		hr.Header.Set("X-API-Key", key)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: status %d: %s", path, resp.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("POST %s: %v: %s", path, err, body)
	}
	return m
}

// hostileText is what the hostile job prints: markup that would run a
// script if the page ever inserted it as HTML.
const hostileText = `<script>alert(1)</script><img src=x onerror=alert(1)>`

// TestConsole drives the console against the shared server: the list, an
// execution's page with its output and artifact, live output, cancel, the
// run form, a job that prints HTML, the other pages, and the CSP.
func TestConsole(t *testing.T) {
	s := startServer(t)
	c := newChrome(t, s.url)

	// A finished job with stdout, stderr, result.json, input and an
	// artifact; its code holds the hostile text too.
	done := submit(t, s, "/execute", "", map[string]any{
		"code": "import json\n# " + hostileText + "\nprint('hello from the console test')\n" +
			"import sys; print('to stderr', file=sys.stderr)\n" +
			"data = json.load(open('/input/data.json'))\n" +
			"json.dump({'doubled': data['n'] * 2}, open('/output/result.json', 'w'))\n" +
			"open('/output/report.txt', 'w').write('artifact body')\n",
		"input_data": map[string]any{"n": 21},
	})
	id, _ := done["job_id"].(string)
	if done["status"] != "succeeded" {
		t.Fatalf("the finished job: %v", done)
	}

	t.Run("the list shows a finished job", func(t *testing.T) {
		row := fmt.Sprintf(`tr[data-id=%q]`, id)
		c.open(t, "/ui", row)
		if got := c.waitText(t, row, "succeeded"); !strings.Contains(got, "default") {
			t.Errorf("the row of %s reads %q, want its status and job type", id, got)
		}
	})

	t.Run("its page shows stdout, output, code and input", func(t *testing.T) {
		c.open(t, "/ui/executions/"+id, "#exec")
		c.waitText(t, "#stdout", "hello from the console test")
		c.waitText(t, "#stderr", "to stderr")
		c.waitText(t, "#output", `"doubled": 42`)
		c.waitText(t, "#input", `"n": 21`)
		c.waitText(t, "#code", "json.dump")
		if lines := evalJS[int](t, c, `document.querySelectorAll("#code li").length`); lines != 7 {
			t.Errorf("the code shows %d numbered lines, want 7", lines)
		}
		c.waitText(t, "#timing-legend", "run")
		c.screenshot(t, "execution")
	})

	t.Run("an artifact downloads", func(t *testing.T) {
		dl := filepath.Join(c.out, "downloads")
		c.run(t, "click the artifact", chromedp.Click(chromedp.CSS(`button[data-artifact="report.txt"]`)))
		// Chromium names a download by its guid: look for its content.
		deadline := time.Now().Add(consoleWait)
		for {
			entries, _ := os.ReadDir(dl)
			for _, e := range entries {
				if b, err := os.ReadFile(filepath.Join(dl, e.Name())); err == nil && string(b) == "artifact body" {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("report.txt did not download within %s (files %v; message %q)", consoleWait, entries,
					evalJS[string](t, c, `document.getElementById("message").textContent`))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("fork edits the code and runs it on the same input", func(t *testing.T) {
		c.open(t, "/ui/executions/"+id, "#exec")
		c.run(t, "open the fork editor", chromedp.WaitVisible(chromedp.ID("fork")), chromedp.Click(chromedp.ID("fork")),
			chromedp.WaitVisible(chromedp.ID("fork-code")))
		if code := evalJS[string](t, c, `document.getElementById("fork-code").value`); !strings.Contains(code, "hello from the console test") {
			t.Errorf("the fork editor holds %q, want the job's code", code)
		}
		c.run(t, "run the fork",
			chromedp.SetValue(chromedp.ID("fork-code"), "import json\nprint('forked', json.load(open('/input/data.json'))['n'])\n"),
			chromedp.Click(chromedp.CSS(`#fork-form button[type="submit"]`)))
		c.waitText(t, "#stdout", "forked 21")
		c.waitText(t, "#lineage", "fork of "+id)
	})

	t.Run("rerun runs the same code again", func(t *testing.T) {
		c.open(t, "/ui/executions/"+id, "#exec")
		c.run(t, "rerun", chromedp.WaitVisible(chromedp.ID("rerun")), chromedp.Click(chromedp.ID("rerun")))
		c.waitText(t, "#lineage", "rerun of "+id)
		c.waitText(t, "#stdout", "hello from the console test")
		if got := evalJS[string](t, c, `document.getElementById("exec-id").textContent`); got == id {
			t.Errorf("after rerun the page still shows %s, want the new execution", id)
		}
	})

	t.Run("the parent lists its fork and its rerun", func(t *testing.T) {
		c.open(t, "/ui/executions/"+id, "#exec")
		c.waitText(t, "#lineage", "(fork, ")
		c.waitText(t, "#lineage", "(rerun, ")
	})

	t.Run("search by id works from the keyboard", func(t *testing.T) {
		c.open(t, "/ui", "#f-id")
		c.run(t, "type the id and press Enter", chromedp.Focus(chromedp.ID("f-id")), chromedp.SendKeys(chromedp.ID("f-id"), id+"\r"))
		c.waitText(t, "#exec-id", id)
		c.waitText(t, "#stdout", "hello from the console test")
	})

	t.Run("a failure shows its error with its type, and truncated output says so", func(t *testing.T) {
		failed := submit(t, s, "/execute", "", map[string]any{
			"code": "import sys\nsys.stdout.write('x' * 70000)\nraise ValueError('boom from the job')\n",
		})
		c.open(t, "/ui/executions/"+failed["job_id"].(string), "#exec")
		c.waitText(t, "#summary", "failed")
		c.waitText(t, "#stdout-note", "truncated")
		c.waitText(t, "#stderr", "ValueError: boom from the job")
		c.run(t, "see the error", chromedp.WaitVisible(chromedp.ID("error-box")))
		if typ := evalJS[string](t, c, `document.getElementById("error-type").textContent`); typ == "" {
			t.Errorf("the error has no type")
		}
	})

	var cancelled string
	t.Run("a running job's output appears live, and cancel ends it", func(t *testing.T) {
		job := submit(t, s, "/execute/async", "", map[string]any{
			// data allows a minute: room for a slow page before the job
			// would end on its own.
			"code":     "import time\nprint('live line one', flush=True)\nfor i in range(290):\n    time.sleep(0.2)\n",
			"job_type": "data",
			"timeout":  60,
		})
		jid, _ := job["job_id"].(string)
		cancelled = jid
		c.open(t, "/ui/executions/"+jid, "#exec")
		c.waitText(t, "#stdout", "live line one")
		// The job is still running: the line came over the event stream.
		if _, st := s.get(t, "/jobs/"+jid); st.(map[string]any)["status"] != "running" {
			t.Fatalf("the job is %v once its output showed, want running", st.(map[string]any)["status"])
		}
		c.run(t, "cancel", chromedp.WaitVisible(chromedp.ID("cancel")), chromedp.Click(chromedp.ID("cancel")))
		c.waitText(t, "#summary", "cancelled")
		if _, st := s.get(t, "/jobs/"+jid); st.(map[string]any)["status"] != "cancelled" {
			t.Errorf("after the cancel button the job is %v, want cancelled", st.(map[string]any)["status"])
		}
	})

	t.Run("the list refreshes itself while a job runs", func(t *testing.T) {
		job := submit(t, s, "/execute/async", "", map[string]any{"code": "import time\ntime.sleep(8)\nprint('slept')\n"})
		row := fmt.Sprintf(`tr[data-id=%q]`, job["job_id"].(string))
		c.open(t, "/ui", row)
		if got := c.waitText(t, row, ""); strings.Contains(got, "succeeded") {
			t.Fatalf("the job had ended before the list showed it (%q): nothing to refresh", got)
		}
		c.waitText(t, row, "succeeded") // without a reload
	})

	t.Run("the list filters by status and start", func(t *testing.T) {
		if cancelled == "" {
			t.Fatal("no cancelled job: the cancel test failed")
		}
		c.open(t, "/ui?status=cancelled", fmt.Sprintf(`tr[data-id=%q]`, cancelled))
		if n := evalJS[int](t, c, fmt.Sprintf(`document.querySelectorAll('tr[data-id=%q]').length`, id)); n != 0 {
			t.Errorf("the cancelled filter shows the succeeded job %s", id)
		}
		if n := evalJS[int](t, c, `[...document.querySelectorAll("#executions tbody tr")].filter((tr) => !tr.textContent.includes("cancelled")).length`); n != 0 {
			t.Errorf("the cancelled filter shows %d rows of another status", n)
		}
		start := done["start"].(string)
		other := map[string]string{"warm": "cold", "cold": "warm"}[start]
		c.open(t, "/ui?start="+start, fmt.Sprintf(`tr[data-id=%q]`, id))
		c.open(t, "/ui?start="+other, "#executions[data-loaded]")
		if n := evalJS[int](t, c, fmt.Sprintf(`document.querySelectorAll('tr[data-id=%q]').length`, id)); n != 0 {
			t.Errorf("the %s filter shows the %s job %s", other, start, id)
		}
	})

	t.Run("the run form submits code and the result appears", func(t *testing.T) {
		c.open(t, "/ui/run", "#run-form")
		c.screenshot(t, "run")
		// Mistakes come back as sentences, not JSON.
		c.run(t, "submit input that is not JSON",
			chromedp.SetValue(chromedp.ID("run-input"), `{"word": `),
			chromedp.Click(chromedp.CSS(`#run-form button[type="submit"]`)))
		c.waitText(t, "#message", "The input is not a JSON object")
		c.run(t, "submit a requirement the API refuses",
			chromedp.SetValue(chromedp.ID("run-input"), `{}`),
			chromedp.SetValue(chromedp.ID("run-reqs"), "no such thing!!"),
			chromedp.Click(chromedp.CSS(`#run-form button[type="submit"]`)))
		msg := c.waitText(t, "#message", "requirements")
		if strings.HasPrefix(strings.TrimSpace(msg), "{") || strings.Contains(msg, `"detail"`) {
			t.Errorf("the API's error shows as raw JSON: %q", msg)
		}
		evalJS[string](t, c, `document.getElementById("run-reqs").value = ""`)
		c.run(t, "fill the form",
			chromedp.SetValue(chromedp.ID("run-code"), "import json, sys\nd = json.load(open('/input/data.json'))\nprint('form says', d['word'])\n"),
			chromedp.SetValue(chromedp.ID("run-input"), `{"word": "hi"}`),
			chromedp.Click(chromedp.CSS(`#run-form button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.ID("exec")))
		c.waitText(t, "#stdout", "form says hi")
		c.waitText(t, "#summary", "succeeded")
		if loc := evalJS[string](t, c, `location.pathname`); !strings.HasPrefix(loc, "/ui/executions/") {
			t.Errorf("after the form the page is %s, want the job's", loc)
		}
	})

	t.Run("a job that prints HTML runs nothing", func(t *testing.T) {
		hostile := submit(t, s, "/execute", "", map[string]any{
			"code": fmt.Sprintf("import json, sys\nprint(%q)\nprint(%q, file=sys.stderr)\n"+
				"json.dump({'html': %q}, open('/output/result.json', 'w'))\n"+
				"open('/output/' + %q + '.txt', 'w').write('x')\n", hostileText, hostileText, hostileText, `<img src=x onerror=alert(2)>`),
		})
		hid, _ := hostile["job_id"].(string)
		c.open(t, "/ui/executions/"+hid, "#exec")
		got := c.waitText(t, "#stdout", hostileText)
		if !strings.Contains(got, "<img src=x onerror=alert(1)>") {
			t.Errorf("stdout shows %q, want the markup as text", got)
		}
		c.waitText(t, "#stderr", hostileText)
		c.waitText(t, "#code", hostileText)
		c.waitText(t, "#output", "onerror")
		c.waitText(t, "#artifacts", "<img src=x onerror=alert(2)>.txt")
		counts := evalJS[map[string]int](t, c, `({
			img: document.querySelectorAll("img").length,
			scripts: document.querySelectorAll("script").length,
			inOutput: document.querySelectorAll("#stdout *, #stderr *, #output *, #code span *, #artifacts li button *").length,
		})`)
		if counts["img"] != 0 || counts["scripts"] != 1 || counts["inOutput"] != 0 {
			t.Errorf("the page holds elements from the job's output: %v (want no img, only the console's script, no element inside the output)", counts)
		}
		c.open(t, "/ui", fmt.Sprintf(`tr[data-id=%q]`, hid))
		if n := evalJS[int](t, c, `document.querySelectorAll("img, #executions script").length`); n != 0 {
			t.Errorf("the list holds %d elements from a job", n)
		}
		c.mu.Lock()
		dialogs := len(c.dialogs)
		c.mu.Unlock()
		if dialogs != 0 {
			t.Errorf("%d dialogs opened", dialogs)
		}
	})

	t.Run("job types, health and the 404 page", func(t *testing.T) {
		// The list again, for its picture: by now it holds every kind of
		// job above.
		c.open(t, "/ui", fmt.Sprintf(`tr[data-id=%q]`, id))
		c.screenshot(t, "executions")
		c.open(t, "/ui/job-types", "#jobtypes article")
		c.waitText(t, "#jobtypes", "warm")
		c.waitText(t, "#jobtypes", "hit rate")
		c.waitText(t, "#dlq-note", "dead letters")
		c.screenshot(t, "job-types")
		c.open(t, "/ui/health", "#health li")
		c.waitText(t, "#health", "Docker answers")
		c.screenshot(t, "health")
		c.open(t, "/ui/no-such-page", "main h1")
		c.waitText(t, "main", "Go back to the executions")
		c.screenshot(t, "not-found")
	})

	t.Run("the CSP header is present", func(t *testing.T) {
		for _, path := range []string{"/ui", "/ui/executions/" + id, "/ui/static/console.js"} {
			resp, err := http.Get(s.url + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Content-Security-Policy"); got != ui.CSP {
				t.Errorf("GET %s: Content-Security-Policy %q, want %q", path, got, ui.CSP)
			}
		}
	})
}

// TestConsoleKeys checks that with API keys each user of the console sees
// only what the API shows its key: neither sees the other's jobs.
func TestConsoleKeys(t *testing.T) {
	const keyA, keyB = "console-alice-0123456789", "console-bob-0123456789"
	s := startOwnServer(t, "TAKO_AUTH_API_KEYS_ALICE="+keyA, "TAKO_AUTH_API_KEYS_BOB="+keyB,
		"TAKO_JOB_TYPES_DEFAULT_POOL_MIN=0", "TAKO_JOB_TYPES_DATA_POOL_MIN=0")
	jobA := submit(t, s, "/execute", keyA, map[string]any{"code": "print('alice was here')"})["job_id"].(string)
	jobB := submit(t, s, "/execute", keyB, map[string]any{"code": "print('bob was here')"})["job_id"].(string)
	c := newChrome(t, s.url)

	c.open(t, "/ui", "#executions")
	c.waitText(t, "#message", "needs an API key")

	for _, u := range []struct{ name, key, own, other string }{{"alice", keyA, jobA, jobB}, {"bob", keyB, jobB, jobA}} {
		c.open(t, "/ui", "#api-key")
		evalJS[chromedp.Void](t, c, `sessionStorage.clear(), ({})`)
		c.run(t, u.name+" pastes the key",
			chromedp.SetValue(chromedp.ID("api-key"), u.key),
			chromedp.Click(chromedp.CSS(`#key-form button[type="submit"]`)))
		own := fmt.Sprintf(`tr[data-id=%q]`, u.own)
		c.run(t, u.name+" sees the list", chromedp.WaitVisible(chromedp.CSS(own)))
		if others := evalJS[int](t, c, fmt.Sprintf(`document.querySelectorAll('tr[data-id=%q]').length`, u.other)); others != 0 {
			t.Errorf("%s's list shows the other key's job %s", u.name, u.other)
		}
		c.open(t, "/ui/executions/"+u.other, "#message")
		c.waitText(t, "#message", "No execution")
		if hidden := evalJS[bool](t, c, `document.getElementById("exec").hidden`); !hidden {
			t.Errorf("%s sees the page of the other key's job %s", u.name, u.other)
		}
		c.open(t, "/ui/executions/"+u.own, "#exec")
		c.waitText(t, "#stdout", u.name+" was here")
	}
}
