// Small SVG charts, no library: a time series chart and a stacked bar chart. Each is an image
// with a text alternative (its latest or total values), and the data is also in a table nearby.

import { clock, number } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 520;
const H = 220;
const PAD = { left: 60, right: 14, top: 12, bottom: 28 };

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  children.forEach((child) => el.append(child));
  return el;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

function frame(svg, max, format, width = W) {
  const plotH = H - PAD.top - PAD.bottom;
  for (const fraction of [0, 0.5, 1]) {
    const y = PAD.top + plotH * (1 - fraction);
    svg.append(s('line', { x1: PAD.left, x2: width - PAD.right, y1: y, y2: y, class: 'grid' }));
    const label = s('text', { x: PAD.left - 6, y: y + 4, 'text-anchor': 'end', class: 'axis' });
    label.textContent = format(max * fraction);
    svg.append(label);
  }
}

// series: [{name, cls, points: [{t, v}]}] with v null where nothing was seen.
export function timeChart({ title, series, from, to, format = (v) => number(v, 2) }) {
  const max = niceMax(Math.max(0, ...series.flatMap((line) => line.points.map((p) => p.v || 0))));
  const latest = series.map((line) => {
    const seen = line.points.filter((p) => p.v !== null);
    return `${line.name} ${seen.length ? format(seen[seen.length - 1].v) : 'no data'}`;
  });
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title}: ${latest.join(', ')}`, class: 'chart' });
  frame(svg, max, format);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (t) => PAD.left + ((t - from) / (to - from)) * plotW;
  const y = (v) => PAD.top + plotH * (1 - v / max);
  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const t = from + (to - from) * fraction;
    const anchor = fraction === 0 ? 'start' : fraction === 1 ? 'end' : 'middle';
    const label = s('text', { x: x(t), y: H - 6, 'text-anchor': anchor, class: 'axis' });
    label.textContent = clock(t);
    svg.append(label);
  }
  series.forEach((line, index) => {
    let d = '';
    let pen = false;
    for (const point of line.points) {
      if (point.v === null) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${x(point.t).toFixed(1)},${y(point.v).toFixed(1)}`;
      pen = true;
    }
    svg.append(s('path', { d: d || 'M0,0', class: `line s${index}`, fill: 'none' }));
  });
  return boxed(title, svg, series.map((_, index) => [`s${index}`, latest[index]]));
}

// A chart in its figure: the caption, the drawing, and a legend of [class, text] items.
function boxed(title, svg, items) {
  const legend = document.createElement('ul');
  legend.className = 'legend';
  for (const [className, text] of items) {
    const item = document.createElement('li');
    item.className = className;
    item.textContent = text;
    legend.append(item);
  }
  const figure = document.createElement('figure');
  figure.className = 'chart-box';
  const caption = document.createElement('figcaption');
  caption.textContent = title;
  figure.append(caption, svg, legend);
  return figure;
}

// categories: ['2026-01-01', ...]; stacks: [{name, values: [per category]}]
export function barChart({ title, categories, stacks, format = (v) => number(v, 4) }) {
  const totals = categories.map((_, i) => stacks.reduce((sum, stack) => sum + (stack.values[i] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const all = totals.reduce((a, b) => a + b, 0);
  const width = 2 * W; // a whole row wide: as large as the time charts' type
  const svg = s('svg', { viewBox: `0 0 ${width} ${H}`, role: 'img', 'aria-label': `${title}: ${format(all)} in all`, class: 'chart' });
  frame(svg, max, format, width);
  const plotW = width - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(1, categories.length);
  categories.forEach((category, i) => {
    let base = 0;
    stacks.forEach((stack, index) => {
      const value = stack.values[i] || 0;
      if (!value) return;
      const height = (value / max) * plotH;
      const rect = s('rect', {
        x: PAD.left + i * slot + slot * 0.15, width: slot * 0.7,
        y: PAD.top + plotH - ((base + value) / max) * plotH, height, class: `bar s${index % 8}`,
      });
      rect.append(s('title', {}, document.createTextNode(`${stack.name} ${category}: ${format(value)}`)));
      svg.append(rect);
      base += value;
    });
    if (categories.length <= 14 || i % Math.ceil(categories.length / 10) === 0) {
      const label = s('text', { x: PAD.left + i * slot + slot / 2, y: H - 6, 'text-anchor': 'middle', class: 'axis' });
      label.textContent = category.slice(5);
      svg.append(label);
    }
  });
  return boxed(title, svg, stacks.map((stack, index) => [`s${index % 8}`, stack.name]));
}
