// Live figures from the router's /metrics, sampled by this tab every few seconds and kept as a
// history in the tab's session (sessionStorage: a reload keeps it, closing the tab ends it).
//
// Why here and not a new API: /metrics already has every figure the console shows (outcomes,
// errors, the duration histogram, concurrency, cold starts, throttles, queue depths), and
// Prometheus keeps the long history for Grafana. Counters only ever grow, so a figure "over the
// last hour" is the growth between two samples an hour apart (a counter that went down means the
// router restarted: its new value is the growth). The history starts when the tab starts
// watching, so windows are as long as what was seen; the page says since when.

import { metricsText } from './api.js';

export const INTERVAL_MS = 5000;
const KEY = 'trigger-router.metrics';
const FULL_MS = 3600 * 1000; // the last hour at every sample...
const KEEP_MS = 24 * 3600 * 1000; // ...older ones one a minute, for 24 h
const THIN_MS = 60 * 1000;
export const BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, Infinity];

// One sample of a function: a flat array, to keep the history small in sessionStorage.
export const F = {
  succeeded: 0, failed: 1, timedOut: 2, errors: 3, coldStarts: 4, throttles: 5,
  concurrency: 6, queue: 7, deadLetters: 8, busy: 9, idle: 10, consumers: 11, buckets: 12,
};
const WIDTH = F.buckets + BOUNDS.length;
const COUNTERS = [F.succeeded, F.failed, F.timedOut, F.errors, F.coldStarts, F.throttles];
const GAUGES = {
  router_concurrent_executions: F.concurrency,
  router_queue_depth: F.queue,
  router_dead_letter_queue_depth: F.deadLetters,
  router_queue_consumers: F.consumers,
};

export function parse(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    samples.push({ name: match[1], labels: labels(match[3] || ''), value: Number(match[4]) });
  }
  return samples;
}

function labels(text) {
  const found = {};
  const pattern = /(\w+)="((?:[^"\\]|\\.)*)"/g;
  let match;
  while ((match = pattern.exec(text))) {
    found[match[1]] = match[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
  }
  return found;
}

export function digest(samples) {
  const functions = {};
  const row = (name) => {
    if (!functions[name]) functions[name] = new Array(WIDTH).fill(0);
    return functions[name];
  };
  for (const { name, labels: l, value } of samples) {
    if (!l.function) continue;
    const values = row(l.function);
    if (name === 'router_invocations_total') {
      const slot = { succeeded: F.succeeded, failed: F.failed, timed_out: F.timedOut }[l.outcome];
      if (slot !== undefined) values[slot] += value;
    } else if (name === 'router_errors_total') values[F.errors] += value;
    else if (name === 'router_cold_starts_total') values[F.coldStarts] += value;
    else if (name === 'router_throttles_total') values[F.throttles] += value;
    else if (name === 'router_workers') values[l.state === 'busy' ? F.busy : F.idle] += value;
    else if (name in GAUGES) values[GAUGES[name]] += value;
    else if (name === 'router_invocation_duration_seconds_bucket') {
      const index = BOUNDS.indexOf(l.le === '+Inf' ? Infinity : Number(l.le));
      if (index >= 0) values[F.buckets + index] += value;
    }
  }
  return functions;
}

// The increase of counter `slot` from sample to sample, a drop counted as a restart.
function growth(before, after, slot) {
  const a = before ? before[slot] : 0;
  const b = after ? after[slot] : 0;
  return b >= a ? b - a : b;
}

export class History {
  constructor(samples = []) {
    this.samples = samples; // [{t, f: {function: values}}], oldest first
  }

  add(t, functions) {
    this.samples.push({ t, f: functions });
    const kept = [];
    for (const sample of this.samples) {
      if (sample.t < t - KEEP_MS) continue;
      const last = kept[kept.length - 1];
      const thin = sample.t < t - FULL_MS && last && sample.t - last.t < THIN_MS;
      if (!thin) kept.push(sample);
    }
    this.samples = kept;
  }

  get since() {
    return this.samples.length ? this.samples[0].t : null;
  }

  latest(name) {
    const last = this.samples[this.samples.length - 1];
    return last ? last.f[name] || null : null;
  }

  functions() {
    const names = new Set();
    for (const sample of this.samples) Object.keys(sample.f).forEach((n) => names.add(n));
    return [...names];
  }

  // Sums of the counters' growth (and of each histogram bucket's) over (from, to].
  totals(name, from, to = Infinity) {
    const sums = new Array(WIDTH).fill(0);
    let previous = null;
    for (const sample of this.samples) {
      const values = sample.f[name];
      if (sample.t > from && sample.t <= to && previous !== null) {
        for (const slot of COUNTERS) sums[slot] += growth(previous, values, slot);
        for (let i = 0; i < BOUNDS.length; i += 1) sums[F.buckets + i] += growth(previous, values, F.buckets + i);
      }
      if (sample.t > to) break;
      previous = values || null;
      if (previous === null) previous = new Array(WIDTH).fill(0); // not exported yet: zero
    }
    return summary(sums);
  }

  // `points` steps over (from, to]: counters as their growth in each step, gauges at its end.
  series(name, from, to, points) {
    const step = (to - from) / points;
    const out = [];
    for (let i = 0; i < points; i += 1) {
      const start = from + i * step;
      const end = start + step;
      const sums = this.totals(name, start, end);
      const gauge = this.at(name, end);
      out.push({ t: end, seen: this.since !== null && end > this.since, ...sums, gauge });
    }
    return out;
  }

  at(name, t) {
    let found = null;
    for (const sample of this.samples) {
      if (sample.t > t) break;
      found = sample.f[name] || null;
    }
    return found;
  }

  toJSON() {
    return this.samples;
  }
}

function summary(sums) {
  const buckets = sums.slice(F.buckets);
  return {
    invocations: sums[F.succeeded] + sums[F.failed] + sums[F.timedOut],
    succeeded: sums[F.succeeded],
    errors: sums[F.errors],
    coldStarts: sums[F.coldStarts],
    throttles: sums[F.throttles],
    p50: quantile(0.5, buckets),
    p90: quantile(0.9, buckets),
    p99: quantile(0.99, buckets),
  };
}

// As Prometheus's histogram_quantile: interpolated within the bucket the rank falls in.
// `counts` are cumulative per bucket bound (le), as exported.
export function quantile(q, counts) {
  const total = counts[counts.length - 1];
  if (!total) return null;
  const rank = q * total;
  for (let i = 0; i < counts.length; i += 1) {
    if (counts[i] >= rank) {
      if (BOUNDS[i] === Infinity) return BOUNDS[i - 1];
      const lower = i === 0 ? 0 : BOUNDS[i - 1];
      const below = i === 0 ? 0 : counts[i - 1];
      const inBucket = counts[i] - below;
      return inBucket ? lower + (BOUNDS[i] - lower) * ((rank - below) / inBucket) : BOUNDS[i];
    }
  }
  return null;
}

// The one sampler of the page: started at sign-in, stopped at sign-out.
export const sampler = {
  history: new History(),
  listeners: new Set(),
  timer: null,
  error: null,

  start() {
    if (this.timer) return;
    try {
      this.history = new History(JSON.parse(sessionStorage.getItem(KEY) || '[]'));
    } catch {
      this.history = new History();
    }
    this.tick();
    this.timer = setInterval(() => this.tick(), INTERVAL_MS);
  },

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.history = new History();
  },

  async tick() {
    try {
      this.history.add(Date.now(), digest(parse(await metricsText())));
      this.error = null;
      this.save();
    } catch (error) {
      this.error = error;
    }
    this.listeners.forEach((listener) => listener(this.history));
  },

  save() {
    for (;;) {
      try {
        sessionStorage.setItem(KEY, JSON.stringify(this.history));
        return;
      } catch {
        // Over the storage quota: keep the newer half.
        if (this.history.samples.length < 2) return;
        this.history.samples = this.history.samples.slice(this.history.samples.length / 2);
      }
    }
  },

  subscribe(listener) {
    this.listeners.add(listener);
    if (this.history.samples.length) listener(this.history);
    return () => this.listeners.delete(listener);
  },
};
