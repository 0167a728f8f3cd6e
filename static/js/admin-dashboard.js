// The admin dashboard's two charts: messages received, sent, bounced and rejected per hour
// (24 h) and per day (30 days), drawn with the vendored uPlot from /admin/api/dashboard.
// No inline script or style (strict CSP): colours are constants, sizes from the container.

const SERIES = [
  ["received", "Received", "#0284c7"],
  ["sent", "Sent", "#16a34a"],
  ["bounced", "Bounced", "#d97706"],
  ["rejected", "Rejected", "#dc2626"],
];

function options(uPlot, element, unit) {
  const dark = document.documentElement.classList.contains("dark");
  const axis = { stroke: dark ? "#cbd5e1" : "#334155", grid: { stroke: dark ? "#1e293b" : "#e2e8f0" } };
  return {
    width: Math.max(280, element.clientWidth),
    height: 240,
    scales: { x: { time: true } },
    axes: [{ ...axis, values: unit === "day" ? "{M}/{D}" : "{HH}:00" }, { ...axis }],
    series: [{}, ...SERIES.map(([, label, colour]) => ({
      label, stroke: colour, width: 2, fill: colour + "22", points: { show: unit === "day" },
    }))],
  };
}

async function draw() {
  const holder = document.getElementById("dashboard-charts");
  if (!holder) return;
  const { default: uPlot } = await import(holder.dataset.uplot);
  const answer = await fetch(holder.dataset.endpoint, { credentials: "same-origin" });
  if (!answer.ok) throw new Error(`dashboard data: HTTP ${answer.status}`);
  const data = await answer.json();
  const charts = [];
  for (const element of holder.querySelectorAll(".admin-chart")) {
    const series = data[element.dataset.series];
    const columns = [series.t, ...SERIES.map(([key]) => series[key])];
    charts.push([element, new uPlot(options(uPlot, element, element.dataset.unit), columns, element)]);
    element.dataset.rendered = "true";
  }
  window.addEventListener("resize", () => {
    for (const [element, chart] of charts) chart.setSize({ width: Math.max(280, element.clientWidth), height: 240 });
  });
}

draw().catch((error) => {
  const holder = document.getElementById("dashboard-charts");
  if (holder) holder.dataset.error = String(error);
  console.error(error);
});
