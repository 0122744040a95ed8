// Connects to an MCP endpoint with the official TypeScript SDK's OAuth support and no token of its
// own, and prints what it saw as JSON.
// usage: node oauth.mjs URL EMAIL PASSWORD TOOL ARGS
//
// The SDK's auth flow discovers the resource and authorization server metadata, registers the
// client, and asks this script (its OAuthClientProvider) to send the user to the authorization
// URL. The script plays the browser: it signs in with EMAIL and PASSWORD, allows the client and
// captures the code from the redirect, which the transport's finishAuth exchanges. Then the SDK
// connects again, lists tools and calls TOOL with ARGS (JSON).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, email, password, tool, args] = process.argv.slice(2);
const redirect = "http://127.0.0.1:8977/callback";
const seen = { authorize: null, redirects: 0 };

// The named inputs of a page's forms, decoded as a browser would submit them.
function fields(html) {
  const decode = (text) =>
    text.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos);/gi, (_, entity) => {
      const named = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" }[entity.toLowerCase()];
      if (named) return named;
      const hex = entity[1] === "x" || entity[1] === "X";
      return String.fromCodePoint(parseInt(entity.slice(hex ? 2 : 1), hex ? 16 : 10));
    });
  const found = {};
  for (const [input] of html.matchAll(/<input\b[^>]*>/g)) {
    const name = /\bname="([^"]*)"/.exec(input);
    const value = /\bvalue="([^"]*)"/.exec(input);
    if (name && !/type="submit"/.test(input)) found[decode(name[1])] = value ? decode(value[1]) : "";
  }
  return found;
}

// The user's browser: keeps cookies, never follows redirects by itself.
const jar = new Map();
async function visit(target, form) {
  const headers = { cookie: [...jar].map(([name, value]) => `${name}=${value}`).join("; ") };
  const init = { redirect: "manual", headers };
  if (form) {
    init.method = "POST";
    init.body = new URLSearchParams(form);
  }
  const reply = await fetch(new URL(target, url), init);
  for (const cookie of reply.headers.getSetCookie()) {
    const [pair] = cookie.split(";");
    const at = pair.indexOf("=");
    jar.set(pair.slice(0, at).trim(), pair.slice(at + 1));
  }
  return reply;
}

async function browse(authorize) {
  let reply = await visit(authorize);
  if (reply.status === 303 && reply.headers.get("location").startsWith("/admin/login")) {
    const form = fields(await (await visit(reply.headers.get("location"))).text());
    const signed = await visit("/admin/login", { ...form, email, password });
    if (signed.status !== 303) throw new Error(`sign-in: ${signed.status} ${await signed.text()}`);
    reply = await visit(signed.headers.get("location"));
  }
  if (reply.status === 200) {
    const form = fields(await reply.text());
    reply = await visit("/admin/oauth/authorize", { ...form, decision: "allow" });
  }
  const location = reply.headers.get("location") ?? "";
  if (reply.status !== 303 || !location.startsWith(redirect)) {
    throw new Error(`consent: ${reply.status} ${location} ${await reply.text()}`);
  }
  return new URL(location).searchParams;
}

// The client's storage, in memory.
const store = {};
const provider = {
  get redirectUrl() {
    return redirect;
  },
  get clientMetadata() {
    return {
      client_name: "TypeScript SDK",
      redirect_uris: [redirect],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  },
  clientInformation: () => store.client,
  saveClientInformation: (client) => {
    store.client = client;
  },
  tokens: () => store.tokens,
  saveTokens: (tokens) => {
    store.tokens = tokens;
  },
  redirectToAuthorization: (authorization) => {
    seen.authorize = authorization.toString();
    seen.redirects += 1;
  },
  saveCodeVerifier: (verifier) => {
    store.verifier = verifier;
  },
  codeVerifier: () => store.verifier,
};

const transport = () => new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
let client = new Client({ name: "mcpgate-oauth", version: "1.0.0" });
const first = transport();
try {
  await client.connect(first);
  throw new Error("connected without authorization");
} catch (error) {
  if (!(error instanceof UnauthorizedError)) throw error;
}
const answer = await browse(seen.authorize);
await first.finishAuth(answer.get("code"));
client = new Client({ name: "mcpgate-oauth", version: "1.0.0" });
await client.connect(transport());
const tools = await client.listTools();
const call = await client.callTool({ name: tool, arguments: JSON.parse(args) });
console.log(
  JSON.stringify({
    sdk: "typescript",
    tools: tools.tools.map((t) => t.name).sort(),
    is_error: call.isError ?? false,
    text: call.content.map((item) => item.text ?? null),
    client_id: store.client?.client_id ?? null,
    token_type: store.tokens?.token_type ?? null,
    refresh: Boolean(store.tokens?.refresh_token),
    authorize: seen.authorize,
    redirects: seen.redirects,
  }),
);
await client.close();
