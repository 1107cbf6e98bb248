/** Whether `host` is a loopback address, reachable only from this machine (where `--no-auth` may serve). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}
