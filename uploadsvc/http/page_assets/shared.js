/* What the upload page shares between files: talking to the API, remembering files across
 * reloads, and a few request slots. */

const STORE_PREFIX = "uploadsvc:v1:";

/** An error to show a person: the API's own message, or plain words for the network. */
export class UploadFailure extends Error {
  constructor(message, { code = "error", status = 0, retryable = false } = {}) {
    super(message);
    this.code = code;
    this.status = status;
    this.retryable = retryable;
  }
}

export async function apiJson(url, options = {}) {
  let response;
  try {
    response = await fetch(url, options);
  } catch {
    throw new UploadFailure("The connection to the server was lost.",
                            { code: "network", retryable: true });
  }
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: a proxy's error page */ }
  if (!response.ok) throw failureFrom(response.status, body);
  return body || {};
}

export function failureFrom(status, body) {
  const code = (body && body.error) || "http_" + status;
  const retryable = status >= 500 && status !== 507 || code === "merge_in_progress"
                    || status === 0 || status === 429;
  const message = (body && body.message)
    || (status >= 500 ? `The server had a problem (HTTP ${status}).`
                      : `The server refused the request (HTTP ${status}).`);
  return new UploadFailure(message, { code, status, retryable });
}

/** Shares a few request slots between every file on the page. */
export class Limiter {
  constructor(slots) { this.slots = slots; this.free = slots; this.waiting = []; }
  async acquire() {
    if (this.free > 0) { this.free -= 1; return; }
    await new Promise((resolve) => this.waiting.push(resolve));
  }
  release() {
    const next = this.waiting.shift();
    if (next) next(); else this.free += 1;
  }
}

/** What the page remembers about a file across reloads (md5 and the chunk size it used). */
export const memory = {
  key(file) { return `${STORE_PREFIX}${file.name}:${file.size}:${file.lastModified}`; },
  get(file) { return this.read(this.key(file)); },
  read(key) {
    try { return JSON.parse(localStorage.getItem(key)) || null; } catch { return null; }
  },
  put(file, record) {
    try { localStorage.setItem(this.key(file), JSON.stringify({ ...record, saved: Date.now() })); }
    catch { /* private mode or full: resuming then simply re-hashes the file */ }
  },
  forget(file) { try { localStorage.removeItem(this.key(file)); } catch { /* ignore */ } },
  unfinished() {
    const records = [];
    const stale = Date.now() - 30 * 24 * 3600 * 1000; // the server has long expired these
    for (const key of Object.keys(localStorage)) {
      if (key.startsWith(STORE_PREFIX)) {
        const record = this.read(key);
        if (record && record.saved < stale) localStorage.removeItem(key);
        else if (record && record.md5) records.push({ key, ...record });
      }
    }
    return records.sort((a, b) => b.saved - a.saved);
  },
};
