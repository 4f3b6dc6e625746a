// The settings page: ingest password, provider API keys (masked, replaceable), booth wait, result retention,
// and clearing the media cache.
import { ApiError, api, busy, confirmDialog, h, pulse, requireSession, setFieldError, toast, topbar } from "./core.js";

requireSession();
topbar("settings");

const $ = (id) => document.getElementById(id);
const form = $("settings-form");
// One masked key field per provider that takes API keys, as the API describes them (`key_fields`): this page
// knows no provider by name.
let keyFields = [];
const FIELD_INPUTS = { ingest_password: "ingest-password", t_sync_response: "t-sync", result_ttl_sec: "result-ttl" };
let current = null;

function keyRow(spec, state) {
  const id = `key-${spec.provider}`;
  const source = { settings: "saved here", environment: "from the server's environment", none: "not set" }[state.source]
    || state.source;
  const shown = state.masked.length ? state.masked.join(", ") : "none";
  const input = h("input", { id, type: "password", autocomplete: "off", maxlength: spec.max_length,
    placeholder: state.configured ? "Enter a new key to replace it" : "Paste the API key",
    "aria-describedby": `${id}-hint ${id}-error` });
  const remove = h("input", { id: `${id}-remove`, type: "checkbox", disabled: state.source !== "settings" });
  FIELD_INPUTS[spec.field] = id;
  return h("div", { class: "field", dataset: { path: spec.field } },
    h("label", { for: id }, spec.label),
    input,
    h("p", { class: "field-hint", id: `${id}-hint` }, `Current: ${shown} (${source}).`, spec.help ? ` ${spec.help}` : ""),
    state.source === "settings"
      ? h("label", { class: "switch", for: `${id}-remove` }, remove, "Remove the saved key (use the environment's)")
      : null,
    h("p", { class: "field-error", id: `${id}-error` }));
}

function show(settings) {
  current = settings;
  keyFields = settings.key_fields.filter((spec) => settings.provider_keys[spec.provider]);
  $("keys").replaceChildren(...keyFields.map((spec) => keyRow(spec, settings.provider_keys[spec.provider])));
  $("t-sync").value = String(settings.t_sync_response);
  $("result-ttl").value = String(Math.round(settings.result_ttl_sec / 3600));
  $("ingest-password").value = "";
}

function clearErrors() {
  for (const id of Object.values(FIELD_INPUTS)) setFieldError($(id), $(`${id}-error`), "");
}

function fieldError(field, message) {
  const id = FIELD_INPUTS[field];
  if (!id) return false;
  setFieldError($(id), $(`${id}-error`), message);
  return true;
}

/** Only what changed is sent. */
function changes() {
  const out = {};
  const problems = [];
  const password = $("ingest-password").value;
  if (password) {
    if (password.length < 6) problems.push(["ingest_password", "At least 6 characters."]);
    else out.ingest_password = password;
  }
  for (const { provider, field } of keyFields) {
    if (!$(`key-${provider}`)) continue;
    const value = $(`key-${provider}`).value.trim();
    const remove = $(`key-${provider}-remove`); // only offered for a key saved on this page
    if (value) out[field] = value;
    else if (remove && remove.checked) out[field] = "";
  }
  const tSync = Number($("t-sync").value);
  if (!(tSync >= 5 && tSync <= 120)) problems.push(["t_sync_response", "From 5 to 120 seconds."]);
  else if (tSync !== current.t_sync_response) out.t_sync_response = tSync;
  const hours = Number($("result-ttl").value);
  if (!(Number.isInteger(hours) && hours >= 1 && hours <= 720)) problems.push(["result_ttl_sec", "From 1 to 720 hours."]);
  else if (hours !== Math.round(current.result_ttl_sec / 3600)) out.result_ttl_sec = hours * 3600;
  return { out, problems };
}

async function save() {
  clearErrors();
  const { out, problems } = changes();
  if (problems.length) {
    problems.forEach(([field, message]) => fieldError(field, message));
    toast("Please correct the highlighted fields.", "error");
    return;
  }
  pulse(form);
  if (!Object.keys(out).length) {
    toast("Nothing to save: no setting was changed.");
    return;
  }
  try {
    show(await api("/api/settings", { method: "PUT", json: out }));
    toast(out.ingest_password ? "Saved. Booths must now send the new ingest password." : "Saved.");
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401) throw err;
    const unplaced = err.fields.filter((f) => !fieldError(String(f.field).replace(/^body\./, ""), f.message));
    toast(unplaced.length || !err.fields.length ? err.message : "Please correct the highlighted fields.", "error");
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  busy($("save-btn"), save);
});

$("show-password").addEventListener("click", () => {
  const input = $("ingest-password");
  const showing = input.type === "text";
  input.type = showing ? "password" : "text";
  $("show-password").textContent = showing ? "Show" : "Hide";
  $("show-password").setAttribute("aria-pressed", String(!showing));
});

$("clear-cache").addEventListener("click", async () => {
  const sure = await confirmDialog("Clear the media cache?",
    "Every processed photo kept on the server is deleted now. Slot templates and settings stay.", "Delete results");
  if (!sure) return;
  await busy($("clear-cache"), async () => {
    const done = await api("/api/settings/clear_media_cache", { method: "POST" });
    toast(`Media cache cleared: ${done.deleted} processed photo${done.deleted === 1 ? "" : "s"} deleted.`);
  });
});

try {
  show(await api("/api/settings"));
  $("save-btn").disabled = false;
} catch (err) {
  if (err.status !== 401) toast(`Cannot load the settings: ${err.message}`, "error");
}
