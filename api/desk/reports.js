// Reports on the desk: the morning briefing, the shift handover and the monthly report, fetched
// with the token in the header and shown in a sandboxed frame (no scripts run in it), to print or
// to download as Excel, CSV or Markdown.
import { api } from "./api.js";
import { lang, t } from "./i18n.js";
import { state } from "./state.js";
import { $, el, siteDate, siteIso } from "./util.js";

const report = { kind: "briefing", loaded: "", loading: false, error: "" };

function query(kind, format) {
  const params = new URLSearchParams({ format, lang: lang() });
  const date = $("#report-date").value;
  const since = $("#report-since").value;
  const month = $("#report-month").value;
  if (kind === "briefing" && date) params.set("date", date);
  if (kind === "handover" && since) params.set("since", siteIso(since));
  if (kind === "monthly" && month) params.set("month", month);
  return `/reports/${kind}?${params}`;
}

/** Fill in the defaults the first time the tab opens: last month. The briefing's date stays empty,
 * so that the server's default applies: since yesterday's morning meeting up to now, which holds
 * last night (a calendar day would leave out the night's 05:39 entrapment). */
export function prepareReports() {
  if (!$("#report-month").value) {
    const [year, month] = siteDate(0).split("-").map(Number);
    $("#report-month").value = month === 1 ? `${year - 1}-12` : `${year}-${String(month - 1).padStart(2, "0")}`;
  }
  if (!report.loaded && !report.loading) showReport();
}

export async function showReport() {
  const kind = $("#report-kind").value;
  report.kind = kind;
  report.loading = true;
  report.error = "";
  renderReports();
  try {
    const html = await api(query(kind, "html"), { as: "text" });
    $("#report").srcdoc = html;
    report.loaded = kind;
  } catch (err) {
    report.error = err.message;
    report.loaded = "";
    $("#report").srcdoc = "";
  }
  report.loading = false;
  renderReports();
}

/** The report is written in the desk's language: read it again in the new one. */
export function languageChanged() {
  if (report.loaded) showReport();
}

export function printReport() {
  const frame = $("#report");
  if (frame.contentWindow) frame.contentWindow.print();
}

export async function downloadReport(format) {
  const kind = $("#report-kind").value;
  try {
    const blob = await api(query(kind, format), { as: "blob" });
    const url = URL.createObjectURL(blob);
    const name = `${kind}-${(state.site && state.site.id) || "site"}-${siteDate(0)}.${format}`;
    const link = el("a", { href: url, download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (err) {
    report.error = err.message;
    renderReports();
  }
}

export function renderReports() {
  const kind = $("#report-kind").value;
  $("#report-date-label").hidden = kind !== "briefing";
  $("#report-since-label").hidden = kind !== "handover";
  $("#report-month-label").hidden = kind !== "monthly";
  $("#report-print").disabled = !report.loaded || report.loading;
  const status = $("#report-status");
  status.className = report.error ? "error" : "quiet";
  status.textContent = report.error || (report.loading ? t("loading") : "");
  $("#report").hidden = !report.loaded;
}
