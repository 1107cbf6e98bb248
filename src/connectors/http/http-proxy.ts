/**
 * Which HTTP proxy, if any, the HTTP destination goes through: the one the environment names, as
 * curl and most command-line tools read it. `HTTPS_PROXY` for an https url (`HTTP_PROXY` when it is
 * unset), `HTTP_PROXY` for an http one, lower case first; `NO_PROXY` lists hosts reached directly
 * (`*` for all; `example.com` or `.example.com` for it and its subdomains; `host:port` for that
 * port only). The matching is undici's EnvHttpProxyAgent's, which corporate users meet in Node's fetch.
 */

/** The proxy's URL for requests to `url`, or null to connect directly. */
export function proxyFor(url: URL, env: Readonly<Record<string, string | undefined>>): URL | null {
  const read = (name: string) => env[name.toLowerCase()] || env[name] || undefined;
  const http = read('HTTP_PROXY');
  const proxy = url.protocol === 'https:' ? (read('HTTPS_PROXY') ?? http) : http;
  if (proxy === undefined || bypassed(url, read('NO_PROXY') ?? '')) return null;
  try {
    // A proxy written without a scheme (proxy.corp:3128), as curl takes it.
    return new URL(/^[a-z][a-z\d+.-]*:\/\//i.test(proxy) ? proxy : `http://${proxy}`);
  } catch {
    throw new Error(`the proxy in HTTP_PROXY or HTTPS_PROXY is not a URL — set it like http://proxy.example.com:3128`);
  }
}

function bypassed(url: URL, noProxy: string): boolean {
  if (noProxy.trim() === '*') return true;
  const hostname = url.hostname.toLowerCase();
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  return noProxy
    .split(/[,\s]/)
    .filter((entry) => entry !== '')
    .some((entry) => {
      const parsed = /^(.+):(\d+)$/.exec(entry);
      const host = (parsed ? (parsed[1] as string) : entry).replace(/^\*?\./, '').toLowerCase();
      if (parsed && Number(parsed[2]) !== port) return false;
      return hostname === host || hostname.endsWith(`.${host}`);
    });
}
