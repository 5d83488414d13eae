// Dashboard: the body refreshes as a fragment (app.js); this charts the fleet CPU it shows over time.
import { LineChart } from "./chart.js";

const svg = document.getElementById("fleet-cpu-chart");
const now = document.getElementById("fleet-cpu-now");
const chart = new LineChart(svg, [{ key: "cpu", className: "cpu", max: () => 100 }], 90);

function sample() {
  const totals = document.getElementById("totals");
  if (!totals) return;
  const cpu = Number(totals.dataset.cpuPercent);
  chart.push({ cpu });
  now.textContent = `${cpu.toFixed(1)}%`;
}

sample();
setInterval(() => {
  if (!document.hidden) sample();
}, 2000);
