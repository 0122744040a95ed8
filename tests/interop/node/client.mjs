// Drives an MCP server with the official TypeScript SDK and prints what it saw as JSON.
// usage: node client.mjs URL TOKEN streamable|sse                  (the standard exercise)
//        node client.mjs URL TOKEN streamable|sse TOOL ARGS        (call one tool with JSON arguments)
//        node client.mjs URL TOKEN streamable|sse sample TOOL ARGS (declare sampling and elicitation,
//            answer them with canned replies, call one tool)
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema, ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, token, kind, ...rest] = process.argv.slice(2);
const answer = rest[0] === "sample";
const [oneTool, oneArguments] = answer ? rest.slice(1) : rest;
const headers = { Authorization: `Bearer ${token}` };
const transport =
  kind === "sse"
    ? new SSEClientTransport(new URL(url), {
        requestInit: { headers },
        eventSourceInit: {
          fetch: (input, init) => fetch(input, { ...init, headers: { ...(init?.headers ?? {}), ...headers } }),
        },
      })
    : new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });

const asked = [];
const client = new Client(
  { name: "mcpgate-interop", version: "1.0.0" },
  answer ? { capabilities: { sampling: {}, elicitation: {} } } : {},
);
if (answer) {
  client.setRequestHandler(CreateMessageRequestSchema, async () => {
    asked.push("sampling");
    return {
      role: "assistant",
      content: { type: "text", text: "canned reply from the client" },
      model: "mcpgate-test-model",
      stopReason: "endTurn",
    };
  });
  client.setRequestHandler(ElicitRequestSchema, async () => {
    asked.push("elicitation");
    return { action: "accept", content: { username: "octocat", email: "octocat@example.com" } };
  });
}
await client.connect(transport);
if (oneTool) {
  const progress = [];
  const result = await client.callTool({ name: oneTool, arguments: JSON.parse(oneArguments) }, undefined, {
    onprogress: (update) => progress.push(update.progress),
  });
  console.log(
    JSON.stringify({
      sdk: "typescript",
      protocol: transport.protocolVersion ?? null,
      is_error: result.isError ?? false,
      text: result.content.map((c) => c.text ?? null),
      structured: result.structuredContent ?? null,
      asked,
      progress,
    }),
  );
  await client.close();
  process.exit(0);
}
const tools = await client.listTools();
const call = await client.callTool({ name: "get_weather", arguments: { city: "Paris" } });
const resources = await client.listResources();
const read = await client.readResource({ uri: "docs://guide" });
const prompts = await client.listPrompts();
const prompt = await client.getPrompt({ name: "summarise", arguments: { text: "the news", style: "formal" } });
console.log(
  JSON.stringify({
    sdk: "typescript",
    protocol: transport.protocolVersion ?? null,
    tools: tools.tools.map((t) => t.name),
    call: { is_error: call.isError ?? false, text: call.content.map((c) => c.text), structured: call.structuredContent ?? null },
    resources: resources.resources.map((r) => r.uri),
    read: read.contents.map((c) => c.text),
    prompts: prompts.prompts.map((p) => p.name),
    prompt: prompt.messages.map((m) => m.content.text),
  }),
);
await client.close();
