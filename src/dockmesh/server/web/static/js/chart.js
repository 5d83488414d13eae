// A tiny SVG line chart: fixed-length series, drawn into an <svg> with a viewBox (no dependencies).
const NS = "http://www.w3.org/2000/svg";

export class LineChart {
  // series: [{ key, className, max: (values) => number }]
  constructor(svg, series, capacity = 120) {
    this.svg = svg;
    this.capacity = capacity;
    this.series = series.map((s) => ({ ...s, values: [] }));
    const box = svg.viewBox.baseVal;
    this.width = box.width;
    this.height = box.height;
    this.grid = document.createElementNS(NS, "g");
    this.grid.setAttribute("class", "grid");
    for (const f of [0.25, 0.5, 0.75]) {
      const line = document.createElementNS(NS, "line");
      line.setAttribute("x1", "0");
      line.setAttribute("x2", String(this.width));
      line.setAttribute("y1", String(this.height * f));
      line.setAttribute("y2", String(this.height * f));
      this.grid.append(line);
    }
    svg.append(this.grid);
    for (const s of this.series) {
      s.path = document.createElementNS(NS, "path");
      s.path.setAttribute("class", "line " + s.className);
      svg.append(s.path);
    }
    this.samples = 0;
  }

  push(point) {
    for (const s of this.series) {
      s.values.push(Number(point[s.key]) || 0);
      if (s.values.length > this.capacity) s.values.shift();
    }
    this.samples += 1;
    this.svg.dataset.samples = String(this.samples);
    this.draw();
  }

  draw() {
    const step = this.width / Math.max(1, this.capacity - 1);
    for (const s of this.series) {
      const max = Math.max(1e-9, s.max ? s.max(s.values) : Math.max(...s.values, 1));
      // Fills from the left until full, then scrolls.
      const points = s.values.map((v, i) => {
        const x = i * step;
        const y = this.height - Math.min(1, Math.max(0, v / max)) * (this.height - 2) - 1;
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      s.path.setAttribute("d", points.length ? "M" + points.join(" L") : "");
    }
  }
}
