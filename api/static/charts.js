// Horizontal bar charts in inline SVG: one bar per group, scaled per currency, with the
// cap drawn behind the bar when a row carries one (`cap`).

const SVG = "http://www.w3.org/2000/svg";
const ROW = 26;
const LABEL = 120;
const WIDTH = 520;
const VALUE = 170;

function svg(tag, attrs = {}, text = "") {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text) node.textContent = text;
  return node;
}

export function formatAmount(text, currency = "") {
  const n = Number(text);
  if (!Number.isFinite(n)) return `${currency} ${text}`.trim();
  const shown = n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return `${currency} ${shown}`.trim();
}

/**
 * rows: [{label, value: Number, amount: string, currency, loans, cap?: Number}]
 * (one currency). Returns an <svg> sized by its viewBox.
 */
export function barChart(rows, title) {
  const height = rows.length * ROW + 8;
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${height}`,
    class: "bars",
    role: "img",
    "aria-label": title,
  });
  const max = Math.max(1e-9, ...rows.map((r) => Math.max(r.value, r.cap ?? 0)));
  const span = WIDTH - LABEL - VALUE;
  rows.forEach((row, i) => {
    const y = 4 + i * ROW;
    const g = svg("g", { class: "bar", "data-label": row.label });
    g.append(svg("text", { x: LABEL - 8, y: y + ROW / 2 + 4, "text-anchor": "end", class: "bar-label" }, row.label));
    if (row.cap != null) {
      const capWidth = (row.cap / max) * span;
      g.append(svg("rect", { x: LABEL, y: y + 3, width: capWidth, height: ROW - 6, class: "bar-cap" }));
      g.append(svg("line", { x1: LABEL + capWidth, x2: LABEL + capWidth, y1: y + 1, y2: y + ROW - 1, class: "bar-cap-line" }));
    }
    const width = Math.max(2, (row.value / max) * span);
    const rect = svg("rect", { x: LABEL, y: y + 6, width, height: ROW - 12, rx: 2, class: "bar-value" });
    rect.append(svg("title", {}, `${row.label}: ${formatAmount(row.amount, row.currency)} outstanding in ${row.loans} open loan(s)`));
    g.append(rect);
    const loans = `${row.loans} loan${row.loans === 1 ? "" : "s"}`;
    g.append(svg("text", { x: WIDTH - 4, y: y + ROW / 2 + 4, "text-anchor": "end", class: "bar-amount" }, `${formatAmount(row.amount)} · ${loans}`));
    chart.append(g);
  });
  return chart;
}
