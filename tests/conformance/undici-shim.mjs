// undici for the conformance package (see preload.mjs): `request` to the gateway's origin
// carries the bearer token unless the caller set an Authorization header itself.
import * as undici from 'undici';

import { origin, token } from './target.mjs';

export * from 'undici';
export default undici.default ?? undici;

export function request(url, options = {}) {
  if (new URL(String(url)).origin !== origin) return undici.request(url, options);
  const headers = { ...(options.headers ?? {}) };
  const named = Object.keys(headers).some((name) => name.toLowerCase() === 'authorization');
  if (!named) headers.authorization = `Bearer ${token}`;
  return undici.request(url, { ...options, headers });
}
