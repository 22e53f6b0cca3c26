// The page's script: a live filter, uploads (picker and drag and drop, in
// resumable chunks, each file hashed with BLAKE3 as it goes so the server
// can verify it whole), rename and delete. Without it the page still
// browses and downloads.
"use strict";
(function () {
  const body = document.body;
  const csrf = body.dataset.csrf;
  const writable = body.dataset.writable === "true";
  const chunkSize = Number(body.dataset.chunk) || 1048576;

  // The filter hides rows as one types (the form's ?q= works without us).
  const filter = document.getElementById("filter");
  if (filter) {
    filter.addEventListener("input", () => {
      const needle = filter.value.toLowerCase();
      for (const row of document.querySelectorAll("#listing tbody tr[data-name]")) {
        row.hidden = needle !== "" && !row.dataset.name.toLowerCase().includes(needle);
      }
    });
  }

  if (!writable) return;

  async function post(url, fields) {
    const form = new URLSearchParams(fields);
    form.set("csrf", csrf);
    const response = await fetch(url, {
      method: "POST",
      headers: { "X-CSRF-Token": csrf, "Content-Type": "application/x-www-form-urlencoded" },
      body: form,
    });
    if (!response.ok) throw new Error((await response.text()).trim() || response.statusText);
  }

  for (const row of document.querySelectorAll("#listing tbody tr[data-name]")) {
    const link = row.querySelector("td.name a");
    const name = row.dataset.name;
    const folder = row.dataset.kind === "folder";
    const rename = row.querySelector("button.rename");
    const remove = row.querySelector("button.delete");
    rename.hidden = false;
    remove.hidden = false;
    rename.addEventListener("click", async () => {
      const to = window.prompt("Rename or move \u201c" + name + "\u201d to:", name);
      if (to === null || to === "" || to === name) return;
      try {
        await post(link.getAttribute("href") + "?rename", { to });
        location.reload();
      } catch (error) {
        window.alert("Not renamed: " + error.message);
      }
    });
    remove.addEventListener("click", async () => {
      const what = folder ? "the folder \u201c" + name + "\u201d and everything in it" : "\u201c" + name + "\u201d";
      if (!window.confirm("Delete " + what + "?")) return;
      try {
        await post(link.getAttribute("href") + "?delete", {});
        location.reload();
      } catch (error) {
        window.alert("Not deleted: " + error.message);
      }
    });
  }

  const progress = document.getElementById("progress");
  const input = document.getElementById("file-input");
  document.getElementById("pick").hidden = false;
  document.getElementById("drop-hint").hidden = false;

  function human(bytes) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let unit = 0;
    while (bytes >= 1024 && unit < units.length - 1) { bytes /= 1024; unit++; }
    return (unit === 0 ? bytes : bytes.toFixed(1)) + " " + units[unit];
  }

  // Sends one chunk; resolves to the server's answer {status, offset, done}.
  function send(url, file, offset, end, digest, onProgress) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", url);
      request.setRequestHeader("X-CSRF-Token", csrf);
      request.setRequestHeader("Upload-Offset", String(offset));
      request.setRequestHeader("Upload-Length", String(file.size));
      if (digest) request.setRequestHeader("Upload-Digest", digest);
      request.setRequestHeader("Content-Type", "application/octet-stream");
      request.upload.onprogress = (event) => onProgress(offset + event.loaded);
      request.onload = () => {
        let answer = {};
        try { answer = JSON.parse(request.responseText); } catch (_) { /* a refusal's text */ }
        if (request.status === 200 || request.status === 201 || request.status === 409 && "offset" in answer) {
          resolve({ status: request.status, offset: answer.offset, done: answer.done === true });
        } else {
          const error = new Error(request.responseText.trim() || "HTTP " + request.status);
          error.final = true;
          reject(error);
        }
      };
      request.onerror = () => reject(new Error("the connection was lost"));
      request.send(end > offset ? file.slice(offset, end) : new Blob([]));
    });
  }

  async function read(file, start, end) {
    return new Uint8Array(await file.slice(start, end).arrayBuffer());
  }

  // Hashes the file's first `length` bytes afresh (after a jump).
  async function hashPrefix(file, length) {
    const hasher = new Blake3();
    for (let at = 0; at < length; at += 4 * chunkSize) {
      hasher.update(await read(file, at, Math.min(length, at + 4 * chunkSize)));
    }
    return hasher;
  }

  async function upload(file) {
    const item = document.createElement("li");
    const label = document.createElement("span");
    const bar = document.createElement("progress");
    const status = document.createElement("span");
    label.textContent = file.name;
    bar.max = Math.max(file.size, 1);
    bar.value = 0;
    status.className = "status";
    item.append(label, bar, status);
    progress.append(item);
    const url = encodeURIComponent(file.name) + "?upload";
    const show = (sent) => {
      bar.value = sent;
      status.textContent = human(sent) + " of " + human(file.size);
    };
    let hasher = new Blake3();
    let hashed = 0;
    let offset = 0;
    let failures = 0;
    // An empty chunk first: the server says where an earlier attempt stopped.
    let answer = file.size === 0 ? { offset: 0 } : null;
    while (true) {
      try {
        if (answer === null) {
          answer = await send(url, file, 0, 0, null, show);
        } else {
          const end = Math.min(file.size, offset + chunkSize);
          if (hashed !== offset) {
            hasher = await hashPrefix(file, offset);
            hashed = offset;
          }
          hasher.update(await read(file, offset, end));
          hashed = end;
          const digest = end === file.size ? hasher.hex() : null;
          answer = await send(url, file, offset, end, digest, show);
        }
        failures = 0;
      } catch (error) {
        if (error.final || ++failures > 8) {
          item.className = "failed";
          status.textContent = "not uploaded: " + error.message + (error.final ? "" : " (choose the file again to resume)");
          return false;
        }
        status.textContent = "connection lost; retrying\u2026";
        await new Promise((wake) => setTimeout(wake, Math.min(8000, 250 * 2 ** failures)));
        answer = null;
        continue;
      }
      if (answer.done) break;
      if (answer.status === 409 && answer.offset > 0 && offset === 0) {
        item.dataset.resumedAt = String(answer.offset);
        label.textContent = file.name + " (resuming at " + human(answer.offset) + ")";
      }
      offset = answer.offset;
      show(offset);
    }
    show(file.size);
    item.className = "done";
    status.textContent = "uploaded, " + human(file.size) + ", verified";
    return true;
  }

  async function uploadAll(files) {
    let all = true;
    for (const file of files) all = (await upload(file)) && all;
    if (all) {
      const done = document.createElement("li");
      done.className = "all-done";
      done.textContent = "All uploaded. ";
      const again = document.createElement("a");
      again.href = "";
      again.textContent = "Show them";
      done.append(again);
      progress.append(done);
    }
  }

  input.addEventListener("change", () => {
    const files = Array.from(input.files);
    input.value = "";
    uploadAll(files);
  });
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    body.classList.add("dropping");
  });
  document.addEventListener("dragleave", (event) => {
    if (event.target === document.documentElement || event.relatedTarget === null) body.classList.remove("dropping");
  });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    body.classList.remove("dropping");
    const files = Array.from(event.dataTransfer.files);
    if (files.length > 0) uploadAll(files);
  });
})();
