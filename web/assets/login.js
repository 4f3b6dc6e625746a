// The login page: exchange username and password for the tab's session token.
import { ApiError, api, session } from "./core.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");
const notice = document.getElementById("login-notice");
const submit = document.getElementById("login-submit");

const params = new URLSearchParams(location.search);
if (params.has("logout")) notice.textContent = "You are signed out.";
else if (params.has("expired")) notice.textContent = "Your session has ended. Please sign in again.";
else if (session.token()) location.replace("slots.html");

function tooManyMessage(err) {
  const seconds = Number(err.headers.get("Retry-After") || err.details.retry_after_sec || 0);
  const minutes = Math.max(1, Math.ceil(seconds / 60));
  return `Too many failed attempts. Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const username = form.username.value.trim();
  const password = form.password.value;
  if (!username || !password) {
    error.textContent = "Enter your username and password.";
    return;
  }
  submit.disabled = true;
  try {
    const data = await api("/api/login", { method: "POST", json: { username, password }, auth: false });
    session.start(data.access_token, data.expires_in_sec);
    location.replace("slots.html");
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    if (err.status === 401) error.textContent = "Wrong username or password.";
    else if (err.status === 429) error.textContent = tooManyMessage(err);
    else error.textContent = err.message;
    form.password.select();
  } finally {
    submit.disabled = false;
  }
});
