/* The upload page: file picking and dropping, one row per file, unfinished uploads. */
import { Limiter, memory } from "./shared.js";
import { FileUpload } from "./uploader.js";

const app = document.getElementById("app");
const input = document.getElementById("file-input");
const dropZone = document.getElementById("drop-zone");
const list = document.getElementById("file-list");
const template = document.getElementById("file-template");
const pageError = document.getElementById("page-error");
const announcer = document.getElementById("announcer");

// ?chunkSize= and ?parallel= override the defaults (handy for trying small chunks).
const params = new URLSearchParams(location.search);
const chunkSize = positive(params.get("chunkSize")) || positive(app.dataset.chunkSize);
const parallel = positive(params.get("parallel")) || positive(app.dataset.parallel) || 3;
const limiter = new Limiter(parallel);
const rows = new Map(); // FileUpload -> its <li>

function positive(value) {
  const number = Number.parseInt(value, 10);
  return Number.isFinite(number) && number > 0 ? number : null;
}

export function formatBytes(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${value.toFixed(unit === 0 || value >= 100 ? 0 : 1)} ${units[unit]}`;
}

function formatDuration(seconds) {
  if (!Number.isFinite(seconds)) return "";
  const s = Math.max(1, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const STATUS = {
  waiting: () => "Waiting",
  hashing: (u) => `Checking the file… ${percent(u.hashedBytes, u.file.size)} %`,
  checking: () => "Asking the server what it already has…",
  uploading: (u) => `Uploading… ${percent(u.sentBytes, u.file.size)} %`,
  completing: () => "Verifying the file on the server…",
  paused: (u) => `Paused at ${percent(u.sentBytes, u.file.size)} %`,
  offline: () => "Connection lost — the upload continues by itself when it is back.",
  done: (u) => (u.instant ? "Done instantly: the server already had this file."
                          : "Done, verified by the server."),
  error: () => "Stopped",
};

const ANNOUNCED = new Set(["uploading", "paused", "offline", "done"]);

function percent(part, whole) {
  return whole > 0 ? Math.floor((100 * part) / whole) : 100;
}

function render(upload) {
  const row = rows.get(upload);
  if (!row) return;
  const { state } = upload;
  if (row.dataset.state !== state && ANNOUNCED.has(state)) {
    // Screen readers hear each change of state once, not every progress tick.
    announcer.textContent = `${upload.file.name}: ${STATUS[state](upload)}`;
  }
  row.dataset.state = state;
  row.dataset.md5Source = upload.md5Source;
  row.dataset.chunksSent = String(upload.chunksSent);
  row.dataset.totalChunks = String(upload.totalChunks);
  if (upload.md5) row.dataset.md5 = upload.md5;
  const progress = row.querySelector(".file-progress");
  progress.value = state === "hashing" ? percent(upload.hashedBytes, upload.file.size)
    : state === "done" ? 100 : percent(upload.sentBytes, upload.file.size);
  progress.setAttribute("aria-valuetext", STATUS[state](upload));
  row.querySelector(".file-status").textContent = STATUS[state](upload);
  row.querySelector(".file-rate").textContent = state === "uploading" ? rate(upload) : "";
  const error = row.querySelector(".file-error");
  const showError = state === "error" || state === "offline";
  error.hidden = !showError;
  error.textContent = showError && upload.error ? upload.error.message : "";
  const active = ["waiting", "hashing", "checking", "uploading", "completing", "offline"];
  row.querySelector(".pause").hidden = !active.includes(state);
  row.querySelector(".resume").hidden = state !== "paused";
  row.querySelector(".retry").hidden = state !== "error";
  row.querySelector(".dismiss").hidden = !["done", "error", "paused"].includes(state);
  const link = row.querySelector(".download");
  link.hidden = !(state === "done" && upload.path);
  if (upload.path) {
    // Relative, so that the page also works under a path prefix; the name may hold # or ?.
    link.href = "uploads/" + encodeURIComponent(upload.path.replace(/^\/uploads\//, ""));
    link.setAttribute("download", upload.file.name);
    row.dataset.path = upload.path;
  }
}

function rate(upload) {
  const speed = upload.speed();
  if (!speed) return "";
  const left = (upload.file.size - upload.sentBytes) / speed;
  return `${formatBytes(speed)}/s · ${formatDuration(left)} left`;
}

function add(file) {
  const row = template.content.firstElementChild.cloneNode(true);
  const upload = new FileUpload(file, { chunkSize, limiter, onChange: scheduleRender });
  rows.set(upload, row);
  row.querySelector(".file-name").textContent = file.name;
  row.querySelector(".file-size").textContent = formatBytes(file.size);
  row.querySelector(".file-progress").setAttribute("aria-label", `Progress of ${file.name}`);
  for (const [name, action] of [["pause", "pause"], ["resume", "resume"], ["retry", "retry"]]) {
    const button = row.querySelector(`.${name}`);
    button.setAttribute("aria-label", `${button.textContent} ${file.name}`);
    button.addEventListener("click", () => {
      upload[action]();
      focusAction(row);
    });
  }
  row.querySelector(".dismiss").addEventListener("click", () => {
    upload.pause();
    rows.delete(upload);
    row.remove();
    input.focus();
  });
  list.append(row);
  render(upload);
  upload.start();
}

// Keep keyboard focus on the row's visible action when Pause turns into Resume.
function focusAction(row) {
  requestAnimationFrame(() => {
    const next = [...row.querySelectorAll(".file-actions button")].find((b) => !b.hidden);
    if (next) next.focus();
  });
}

// Progress events come by the hundred per second; draw at most once per frame.
const dirty = new Set();
function scheduleRender(upload) {
  if (!dirty.size) {
    requestAnimationFrame(() => {
      for (const u of dirty) render(u);
      dirty.clear();
      showUnfinished();
    });
  }
  dirty.add(upload);
}
setInterval(() => { for (const u of rows.keys()) if (u.state === "uploading") render(u); }, 1000);

function addAll(files) {
  pageError.hidden = true;
  for (const file of files) add(file);
}

input.addEventListener("change", () => {
  addAll([...input.files]);
  input.value = ""; // choosing the same file again must fire change again
});

for (const type of ["dragenter", "dragover"]) {
  dropZone.addEventListener(type, (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  });
}
for (const type of ["dragleave", "drop"]) {
  dropZone.addEventListener(type, () => dropZone.classList.remove("dragging"));
}
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  const files = [...event.dataTransfer.files];
  if (!files.length) {
    pageError.textContent = "Only files can be dropped here (folders are not supported).";
    pageError.hidden = false;
    return;
  }
  addAll(files);
});

/** Uploads started before a reload that have not finished: ask the user to pick them again. */
function showUnfinished() {
  const section = document.getElementById("unfinished");
  const items = document.getElementById("unfinished-list");
  const open = new Set([...rows.keys()].map((u) => memory.key(u.file)));
  const records = memory.unfinished().filter((r) => !open.has(r.key)).slice(0, 20);
  section.hidden = records.length === 0;
  items.replaceChildren(...records.map((record) => {
    const item = document.createElement("li");
    item.className = "unfinished";
    item.dataset.name = record.name;
    item.textContent = `${record.name} (${formatBytes(record.size)})`;
    const forget = document.createElement("button");
    forget.type = "button";
    forget.textContent = "Forget";
    forget.setAttribute("aria-label", `Forget ${record.name}`);
    forget.addEventListener("click", () => {
      localStorage.removeItem(record.key);
      showUnfinished();
    });
    item.append(" ", forget);
    return item;
  }));
}

showUnfinished();
app.dataset.ready = "true";
