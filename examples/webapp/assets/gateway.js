// fallback-web's IBM HTTP Gateway page: the folder's files moved with IBM's own SDK
// (@ibm-aspera/http-gateway-sdk-js, loaded before this script as window.asperaHttpGateway),
// as an app written for IBM's HTTP Gateway would, against this app's fallbackd. Nothing
// here knows it is not IBM's server: the SDK discovers the API at /v1/info, uploads over
// its WebSocket, downloads through a hidden iframe.
"use strict";

(() => {
  const app = document.getElementById("app");
  const gw = window.asperaHttpGateway;
  const state = document.getElementById("gw-state");
  const uploadButton = document.getElementById("gw-upload");
  const picked = document.getElementById("gw-picked");
  const transfers = document.getElementById("gw-transfers");
  const FORM = "fallback-web-gateway";
  const { user, dir, uploadToken, downloadToken } = app.dataset;
  // The SDK wants an absolute URL.
  const server = new URL(app.dataset.gateway, location.href).href;
  let sources = [];

  if (!gw) {
    state.textContent = "IBM's HTTP Gateway SDK did not load: start fallback-web with --gateway-sdk FILE " +
      "(the SDK's js/http-gateway.js from npm) or let the page reach unpkg.com.";
    state.className = "error";
    return;
  }

  const human = (n) => {
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  };
  const say = (text, error) => {
    state.textContent = text;
    state.className = error ? "error" : "";
  };
  const errorText = (e) => (e && (e.message || e.reason || (e.error && e.error.message))) || String(e);

  // One line per transfer the SDK tracks, with what it says of it.
  gw.registerActivityCallback((all) => {
    for (const t of all.transfers || []) {
      let li = transfers.querySelector(`li[data-id="${CSS.escape(t.uuid)}"]`);
      if (!li) {
        li = document.createElement("li");
        li.className = "transfer";
        li.dataset.id = t.uuid;
        li.innerHTML = '<span class="name"></span> <span class="status"></span>';
        transfers.prepend(li);
      }
      const names = (t.transfer_spec && t.transfer_spec.paths || []).map((p) => p.source);
      li.querySelector(".name").textContent = names.join(", ");
      li.dataset.status = t.status;
      li.classList.toggle("ok", t.status === "completed");
      li.classList.toggle("failed", t.status === "failed");
      const bytes = `${human(t.bytes_written || 0)} of ${human(t.bytes_expected || 0)}`;
      li.querySelector(".status").textContent =
        t.status === "failed" ? `failed: ${t.error_desc || ""} (${t.error_code || ""})`
          : t.status === "completed" ? `uploaded (${bytes})` : `${t.status}: ${bytes}`;
    }
  });

  const remember = (response) => {
    for (const f of response.dataTransfer.files) {
      sources.push(f.name);
      const li = document.createElement("li");
      li.textContent = f.type === "inode/directory" ? `${f.name}/` : `${f.name} (${human(f.size)})`;
      picked.append(li);
    }
    uploadButton.disabled = sources.length === 0;
  };

  document.getElementById("gw-files").addEventListener("click", () => {
    gw.getFilesForUploadPromise(FORM).then(remember);
  });
  document.getElementById("gw-folder").addEventListener("click", () => {
    gw.getFoldersForUploadPromise(FORM).then(remember);
  });

  uploadButton.addEventListener("click", () => {
    const spec = {
      direction: "send",
      remote_host: location.hostname,
      remote_user: user,
      authentication: "token",
      token: uploadToken,
      destination_root: dir,
      paths: sources.map((source) => ({ source })),
    };
    sources = [];
    picked.replaceChildren();
    uploadButton.disabled = true;
    gw.upload(spec, FORM).catch((e) => say(`The upload could not start: ${errorText(e)}`, true));
  });

  document.getElementById("gw-download").addEventListener("click", () => {
    const paths = [...document.querySelectorAll("input.gw-pick:checked")].map((c) => ({ source: c.value }));
    if (!paths.length) {
      say("Pick the files to download first.", true);
      return;
    }
    const spec = {
      direction: "receive",
      remote_host: location.hostname,
      remote_user: user,
      authentication: "token",
      token: `Bearer ${downloadToken}`,
      paths,
    };
    const zip = document.getElementById("gw-zip").checked;
    gw.download(spec, { zipRequire: zip })
      .then(() => say(paths.length > 1 || zip ? "Downloading a zip of the picked files." : "Downloading."))
      .catch((e) => say(`The download could not start: ${errorText(e)}`, true));
  });

  gw.initHttpGateway(server, false)
    .then((info) => {
      say(`Connected: ${info.name} ${info.version}.`);
      app.dataset.gatewayVersion = info.version;
      app.dataset.ready = "true";
    })
    .catch((e) => say(`The gateway at ${server} does not answer: ${errorText(e)}`, true));
})();
