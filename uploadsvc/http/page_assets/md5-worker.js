/* Computes a file's MD5 off the main thread, reading it in slices (never whole). */
importScripts("../vendor/hash-wasm/md5.umd.min.js");

const SLICE_BYTES = 4 * 1024 * 1024;
let paused = false;
let wake = null;

function waitWhilePaused() {
  return paused ? new Promise((resolve) => { wake = resolve; }) : Promise.resolve();
}

async function hash(file) {
  const md5 = await self.hashwasm.createMD5();
  md5.init();
  let lastReport = 0;
  for (let offset = 0; offset < file.size; offset += SLICE_BYTES) {
    await waitWhilePaused();
    const slice = file.slice(offset, Math.min(offset + SLICE_BYTES, file.size));
    md5.update(new Uint8Array(await slice.arrayBuffer()));
    const now = Date.now();
    if (now - lastReport > 100) {
      lastReport = now;
      self.postMessage({ type: "progress", done: Math.min(offset + SLICE_BYTES, file.size) });
    }
  }
  return md5.digest("hex");
}

self.onmessage = async (event) => {
  const message = event.data;
  if (message.type === "pause") {
    paused = true;
  } else if (message.type === "resume") {
    paused = false;
    if (wake) { wake(); wake = null; }
  } else if (message.type === "hash") {
    try {
      self.postMessage({ type: "done", md5: await hash(message.file) });
    } catch (error) {
      self.postMessage({ type: "error", message: String(error && error.message || error) });
    }
  }
};
