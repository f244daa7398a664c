// Two small SVG charts for the demos computed in the browser (a redraw is a few milliseconds, so a chart can
// follow a slider while it is dragged). They keep the app's chart style: a left-aligned title, axis titles with
// units, the same colours as llmlab/plots.py, and the theme's text colour (currentColor).

const COLORS = { accent: "#4c78a8", highlight: "#f58518", muted: "#9aa5b1", green: "#54a24b", red: "#e45756" };
const SERIES = ["#4c78a8", "#54a24b", "#b279a2", "#72b7b2", "#e45756"]; // orange is the highlight, never a series

function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function percent(p, digits = 1) {
  return `${(100 * p).toFixed(digits)}%`;
}

function niceTicks(lo, hi, count = 5) {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toFixed(10));
  return ticks;
}

function svgOpen(width, height, title) {
  return (
    `<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(title)}">` +
    `<text class="title" x="4" y="18">${esc(title)}</text>`
  );
}

function legend(items, x, y, width) {
  // items: [{name, color, dash, line}] in rows that fit `width`; returns {svg, height} (height of the rows)
  let out = "";
  let cx = x, cy = y;
  for (const item of items) {
    const w = 32 + 6.6 * item.name.length;
    if (cx > x && cx + w > width) {
      cx = x;
      cy += 18;
    }
    const dash = item.dash ? ` stroke-dasharray="${item.dash}"` : "";
    out += item.line
      ? `<line x1="${cx}" y1="${cy - 4}" x2="${cx + 18}" y2="${cy - 4}" stroke="${item.color}" stroke-width="2.5"${dash}/>`
      : `<rect x="${cx + 4}" y="${cy - 10}" width="11" height="11" fill="${item.color}"/>`;
    out += `<text class="legend" x="${cx + 23}" y="${cy}">${esc(item.name)}</text>`;
    cx += w;
  }
  return { svg: out, height: cy - y + 18 };
}

function fitted(label, chars) {
  // a label cut to `chars` characters (its whole text stays in the tooltip)
  return label.length <= chars ? label : label.slice(0, Math.max(1, chars - 1)) + "…";
}

function barChart({ title, xTitle, yTitle, labels, series, width, xMax = 1, textOf = (v) => percent(v) }) {
  // Horizontal grouped bars, first label on top: series = [{name, values, color, text: bool}]
  const left = Math.min(Math.floor(width * 0.45), 24 + 6.4 * Math.max(8, ...labels.map((l) => l.length)));
  const chars = Math.floor((left - 14) / 6.4);
  const rowH = 12 + 12 * series.length;
  const key = legend(series.map((s) => ({ name: s.name, color: s.color })), 24, 40, width);
  const top = 36 + key.height;
  const plotW = Math.max(80, width - left - 60);
  const height = top + rowH * labels.length + 70;
  const x = (v) => left + (Math.max(0, Math.min(v, xMax)) / xMax) * plotW;
  let svg = svgOpen(width, height, title) + key.svg;
  for (const t of niceTicks(0, xMax, 5)) {
    svg += `<line class="grid" x1="${x(t)}" y1="${top - 4}" x2="${x(t)}" y2="${top + rowH * labels.length}"/>`;
    svg += `<text class="tick" x="${x(t)}" y="${top + rowH * labels.length + 16}" text-anchor="middle">${esc(textOf(t).replace(".0%", "%"))}</text>`;
  }
  labels.forEach((label, row) => {
    const y0 = top + row * rowH + 6;
    svg += `<text class="tick" x="${left - 8}" y="${y0 + (rowH - 6) / 2 + 4}" text-anchor="end">${esc(fitted(label, chars))}<title>${esc(label)}</title></text>`;
    series.forEach((s, n) => {
      const v = s.values[row];
      const y = y0 + n * 12;
      svg += `<rect x="${left}" y="${y}" width="${Math.max(0, x(v) - left)}" height="10" fill="${s.colors ? s.colors[row] : s.color}"><title>${esc(`${s.name}: ${textOf(v)}`)}</title></rect>`;
      if (s.text) svg += `<text class="value" x="${x(v) + 4}" y="${y + 9}">${esc(textOf(v))}</text>`;
    });
  });
  svg += `<text class="axis" x="${left + plotW / 2}" y="${height - 28}" text-anchor="middle">${esc(xTitle)}</text>`;
  svg += `<text class="axis" transform="translate(12 ${top + (rowH * labels.length) / 2}) rotate(-90)" text-anchor="middle">${esc(yTitle)}</text>`;
  return svg + "</svg>";
}

function lineChart({ title, xTitle, yTitle, y2Title, width, height = 380, xLog = false, xRange, yRange, y2Range, series, markers = [], vline, y2Format = (v) => v }) {
  // Lines (and markers) against x on one or two y axes: series = [{name, xs, ys, color, dash, axis: 1|2}]
  const left = 64, right = y2Title ? 64 : 20, bottom = 70;
  const key = legend(series.map((s) => ({ name: s.name, color: s.color, dash: s.dash, line: true })), left, 40, width);
  const top = 40 + key.height;
  height += key.height - 18; // the plot keeps its height whatever the legend's rows
  const plotW = Math.max(100, width - left - right), plotH = height - top - bottom;
  const tx = xLog ? Math.log10 : (v) => v;
  const [x0, x1] = xRange.map(tx);
  const x = (v) => left + ((tx(v) - x0) / (x1 - x0 || 1)) * plotW;
  const y = (v, axis = 1) => {
    const [lo, hi] = axis === 2 ? y2Range : yRange;
    return top + plotH - ((Math.max(lo, Math.min(hi, v)) - lo) / (hi - lo || 1)) * plotH;
  };
  let svg = svgOpen(width, height, title) + key.svg;
  for (const t of niceTicks(...yRange)) {
    svg += `<line class="grid" x1="${left}" y1="${y(t)}" x2="${left + plotW}" y2="${y(t)}"/>`;
    svg += `<text class="tick" x="${left - 6}" y="${y(t) + 4}" text-anchor="end">${esc(+t.toFixed(6))}</text>`;
  }
  if (y2Title) {
    for (const t of niceTicks(...y2Range)) {
      svg += `<text class="tick" x="${left + plotW + 6}" y="${y(t, 2) + 4}">${esc(y2Format(t))}</text>`;
    }
  }
  const xticks = xLog
    ? Array.from({ length: Math.floor(x1) - Math.ceil(x0) + 1 }, (_, i) => 10 ** (Math.ceil(x0) + i))
    : niceTicks(...xRange);
  for (const t of xticks) {
    svg += `<line class="grid" x1="${x(t)}" y1="${top}" x2="${x(t)}" y2="${top + plotH}"/>`;
    svg += `<text class="tick" x="${x(t)}" y="${top + plotH + 16}" text-anchor="middle">${esc(+t.toPrecision(6))}</text>`;
  }
  if (vline !== undefined) {
    svg += `<line x1="${x(vline)}" y1="${top}" x2="${x(vline)}" y2="${top + plotH}" stroke="${COLORS.muted}" stroke-dasharray="5 4"/>`;
  }
  for (const s of series) {
    const points = s.xs.map((xv, i) => `${x(xv).toFixed(1)},${y(s.ys[i], s.axis).toFixed(1)}`).join(" ");
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : "";
    svg += `<polyline class="series" points="${points}" fill="none" stroke="${s.color}" stroke-width="${s.width || 2.2}"${dash}/>`;
  }
  for (const m of markers) {
    const cx = x(m.x), cy = y(m.y, m.axis);
    svg += m.open
      ? `<circle class="marker" cx="${cx}" cy="${cy}" r="6.5" fill="none" stroke="${m.color}" stroke-width="2.5"><title>${esc(m.name)}</title></circle>`
      : `<path class="marker" d="M ${cx} ${cy - 8} L ${cx + 8} ${cy} L ${cx} ${cy + 8} L ${cx - 8} ${cy} Z" fill="${m.color}"><title>${esc(m.name)}</title></path>`;
  }
  svg += `<text class="axis" x="${left + plotW / 2}" y="${height - 30}" text-anchor="middle">${esc(xTitle)}</text>`;
  svg += `<text class="axis" transform="translate(14 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(yTitle)}</text>`;
  if (y2Title) {
    svg += `<text class="axis" transform="translate(${width - 10} ${top + plotH / 2}) rotate(90)" text-anchor="middle">${esc(y2Title)}</text>`;
  }
  return svg + "</svg>";
}
