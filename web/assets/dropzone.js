// An image drop zone: drag and drop or click (Enter/Space from the keyboard), JPG/PNG checked before anything
// is sent, a preview that fades in, and a Remove button.
import { h } from "./core.js";

const ACCEPTED = { "image/jpeg": [".jpg", ".jpeg"], "image/png": [".png"] };

/** Whether the file is a JPG or PNG by its type and its name (browsers leave the type empty for some files). */
export function isJpegOrPng(file) {
  const name = file.name.toLowerCase();
  const byName = Object.values(ACCEPTED).flat().some((ext) => name.endsWith(ext));
  return file.type ? file.type in ACCEPTED && byName : byName;
}

/**
 * `onFile(file)` runs for an accepted file (e.g. uploads it) and may throw to refuse it; `onRemove()` runs on
 * Remove. `previewUrl` shows an image already chosen (a stored template). Answers {element, file, clear, error}.
 */
export function dropZone({ id, label, hint, previewUrl, onFile, onRemove }) {
  const state = { file: null, objectUrl: null };
  const input = h("input", { id: `${id}-input`, type: "file", accept: "image/jpeg,image/png,.jpg,.jpeg,.png",
    class: "sr-only", tabindex: "-1", "aria-hidden": "true" });
  const img = h("img", { alt: `${label}: preview` });
  const error = h("p", { class: "field-error", id: `${id}-error`, role: "alert" });
  const zone = h("div", { class: "dropzone", id, role: "button", tabindex: "0", "data-state": "empty",
    "aria-label": `${label}: drop a JPG or PNG image here, or press Enter to choose a file`,
    "aria-describedby": `${id}-error` },
    h("div", { class: "empty-text" }, h("strong", {}, "Drop a JPG or PNG here"), h("div", { class: "muted" },
      "or click to choose")),
    h("div", { class: "preview-wrap" }, img));
  const remove = h("button", { type: "button", class: "btn small secondary remove", hidden: true,
    "aria-label": `Remove ${label.toLowerCase()}` }, "Remove");

  function show(url) {
    img.classList.remove("-shown");
    img.onload = () => img.classList.add("-shown");
    img.src = url;
    zone.dataset.state = "filled";
    remove.hidden = false;
  }

  function clear() {
    if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
    Object.assign(state, { file: null, objectUrl: null });
    img.removeAttribute("src");
    img.classList.remove("-shown");
    zone.dataset.state = "empty";
    remove.hidden = true;
    input.value = "";
  }

  async function take(file) {
    error.textContent = "";
    if (!file) return;
    if (!isJpegOrPng(file)) {
      error.textContent = `${file.name}: only JPG or PNG images are accepted.`;
      return;
    }
    const previous = { ...state };
    state.file = file;
    state.objectUrl = URL.createObjectURL(file);
    show(state.objectUrl);
    try {
      if (onFile) await onFile(file);
      if (previous.objectUrl) URL.revokeObjectURL(previous.objectUrl);
    } catch (err) {
      clear();
      error.textContent = err.message || String(err);
    }
  }

  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("-over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("-over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("-over");
    take(event.dataTransfer.files[0]);
  });
  input.addEventListener("change", () => take(input.files[0]));
  remove.addEventListener("click", () => {
    clear();
    if (onRemove) onRemove();
    zone.focus();
  });
  if (previewUrl) show(previewUrl);

  const element = h("div", { class: "dropzone-field" },
    hint ? h("p", { class: "field-hint" }, hint) : null, zone, input, remove, error);
  return {
    element,
    get file() {
      return state.file;
    },
    get previewSrc() {
      return img.getAttribute("src");
    },
    clear,
    setError(message) {
      error.textContent = message || "";
    },
    focus() {
      zone.focus();
    },
  };
}
