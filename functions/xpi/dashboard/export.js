// xpi dashboard, exports (CSV, JSON) as files: fetched like every other call (so signed in the page behind
// the API's sign-in, where a plain link could not be; or through `xpi dashboard`) and saved from a Blob,
// under the name the API gives it (Content-Disposition) or the fallback.
"use strict";

async function saveExport(path, fallbackName) {
  const response = await fetch(path, { headers: { "X-Xpi-Dashboard": "1" } });
  const blob = await response.blob();
  if (!response.ok) throw new Error(`${response.status} ${await blob.text()}`);
  const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  const link = Object.assign(document.createElement("a"), {
    href: URL.createObjectURL(blob),
    download: named ? named[1] : fallbackName,
  });
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}
