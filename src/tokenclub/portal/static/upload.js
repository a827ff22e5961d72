// The portal's upload: the file is sent in parts, each with its SHA-256, and a progress bar
// follows the bytes on the wire. No framework; the same parts protocol as the data API.
"use strict";
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const csrf = form.dataset.csrf;
  const partBytes = Number(form.dataset.partBytes);
  const maxBytes = Number(form.dataset.maxBytes);

  async function postJson(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) throw new Error((data.error && data.error.message) || data.detail || response.statusText);
    return data;
  }

  async function sha256(blob) {
    const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function sendPart(url, blob, checksum, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("X-Part-SHA256", checksum);
      xhr.upload.onprogress = (event) => onProgress(event.loaded);
      xhr.onload = () => {
        let data = {};
        try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status >= 200 && xhr.status < 300) resolve(data);
        else reject(new Error((data.error && data.error.message) || xhr.statusText));
      };
      xhr.onerror = () => reject(new Error("network error"));
      xhr.send(blob);
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = document.getElementById("upload-file").files[0];
    if (!file) return;
    if (file.size > maxBytes) { status.textContent = file.name + ": " + file.size + " > " + maxBytes; return; }
    bar.value = 0;
    try {
      const upload = await postJson("/portal/partner/uploads", { filename: file.name, bytes: file.size, mime_type: file.type });
      const partIds = [];
      let sent = 0;
      for (let start = 0; start < file.size; start += partBytes) {
        const blob = file.slice(start, Math.min(start + partBytes, file.size));
        const part = await sendPart("/portal/partner/uploads/" + upload.id + "/parts", blob, await sha256(blob),
          (loaded) => { bar.value = Math.floor(100 * (sent + loaded) / file.size); });
        sent += blob.size;
        partIds.push(part.id);
      }
      const done = await postJson("/portal/partner/uploads/" + upload.id + "/complete", { part_ids: partIds });
      bar.value = 100;
      const link = document.createElement("a");
      link.href = "/portal/partner/contributions/" + done.file.id;
      link.id = "upload-done";
      link.textContent = done.file.id;
      status.replaceChildren(link);
    } catch (error) {
      status.textContent = String(error.message || error);
      status.className = "error";
    }
  });
})();
