// An MCP server protected by OAuth (the TypeScript SDK's server over Streamable HTTP, stateless):
// every request must carry a JWT access token of the authorization server ISSUER for this
// server's own URL (RFC 8707 audience), checked against the issuer's keys; without one it
// answers 401 with WWW-Authenticate naming its protected resource metadata (RFC 9728), which
// names ISSUER. Its `whoami` tool answers the token's subject, client, id and expiry, so a test
// can see whose token the gateway presented. Prints {"port": N} once it listens.
//
// env: ISSUER   the authorization server's issuer URL
import http from "node:http";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";

const issuer = process.env.ISSUER;
const keys = createRemoteJWKSet(new URL(`${issuer}/jwks`));
let base;

function unauthorized(response, why) {
  response.writeHead(401, {
    "content-type": "application/json",
    "www-authenticate": `Bearer error="invalid_token", error_description="${why}", resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"`,
  });
  response.end(JSON.stringify({ error: "invalid_token", error_description: why }));
}

function serverFor(claims) {
  const server = new McpServer({ name: "protected", version: "1.0.0" });
  server.registerTool(
    "whoami",
    { description: "Whose token this request carried", inputSchema: {} },
    async () => ({
      content: [
        {
          type: "text",
          text: JSON.stringify({ sub: claims.sub, client_id: claims.client_id, jti: claims.jti, exp: claims.exp }),
        },
      ],
    }),
  );
  return server;
}

const listener = http.createServer(async (request, response) => {
  const url = new URL(request.url, base);
  if (request.method === "GET" && url.pathname.startsWith("/.well-known/oauth-protected-resource")) {
    response.writeHead(200, { "content-type": "application/json" });
    return response.end(JSON.stringify({ resource: `${base}/mcp`, authorization_servers: [issuer], bearer_methods_supported: ["header"] }));
  }
  if (url.pathname !== "/mcp") {
    response.writeHead(404);
    return response.end();
  }
  const header = request.headers.authorization ?? "";
  if (!header.startsWith("Bearer ")) return unauthorized(response, "no token");
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(header.slice(7), keys, { issuer, audience: `${base}/mcp` }));
  } catch (error) {
    return unauthorized(response, String(error.code ?? error.message));
  }
  let text = "";
  for await (const chunk of request) text += chunk;
  const body = text ? JSON.parse(text) : undefined;
  const server = serverFor(claims);
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  response.on("close", () => {
    transport.close();
    server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(request, response, body);
});

listener.listen(0, "127.0.0.1", () => {
  base = `http://127.0.0.1:${listener.address().port}`;
  process.stdout.write(`${JSON.stringify({ port: listener.address().port })}\n`);
});
