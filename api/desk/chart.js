// A point's trend as an SVG line chart: the mean as a line, the min..max of each bucket as a band,
// gaps where no samples came (a device that stopped answering is not drawn as a straight line).
// It is drawn at the size it is shown (one SVG unit is one CSS pixel), so its text keeps its font
// size on a phone instead of shrinking with the picture; dragging across it zooms into that time.
import { when } from "./util.js";

const NS = "http://www.w3.org/2000/svg";
const PAD = { left: 64, right: 16, top: 24, bottom: 28 };  // the unit sits above the top tick
const MIN_DRAG_PX = 8;  // a shorter drag is a tap (it reads a sample), not a zoom

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

/** Round steps (1, 2, 5 × 10^n) covering lo..hi in about `count` ticks. */
function ticks(lo, hi, count) {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

const numeric = (v) => (typeof v === "boolean" ? Number(v) : v);

/**
 * The chart for `history` (the API's {samples: [{ts, mean, min, max}], bucket_s}) over
 * [fromNs, toNs], `width` CSS pixels wide; `onZoom(fromNs, toNs)` is called for a drag across it.
 * Null when there is nothing numeric to draw in that time.
 */
export function trendChart(history, fromNs, toNs, unit, labels, { width, onZoom }) {
  const W = Math.max(280, Math.round(width));
  const H = Math.round(Math.min(300, Math.max(200, W * 0.6)));
  const samples = (history.samples || [])
    .map((s) => ({ ts: s.ts, mean: numeric(s.mean), min: numeric(s.min ?? s.mean), max: numeric(s.max ?? s.mean) }))
    .filter((s) => typeof s.mean === "number" && Number.isFinite(s.mean) && s.ts >= fromNs && s.ts <= toNs);
  if (!samples.length) return null;
  let lo = Math.min(...samples.map((s) => s.min));
  let hi = Math.max(...samples.map((s) => s.max));
  if (lo === hi) {
    lo -= 1;
    hi += 1;
  }
  const margin = (hi - lo) * 0.05;
  lo -= margin;
  hi += margin;
  const x = (ts) => PAD.left + ((ts - fromNs) / (toNs - fromNs)) * (W - PAD.left - PAD.right);
  const y = (v) => PAD.top + (1 - (v - lo) / (hi - lo)) * (H - PAD.top - PAD.bottom);

  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "trend", role: "img", "aria-label": labels.title });
  for (const v of ticks(lo, hi, 5)) {
    chart.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid" }));
    chart.append(svg("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, `${v}`));
  }
  if (unit) chart.append(svg("text", { x: 4, y: 14, class: "tick" }, unit));
  const spanNs = toNs - fromNs;
  const style = spanNs > 2 * 86_400e9 ? "short" : "clock";
  const labelsX = W < 500 ? 3 : 6;  // as many time labels as fit without overlapping
  for (let i = 0; i <= labelsX; i++) {
    const ts = fromNs + (spanNs * i) / labelsX;
    const label = style === "short" ? when(ts, "short").slice(0, 11) : when(ts, "clock");
    chart.append(svg("text", { x: x(ts), y: H - 8, "text-anchor": i === 0 ? "start" : i === labelsX ? "end" : "middle", class: "tick x-tick" }, label));
  }

  // Runs of samples without a gap: a gap is more than three buckets (or, raw, five median steps).
  const steps = samples.slice(1).map((s, i) => s.ts - samples[i].ts).sort((a, b) => a - b);
  const typical = history.bucket_s ? history.bucket_s * 1e9 : steps[Math.floor(steps.length / 2)] || spanNs;
  const limit = typical * (history.bucket_s ? 3 : 5);
  const runs = [[samples[0]]];
  for (let i = 1; i < samples.length; i++) {
    if (samples[i].ts - samples[i - 1].ts > limit) runs.push([]);
    runs[runs.length - 1].push(samples[i]);
  }
  for (const run of runs) {
    const top = run.map((s) => `${x(s.ts).toFixed(1)},${y(s.max).toFixed(1)}`);
    const bottom = run.slice().reverse().map((s) => `${x(s.ts).toFixed(1)},${y(s.min).toFixed(1)}`);
    chart.append(svg("polygon", { points: [...top, ...bottom].join(" "), class: "band" }));
    const line = run.map((s) => `${x(s.ts).toFixed(1)},${y(s.mean).toFixed(1)}`).join(" ");
    chart.append(svg(run.length > 1 ? "polyline" : "circle", run.length > 1
      ? { points: line, class: "mean" }
      : { cx: x(run[0].ts), cy: y(run[0].mean), r: 3, class: "mean-dot" }));
  }

  // Pointing at the chart reads the nearest sample; dragging across it selects a time to zoom into.
  const cursor = svg("line", { y1: PAD.top, y2: H - PAD.bottom, class: "cursor", visibility: "hidden" });
  const readout = svg("text", { y: PAD.top + 12, class: "readout", visibility: "hidden" });
  const selection = svg("rect", { y: PAD.top, height: H - PAD.top - PAD.bottom, class: "selection", visibility: "hidden" });
  chart.append(selection, cursor, readout);
  const plotX = (event) => {
    const box = chart.getBoundingClientRect();
    return Math.min(W - PAD.right, Math.max(PAD.left, ((event.clientX - box.left) / box.width) * W));
  };
  const timeAt = (px) => fromNs + ((px - PAD.left) / (W - PAD.left - PAD.right)) * spanNs;
  let dragFrom = null;
  chart.addEventListener("pointerdown", (event) => {
    dragFrom = plotX(event);
    chart.setPointerCapture(event.pointerId);
  });
  chart.addEventListener("pointerup", (event) => {
    if (dragFrom === null) return;
    const dragTo = plotX(event);
    const [a, b] = [Math.min(dragFrom, dragTo), Math.max(dragFrom, dragTo)];
    dragFrom = null;
    selection.setAttribute("visibility", "hidden");
    if (b - a >= MIN_DRAG_PX) onZoom(timeAt(a), timeAt(b));
  });
  chart.addEventListener("pointermove", (event) => {
    if (dragFrom !== null) {
      const px = plotX(event);
      selection.setAttribute("x", Math.min(dragFrom, px));
      selection.setAttribute("width", Math.abs(px - dragFrom));
      selection.setAttribute("visibility", "visible");
    }
    const at = timeAt(plotX(event));
    let best = samples[0];
    for (const s of samples) if (Math.abs(s.ts - at) < Math.abs(best.ts - at)) best = s;
    const px = x(best.ts);
    cursor.setAttribute("x1", px);
    cursor.setAttribute("x2", px);
    const range = best.min !== best.max ? ` (${fmt(best.min)}…${fmt(best.max)})` : "";
    readout.textContent = `${when(best.ts, "short")}  ${fmt(best.mean)}${unit ? " " + unit : ""}${range}`;
    readout.setAttribute("x", px > W / 2 ? px - 6 : px + 6);
    readout.setAttribute("text-anchor", px > W / 2 ? "end" : "start");
    cursor.setAttribute("visibility", "visible");
    readout.setAttribute("visibility", "visible");
  });
  chart.addEventListener("pointerleave", () => {
    cursor.setAttribute("visibility", "hidden");
    readout.setAttribute("visibility", "hidden");
  });
  return chart;
}

function fmt(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) >= 100 ? 1 : 3);
}
