// The settings page's machine clients: create an API key (shown once, with Copy), list the keys (name, prefix,
// created, last used, revoked) and revoke one after a confirmation. The operator API: POST/GET /api/keys,
// DELETE /api/keys/{id}.
import { ApiError, api, busy, confirmDialog, copyText, formatDate, h, setFieldError, toast } from "./core.js";

const $ = (id) => document.getElementById(id);

function statusOf(key) {
  return key.revoked_at ? `Revoked ${formatDate(key.revoked_at)}` : "Live";
}

function row(key) {
  const cells = [
    h("td", { "data-label": "Name", "data-col": "name", class: "slot-name" }, key.name),
    h("td", { "data-label": "Key", "data-col": "prefix" }, h("code", {}, `${key.prefix}…`)),
    h("td", { "data-label": "Created", "data-col": "created" }, formatDate(key.created_at)),
    h("td", { "data-label": "Last used", "data-col": "last-used" }, key.last_used_at ? formatDate(key.last_used_at) : "never"),
    h("td", { "data-label": "Status", "data-col": "status" }, statusOf(key)),
  ];
  const revoke = key.revoked_at
    ? null
    : h("button", { class: "btn small danger", type: "button", "data-revoke": key.id,
      "aria-label": `Revoke the key ${key.name}` }, "Revoke");
  if (revoke) revoke.addEventListener("click", () => askRevoke(key, revoke));
  return h("tr", { dataset: { key: key.id } }, ...cells, h("td", {}, revoke));
}

function showList(keys) {
  const rows = keys.map(row);
  $("keys-body").replaceChildren(...(rows.length ? rows
    : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No API keys yet."))]));
}

async function reload() {
  showList((await api("/api/keys")).data);
}

async function askRevoke(key, button) {
  const sure = await confirmDialog(`Revoke the key “${key.name}”?`,
    "Programs using it are refused from now on. This cannot be undone.", "Revoke");
  if (!sure) return;
  await busy(button, async () => {
    await api(`/api/keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
    toast(`Key “${key.name}” revoked.`);
    await reload();
  });
}

function showNewKey(made) {
  $("new-key-value").value = made.key;
  $("new-key").hidden = false;
  $("new-key-value").focus();
  $("new-key-value").select();
}

function hideNewKey() {
  $("new-key-value").value = ""; // the key leaves the page: it is not kept anywhere
  $("new-key").hidden = true;
}

async function create() {
  const input = $("key-name");
  setFieldError(input, $("key-name-error"), "");
  const name = input.value.trim();
  if (!name) {
    setFieldError(input, $("key-name-error"), "Give the key a name.");
    input.focus();
    return;
  }
  try {
    const made = await api("/api/keys", { method: "POST", json: { name } });
    input.value = "";
    showNewKey(made);
    toast(`Key “${made.name}” created. Copy it now.`);
    await reload();
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401) throw err;
    setFieldError(input, $("key-name-error"), err.message);
    input.focus();
  }
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  busy($("create-key"), create);
});

$("copy-key").addEventListener("click", () =>
  busy($("copy-key"), async () => {
    await copyText($("new-key-value").value, $("new-key-value"));
    toast("API key copied.");
  }));

$("hide-key").addEventListener("click", hideNewKey);

try {
  await reload();
} catch (err) {
  if (err.status !== 401) toast(`Cannot load the API keys: ${err.message}`, "error");
}
