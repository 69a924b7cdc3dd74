/**
 * Prometheus metrics in the text exposition format (prometheus.io/docs/instrumenting/exposition_formats):
 * requests, response bytes and latency per route group. Three metric families do not earn a
 * dependency; labels are a small closed set (route group, method, status), so cardinality stays flat.
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

  /** The exposition text for GET /metrics. */
  render(): string {
    const lines: string[] = [];
    family(lines, 'cartorio_http_requests_total', 'counter', 'HTTP requests answered, by route group, method and status.', this.#requests);
    family(lines, 'cartorio_http_response_bytes_total', 'counter', 'Response body bytes sent in full, by route group.', this.#bytes);
    family(lines, 'cartorio_http_responses_aborted_total', 'counter', 'Responses the client abandoned before they were complete.', this.#aborted);
    lines.push('# HELP cartorio_http_request_duration_seconds Time from request to the end of the response.');
    lines.push('# TYPE cartorio_http_request_duration_seconds histogram');
    for (const [labels, histogram] of this.#latency) {
      LATENCY_BUCKETS.forEach((bound, i) => {
        lines.push(`cartorio_http_request_duration_seconds_bucket{${labels},le="${bound}"} ${histogram.counts[i] ?? 0}`);
      });
      lines.push(`cartorio_http_request_duration_seconds_bucket{${labels},le="+Inf"} ${histogram.count}`);
      lines.push(`cartorio_http_request_duration_seconds_sum{${labels}} ${histogram.sum}`);
      lines.push(`cartorio_http_request_duration_seconds_count{${labels}} ${histogram.count}`);
    }
    family(lines, 'cartorio_start_time_seconds', 'gauge', 'When this server started, in Unix seconds.', new Map([['', this.#started]]));
    return lines.join('\n') + '\n';
  }
}

function increment(map: Map<string, number>, key: string, by: number): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

function family(lines: string[], name: string, type: string, help: string, values: Map<string, number>): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [labels, value] of values) lines.push(labels === '' ? `${name} ${value}` : `${name}{${labels}} ${value}`);
}
