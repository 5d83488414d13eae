// Shared by every page: navigation, CSRF-aware API calls, live fragments, copy buttons, confirmations.
// Loaded as an ES module; page modules import what they need from here.

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// A call to the REST API with the session cookie; writes carry the CSRF header.
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401) {
    goToLogin();
    throw new ApiError(401, "unauthorized", "session expired");
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(res.status, err.code || "http_" + res.status, err.message || res.statusText);
  }
  return data;
}

export function goToLogin() {
  const next = location.pathname + location.search;
  location.assign("/login" + (next !== "/" ? "?next=" + encodeURIComponent(next) : ""));
}

// --- notices ------------------------------------------------------------------------------------

let noticeTimer = null;
export function notice(message, kind = "error") {
  const box = document.getElementById("notice");
  if (!box) return;
  box.textContent = message;
  box.className = "notice " + kind;
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; }, kind === "error" ? 8000 : 3000);
}

// --- confirmation dialog ------------------------------------------------------------------------

export function confirmDialog(message, okLabel = "Confirm") {
  const dialog = document.getElementById("confirm");
  if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(message));
  document.getElementById("confirm-text").textContent = message;
  document.getElementById("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

function wireConfirmForms() {
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm || form.dataset.confirmed) return;
    event.preventDefault();
    if (await confirmDialog(form.dataset.confirm, form.dataset.confirmOk || "Confirm")) {
      form.dataset.confirmed = "1";
      form.requestSubmit();
    }
  });
}

// --- live fragments (htmx-style): the server renders, we swap -----------------------------------

const fragments = new Map();

async function refreshFragment(section) {
  const name = section.dataset.fragment;
  const state = fragments.get(name);
  if (!state) return;
  // Not under an open dialog: a confirmation submits the form it was opened for, which must stay in the page.
  if (document.querySelector("dialog[open]")) return;
  if (state.busy) {
    state.again = true; // an action asked for fresh data while a refresh was in flight
    return;
  }
  state.busy = true;
  state.again = false;
  try {
    const res = await fetch(location.pathname + location.search, {
      headers: { "X-Fragment": name },
      credentials: "same-origin",
      cache: "no-store",
    });
    if (res.status === 401) {
      goToLogin();
      return;
    }
    if (!res.ok) return; // keep showing the last good state; the next tick tries again
    const html = await res.text();
    if (html !== state.html) {
      state.html = html;
      const open = new Set(
        [...section.querySelectorAll("details[open] > summary")].map((s) => s.textContent),
      );
      section.innerHTML = html;
      for (const s of section.querySelectorAll("details > summary")) {
        if (open.has(s.textContent)) s.parentElement.open = true;
      }
      section.dispatchEvent(new CustomEvent("fragment:swapped", { bubbles: true, detail: { name } }));
    }
  } catch {
    // Network blip: the next tick tries again.
  } finally {
    state.busy = false;
  }
  if (state.again) await refreshFragment(section);
}

export function refresh(name) {
  const section = document.querySelector(`[data-fragment="${name}"]`);
  return section ? refreshFragment(section) : Promise.resolve();
}

export function refreshAll() {
  return Promise.all([...document.querySelectorAll("[data-fragment]")].map(refreshFragment));
}

function wireFragments() {
  for (const section of document.querySelectorAll("[data-fragment]")) {
    const every = Number(section.dataset.refresh || 0);
    fragments.set(section.dataset.fragment, { busy: false, again: false, html: null });
    if (every > 0) {
      setInterval(() => {
        if (!document.hidden) refreshFragment(section);
      }, every);
    }
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshAll();
  });
}

// --- small behaviours ---------------------------------------------------------------------------

function wireNav() {
  const toggle = document.getElementById("nav-toggle");
  const bar = document.getElementById("topbar");
  if (!toggle || !bar) return;
  toggle.addEventListener("click", () => {
    const open = bar.classList.toggle("open");
    toggle.setAttribute("aria-expanded", String(open));
  });
}

function wireAutosubmit() {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain-HTTP servers are not a secure context: fall back to a selected textarea.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("copy refused");
}

function wireCopy() {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    try {
      await copyText(source.textContent.trim());
      button.textContent = "Copied";
      button.classList.add("done");
    } catch {
      const range = document.createRange();
      range.selectNodeContents(source);
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      button.textContent = "Press Ctrl+C";
    }
    setTimeout(() => {
      button.textContent = "Copy";
      button.classList.remove("done");
    }, 2000);
  });
}

wireNav();
wireAutosubmit();
wireCopy();
wireConfirmForms();
wireFragments();
