import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { compact } from '../format.js';

export interface Series {
  /** Seconds since the epoch, one per point. */
  x: number[];
  completed: number[];
  failed: number[];
}

/** Completed and failed per second (uPlot: ~50 KB, canvas, fast to redraw every second). */
export function ThroughputChart({ data }: { data: Series }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  useEffect(() => {
    const el = box.current!;
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 200),
      height: 180,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [
        { stroke: '#64748b', grid: { stroke: '#eef2f7' }, ticks: { stroke: '#e2e8f0' } },
        { stroke: '#64748b', grid: { stroke: '#eef2f7' }, ticks: { stroke: '#e2e8f0' }, size: 48, values: (_u, vals) => vals.map((v) => compact(v)) },
      ],
      series: [
        {},
        { label: 'completed/s', stroke: '#16a34a', fill: 'rgba(22,163,74,0.12)', width: 1.5, points: { show: false } },
        { label: 'failed/s', stroke: '#dc2626', fill: 'rgba(220,38,38,0.10)', width: 1.5, points: { show: false } },
      ],
    };
    plot.current = new uPlot(opts, [data.x, data.completed, data.failed], el);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(el.clientWidth, 200), height: 180 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = undefined;
    };
  }, []);
  useEffect(() => {
    plot.current?.setData([data.x, data.completed, data.failed]);
  }, [data]);
  return <div class="chart" ref={box} role="img" aria-label="Completed and failed jobs per second over the last 15 minutes" />;
}
