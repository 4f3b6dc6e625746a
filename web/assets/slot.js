// The slot page (issue 14): name, the steps of its pipeline (steps.js: each a provider, operation and settings
// form, with alternatives), the finishing stage (finishing.js), the variants (variants.js), the failure policy, a
// test run of the unsaved chain on a photo through the real pipeline (test-run.js), the ingest URL, and Save.
import { API_BASE } from "./config.js";
import {
  ApiError, api, busy, copyText, formatMs, money, pulse, requireSession, setFieldError, toast, topbar,
} from "./core.js";
import { dropZone } from "./dropzone.js";
import { finishingEditor } from "./finishing.js";
import { stepsEditor } from "./steps.js";
import { followJob, showSteps } from "./test-run.js";
import { variantsEditor } from "./variants.js";

requireSession();
topbar("slot");

// The slot body's own fields; any other first part of an error's path is a settings path of step 1's (the
// seed-003 shape reports its settings errors as bare paths, "width").
const TOP_LEVEL = new Set(["name", "failure_policy", "version", "steps", "finishing", "variants", "variant_field",
  "config", "file"]);
const $ = (id) => document.getElementById(id);
const form = $("slot-form");
const slotId = new URLSearchParams(location.search).get("id") || "";
const page = { slot: null, providers: [], version: null, steps: null, finishing: null, variants: null };

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

/** An error's field as this page's path: "/"-joined, the seed-003 shape's fields as step 1's. */
function fieldPath(raw) {
  let field = String(raw ?? "").replace(/^body(?:[./]|$)/, "");
  if (!field.includes("/") && field.includes(".")) field = field.replaceAll(".", "/"); // pydantic's locations
  const head = field.split("/")[0];
  if (["provider_id", "operation_id", "settings_json"].includes(head)) return `steps/0/${field}`;
  return TOP_LEVEL.has(head) ? field : `steps/0/settings_json/${field}`;
}

/** The title names the chain's providers; the line under it, the one provider or the number of steps. */
function showHeader() {
  const steps = page.steps.describe();
  const names = steps.map((s) => s.provider?.name).filter(Boolean);
  $("provider-title").textContent = names.length ? names.join(" → ") : "No provider chosen";
  $("provider-description").textContent = steps.length > 1 ? `${steps.length} steps, run in this order.`
    : steps[0]?.provider ? steps[0].provider.description : "Choose what this slot does with each photo.";
}

/** Issue 14 item 7: a chain whose typical time is longer than the booth's wait is flagged, with the figures. */
async function showWait(slot) {
  const box = $("wait-warning");
  box.hidden = !slot.exceeds_wait;
  if (!slot.exceeds_wait) return;
  let wait = slot.t_sync_response ?? null;
  if (wait === null) {
    try {
      wait = (await api("/api/settings")).t_sync_response;
    } catch {
      wait = null; // the warning stands without the figure
    }
  }
  const typical = Math.round(Number(slot.typical_sec) * 10) / 10;
  box.textContent = `This chain typically takes about ${typical} s, longer than the booth's wait`
    + `${wait !== null ? ` (${wait} s)` : ""}: booths may time out. Shorten the chain, or raise the wait in `
    + "Settings if the booth waits longer.";
}

/** Errors from the API (or found here) at their fields, the first focused; the rest as a toast. */
function showErrors(problems, fallback) {
  let rest = problems.map((p) => ({ ...p, field: fieldPath(p.field) }));
  // From the bottom of the page up, so the topmost problem's field ends up focused.
  rest = page.variants.showErrors(rest);
  rest = page.finishing.showErrors(rest);
  rest = page.steps.showErrors(rest);
  const name = rest.find((p) => p.field === "name");
  if (name) {
    setFieldError($("slot-name"), $("slot-name-error"), name.message);
    $("slot-name").focus();
    rest = rest.filter((p) => p !== name);
  }
  if (rest.length || !problems.length) {
    const detail = rest.map((p) => (p.field ? `${p.field}: ${p.message}` : p.message)).join("; ");
    toast(detail ? `${fallback}: ${detail}` : fallback, "error");
  }
}

/** The form as the API takes it (the steps shape), or null after showing what is missing. */
function collect() {
  setFieldError($("slot-name"), $("slot-name-error"), "");
  const steps = page.steps.collect();
  const finishing = page.finishing.collect();
  const variants = page.variants.collect();
  const problems = [...steps.problems, ...finishing.problems, ...variants.problems];
  if (problems.length) {
    showErrors(problems, "Please correct the highlighted fields");
    return null;
  }
  return {
    name: $("slot-name").value.trim(),
    failure_policy: $("failure-policy").value,
    steps: steps.value,
    finishing: finishing.value,
    variants: variants.value.variants,
    variant_field: variants.value.variant_field,
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
    return;
  }
  try {
    await showWait(await api(`/api/slots/${encodeURIComponent(slotId)}`)); // the saved chain's typical time
  } catch {
    // The save stands; the flag is shown again on the next load.
  }
}

function showResult(inputUrl, resultUrl, ms, cost, steps) {
  // One currency when every step's provider charges in the same one; else the figure alone.
  const currencies = new Set(page.steps.describe().map((s) => s.provider?.currency));
  const currency = currencies.size === 1 ? [...currencies][0] : undefined;
  showSteps($("test-steps"), steps, page.providers, mediaUrl);
  $("test-input-img").src = inputUrl;
  $("test-result-img").src = resultUrl;
  $("test-result-caption").textContent = `Result · ${formatMs(ms)} · cost ${money(cost, currency)}`;
  $("test-result").hidden = false;
}

/** A failed run's steps (which one failed, with what), from its job when one was queued; quietly none else. */
async function showFailedSteps(jobId) {
  if (!jobId) return;
  try {
    showSteps($("test-steps"), (await api(`/api/jobs/${encodeURIComponent(jobId)}`)).steps, page.providers, mediaUrl);
  } catch {
    // The failure is reported already.
  }
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
  showSteps($("test-steps"), [], page.providers, mediaUrl);
  $("test-status").textContent = "Running the test…";
  const data = new FormData();
  data.append("file", photo, photo.name);
  data.append("config", JSON.stringify(body)); // the unsaved slot, whole: steps, finishing, variants
  const started = performance.now();
  try {
    const result = await api(`/api/slots/${encodeURIComponent(slotId)}/test`, { method: "POST", form: data });
    showResult(testPhoto.previewSrc, result.result_url, result.processing_ms, result.cost, result.steps);
    $("test-status").textContent = "Test succeeded.";
    toast("Test succeeded.");
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401) throw err;
    const jobId = err.headers.get("X-Job-Id");
    if (err.status === 504 && jobId) {
      const job = await followJob(jobId, (status) => {
        $("test-status").textContent = `Still running (${status})…`;
      });
      if (job.status === "succeeded" && job.result_url) {
        showResult(testPhoto.previewSrc, job.result_url, Math.round(performance.now() - started), job.cost, job.steps);
        $("test-status").textContent = "Test succeeded (after the booth's wait time).";
        toast("Test succeeded.");
        return;
      }
      showSteps($("test-steps"), job.steps, page.providers, mediaUrl);
      $("test-status").textContent = `Test failed: ${job.error ? job.error.message : job.status}`;
      toast(`Test failed: ${job.error ? job.error.message : job.status}`, "error");
      return;
    }
    $("test-status").textContent = `Test failed: ${err.message}`;
    await showFailedSteps(jobId);
    if (err.fields.length) showErrors(err.fields, "Test refused");
    else toast(`Test failed: ${err.message}`, "error");
  }
}

function bind() {
  form.addEventListener("submit", (event) => event.preventDefault());
  $("save-btn").addEventListener("click", () => busy($("save-btn"), save));
  $("test-btn").addEventListener("click", () => busy($("test-btn"), runTest));
  $("copy-url").addEventListener("click", () =>
    busy($("copy-url"), async () => {
      await copyText($("ingest-url").value, $("ingest-url"));
      toast("Ingest URL copied.");
    }));
}

/** The slot's steps; a slot read in the seed-003 shape only (no `steps`) is its one step. */
function stepsOf(slot) {
  if (Array.isArray(slot.steps) && slot.steps.length) return slot.steps;
  if (!slot.provider_id) return [];
  const { provider_id, operation_id, settings_json } = slot;
  return [{ provider_id, operation_id, settings_json, alternatives: [], optional: false }];
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
  const media = { uploadMedia, mediaUrl };
  page.steps = stepsEditor($("steps"), { ...media, providers: page.providers, onChange: () => {
    showHeader();
    page.variants.setSteps(page.steps.describe());
  } });
  page.steps.load(stepsOf(slot));
  page.finishing = finishingEditor($("finishing"), media);
  page.finishing.load(slot.finishing);
  page.variants = variantsEditor($("variants"), slot.ingest_url);
  page.variants.load(slot.variants, slot.variant_field, page.steps.describe());
  showHeader();
  bind();
  $("save-btn").disabled = false;
  $("test-btn").disabled = false;
  await showWait(slot);
}

await load();
