/* One file's resumable upload over the /api protocol: hash, check, send missing chunks,
 * complete. The server's record of stored chunks is the truth; this only asks and sends. */

import { UploadFailure, apiJson, failureFrom, memory } from "./shared.js";

const MIB = 1024 * 1024;
const MAX_TOTAL_CHUNKS = 10000; // stay far below the server's limit of totalChunks

class Stale extends Error {}

// Errors after which "Try again" deletes the server's partial upload and starts over.
const RESTART = new Set(["md5_mismatch", "total_chunks_conflict", "chunk_size_conflict"]);

/** The chunk size for a file: the base size, or whole MiB more for a file so large that
 * the base size would cut it into too many chunks. */
export function chunkSizeFor(size, base) {
  if (size <= base * MAX_TOTAL_CHUNKS) return base;
  return Math.ceil(size / MAX_TOTAL_CHUNKS / MIB) * MIB;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The upload of one File. Calls onChange() whenever something visible changed.
 * States: waiting, hashing, checking, uploading, completing, paused, offline, done, error.
 */
export class FileUpload {
  constructor(file, { base = "", chunkSize, limiter, onChange }) {
    this.file = file;
    this.base = base;
    this.limiter = limiter;
    this.onChange = onChange || (() => {});
    const remembered = memory.get(file);
    this.md5 = remembered ? remembered.md5 : null;
    this.md5Source = remembered ? "remembered" : "computed";
    this.baseChunkSize = chunkSizeFor(file.size, chunkSize);
    this.chunkSize = remembered ? remembered.chunkSize : this.baseChunkSize;
    this.totalChunks = Math.max(1, Math.ceil(file.size / this.chunkSize));
    this.state = "waiting";
    this.error = null;
    this.path = null;
    this.instant = false;
    this.hashedBytes = 0;
    this.storedBytes = 0; // bytes of chunks the server confirmed
    this.inflight = new Map(); // chunk index -> {xhr, loaded}
    this.chunksSent = 0; // chunks this page sent (a resumed upload sends only the missing)
    this.runId = 0;
    this.samples = [];
  }

  get sentBytes() {
    let bytes = this.storedBytes;
    for (const { loaded } of this.inflight.values()) bytes += loaded;
    return Math.min(bytes, this.file.size);
  }

  chunkBytes(index) {
    return Math.min(this.chunkSize, this.file.size - index * this.chunkSize);
  }

  identity() {
    return { md5: this.md5, fileName: this.file.name, totalChunks: this.totalChunks };
  }

  set(state) {
    this.state = state;
    this.onChange(this);
  }

  start() {
    this.runId += 1;
    this.error = null;
    this.samples = [];
    this.run(this.runId);
  }

  pause() {
    if (["done", "error", "paused"].includes(this.state)) return;
    this.runId += 1; // every step of the running attempt now stops at its next check
    if (this.worker) this.worker.postMessage({ type: "pause" });
    this.abortInflight();
    this.set("paused");
  }

  resume() {
    if (this.worker) this.worker.postMessage({ type: "resume" });
    this.start();
  }

  async retry() {
    if (RESTART.has(this.error && this.error.code)) {
      // The server's partial upload cannot become this file (it changed, a chunk was
      // damaged, or it was started with another chunk size): drop it and start afresh.
      try {
        await apiJson(`${this.base}api/upload/${this.md5}/${encodeURIComponent(this.file.name)}`,
                      { method: "DELETE" });
      } catch (error) {
        if (error.status !== 404) { this.error = error; this.set("error"); return; }
      }
      memory.forget(this.file);
      this.md5 = null;
      this.hashPromise = null;
      this.md5Source = "computed";
      this.chunkSize = this.baseChunkSize;
      this.totalChunks = Math.max(1, Math.ceil(this.file.size / this.chunkSize));
    }
    this.start();
  }

  async run(id) {
    const live = () => { if (id !== this.runId) throw new Stale(); };
    try {
      if (!this.md5) {
        this.set("hashing");
        this.md5 = await this.hashOnce();
        live();
        memory.put(this.file, { md5: this.md5, chunkSize: this.chunkSize, name: this.file.name,
                                size: this.file.size });
      }
      this.set("checking");
      const check = await this.post("api/check-chunks", this.identity());
      live();
      if (check.completed) return this.finish(check.path, true);
      const stored = new Set(check.uploadedChunks || []);
      this.storedBytes = [...stored].reduce((sum, index) => sum + this.chunkBytes(index), 0);
      const missing = [];
      for (let index = 0; index < this.totalChunks; index += 1) {
        if (!stored.has(index)) missing.push(index);
      }
      this.set("uploading");
      await this.sendAll(missing, live);
      this.set("completing");
      let done;
      try {
        done = await this.complete(live);
      } catch (error) {
        // Chunks the server lacks after all (e.g. removed meanwhile): ask again and send them.
        if (error.code !== "missing_chunks" || this.rechecked) throw error;
        this.rechecked = true;
        return this.start();
      }
      this.finish(done.path, false);
    } catch (error) {
      if (error instanceof Stale || id !== this.runId) return;
      this.abortInflight();
      if (error.retryable) return this.waitForConnection(error);
      this.runId += 1;
      this.error = error instanceof UploadFailure ? error
        : new UploadFailure(`Something went wrong: ${error.message || error}`);
      if (RESTART.has(error.code)) {
        this.error.message += " “Try again” starts this file over.";
      }
      this.set("error");
    }
  }

  hashOnce() {
    if (!this.hashPromise) {
      this.hashPromise = new Promise((resolve, reject) => {
        const worker = new Worker(new URL("md5-worker.js", import.meta.url));
        this.worker = worker;
        const stop = () => { worker.terminate(); this.worker = null; };
        worker.onmessage = ({ data }) => {
          if (data.type === "progress") {
            this.hashedBytes = data.done;
            this.onChange(this);
          } else if (data.type === "done") {
            this.hashedBytes = this.file.size;
            stop();
            resolve(data.md5);
          } else {
            stop();
            this.hashPromise = null;
            reject(new UploadFailure(`The file could not be read: ${data.message}`));
          }
        };
        worker.onerror = (event) => {
          event.preventDefault();
          stop();
          this.hashPromise = null;
          reject(new UploadFailure("The file could not be hashed: the MD5 library did not load."));
        };
        worker.postMessage({ type: "hash", file: this.file });
      });
    }
    return this.hashPromise;
  }

  async sendAll(missing, live) {
    const queue = [...missing];
    const lane = async () => {
      while (queue.length) {
        live();
        await this.limiter.acquire();
        try {
          live();
          const index = queue.shift();
          if (index === undefined) return;
          await this.sendChunk(index);
        } finally {
          this.limiter.release();
        }
      }
    };
    const lanes = Math.min(this.limiter.slots || 3, Math.max(1, missing.length));
    await Promise.all(Array.from({ length: lanes }, lane));
  }

  sendChunk(index) {
    const start = index * this.chunkSize;
    const form = new FormData();
    form.append("chunkIndex", String(index));
    form.append("md5", this.md5);
    form.append("fileName", this.file.name);
    form.append("totalChunks", String(this.totalChunks));
    form.append("chunk", this.file.slice(start, start + this.chunkBytes(index)), "blob");
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      const entry = { xhr, loaded: 0 };
      this.inflight.set(index, entry);
      xhr.open("POST", this.base + "api/upload-chunk");
      xhr.responseType = "json";
      xhr.upload.onprogress = (event) => {
        entry.loaded = Math.min(event.loaded, this.chunkBytes(index));
        this.sample();
      };
      const settle = () => this.inflight.get(index) === entry && this.inflight.delete(index);
      xhr.onload = () => {
        settle();
        if (xhr.status === 200) {
          this.storedBytes += this.chunkBytes(index);
          this.chunksSent += 1;
          this.attempts = 0; // the connection works again: back-off starts over
          this.sample();
          resolve();
        } else {
          reject(failureFrom(xhr.status, xhr.response));
        }
      };
      xhr.onerror = () => {
        settle();
        reject(new UploadFailure("The connection to the server was lost.",
                                 { code: "network", retryable: true }));
      };
      xhr.onabort = () => { settle(); reject(new Stale()); };
      xhr.send(form);
    });
  }

  async complete(live) {
    for (;;) {
      try {
        return await this.post("api/complete-upload", this.identity());
      } catch (error) {
        live();
        if (error.code !== "merge_in_progress") throw error;
        await sleep(1000); // another request is merging this upload; its answer will be ours
        live();
      }
    }
  }

  async waitForConnection(error) {
    const waitId = ++this.runId; // stop the other lanes of the failed attempt
    this.error = error;
    this.set("offline");
    // Back off while the server is unreachable; the browser's online event cuts the wait.
    this.attempts = (this.attempts || 0) + 1;
    const delay = Math.min(30000, 1000 * 2 ** Math.min(this.attempts - 1, 5));
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, delay);
      window.addEventListener("online", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
    if (waitId !== this.runId) return;
    this.start(); // asks the server again which chunks it has, then goes on
  }

  finish(path, instant) {
    this.runId += 1;
    this.path = path;
    this.instant = instant;
    this.storedBytes = this.file.size;
    this.error = null;
    this.attempts = 0;
    this.rechecked = false;
    memory.forget(this.file);
    this.set("done");
  }

  abortInflight() {
    for (const { xhr } of [...this.inflight.values()]) xhr.abort();
    this.inflight.clear();
  }

  post(path, body) {
    return apiJson(this.base + path, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  /** Bytes per second over the last few seconds, or null before there is enough to say. */
  speed() {
    const now = performance.now();
    while (this.samples.length > 1 && now - this.samples[0].t > 5000) this.samples.shift();
    if (this.samples.length < 2) return null;
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const seconds = (last.t - first.t) / 1000;
    return seconds > 0.2 ? (last.bytes - first.bytes) / seconds : null;
  }

  sample() {
    this.samples.push({ t: performance.now(), bytes: this.sentBytes });
    if (this.samples.length > 500) this.samples.splice(0, 250);
    this.onChange(this);
  }
}
