// The slot page: name, provider and operation, the operation's settings (from its schema), a test run on a
// photo through the real pipeline, and Save.
import { API_BASE } from "./config.js";
import {
  ApiError, api, busy, copyText, formatMs, h, money, pulse, requireSession, setFieldError, toast, topbar,
} from "./core.js";
import { dropZone } from "./dropzone.js";
import { schemaForm } from "./schema-form.js";

requireSession();
topbar("slot");

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
// The API's field names of the slot itself → their controls on this page (settings fields live in the schema form).
const SLOT_FIELDS = { name: "slot-name", provider_id: "provider", operation_id: "operation" };
const $ = (id) => document.getElementById(id);
const form = $("slot-form");
const slotId = new URLSearchParams(location.search).get("id") || "";
const page = { slot: null, providers: [], settings: null, version: null };

const mediaUrl = (id) => `${API_BASE}/public/media/${encodeURIComponent(id)}`;

async function uploadMedia(file) {
  const body = new FormData();
  body.append("file", file, file.name);
  body.append("purpose", "template");
  const stored = await api("/api/media/register", { method: "POST", form: body });
  return stored.id;
}

const testPhoto = dropZone({ id: "test-photo-zone", label: "Test photo",
  hint: "JPG or PNG; it is not saved with the slot." });
$("test-photo").append(testPhoto.element);

function provider(id) {
  return page.providers.find((p) => p.id === id);
}

function operation() {
  const p = provider($("provider").value);
  return p ? p.operations.find((op) => op.id === $("operation").value) : undefined;
}

function fillProviders(selected) {
  const select = $("provider");
  select.replaceChildren(h("option", { value: "" }, "Choose a provider…"),
    ...page.providers.map((p) => h("option", { value: p.id }, p.available ? p.name : `${p.name} (no API key)`)));
  select.value = selected || "";
}

function fillOperations(selected) {
  const select = $("operation");
  const p = provider($("provider").value);
  const ops = p ? p.operations : [];
  select.replaceChildren(h("option", { value: "" }, p ? "Choose an operation…" : "Choose a provider first"),
    ...ops.map((op) => h("option", { value: op.id }, op.name)));
  select.disabled = !p;
  select.value = ops.some((op) => op.id === selected) ? selected : "";
}

function showHeader() {
  const p = provider($("provider").value);
  $("provider-title").textContent = p ? p.name : "No provider chosen";
  $("provider-description").textContent = p ? p.description : "Choose what this slot does with each photo.";
  const op = operation();
  $("operation-hint").textContent = op ? op.description : "";
}

/** Rebuild the settings fields for the chosen operation, keeping the values already entered where they fit. */
function renderSettings(values) {
  const op = operation();
  const holder = $("settings-fields");
  if (!op) {
    page.settings = null;
    holder.replaceChildren();
    return;
  }
  page.settings = schemaForm(op.settings_schema, values, { uploadMedia, mediaUrl });
  holder.replaceChildren(h("h2", {}, "Settings"), page.settings.element);
}

function currentValues() {
  return page.settings ? page.settings.collect().value : {};
}

function clearErrors() {
  for (const id of Object.values(SLOT_FIELDS)) setFieldError($(id), $(`${id}-error`), "");
}

/** Errors from the API (or found here) at their fields; the rest as a toast. */
function showErrors(problems, fallback) {
  const rest = [];
  for (const p of problems) {
    const field = String(p.field || "").replace(/^body\./, "").replace(/^settings_json[./]?/, "");
    const id = SLOT_FIELDS[field];
    if (id) {
      setFieldError($(id), $(`${id}-error`), p.message);
      $(id).focus();
    } else {
      rest.push({ ...p, field });
    }
  }
  const unplaced = page.settings ? page.settings.showErrors(rest) : rest;
  if (unplaced.length || !problems.length) {
    const detail = unplaced.map((p) => (p.field ? `${p.field}: ${p.message}` : p.message)).join("; ");
    toast(detail ? `${fallback}: ${detail}` : fallback, "error");
  }
}

/** The form as the API takes it, or null after showing what is missing. */
function collect() {
  clearErrors();
  const problems = [];
  if (!$("provider").value) problems.push({ field: "provider_id", message: "Choose a provider." });
  else if (!$("operation").value) problems.push({ field: "operation_id", message: "Choose an operation." });
  const settings = page.settings ? page.settings.collect() : { value: {}, problems: [] };
  problems.push(...settings.problems);
  if (problems.length) {
    showErrors(problems, "Please correct the highlighted fields");
    return null;
  }
  return {
    name: $("slot-name").value.trim(),
    provider_id: $("provider").value,
    operation_id: $("operation").value,
    settings_json: settings.value,
    failure_policy: $("failure-policy").value,
  };
}

async function save() {
  const body = collect();
  if (!body) return;
  pulse(form);
  try {
    const saved = await api(`/api/slots/${encodeURIComponent(slotId)}`, {
      method: "PUT", json: { ...body, version: page.version } });
    page.version = saved.version;
    toast("Saved.");
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401) throw err;
    if (err.status === 409) toast("This slot was changed elsewhere. Reload the page to see the latest version.", "error");
    else showErrors(err.fields, err.message);
  }
}

/**
 * Follow a job on its event stream until it ends, showing each status as it comes, then answer the job's detail
 * (one GET: its result link, cost or error). EventSource cannot send the bearer header, so the stream is opened
 * with a stream token (this job, this session, 60 s). While the token is valid the browser reopens a stream the
 * server closed (its cap on a stream's length) by itself; a stream it gave up on (refused once the token expired,
 * or unreachable) is reopened here with a fresh token, REOPENS times at most in a row. No polling.
 */
const REOPENS = 3;

async function followJob(jobId) {
  const path = `/api/jobs/${encodeURIComponent(jobId)}`;
  await new Promise((resolve, reject) => {
    let failures = 0;
    const reopenLater = () => {
      failures += 1;
      if (failures > REOPENS) resolve(); // the job's detail tells where it stands
      else setTimeout(open, 1000 * failures);
    };
    const open = async () => {
      let grant;
      try {
        grant = await api(`${path}/events/token`, { method: "POST" });
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) reject(err); // signed out: api() went to the login page
        else reopenLater();
        return;
      }
      const source = new EventSource(API_BASE + grant.events_path);
      source.addEventListener("status", (event) => {
        failures = 0;
        const { status } = JSON.parse(event.data);
        if (!TERMINAL.has(status)) $("test-status").textContent = `Still running (${status})…`;
      });
      source.addEventListener("end", () => {
        source.close();
        resolve();
      });
      source.addEventListener("error", () => {
        if (source.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
        reopenLater();
      });
    };
    open();
  });
  const job = await api(path);
  if (!TERMINAL.has(job.status)) {
    throw new Error(`the test job is still ${job.status}; see it later under its id ${jobId}`);
  }
  return job;
}

function showResult(inputUrl, resultUrl, ms, cost) {
  const currency = provider($("provider").value)?.currency;
  $("test-input-img").src = inputUrl;
  $("test-result-img").src = resultUrl;
  $("test-result-caption").textContent = `Result · ${formatMs(ms)} · cost ${money(cost, currency)}`;
  $("test-result").hidden = false;
}

async function runTest() {
  const body = collect();
  if (!body) return;
  const photo = testPhoto.file;
  if (!photo) {
    toast("Add a test photo first.", "error");
    testPhoto.setError("Drop a JPG or PNG photo here to test with.");
    testPhoto.focus();
    return;
  }
  pulse(form);
  $("test-result").hidden = true;
  $("test-status").textContent = "Running the test…";
  const data = new FormData();
  data.append("file", photo, photo.name);
  const { provider_id, operation_id, settings_json } = body;
  data.append("config", JSON.stringify({ provider_id, operation_id, settings_json }));
  const started = performance.now();
  try {
    const result = await api(`/api/slots/${encodeURIComponent(slotId)}/test`, { method: "POST", form: data });
    showResult(testPhoto.previewSrc, result.result_url, result.processing_ms, result.cost);
    $("test-status").textContent = "Test succeeded.";
    toast("Test succeeded.");
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401) throw err;
    const jobId = err.headers.get("X-Job-Id");
    if (err.status === 504 && jobId) {
      const job = await followJob(jobId);
      if (job.status === "succeeded" && job.result_url) {
        showResult(testPhoto.previewSrc, job.result_url, Math.round(performance.now() - started), job.cost);
        $("test-status").textContent = "Test succeeded (after the booth's wait time).";
        toast("Test succeeded.");
        return;
      }
      $("test-status").textContent = `Test failed: ${job.error ? job.error.message : job.status}`;
      toast(`Test failed: ${job.error ? job.error.message : job.status}`, "error");
      return;
    }
    $("test-status").textContent = `Test failed: ${err.message}`;
    if (err.fields.length) showErrors(err.fields, "Test refused");
    else toast(`Test failed: ${err.message}`, "error");
  }
}

function bind() {
  form.addEventListener("submit", (event) => event.preventDefault());
  $("provider").addEventListener("change", () => {
    const keep = currentValues();
    fillOperations($("operation").value);
    showHeader();
    renderSettings(keep);
  });
  $("operation").addEventListener("change", () => {
    const keep = currentValues();
    showHeader();
    renderSettings(keep);
  });
  $("save-btn").addEventListener("click", () => busy($("save-btn"), save));
  $("test-btn").addEventListener("click", () => busy($("test-btn"), runTest));
  $("copy-url").addEventListener("click", () =>
    busy($("copy-url"), async () => {
      await copyText($("ingest-url").value, $("ingest-url"));
      toast("Ingest URL copied.");
    }));
}

async function load() {
  if (!slotId) {
    location.replace("slots.html");
    return;
  }
  try {
    const [slot, catalog] = await Promise.all([api(`/api/slots/${encodeURIComponent(slotId)}`), api("/api/providers")]);
    page.slot = slot;
    page.version = slot.version;
    page.providers = catalog.providers;
  } catch (err) {
    if (err.status === 401) return;
    $("provider-title").textContent = err.status === 404 ? "No such slot" : "Cannot load this slot";
    toast(err.message, "error");
    return;
  }
  const slot = page.slot;
  document.title = `${slot.name || slot.id} · boothbridge`;
  $("slot-id").textContent = `${slot.id}${slot.is_configured ? "" : " · free"}`;
  $("slot-name").value = slot.name || "";
  $("failure-policy").value = slot.failure_policy || "error";
  $("ingest-url").value = slot.ingest_url;
  fillProviders(slot.provider_id);
  fillOperations(slot.operation_id);
  showHeader();
  renderSettings(slot.settings_json);
  bind();
  $("save-btn").disabled = false;
  $("test-btn").disabled = false;
}

await load();
