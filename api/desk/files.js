// Files to and from the API, for the task board, the plan steps and the lists: photos and PDFs
// sent from a phone (camera or files), attachments opened, and a list's Excel or CSV saved. Every
// file is fetched with the token in a header, never in a URL (a URL ends up in logs and history).
import { errorOf } from "./alarms.js";
import { api, session } from "./api.js";
import { lang, t } from "./i18n.js";
import { act, can, state } from "./state.js";
import { $, el, siteDate, when } from "./util.js";

/** Save (or let the browser open) the file at `path` (under /api/v1) as `name`. */
export async function saveFile(path, name) {
  const blob = await api(path, { as: "blob" });
  const link = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

/** Send a photo or file from the phone to the attachments route `path`: the body is the file
 * itself (api() sends JSON only). Resolves true once it is kept; an error shows under `key`. */
export function sendFile(key, path, file) {
  return act(key, async () => {
    const response = await fetch(`/api/v1${path}?name=${encodeURIComponent(file.name)}`, {
      method: "POST", body: file, cache: "no-store",
      headers: { Authorization: `Bearer ${session.token}`, "Content-Type": file.type || "application/octet-stream" },
    });
    if (!response.ok) {
      const detail = await response.json().catch(() => null);
      throw new Error(detail && typeof detail.detail === "string" ? detail.detail : t("attachFailed", { status: response.status }));
    }
    return true;
  });
}

/** The photos and files of a task or a plan step (`path`: its attachments route), each a link
 * that opens it, and for duty staff "上传照片或文件" from the phone; `sent` runs after an upload. */
export function fileList(key, path, files, sent) {
  const kb = (size) => `${Math.max(1, Math.round(size / 1024))} KB`;
  return el("div", { class: "attachments" },
    el("ul", { class: "files" }, files.map((file) => el("li", { "data-attachment": file.id },
      el("button", { type: "button", class: "link", onclick: () => saveFile(`${path}/${file.id}`, file.name) }, file.name),
      el("span", { class: "quiet" }, ` · ${kb(file.size)} · ${file.added_by} ${when(file.added_at, "short")}`)))),
    can("duty") ? el("label", { class: "attach" }, t("attachFile"),
      el("input", {
        type: "file", accept: "image/*,application/pdf", capture: "environment", disabled: state.busy.has(key),
        onchange: async (event) => {
          const file = event.target.files[0];
          if (!file) return;
          await sendFile(key, path, file);
          await sent();
        },
      })) : null,
    errorOf(key));
}

/** "导出 Excel" and "导出 CSV" of a list (`what`: alarms or tasks): every row the view's filters
 * (`query()`, URL parameters) match, in the desk's language, saved as a file. */
export function exportButtons(what, query) {
  const key = `export-${what}`;
  const save = (format) => act(key, async () => {
    const site = (state.site && state.site.id) || "site";
    const params = `${query()}&format=${format}&lang=${lang()}`;
    await saveFile(`/${what}/export?${params}`, `${what}-${site}-${siteDate(0)}.${format}`);
    return true;
  });
  return el("span", { class: "exports", "data-export": what },
    el("button", { type: "button", "data-format": "xlsx", disabled: state.busy.has(key), onclick: () => save("xlsx") }, t("exportXlsx")),
    el("button", { type: "button", "data-format": "csv", disabled: state.busy.has(key), onclick: () => save("csv") }, t("exportCsv")),
    errorOf(key));
}

/** A place of its own at the end of a toolbar of the page (the export buttons), made once. */
export function toolbarSlot(toolbar, id) {
  let found = document.getElementById(id);
  if (!found) {
    found = el("span", { id });
    $(toolbar).append(el("span", { class: "spacer" }), found);
  }
  return found;
}
