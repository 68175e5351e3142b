// fallback-web's page: downloads and uploads over the HTTP fallback protocol.
// Uploads use tus 1.0.0 (creation, then PATCH in 4 MiB chunks), remembered in
// localStorage so a reload or a network cut resumes from the server's offset instead
// of starting over. No framework, no build step.
"use strict";

(() => {
  const app = document.getElementById("app");
  if (!app) return;
  const base = app.dataset.base;
  const dir = app.dataset.dir;
  const uploadToken = app.dataset.uploadToken;
  const list = document.getElementById("transfers");
  const CHUNK = 4 * 1024 * 1024;
  const RETRIES = 6;

  const human = (n) => {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  };
  const clock = (s) => {
    if (!isFinite(s)) return "";
    s = Math.round(s);
    const m = Math.floor(s / 60);
    return m > 0 ? `${m} min ${s % 60} s` : `${s} s`;
  };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const b64 = (text) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));
  const encodePath = (p) => p.split("/").map(encodeURIComponent).join("/");

  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  // What a refusal means, in words a user can act on.
  function explain(status, body) {
    const detail = (body || "").trim();
    switch (status) {
      case 401: return "Your transfer token has expired or is not valid: reload the page to get a new one.";
      case 403: return "No permission for this transfer" + (detail ? `: ${detail}` : ".");
      case 404: return "Not found (it may have been moved or deleted, or the upload expired).";
      case 409: return "The upload and the server disagree on the offset.";
      case 412: return "A file with this name exists and may not be replaced.";
      case 413: return "Too large: " + detail;
      case 423: return "Another transfer is writing this upload right now.";
      case 507: return "The server's disk is full. What was sent so far is kept: try again once space is freed.";
      default: return `The server answered ${status}` + (detail ? `: ${detail}` : ".");
    }
  }

  async function failure(resp) {
    return new HttpError(resp.status, explain(resp.status, await resp.text().catch(() => "")));
  }

  // One line in the transfers list: name, bar, rate and ETA, status.
  function transferRow(label, direction) {
    const li = document.createElement("li");
    li.className = "transfer";
    li.innerHTML =
      '<span class="name"></span><progress max="1" value="0"></progress>' +
      '<span class="stats"></span><span class="status" role="status"></span>';
    li.querySelector(".name").textContent = (direction === "up" ? "\u2191 " : "\u2193 ") + label;
    list.prepend(li);
    const bar = li.querySelector("progress");
    const stats = li.querySelector(".stats");
    const status = li.querySelector(".status");
    let t0 = performance.now();
    let b0 = 0;
    return {
      el: li,
      start(bytes) { t0 = performance.now(); b0 = bytes; },
      progress(done, total) {
        bar.max = Math.max(total, 1);
        bar.value = done;
        const secs = (performance.now() - t0) / 1000;
        const rate = secs > 0.2 ? (done - b0) / secs : 0;
        const eta = rate > 0 ? (total - done) / rate : Infinity;
        stats.textContent = `${human(done)} of ${human(total)}` +
          (rate > 0 ? ` \u00b7 ${human(rate)}/s \u00b7 ${clock(eta)} left` : "");
        li.dataset.done = String(done);
      },
      note(text) { status.textContent = text; },
      finish(text) { li.classList.add("ok"); status.textContent = text; bar.value = bar.max; },
      fail(text) { li.classList.add("failed"); status.textContent = text; },
    };
  }

  // ---- Uploads (tus 1.0.0) ----

  function patch(location, blob, offset, total, row) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PATCH", location);
      xhr.setRequestHeader("Tus-Resumable", "1.0.0");
      xhr.setRequestHeader("Authorization", "Bearer " + uploadToken);
      xhr.setRequestHeader("Upload-Offset", String(offset));
      xhr.setRequestHeader("Content-Type", "application/offset+octet-stream");
      xhr.upload.onprogress = (ev) => row.progress(offset + ev.loaded, total);
      xhr.onload = () => {
        if (xhr.status === 204) resolve(Number(xhr.getResponseHeader("Upload-Offset")));
        else reject(new HttpError(xhr.status, explain(xhr.status, xhr.responseText)));
      };
      xhr.onerror = () => reject(new HttpError(0, "network error"));
      xhr.send(blob);
    });
  }

  async function offsetOf(location) {
    const r = await fetch(location, {
      method: "HEAD",
      headers: { "Tus-Resumable": "1.0.0", Authorization: "Bearer " + uploadToken },
    });
    if (!r.ok) throw new HttpError(r.status, explain(r.status, ""));
    return Number(r.headers.get("Upload-Offset"));
  }

  async function upload(file, relPath) {
    const key = "fallback-upload:" + [dir, relPath, file.size, file.lastModified].join("|");
    const row = transferRow(relPath, "up");
    try {
      let location = localStorage.getItem(key);
      let offset = 0;
      if (location) {
        try {
          offset = await offsetOf(location);
          row.note(`resuming from ${human(offset)}`);
          row.el.dataset.resumedFrom = String(offset);
        } catch (e) {
          if (e.status === 401) throw e;
          localStorage.removeItem(key);
          location = null;
        }
      }
      if (!location) {
        const r = await fetch(base + "/uploads", {
          method: "POST",
          headers: {
            "Tus-Resumable": "1.0.0",
            Authorization: "Bearer " + uploadToken,
            "Upload-Length": String(file.size),
            "Upload-Metadata": "filename " + b64(relPath),
          },
        });
        if (r.status !== 201) throw await failure(r);
        location = new URL(r.headers.get("Location"), window.location.href).href;
        localStorage.setItem(key, location);
        offset = 0;
      }
      row.start(offset);
      row.progress(offset, file.size);
      let tries = 0;
      while (offset < file.size) {
        const end = Math.min(offset + CHUNK, file.size);
        try {
          offset = await patch(location, file.slice(offset, end), offset, file.size, row);
          tries = 0;
        } catch (e) {
          // Network cuts, 5xx, a busy or moved upload: ask the server where it is and go
          // on from there. Everything else is final.
          const again = e.status === 0 || e.status >= 500 && e.status !== 507 || e.status === 409 || e.status === 423;
          if (!again || ++tries > RETRIES) throw e;
          row.note(`connection trouble, retrying (${tries}/${RETRIES})`);
          await sleep(Math.min(1000 * 2 ** (tries - 1), 15000));
          offset = await offsetOf(location);
        }
        row.progress(offset, file.size);
      }
      if (file.size === 0) await offsetOf(location);
      localStorage.removeItem(key);
      row.finish("uploaded");
      return true;
    } catch (e) {
      row.fail(e.message);
      return false;
    }
  }

  async function uploadAll(items) {
    let refresh = false;
    for (const { file, path } of items) {
      if (await upload(file, path)) refresh = true;
    }
    if (refresh) {
      const done = document.createElement("li");
      done.className = "transfer ok";
      done.innerHTML = 'Uploads finished. <a href="">Refresh the listing</a>';
      list.prepend(done);
    }
  }

  // Files of a dropped folder, with their paths.
  async function entries(entry, prefix, out) {
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      out.push({ file, path: prefix + entry.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (batch.length === 0) break;
        for (const e of batch) await entries(e, prefix + entry.name + "/", out);
      }
    }
  }

  const drop = document.getElementById("drop");
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    const out = [];
    const roots = [...ev.dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry());
    if (roots.every(Boolean)) {
      for (const r of roots) await entries(r, "", out);
    } else {
      for (const f of ev.dataTransfer.files) out.push({ file: f, path: f.name });
    }
    uploadAll(out);
  });
  document.getElementById("pick-files").addEventListener("change", (ev) => {
    uploadAll([...ev.target.files].map((f) => ({ file: f, path: f.name })));
    ev.target.value = "";
  });
  document.getElementById("pick-folder").addEventListener("change", (ev) => {
    uploadAll([...ev.target.files].map((f) => ({ file: f, path: f.webkitRelativePath || f.name })));
    ev.target.value = "";
  });

  // ---- Downloads ----

  async function downloadFile(path, token, saveAs) {
    const row = transferRow(saveAs, "down");
    try {
      const r = await fetch(base + "/files" + encodePath(path), {
        headers: { Authorization: "Bearer " + token },
      });
      if (!r.ok) throw await failure(r);
      const total = Number(r.headers.get("Content-Length") || 0);
      const reader = r.body.getReader();
      const parts = [];
      let done = 0;
      row.start(0);
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        parts.push(value);
        done += value.length;
        row.progress(done, total);
      }
      if (total && done !== total) throw new Error(`the download stopped at ${human(done)} of ${human(total)}`);
      const url = URL.createObjectURL(new Blob(parts, { type: "application/octet-stream" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = saveAs;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      row.finish("downloaded");
    } catch (e) {
      row.fail(e.message);
    }
  }

  async function downloadFolder(path, token) {
    const name = path.split("/").pop() || "files";
    try {
      const r = await fetch(base + "/files" + encodePath(path) + "/", {
        headers: { Authorization: "Bearer " + token, Accept: "application/json" },
      });
      if (!r.ok) throw await failure(r);
      const manifest = await r.json();
      for (const e of manifest.entries.filter((e) => e.kind === "file")) {
        // One download per file; the folder path is kept in the name.
        await downloadFile(path + "/" + e.path, token, name + "_" + e.path.replaceAll("/", "_"));
      }
    } catch (e) {
      transferRow(name + "/", "down").fail(e.message);
    }
  }

  for (const button of document.querySelectorAll("button.download")) {
    button.addEventListener("click", () => {
      const tr = button.closest("tr");
      const { path, token, kind } = tr.dataset;
      if (kind === "dir") downloadFolder(path, token);
      else downloadFile(path, token, path.split("/").pop());
    });
  }
  // Buttons work from now on (the stylesheet greys them out until then).
  app.dataset.ready = "true";
})();
