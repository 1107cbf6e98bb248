/** Whether `host` is a loopback address, reachable only from this machine (where `--no-auth` may serve). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** The command-line option and environment variable that choose a port a process listens on. */
export interface PortOption {
  flag: string;
  env: string;
  /** A port to suggest when the one given is not a port or cannot be listened on. */
  example: number;
}

/** `lockstep serve --port`: the API, the UI and serve's metrics. */
export const SERVE_PORT: PortOption = { flag: '--port', env: 'LOCKSTEP_PORT', example: 8080 };

/**
 * `lockstep worker|scheduler --metrics-port`: that process's metrics and health checks. 9464 is the
 * port OpenTelemetry's Prometheus exporters use, away from serve's 3000 and 8080.
 */
export const METRICS_PORT: PortOption = { flag: '--metrics-port', env: 'LOCKSTEP_METRICS_PORT', example: 9464 };
