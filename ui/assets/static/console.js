// tako's console. Everything here talks to the JSON API of the server that
// served the page, with the key the user pasted (sessionStorage: this tab
// only). Anything a job produced - stdout, stderr, code, output, artifact
// names - goes into the page as text (textContent), never as HTML.
"use strict";

(function () {
  const body = document.body;
  const keyHeader = body.dataset.keyHeader || "X-API-Key";
  const KEY = "tako.apiKey";
  const TERMINAL = ["succeeded", "failed", "timeout", "oom", "cancelled"];

  // ---- small helpers -------------------------------------------------

  // el builds an element; text children become text nodes.
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = String(v);
      else if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const $ = (id) => document.getElementById(id);
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }
  function setText(id, text) { const e = $(id); if (e) e.textContent = text == null ? "" : String(text); }

  function fmtTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toLocaleString();
  }
  function fmtDuration(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return "—";
    if (ms < 10) return (Math.round(ms * 10) / 10) + " ms";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return String(Number((ms / 1000).toFixed(ms < 10000 ? 2 : 1))) + " s";
    const min = Math.floor(ms / 60000), sec = Math.round((ms % 60000) / 1000);
    return min + " min" + (sec ? " " + sec + " s" : "");
  }
  function fmtBytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1 << 20) return (n / 1024).toFixed(1) + " KiB";
    return (n / (1 << 20)).toFixed(1) + " MiB";
  }
  function pretty(v) {
    if (v === null || v === undefined) return "null";
    return JSON.stringify(v, null, 2);
  }
  function statusBadge(status) {
    return el("span", { class: "status s-" + status, text: status });
  }

  // ---- messages ------------------------------------------------------

  function showMessage(text, kind) {
    const m = $("message");
    if (!m) return;
    m.textContent = text;
    m.className = "message " + (kind || "error");
    m.hidden = !text;
  }
  function clearMessage() { showMessage(""); }

  // ---- the API -------------------------------------------------------

  function key() { return sessionStorage.getItem(KEY) || ""; }

  function headers(extra) {
    const h = Object.assign({ Accept: "application/json" }, extra || {});
    const k = key();
    if (k) h[keyHeader] = k;
    return h;
  }

  // APIError carries a readable message and the HTTP status.
  class APIError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  // readable turns an API error body into a sentence.
  async function readable(resp) {
    let detail = "";
    try {
      const b = await resp.json();
      if (b && typeof b.detail === "string") detail = b.detail;
      else if (b && Array.isArray(b.detail)) detail = b.detail.map((d) => d.msg || String(d)).join("; ");
    } catch (e) { /* not JSON */ }
    if (resp.status === 401) {
      return key() ? "The API key was not accepted: " + (detail || "it is not valid") + ". Paste another above."
                   : "This server needs an API key: paste yours in the field above.";
    }
    if (resp.status === 403) return "Not allowed" + (detail ? ": " + detail : ".");
    if (resp.status === 404) return detail || "Not found.";
    if (resp.status === 429) return "Too many requests; try again in a moment." + (detail ? " (" + detail + ")" : "");
    return (detail || resp.statusText || "Request failed") + " (HTTP " + resp.status + ")";
  }

  async function api(path, opts) {
    opts = opts || {};
    const init = { method: opts.method || "GET", headers: headers(), credentials: "omit", cache: "no-store" };
    if (opts.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new APIError(0, "tako did not answer: " + e.message);
    }
    if (!resp.ok) throw new APIError(resp.status, await readable(resp));
    return resp;
  }
  async function getJSON(path) { return (await api(path)).json(); }
  async function postJSON(path, body) { return (await api(path, { method: "POST", body: body })).json(); }

  // ---- the key form --------------------------------------------------

  function initKeyForm() {
    const form = $("key-form");
    if (!form) return;
    const state = $("key-state");
    const show = () => { state.textContent = key() ? "key set for this tab" : "no key"; };
    show();
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = $("api-key").value.trim();
      if (v) sessionStorage.setItem(KEY, v);
      $("api-key").value = "";
      show();
      location.reload();
    });
    $("forget-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      show();
      location.reload();
    });
  }

  // ---- job types, for the selects -------------------------------------

  async function fillJobTypes(select, keepFirst) {
    try {
      const types = await getJSON("/job-types");
      const current = select.value;
      while (select.options.length > (keepFirst ? 1 : 0)) select.remove(select.options.length - 1);
      for (const jt of types) select.append(el("option", { value: jt.name, text: jt.name }));
      if (current) select.value = current;
    } catch (e) { /* the list still works without the names */ }
  }

  // ---- executions ------------------------------------------------------

  function executionsPage() {
    const params = new URLSearchParams(location.search);
    const fStatus = $("f-status"), fType = $("f-jobtype"), fStart = $("f-start"), fID = $("f-id");
    fStatus.value = params.get("status") || "";
    fStart.value = params.get("start") || "";
    fillJobTypes(fType, true).then(() => { fType.value = params.get("job_type") || ""; });
    const cursors = []; // cursors of the pages before this one; "" is the first
    let cursor = params.get("cursor") || "";
    let next = null, timer = null;

    $("filters").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const id = fID.value.trim();
      if (id) { location.href = "/ui/executions/" + encodeURIComponent(id); return; }
      const q = new URLSearchParams();
      if (fStatus.value) q.set("status", fStatus.value);
      if (fType.value) q.set("job_type", fType.value);
      if (fStart.value) q.set("start", fStart.value);
      location.search = q.toString();
    });
    $("older").addEventListener("click", () => { if (next) { cursors.push(cursor); cursor = String(next); load(); } });
    $("newer").addEventListener("click", () => { if (cursors.length) { cursor = cursors.pop(); load(); } });

    async function load() {
      clearTimeout(timer);
      const q = new URLSearchParams({ limit: "25" });
      if (params.get("status")) q.set("status", params.get("status"));
      if (params.get("job_type")) q.set("job_type", params.get("job_type"));
      if (params.get("start")) q.set("start", params.get("start"));
      if (cursor) q.set("cursor", cursor);
      let page;
      try {
        page = await getJSON("/executions?" + q.toString());
        clearMessage();
      } catch (e) {
        showMessage(e.message);
        return;
      }
      const items = page.items;
      const tbody = clear(document.querySelector("#executions tbody"));
      for (const x of items) tbody.append(row(x));
      $("executions").dataset.loaded = "true";
      next = page.next_cursor;
      $("older").disabled = !next;
      $("newer").disabled = cursors.length === 0;
      setText("list-note", items.length ? "" : (params.toString() ? "No executions match these filters." : "No executions here yet."));
      // Refresh while something on the page is still going.
      if (items.some((x) => !TERMINAL.includes(x.status)) || (cursors.length === 0 && !cursor)) {
        timer = setTimeout(load, items.some((x) => !TERMINAL.includes(x.status)) ? 2000 : 10000);
      }
    }

    function row(x) {
      const link = el("a", { href: "/ui/executions/" + encodeURIComponent(x.execution_id), text: x.execution_id.slice(0, 8) + "…", title: x.execution_id });
      return el("tr", { "data-id": x.execution_id },
        el("td", { "data-label": "Id" }, link),
        el("td", { "data-label": "Status" }, statusBadge(x.status)),
        el("td", { "data-label": "Job type", text: x.job_type }),
        el("td", { "data-label": "Duration", text: x.duration_ms == null ? "—" : fmtDuration(x.duration_ms) }),
        el("td", { "data-label": "Start", text: x.start || "—" }),
        el("td", { "data-label": "Node", text: x.node || "—" }),
        el("td", { "data-label": "Created", text: fmtTime(x.created_at) }));
    }
    load();
  }

  // ---- one execution -----------------------------------------------------

  function executionPage() {
    const id = body.dataset.id;
    const base = "/jobs/" + encodeURIComponent(id);
    let rec = null, following = false;
    const live = { stdout: "", stderr: "" };

    $("cancel").addEventListener("click", async () => {
      try {
        const r = await postJSON(base + "/cancel");
        showMessage("Cancel sent: the job is " + r.status + ".", "info");
        refresh();
      } catch (e) { showMessage(e.message); }
    });
    $("rerun").addEventListener("click", async () => {
      try {
        const r = await postJSON(base + "/rerun", {});
        location.href = "/ui/executions/" + encodeURIComponent(r.job_id);
      } catch (e) { showMessage(e.message); }
    });
    $("fork").addEventListener("click", () => {
      $("fork-box").hidden = false;
      $("fork-code").value = (rec && rec.code) || "";
      $("fork-code").focus();
    });
    $("fork-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const r = await postJSON(base + "/fork", { code: $("fork-code").value });
        location.href = "/ui/executions/" + encodeURIComponent(r.job_id);
      } catch (e) { showMessage(e.message); }
    });

    async function refresh() {
      try {
        rec = await getJSON("/executions/" + encodeURIComponent(id));
      } catch (e) {
        if (e.status === 404) {
          clear($("message"));
          const m = $("message");
          m.append("No execution " + id + " here (or not one your key may see). ", el("a", { href: "/ui", text: "Back to the executions" }));
          m.className = "message error";
          m.hidden = false;
        } else {
          showMessage(e.message);
        }
        return;
      }
      $("exec").hidden = false;
      render(rec);
      if (!TERMINAL.includes(rec.status) && !following) follow();
    }

    function render(r) {
      const done = TERMINAL.includes(r.status);
      $("cancel").hidden = done;
      const sum = clear($("summary"));
      const fact = (k, v) => { sum.append(el("dt", { text: k }), el("dd", {}, v)); };
      fact("Status", statusBadge(r.status));
      fact("Job type", r.job_type);
      fact("Exit code", r.exit_code == null ? "—" : String(r.exit_code));
      fact("Duration", r.duration_ms == null ? "—" : fmtDuration(r.duration_ms));
      fact("Start", r.start || "—");
      fact("Node", r.node || "—");
      fact("Runtime", r.runtime || "—");
      fact("Image", r.image || "—");
      fact("Created", fmtTime(r.created_at));
      fact("Started", fmtTime(r.started_at));
      fact("Finished", fmtTime(r.finished_at));
      fact("Attempt", String(r.attempt));
      if (r.api_key) fact("API key", r.api_key);
      if (r.requirements && r.requirements.length) fact("Requirements", r.requirements.join(", "));

      $("error-box").hidden = !r.error;
      if (r.error) { setText("error-type", r.error.type); setText("error-message", r.error.message); }

      renderTiming(r.timing, done);
      if (done) {
        setText("stdout", r.stdout);
        setText("stderr", r.stderr);
        setText("stdout-note", r.stdout_truncated ? "(truncated: the job printed more than the server keeps)" : "");
        setText("stderr-note", r.stderr_truncated ? "(truncated: the job printed more than the server keeps)" : "");
      } else {
        setText("stdout", live.stdout);
        setText("stderr", live.stderr);
        if (!live.stdout && !live.stderr) setText("stdout-note", r.status === "queued" ? "(queued)" : "(running…)");
      }
      setText("output", done ? pretty(r.output) : "(not yet)");
      renderArtifacts(r, done);
      const code = clear($("code"));
      for (const line of String(r.code || "").replace(/\n$/, "").split("\n")) code.append(el("li", {}, el("span", { text: line })));
      setText("input", pretty(r.input_data));
      renderLineage(r);
    }

    function renderTiming(t, done) {
      const bar = clear($("timing")), legend = clear($("timing-legend"));
      if (!done || !t) { legend.append(el("li", { text: "Timing appears when the job ends." })); return; }
      const phases = [["queue", t.queue_ms], ["start", t.start_ms], ["run", t.run_ms], ["collect", t.collect_ms]];
      const total = phases.reduce((s, p) => s + (p[1] || 0), 0) || 1;
      for (const [name, v] of phases) {
        const seg = el("span", { class: "seg p-" + name, title: name + " " + fmtDuration(v) });
        seg.style.flexGrow = String(Math.max((v || 0) / total, 0.002));
        bar.append(seg);
        legend.append(el("li", {}, el("span", { class: "swatch p-" + name }), name + " " + fmtDuration(v)));
      }
      bar.setAttribute("aria-label", phases.map((p) => p[0] + " " + fmtDuration(p[1])).join(", "));
    }

    function renderArtifacts(r, done) {
      const list = clear($("artifacts"));
      setText("artifacts-note", !done ? "Artifacts appear when the job ends." :
        (r.artifacts.length ? "" : "The job left no files in /output.") +
        (r.artifacts_truncated ? " Some files were left out: they were over the artifact limits." : ""));
      for (const a of r.artifacts || []) {
        const btn = el("button", { type: "button", class: "link", "data-artifact": a.name }, a.name);
        btn.addEventListener("click", () => download(a.name));
        list.append(el("li", {}, btn, " ", el("span", { class: "note", text: fmtBytes(a.size_bytes) + " · " + a.content_type })));
      }
    }

    // download fetches the artifact with the key and saves it from a blob.
    async function download(name) {
      try {
        const resp = await api(base + "/artifacts/" + encodeURIComponent(name));
        const blob = await resp.blob();
        const url = URL.createObjectURL(blob);
        const a = el("a", { href: url });
        a.download = name;
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
      } catch (e) { showMessage(e.message); }
    }

    async function renderLineage(r) {
      const ul = clear($("lineage"));
      if (r.parent_id) {
        ul.append(el("li", {}, (r.relationship || "child") + " of ",
          el("a", { href: "/ui/executions/" + encodeURIComponent(r.parent_id), text: r.parent_id })));
      }
      // Children: the executions made from this one.
      try {
        const page = await getJSON("/executions?limit=1000&parent_id=" + encodeURIComponent(r.execution_id));
        for (const x of page.items) {
          ul.append(el("li", {}, el("a", { href: "/ui/executions/" + encodeURIComponent(x.execution_id), text: x.execution_id }),
            " (" + (x.relationship || "child") + ", " + x.status + ")"));
        }
      } catch (e) { /* lineage is a nicety */ }
      if (!ul.firstChild) ul.append(el("li", { class: "note", text: "Neither a rerun nor a fork, and none made from it yet." }));
    }

    // follow reads the job's event stream (fetch, so the key can go in a
    // header) and shows stdout and stderr as they come; when the job ends
    // it loads the full record.
    async function follow() {
      following = true;
      let last = "";
      for (let tries = 0; tries < 50; tries++) {
        try {
          const h = headers({ Accept: "text/event-stream" });
          if (last) h["Last-Event-ID"] = last;
          const resp = await fetch(base + "/events", { headers: h, credentials: "omit", cache: "no-store" });
          if (!resp.ok) throw new APIError(resp.status, await readable(resp));
          const reader = resp.body.getReader();
          const dec = new TextDecoder();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += dec.decode(value, { stream: true });
            let i;
            while ((i = buf.indexOf("\n\n")) >= 0) {
              const chunk = buf.slice(0, i);
              buf = buf.slice(i + 2);
              const ev = parseEvent(chunk);
              if (!ev) continue;
              if (ev.id) last = ev.id;
              if (handle(ev)) { following = false; refresh(); return; }
            }
          }
        } catch (e) {
          if (e.status && e.status !== 503) { showMessage(e.message); following = false; return; }
        }
        await new Promise((res) => setTimeout(res, 1000));
      }
      following = false;
      refresh();
    }

    function parseEvent(chunk) {
      const ev = { id: "", event: "message", data: "" };
      let any = false;
      for (const line of chunk.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const c = line.indexOf(":");
        const field = c < 0 ? line : line.slice(0, c);
        let value = c < 0 ? "" : line.slice(c + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "id") ev.id = value;
        else if (field === "event") ev.event = value;
        else if (field === "data") { ev.data += (ev.data ? "\n" : "") + value; any = true; }
      }
      if (!any) return null;
      try { ev.json = JSON.parse(ev.data); } catch (e) { return null; }
      return ev;
    }

    // handle applies one event; true when the stream has ended.
    function handle(ev) {
      const d = ev.json;
      switch (ev.event) {
        case "started":
          setText("stdout-note", "(running…)");
          return false;
        case "stdout":
        case "stderr":
          live[ev.event] += d.data;
          setText(ev.event, live[ev.event]);
          setText(ev.event + "-note", "(live)");
          return false;
        case "truncated":
          setText(d.stream + "-note", "(truncated: the job printed more than the server keeps)");
          return false;
        case "error":
          if (d.type === "stream_error") showMessage("The live output broke off: " + d.message);
          return false;
        case "done":
          return true;
      }
      return false;
    }

    refresh();
  }

  // ---- run -------------------------------------------------------------------

  function runPage() {
    const sel = $("run-jobtype");
    const params = new URLSearchParams(location.search);
    fillJobTypes(sel, false).then(() => {
      const want = params.get("job_type") || "default";
      if ([...sel.options].some((o) => o.value === want)) sel.value = want;
    });
    $("run-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      let input;
      try {
        input = JSON.parse($("run-input").value.trim() || "{}");
        if (input === null || typeof input !== "object" || Array.isArray(input)) throw new Error("it must be a JSON object");
      } catch (e) {
        showMessage("The input is not a JSON object: " + e.message);
        $("run-input").focus();
        return;
      }
      const req = { code: $("run-code").value, input_data: input, job_type: sel.value || "default" };
      const reqs = $("run-reqs").value.split("\n").map((s) => s.trim()).filter(Boolean);
      if (reqs.length) req.requirements = reqs;
      try {
        const r = await postJSON("/execute/async", req);
        location.href = "/ui/executions/" + encodeURIComponent(r.job_id);
      } catch (e) { showMessage(e.message); }
    });
  }

  // ---- job types ---------------------------------------------------------------

  async function jobTypesPage() {
    let types;
    try {
      types = await getJSON("/job-types");
    } catch (e) { showMessage(e.message); return; }
    const box = clear($("jobtypes"));
    for (const jt of types) {
      const facts = el("dl", { class: "facts" });
      const fact = (k, v) => facts.append(el("dt", { text: k }), el("dd", {}, v));
      fact("Available", jt.available ? "yes" : "no — " + (jt.unavailable_reason || "no reason given"));
      fact("Image", jt.image + (jt.image_exists ? "" : " (not built yet)"));
      fact("Runtime", jt.runtime + " · security " + jt.security_mode);
      fact("Network", jt.network + (jt.network_allow && jt.network_allow.length ? " (" + jt.network_allow.join(", ") + ")" : ""));
      fact("Limits", "memory " + jt.memory_limit + " · " + jt.cpu_limit + " CPU · " + jt.limits.pids + " pids · timeout " + fmtDuration(jt.limits.timeout_seconds * 1000));
      fact("Pool", jt.pool.warm + " warm · " + jt.pool.busy + " busy · target " + jt.pool.target + " (min " + jt.pool.min + ", max " + jt.pool.max + ", idle " + fmtDuration(jt.pool.idle_ttl_seconds * 1000) + ")");
      const hit = el("span", { text: "…" });
      fact("Warm hit rate", hit);
      if (jt.system_packages.length) fact("System packages", jt.system_packages.join(", "));
      if (jt.requirements.length) fact("Requirements", jt.requirements.join(", "));
      if (jt.preload.length) fact("Preload", jt.preload.join(", "));
      box.append(el("article", { class: "card" + (jt.available ? "" : " unavailable") },
        el("h2", {}, jt.name, " ", el("span", { class: "status " + (jt.available ? "s-succeeded" : "s-failed"), text: jt.available ? "available" : "unavailable" })),
        facts,
        el("p", {}, el("a", { href: "/ui?job_type=" + encodeURIComponent(jt.name), text: "Its executions" }),
          " · ", el("a", { href: "/ui/run?job_type=" + encodeURIComponent(jt.name), text: "Run one" }))));
      hitRate(jt.name, hit);
    }
    loadDLQ();
  }

  async function hitRate(name, target) {
    try {
      const page = await getJSON("/executions?limit=200&job_type=" + encodeURIComponent(name));
      const started = page.items.filter((x) => x.start === "warm" || x.start === "cold");
      const warm = started.filter((x) => x.start === "warm").length;
      const runs = started.length === 1 ? "the last run" : "the last " + started.length + " runs";
      target.textContent = started.length ? Math.round((100 * warm) / started.length) + "% of " + runs + " took a warm container" : "no runs yet";
    } catch (e) { target.textContent = "unknown (" + e.message + ")"; }
  }

  async function loadDLQ() {
    const tbody = clear(document.querySelector("#dlq tbody"));
    let page;
    try {
      page = await getJSON("/dlq?limit=100");
    } catch (e) { setText("dlq-note", e.message); return; }
    setText("dlq-note", page.items.length ? "" : "No dead letters: every job that met tako's own failures ran in the end, or none did.");
    $("dlq").hidden = !page.items.length;
    for (const d of page.items) {
      const retry = el("button", { type: "button", text: "Retry", "aria-label": "Retry entry " + d.id, "data-entry": d.id });
      const del = el("button", { type: "button", text: "Delete", "aria-label": "Delete entry " + d.id, "data-entry": d.id });
      retry.addEventListener("click", async () => {
        try { const r = await postJSON("/dlq/" + d.id + "/retry"); showMessage("Queued again as " + r.job_id + ".", "info"); loadDLQ(); }
        catch (e) { showMessage(e.message); }
      });
      del.addEventListener("click", async () => {
        try { await api("/dlq/" + d.id, { method: "DELETE" }); showMessage("Entry " + d.id + " deleted.", "info"); loadDLQ(); }
        catch (e) { showMessage(e.message); }
      });
      tbody.append(el("tr", {},
        el("td", { "data-label": "Entry", text: String(d.id) }),
        el("td", { "data-label": "Job" }, el("a", { href: "/ui/executions/" + encodeURIComponent(d.job_id), text: d.job_id.slice(0, 8) + "…", title: d.job_id })),
        el("td", { "data-label": "Job type", text: (d.job_data || {}).job_type }),
        el("td", { "data-label": "Error", text: d.error_type + (d.error_message ? ": " + d.error_message : "") }),
        el("td", { "data-label": "Retries", text: String(d.retry_count) }),
        el("td", { "data-label": "Created", text: fmtTime(d.created_at) }),
        el("td", { "data-label": "Actions" }, retry, " ", del)));
    }
  }

  // ---- health ----------------------------------------------------------------

  async function healthPage() {
    let h;
    try { h = await getJSON("/health"); } catch (e) { showMessage(e.message); return; }
    setText("health-summary", h.status === "healthy" ? "tako is healthy." : "tako is " + h.status + ".");
    const ul = clear($("health"));
    const say = (ok, text) => ul.append(el("li", { class: ok ? "ok" : "bad" }, el("span", { class: "mark", text: ok ? "✓" : "✗" }), " " + text));
    say(true, "This is node " + h.node + " (role " + h.role + "), tako " + h.version + "; checked " + fmtTime(h.checked_at) + ".");
    say(h.docker_available, h.docker_available ? "Docker answers." : "Docker does not answer.");
    say(h.database_available, h.database_available ? "The database answers." : "The database does not answer.");
    say(h.gvisor_available, h.gvisor_available ? "gVisor (runsc) is usable: jobs can run in its sandbox." : "gVisor is not usable" + (h.gvisor_reason ? ": " + h.gvisor_reason : "."));
    say(true, h.runner.running + " of " + h.runner.max_concurrent + " execution slots on this node are busy; " + h.queue_stats.pending + " jobs wait in the queue (at most " + h.queue_stats.max_queue_size + ").");
    for (const [name, jt] of Object.entries(h.job_types || {})) {
      say(jt.available, "Job type " + name + (jt.available ? " can run." : " cannot run: " + (jt.unavailable_reason || "no reason given") + "."));
    }
    // Docker, the database and gVisor are said above; other checks are not.
    for (const [name, c] of Object.entries(h.checks || {})) {
      if (name === "docker" || name === "database" || name === "gvisor") continue;
      say(c.status !== "failing", "Check " + name + ": " + c.status + ".");
    }
    for (const p of h.problems || []) say(false, p);
  }

  // ---- start ---------------------------------------------------------------------

  function start() {
    initKeyForm();
    const pages = { executions: executionsPage, execution: executionPage, run: runPage, jobtypes: jobTypesPage, health: healthPage };
    const fn = pages[body.dataset.page];
    if (fn) fn();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
