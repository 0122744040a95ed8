// Several official TypeScript SDK clients at once against one gateway endpoint whose
// `test_sampling` tool is federated from the conformance fixture (asking on its GET stream):
// each client that can be asked must get only its own question, a client that cannot must get
// none, and each asking client's own upstream session must follow its client's session.
// usage: node affinity.mjs GATEWAY_MCP_URL TOKEN FIXTURE_BASE_URL [withdrawn]
// Prints one JSON object with what every client saw and what the fixture counted; with
// `withdrawn`, only one client's call whose question the upstream withdraws.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CreateMessageRequestSchema,
  ResourceUpdatedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";

const [url, token, fixture, only] = process.argv.slice(2);
const headers = { Authorization: `Bearer ${token}` };

async function connect(name, canSample) {
  const seen = { asked: [], received: [], updated: [], withdrawn: [] };
  const client = new Client(
    { name: `affinity-${name}`, version: "1.0.0" },
    { capabilities: canSample ? { sampling: {} } : {} },
  );
  if (canSample) {
    client.setRequestHandler(CreateMessageRequestSchema, async (request, extra) => {
      const prompt = request.params.messages.map((m) => m.content.text).join(" ");
      seen.asked.push(prompt);
      if (prompt === "withdrawn soon") {
        // Never answered: the upstream withdraws it, and the gateway must say so (5 s at most).
        const aborted = new Promise((resolve) => extra.signal.addEventListener("abort", () => resolve(true)));
        if (await Promise.race([aborted, new Promise((resolve) => setTimeout(() => resolve(false), 5000))])) {
          seen.withdrawn.push(prompt);
        }
        throw new Error("not answered");
      }
      return { role: "assistant", content: { type: "text", text: `from ${name}` }, model: "test" };
    });
  } else {
    // Anything the gateway asks a client that declared nothing is recorded, then refused.
    client.fallbackRequestHandler = async (request) => {
      seen.received.push(request.method);
      throw new Error("this client declared no capability");
    };
  }
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, async (notification) => {
    seen.updated.push(notification.params.uri);
  });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  await client.connect(transport);
  return { name, client, transport, seen };
}

async function sample(who, prompt) {
  try {
    const result = await who.client.callTool({ name: "test_sampling", arguments: { prompt } });
    return { is_error: result.isError ?? false, text: result.content.map((c) => c.text).join(" ") };
  } catch (error) {
    return { is_error: true, text: `threw: ${error.message}` };
  }
}

async function stats() {
  return (await fetch(`${fixture}/stats`)).json();
}

// Waits (up to 10 s) until the fixture has seen `count` session DELETEs.
async function deletedReaches(count) {
  for (let i = 0; i < 100; i++) {
    const now = await stats();
    if (now.deleted >= count) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

if (only === "withdrawn") {
  const solo = await connect("solo", true);
  const call = await solo.client.callTool({ name: "test_sampling_withdrawn", arguments: {} });
  console.log(
    JSON.stringify({
      withdrawn: solo.seen.withdrawn,
      withdrawn_call: call.content.map((c) => c.text).join(" "),
    }),
  );
  await solo.client.close();
  process.exit(0);
}

const before = await stats();
const [alpha, beta, gamma] = await Promise.all([
  connect("alpha", true),
  connect("beta", true),
  connect("gamma", false),
]);
const [a, b, c] = await Promise.all([
  sample(alpha, "for alpha"),
  sample(beta, "for beta"),
  sample(gamma, "for gamma"),
]);
const afterCalls = await stats();

// alpha subscribes to a federated resource: the upstream is told over alpha's own session, and
// its update (sent on that session's GET stream) reaches alpha alone.
await alpha.client.subscribeResource({ uri: "test://watched-resource" });
for (let i = 0; i < 50 && alpha.seen.updated.length === 0; i++) {
  await new Promise((resolve) => setTimeout(resolve, 100));
}

// beta's session ends: its own upstream session ends with it.
await beta.transport.terminateSession();
const betaEnded = await deletedReaches(afterCalls.deleted + 1);

// The upstream asks alpha, then withdraws its question: alpha is told (notifications/cancelled).
const withdrawnCall = await alpha.client.callTool({ name: "test_sampling_withdrawn", arguments: {} });
const withdrawn = withdrawnCall.content.map((c) => c.text).join(" ");

// The upstream forgets every session (a restart): alpha's is made again on its next call.
const beforeExpiry = await stats();
await fetch(`${fixture}/expire`, { method: "POST" });
const again = await sample(alpha, "for alpha again");
const afterExpiry = await stats();
await alpha.transport.terminateSession();
const alphaEnded = await deletedReaches(afterExpiry.deleted + 1);
await gamma.transport.terminateSession();

console.log(
  JSON.stringify({
    alpha: {
      ...a,
      asked: alpha.seen.asked,
      again,
      updated: alpha.seen.updated,
      withdrawn: alpha.seen.withdrawn,
      withdrawn_call: withdrawn,
    },
    beta: { ...b, asked: beta.seen.asked, updated: beta.seen.updated },
    gamma: { ...c, received: gamma.seen.received, updated: gamma.seen.updated },
    upstream_sessions_opened_by_calls: afterCalls.opened - before.opened,
    beta_upstream_session_ended: betaEnded,
    opened_after_expiry: afterExpiry.opened - beforeExpiry.opened,
    alpha_upstream_session_ended: alphaEnded,
  }),
);
for (const who of [alpha, beta, gamma]) await who.client.close();
process.exit(0);
