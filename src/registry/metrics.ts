/**
 * Prometheus metrics in the text exposition format (prometheus.io/docs/instrumenting/exposition_formats):
 * requests, response bytes and latency per route group. Three metric families do not earn a
 * dependency; labels are a small closed set (route group, method, status), so cardinality stays flat.
 *
 * A server of several processes on one port answers a scrape for all of them: each process keeps
 * its own counts, and the one scraped renders the sum of every process's snapshot.
 */
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** One finished (or abandoned) request. */
export interface Observation {
  route: string;
  method: string;
  status: number;
  seconds: number;
  /** Body bytes sent; 0 for HEAD, 304 and responses the client abandoned. */
  bytes: number;
  /** The client went away before the response was complete. */
  aborted: boolean;
}

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

/** One process's counts as plain data (it crosses process boundaries as JSON). */
export interface MetricsSnapshot {
  requests: [string, number][];
  bytes: [string, number][];
  aborted: [string, number][];
  latency: [string, Histogram][];
  /** Unix seconds. */
  started: number;
}

export class Metrics {
  readonly #requests = new Map<string, number>();
  readonly #bytes = new Map<string, number>();
  readonly #aborted = new Map<string, number>();
  readonly #latency = new Map<string, Histogram>();
  readonly #started = Date.now() / 1000;

  observe(o: Observation): void {
    const route = `route="${o.route}"`;
    increment(this.#requests, `${route},method="${o.method}",status="${o.status}"`, 1);
    increment(this.#bytes, route, o.bytes);
    if (o.aborted) increment(this.#aborted, route, 1);
    let histogram = this.#latency.get(route);
    if (!histogram) {
      histogram = { counts: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.#latency.set(route, histogram);
    }
    LATENCY_BUCKETS.forEach((bound, i) => {
      if (o.seconds <= bound) histogram.counts[i] = (histogram.counts[i] ?? 0) + 1;
    });
    histogram.sum += o.seconds;
    histogram.count += 1;
  }

  snapshot(): MetricsSnapshot {
    return {
      requests: [...this.#requests],
      bytes: [...this.#bytes],
      aborted: [...this.#aborted],
      latency: [...this.#latency].map(([labels, h]) => [labels, { counts: [...h.counts], sum: h.sum, count: h.count }]),
      started: this.#started,
    };
  }

  /** The exposition text of this process alone. */
  render(): string {
    return renderMetrics([this.snapshot()]);
  }
}

/**
 * The exposition text for GET /metrics: the sum of the snapshots of every process serving the
 * port (counters and histograms add up; the start time is the earliest).
 */
export function renderMetrics(snapshots: MetricsSnapshot[]): string {
  const requests = new Map<string, number>();
  const bytes = new Map<string, number>();
  const aborted = new Map<string, number>();
  const latency = new Map<string, Histogram>();
  let started = Infinity;
  for (const s of snapshots) {
    for (const [k, v] of s.requests) increment(requests, k, v);
    for (const [k, v] of s.bytes) increment(bytes, k, v);
    for (const [k, v] of s.aborted) increment(aborted, k, v);
    for (const [labels, h] of s.latency) {
      const sum = latency.get(labels) ?? { counts: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 };
      sum.counts = sum.counts.map((count, i) => count + (h.counts[i] ?? 0));
      sum.sum += h.sum;
      sum.count += h.count;
      latency.set(labels, sum);
    }
    started = Math.min(started, s.started);
  }
  const lines: string[] = [];
  family(lines, 'cartorio_http_requests_total', 'counter', 'HTTP requests answered, by route group, method and status.', requests);
  family(lines, 'cartorio_http_response_bytes_total', 'counter', 'Response body bytes sent in full, by route group.', bytes);
  family(lines, 'cartorio_http_responses_aborted_total', 'counter', 'Responses the client abandoned before they were complete.', aborted);
  lines.push('# HELP cartorio_http_request_duration_seconds Time from request to the end of the response.');
  lines.push('# TYPE cartorio_http_request_duration_seconds histogram');
  for (const [labels, histogram] of latency) {
    LATENCY_BUCKETS.forEach((bound, i) => {
      lines.push(`cartorio_http_request_duration_seconds_bucket{${labels},le="${bound}"} ${histogram.counts[i] ?? 0}`);
    });
    lines.push(`cartorio_http_request_duration_seconds_bucket{${labels},le="+Inf"} ${histogram.count}`);
    lines.push(`cartorio_http_request_duration_seconds_sum{${labels}} ${histogram.sum}`);
    lines.push(`cartorio_http_request_duration_seconds_count{${labels}} ${histogram.count}`);
  }
  family(lines, 'cartorio_start_time_seconds', 'gauge', 'When this server started, in Unix seconds.', new Map([['', started]]));
  family(lines, 'cartorio_server_processes', 'gauge', 'Processes whose counts are summed here (the workers serving this port that answered).', new Map([['', snapshots.length]]));
  return lines.join('\n') + '\n';
}

function increment(map: Map<string, number>, key: string, by: number): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

function family(lines: string[], name: string, type: string, help: string, values: Map<string, number>): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [labels, value] of values) lines.push(labels === '' ? `${name} ${value}` : `${name}{${labels}} ${value}`);
}
