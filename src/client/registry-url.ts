/**
 * Turns the `url` of a registry store into the origin every /v2/ request is built on.
 * Accepted: `https://host[:port]`, `http://host[:port]`, or a bare `host[:port]` — bare means
 * HTTPS, or plain HTTP when `insecure` is set (as Docker's "insecure registry" does).
 */
export function parseRegistryUrl(input: string, insecure = false): URL {
  const text = input.trim();
  if (text === '') throw new Error('registry url is empty');
  const hasScheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(text);
  let url: URL;
  try {
    url = new URL(hasScheme ? text : `${insecure ? 'http' : 'https'}://${text}`);
  } catch {
    throw new Error(`registry url "${text}" is not a valid address (expected host[:port] or http(s)://host[:port])`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`registry url "${text}" must use http:// or https://`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new Error(`registry url "${url.host}" must not carry credentials; use username and password`);
  }
  // The API lives at /v2/ on the root of the host (distribution-spec "API"); a path would be
  // silently ignored, so refuse it rather than push somewhere the user did not mean.
  if (!['', '/', '/v2', '/v2/'].includes(url.pathname) || url.search !== '' || url.hash !== '') {
    throw new Error(`registry url "${text}" must be just a host (the repository goes in "repository"), not "${url.pathname}${url.search}"`);
  }
  // Docker Hub's API is not served on its name's own host.
  if (url.hostname === 'docker.io' || url.hostname === 'index.docker.io') url.hostname = 'registry-1.docker.io';
  return new URL(url.origin);
}
