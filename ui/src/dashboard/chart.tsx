/**
 * One telemetry chart (uPlot on a canvas). Its box has a fixed height, so a
 * chart that arrives or redraws never moves the page; the width follows the
 * container. The numbers are also in a visually hidden table for screen readers.
 */
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface ChartSeries {
  label: string;
  values: Array<number | null>;
  color: string;
}

export interface ChartProps {
  title: string;
  /** Bucket starts, seconds since the epoch. */
  times: number[];
  series: ChartSeries[];
  unit?: string;
}

const HEIGHT = 160;

export function Chart({ title, times, series, unit }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(240, el.clientWidth),
      height: HEIGHT,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [{}, { size: 56, values: (_u, ticks) => ticks.map((t) => `${fmt(t)}${unit ? ` ${unit}` : ""}`) }],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, spanGaps: false }))],
    };
    const u = new uPlot(opts, [times, ...series.map((s) => s.values)] as uPlot.AlignedData, el);
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(240, el.clientWidth), height: HEIGHT }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [times, series, unit]);

  const empty = times.length === 0;
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div class="chart-box" ref={box} aria-hidden="true" />
      {empty ? <p class="chart-empty">No reports in this range.</p> : null}
      <table class="sr-only">
        <caption>{title}</caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            {series.map((s) => (
              <th scope="col" key={s.label}>
                {s.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {times.slice(-10).map((t, i) => {
            const at = times.length - Math.min(10, times.length) + i;
            return (
              <tr key={t}>
                <td>{new Date(t * 1000).toLocaleTimeString()}</td>
                {series.map((s) => (
                  <td key={s.label}>{s.values[at] ?? "—"}</td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
    </figure>
  );
}

function fmt(n: number): string {
  if (Math.abs(n) >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (Math.abs(n) >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n * 10) / 10);
}
