// Preloaded (`node --import`) into the official conformance CLI for mcpgate's conformance run.
//
// 1. conformance 0.1.16 imports `globSync` from `fs`, which Node only has from 22: a resolve
//    hook (registered below, hooks.mjs) hands the conformance package a `fs` that adds it.
// 2. The CLI cannot send headers (modelcontextprotocol/conformance#453), and the gateway
//    requires a bearer token on its MCP endpoints: requests to the gateway's origin
//    (MCPGATE_ORIGIN) get `Authorization: Bearer $MCPGATE_TOKEN` unless they carry one already.
//    The SDK client uses the global `fetch`, wrapped here; the DNS-rebinding scenario uses
//    undici's `request`, which the same hook redirects to undici-shim.mjs.
import { register } from 'node:module';

import { origin, token } from './target.mjs';

register('./hooks.mjs', import.meta.url);

const plainFetch = globalThis.fetch;
globalThis.fetch = (input, init = {}) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  if (url.origin !== origin) return plainFetch(input, init);
  const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
  if (!headers.has('authorization')) headers.set('authorization', `Bearer ${token}`);
  return plainFetch(input, { ...init, headers });
};
