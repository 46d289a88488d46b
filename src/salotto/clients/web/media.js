// Shared files (soju.im/FILEHOST): what an upload sends, and what a link to one of this server's files
// is (a picture, a short video, another file). No DOM here: node's test runner loads it as it is.

// Pictures and videos the page shows inline, by the file name's extension (the server sniffed the bytes
// on upload and serves them with their type; a name that lies only loses the preview).
const IMAGE_TYPES = new Set(["png", "jpg", "jpeg", "gif", "webp"]);
const VIDEO_TYPES = new Set(["mp4", "webm"]);
// This server's files: /files/<id>/<name> (under the page's own path prefix, behind a proxy).
const FILE_PATH = /\/files\/([^/?#]+)\/([^/?#]+)$/;

// The link as one of this server's files: {kind: "image"|"video"|"file", name, href}, or null (another
// site, or not a file: shown as an ordinary link, never fetched by the page). origin: the page's;
// aliases: other origins that are this same server (the one its FILEHOST names: the page may be open as
// localhost while the server calls itself 127.0.0.1). href: the file on the page's origin, which is all
// the page's CSP lets it show.
export function ownFile(href, origin, aliases = []) {
  let url;
  try {
    url = new URL(href);
  } catch {
    return null;
  }
  if ((url.origin !== origin && !aliases.includes(url.origin)) || url.search || url.username || url.password) return null;
  const match = FILE_PATH.exec(url.pathname);
  if (!match) return null;
  let name;
  try {
    name = decodeURIComponent(match[2]);
  } catch {
    return null;
  }
  return { kind: fileKind(name), name, href: origin + url.pathname };
}

export function fileKind(name) {
  const ext = name.includes(".") ? name.slice(name.lastIndexOf(".") + 1).toLowerCase() : "";
  if (IMAGE_TYPES.has(ext)) return "image";
  if (VIDEO_TYPES.has(ext)) return "video";
  return "file";
}

// 1234567 -> "1.2 MB" (powers of 1000, as file managers show them).
export function formatBytes(n) {
  if (!Number.isFinite(n) || n < 0) return "";
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = n;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

// Content-Disposition for an upload (RFC 6266): the name as ASCII in filename= (what cannot be said
// there becomes "_"), and exactly, UTF-8 percent-encoded, in filename*=. A header value in the browser
// can only carry Latin-1, so a name such as "café ☕.png" goes this way or not at all.
export function contentDisposition(name) {
  const clean = String(name).replace(/[\x00-\x1f\x7f/\\]/g, "_").trim() || "file";
  const ascii = clean.replace(/[^\x20-\x7e]/g, "_").replace(/"/g, "'");
  const encoded = encodeURIComponent(clean).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return ascii === clean && !clean.includes('"')
    ? `attachment; filename="${ascii}"`
    : `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

// HTTP Basic credentials (the account and its password, as SASL PLAIN logs in), UTF-8 encoded.
export function basicAuth(account, password) {
  let binary = "";
  for (const byte of new TextEncoder().encode(`${account}:${password}`)) binary += String.fromCharCode(byte);
  return `Basic ${btoa(binary)}`;
}

// Where the page posts a file, from the ISUPPORT value: its path on the page's own origin. The page and
// its WebSocket are this server, which took the password already; a FILEHOST naming another host (or
// this one by another name, or plain http under an https page) never receives it from here.
export function uploadUrl(value, pageUrl) {
  if (!value) return null;
  let url;
  try {
    url = new URL(value, pageUrl);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  return new URL(url.pathname + url.search, new URL(pageUrl).origin).href;
}

// The origin the FILEHOST value names (the server's own name for itself), or null.
export function filehostOrigin(value, pageUrl) {
  try {
    return value ? new URL(value, pageUrl).origin : null;
  } catch {
    return null;
  }
}

// What the user reads when an upload did not go: the server's own words when it gave some (413 "The
// file is bigger than 25 MB"), else a sentence for the status.
export function uploadError(status, body) {
  const text = (body || "").trim().slice(0, 300);
  if (text) return text;
  if (status === 0) return "The upload did not reach the server (the connection failed).";
  if (status === 401 || status === 403) return "The server did not accept your login for uploads.";
  if (status === 413) return "The file is too big for this server.";
  if (status === 415) return "This server does not accept files of this type.";
  if (status === 507) return "There is no room left for your files on this server.";
  return `The upload failed (HTTP ${status}).`;
}

// The name a pasted picture gets (a clipboard image has no name of its own, or "image.png").
export function pastedName(type, now = new Date()) {
  const ext = { "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp" }[type] || "bin";
  const two = (n) => String(n).padStart(2, "0");
  const stamp = `${now.getFullYear()}-${two(now.getMonth() + 1)}-${two(now.getDate())}-${two(now.getHours())}${two(now.getMinutes())}${two(now.getSeconds())}`;
  return `pasted-${stamp}.${ext}`;
}
