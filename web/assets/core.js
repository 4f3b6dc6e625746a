// Shared by every page: the tab's session, calls to the operator API, toasts, the pulse, the top bar.
import { API_BASE } from "./config.js";

const TOKEN_KEY = "boothbridge.token";
const EXPIRES_KEY = "boothbridge.expires";

/** The session lives in sessionStorage: it is kept for this tab only and ends with it. */
export const session = {
  token() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const expires = Number(sessionStorage.getItem(EXPIRES_KEY) || 0);
    return token && Date.now() < expires ? token : null;
  },
  start(token, expiresInSec) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(EXPIRES_KEY, String(Date.now() + expiresInSec * 1000));
  },
  end() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(EXPIRES_KEY);
  },
};

/** Back to the login page; `reason` is shown there ("expired", "logout"). */
export function toLogin(reason) {
  session.end();
  location.replace(`index.html${reason ? `?${reason}=1` : ""}`);
}

/** End the session on the server too (the token is refused from then on), then back to the login page. */
export async function logOut() {
  try {
    await api("/api/logout", { method: "POST" });
  } catch {
    // Already ended or unreachable: the tab forgets the token all the same.
  }
  toLogin("logout");
}

/** For every page but the login page: no valid token → the login page. */
export function requireSession() {
  if (!session.token()) {
    toLogin("expired");
    throw new Error("not signed in");
  }
}

export class ApiError extends Error {
  constructor(status, body, headers) {
    const err = (body && body.error) || {};
    super(err.message || `request failed (${status})`);
    this.status = status;
    this.code = err.code || "network_error";
    this.details = err.details || {};
    this.headers = headers;
  }

  /** Field-level problems as [{field, message}] (the API's details.fields, or details.field). */
  get fields() {
    if (Array.isArray(this.details.fields)) return this.details.fields;
    if (this.details.field) return [{ field: this.details.field, message: this.message }];
    return [];
  }
}

/**
 * Call the operator API. `json` sends a JSON body, `form` a FormData. Answers the parsed JSON (or null).
 * A 401 on an authenticated call ends the session and returns to the login page.
 */
export async function api(path, { method = "GET", json, form, auth = true } = {}) {
  const headers = {};
  if (auth) headers.Authorization = `Bearer ${session.token()}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  let response;
  try {
    response = await fetch(API_BASE + path, { method, headers, body });
  } catch {
    throw new ApiError(0, { error: { code: "network_error", message: "the server cannot be reached" } }, new Headers());
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.status === 401 && auth) {
    toLogin("expired");
    throw new ApiError(401, data, response.headers);
  }
  if (!response.ok) throw new ApiError(response.status, data, response.headers);
  return data;
}

/** A short message in the corner, read out by screen readers. */
export function toast(message, kind = "ok") {
  let box = document.querySelector(".toasts");
  if (!box) {
    box = document.createElement("div");
    box.className = "toasts";
    box.setAttribute("role", "status");
    box.setAttribute("aria-live", "polite");
    document.body.append(box);
  }
  const item = document.createElement("div");
  item.className = kind === "error" ? "toast -error" : "toast";
  item.textContent = message;
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 7000 : 3500);
}

/** The one pulse animation (Test, Save); restarted when it is already running. */
export function pulse(el) {
  el.classList.remove("-pulse");
  void el.offsetWidth; // reflow, so removing and adding the class restarts the animation
  el.classList.add("-pulse");
}

/** Make an element from a tag, attributes and children (text or nodes): no HTML strings, nothing to escape. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const ICONS = {
  home: "M3 11.5 12 4l9 7.5M5.5 10v9.5h13V10",
  stats: "M4 20V10m6 10V4m6 16v-7m5 7H3",
  settings:
    "M12 15.5a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7Zm7.4-3.5 1.8-1.4-2-3.4-2.1.8a7 7 0 0 0-2.3-1.3L14.5 4h-5l-.3 2.7a7 7 0 0 0-2.3 1.3l-2.1-.8-2 3.4L4.6 12l-1.8 1.4 2 3.4 2.1-.8a7 7 0 0 0 2.3 1.3l.3 2.7h5l.3-2.7a7 7 0 0 0 2.3-1.3l2.1.8 2-3.4Z",
  logout: "M15 4h4v16h-4M10 8l-4 4 4 4M6 12h10",
};

export function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "1.8");
  path.setAttribute("stroke-linecap", "round");
  path.setAttribute("stroke-linejoin", "round");
  svg.append(path);
  return svg;
}

/** The top bar: brand, then the statistics, settings and logout icons (the current page's marked). */
export function topbar(current) {
  const link = (name, href, label) =>
    h("a", { class: "icon-btn", href, "aria-label": label, title: label, "aria-current": current === name && "page" },
      icon(name));
  const logout = h("button", { class: "icon-btn", type: "button", "aria-label": "Log out", title: "Log out",
    onclick: logOut }, icon("logout"));
  const bar = h("header", { class: "topbar" },
    h("a", { class: "brand", href: "slots.html" }, "booth", h("span", {}, "bridge")),
    h("nav", { class: "icons", "aria-label": "Main" },
      link("home", "slots.html", "Slots"),
      link("stats", "stats.html", "Statistics"),
      link("settings", "settings.html", "Settings"),
      logout));
  document.body.prepend(bar);
}

/** Put the text on the clipboard (the async Clipboard API, or the selection fallback outside secure contexts). */
export async function copyText(text, input) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  input.select();
  if (!document.execCommand("copy")) throw new Error("copy refused");
}

/** Show a field's error in its error line and mark the control invalid; an empty message clears both. */
export function setFieldError(control, errorLine, message) {
  errorLine.textContent = message || "";
  if (message) control.setAttribute("aria-invalid", "true");
  else control.removeAttribute("aria-invalid");
}

/** Money with its currency when known (costs are per the provider's pricing). */
export function money(value, currency) {
  if (value === null || value === undefined) return "—";
  const digits = value !== 0 && Math.abs(value) < 0.01 ? 4 : 2; // sub-cent prices (per-token costs) stay visible
  const amount = Number(value).toFixed(digits);
  return currency ? `${amount} ${currency}` : amount;
}

export function formatMs(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms} ms`;
}

export function formatDate(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** Run an async action with its button disabled; errors become a toast. */
export async function busy(button, action) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await action();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return undefined;
    toast(err.message || String(err), "error");
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

/** A confirmation in a modal <dialog> (keyboard and screen-reader friendly); answers true when confirmed. */
export function confirmDialog(title, text, confirmLabel) {
  return new Promise((resolve) => {
    const yes = h("button", { class: "btn danger", type: "button" }, confirmLabel);
    const no = h("button", { class: "btn secondary", type: "button" }, "Cancel");
    const dialog = h("dialog", { "aria-labelledby": "confirm-title", "aria-describedby": "confirm-text" },
      h("h2", { id: "confirm-title" }, title), h("p", { id: "confirm-text" }, text),
      h("div", { class: "row" }, no, yes));
    const finish = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    yes.addEventListener("click", () => finish(true));
    no.addEventListener("click", () => finish(false));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      finish(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}
