// Hostile MCP upstream for mcpgate's integration tests.
//
// A deliberately misbehaving MCP server (Streamable HTTP transport, session
// era, protocol "2025-11-25") used to check that the gateway survives bad
// upstreams. Plain Node.js (v20), built-in modules only.
//
// Transport: POST /mcp takes one JSON-RPC message. `initialize` answers with
// header `Mcp-Session-Id: hostile-session`; notifications and client responses
// get 202 with an empty body; `server/discover` and unknown methods get -32601
// (so the gateway falls back to initialize). GET /mcp -> 405, DELETE /mcp ->
// 200. GET /stats -> {"tools_list": <tools/list count>, "calls": <tools/call
// count>}. Every mode lists a well-behaved `echo` tool (text -> text).
//
// Environment:
//   PORT   port on 127.0.0.1 (0 = any free port). Once listening, the only
//          line written to stdout is {"port":N}.
//   MODE   one of:
//     many-tools     tools/list returns COUNT (default 200000) tools `tool_<i>`
//                    in a single page (~20 MB body).
//     endless-pages  tools/list returns one tool `page_<n>` per page and always
//                    a nextCursor (echo is on the first page).
//     bad-items      tools/list returns good_tool, draft7_tool, a 10013-char
//                    name, `zero\u200bwidth`, `p\u0430ypal` (Cyrillic a),
//                    nonsense_schema, string_root, dangling_ref,
//                    long_description (100000 chars), deep_schema (200
//                    levels), no_schema, echo; prompts good_prompt and
//                    "bad prompt!"; resource test://good.
//     deep           tools/call deep_result returns structuredContent nested
//                    DEPTH (default 100000) levels of {"a": ...}.
//     huge           tools/call huge_result, resources/read test://huge and
//                    prompts/get huge_prompt each return one text of SIZE
//                    (default 40000000) bytes of 'h'.
//     slow           tools/call slow_tool opens an SSE stream and never sends.
//     flood          tools/call flood_tool streams FLOOD (default 100000)
//                    notifications/message over SSE, with a
//                    notifications/tools/list_changed every 1000, then the
//                    result "flooded".
import http from 'node:http';

const num = (name, dflt) => Number(process.env[name] || dflt);
const COUNT = num('COUNT', 200000);
const DEPTH = num('DEPTH', 100000);
const SIZE = num('SIZE', 40000000);
const FLOOD = num('FLOOD', 100000);

const stats = { tools_list: 0, calls: 0 };

// A result that is already serialized JSON text (for bodies too big or too
// deep to build as objects).
class Raw { constructor(json) { this.json = json; } }
class RpcError extends Error { constructor(code, message) { super(message); this.code = code; } }

const OBJ = { type: 'object' };
const text = (t) => ({ content: [{ type: 'text', text: t }] });
const ECHO = { name: 'echo', description: 'Echoes its text', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } };
const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' };
const sseEvent = (msg) => `event: message\ndata: ${JSON.stringify(msg)}\n\n`;

function manyToolsList() {
  const parts = new Array(COUNT);
  for (let i = 0; i < COUNT; i++) parts[i] = `{"name":"tool_${i}","description":"Tool ${i}","inputSchema":{"type":"object"}}`;
  parts.push(JSON.stringify(ECHO));
  return new Raw(`{"tools":[${parts.join(',')}]}`);
}

function deepSchema(levels) {
  let schema = { type: 'string' };
  for (let i = 0; i < levels; i++) schema = { type: 'object', properties: { a: schema } };
  return schema;
}

// Resolves once the response can take more data, or the client is gone.
const drained = (res) => new Promise((resolve) => {
  const done = () => { res.off('drain', done); res.off('close', done); resolve(); };
  res.on('drain', done);
  res.on('close', done);
});

async function flood(res, id) {
  let gone = false;
  res.on('close', () => { gone = true; });
  res.writeHead(200, SSE_HEADERS);
  for (let i = 0; i < FLOOD && !gone; i++) {
    const params = { level: 'info', logger: 'flood', data: `message ${i}` };
    let ok = res.write(sseEvent({ jsonrpc: '2.0', method: 'notifications/message', params }));
    if ((i + 1) % 1000 === 0) {
      ok = res.write(sseEvent({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' })) && ok;
    }
    if (!ok) await drained(res);
  }
  if (!gone) res.end(sseEvent({ jsonrpc: '2.0', id, result: text('flooded') }));
}

// Per-mode behaviour: extra tools (or a whole tools/list override), tool
// call handlers, resources with readers, prompts with getters.
// A call handler returns a result, or undefined once it has taken over `res`.
let manyToolsCache;
const hugeText = () => 'h'.repeat(SIZE);
const MODES = {
  'many-tools': { toolsList: () => (manyToolsCache ??= manyToolsList()) },
  'endless-pages': {
    toolsList: (params) => {
      const n = Number(params?.cursor) || 0;
      const tools = [{ name: `page_${n}`, inputSchema: OBJ }];
      if (n === 0) tools.push(ECHO);
      return { tools, nextCursor: String(n + 1) };
    },
  },
  'bad-items': {
    tools: [
      { name: 'good_tool', inputSchema: { type: 'object', properties: { a: { type: 'string' } } } },
      {
        name: 'draft7_tool',
        inputSchema: {
          $schema: 'http://json-schema.org/draft-07/schema#',
          type: 'object',
          definitions: { n: { type: 'number' } },
          properties: { x: { $ref: '#/definitions/n' } },
        },
      },
      { name: 'x'.repeat(10013), inputSchema: OBJ },
      { name: 'zero\u200bwidth', inputSchema: OBJ },
      { name: 'p\u0430ypal', inputSchema: OBJ },
      { name: 'nonsense_schema', inputSchema: { type: 'nonsense', properties: 5 } },
      { name: 'string_root', inputSchema: { type: 'string' } },
      { name: 'dangling_ref', inputSchema: { type: 'object', properties: { a: { $ref: '#/$defs/missing' } } } },
      { name: 'long_description', description: 'd'.repeat(100000), inputSchema: OBJ },
      { name: 'deep_schema', inputSchema: deepSchema(200) },
      { name: 'no_schema', description: 'Has no inputSchema' },
    ],
    prompts: { good_prompt: () => ({ messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }] }) },
    extraPrompts: [{ name: 'bad prompt!' }],
    resources: { 'test://good': () => ({ contents: [{ uri: 'test://good', text: 'good' }] }) },
  },
  deep: {
    tools: [{ name: 'deep_result', inputSchema: OBJ }],
    calls: {
      deep_result: () => new Raw(
        `{"content":[{"type":"text","text":"deep"}],"structuredContent":${'{"a":'.repeat(DEPTH)}null${'}'.repeat(DEPTH)}}`,
      ),
    },
  },
  huge: {
    tools: [{ name: 'huge_result', inputSchema: OBJ }],
    calls: { huge_result: () => text(hugeText()) },
    prompts: { huge_prompt: () => ({ messages: [{ role: 'user', content: { type: 'text', text: hugeText() } }] }) },
    resources: { 'test://huge': () => ({ contents: [{ uri: 'test://huge', mimeType: 'text/plain', text: hugeText() }] }) },
  },
  slow: {
    tools: [{ name: 'slow_tool', inputSchema: OBJ }],
    calls: {
      slow_tool: (res) => { res.writeHead(200, SSE_HEADERS).flushHeaders(); }, // then never writes anything
    },
  },
  flood: {
    tools: [{ name: 'flood_tool', inputSchema: OBJ }],
    calls: { flood_tool: (res, id) => { flood(res, id); } },
  },
};

const MODE = process.env.MODE;
const mode = MODES[MODE];
if (!mode) {
  console.error(`hostile-server: unknown MODE ${JSON.stringify(MODE)}; expected one of ${Object.keys(MODES).join(', ')}`);
  process.exit(2);
}

const lookup = (table, key, what) => {
  const fn = table?.[key];
  if (!fn) throw new RpcError(-32602, `unknown ${what}: ${key}`);
  return fn;
};

const METHODS = {
  initialize: () => ({
    protocolVersion: '2025-11-25',
    capabilities: { tools: { listChanged: true }, resources: {}, prompts: {}, logging: {} },
    serverInfo: { name: 'hostile', version: '1' },
  }),
  ping: () => ({}),
  'tools/list': (params) => {
    stats.tools_list++;
    return mode.toolsList ? mode.toolsList(params) : { tools: [...(mode.tools ?? []), ECHO] };
  },
  'tools/call': (params, res, id) => {
    stats.calls++;
    if (params?.name === 'echo') return text(String(params.arguments?.text ?? ''));
    return lookup(mode.calls, params?.name, 'tool')(res, id);
  },
  'resources/list': () => ({ resources: Object.keys(mode.resources ?? {}).map((uri) => ({ uri, name: uri.slice('test://'.length) })) }),
  'resources/templates/list': () => ({ resourceTemplates: [] }),
  'resources/read': (params) => lookup(mode.resources, params?.uri, 'resource')(),
  'prompts/list': () => ({ prompts: [...Object.keys(mode.prompts ?? {}).map((name) => ({ name })), ...(mode.extraPrompts ?? [])] }),
  'prompts/get': (params) => lookup(mode.prompts, params?.name, 'prompt')(),
};

const sendEmpty = (res, status, headers = {}) => res.writeHead(status, { 'content-length': 0, ...headers }).end();

function sendJson(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

const rpcError = (id, code, message) => JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } });

async function handlePost(req, res) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  let msg;
  try { msg = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch {
    return sendJson(res, 400, rpcError(null, -32700, 'parse error'));
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    return sendJson(res, 400, rpcError(null, -32600, 'expected a single JSON-RPC message'));
  }
  // Notifications and responses from the client are simply accepted.
  if (typeof msg.method !== 'string' || msg.id === undefined) return sendEmpty(res, 202);
  const { id, method, params } = msg;
  let result;
  try {
    const handler = METHODS[method];
    if (!handler) throw new RpcError(-32601, `method not found: ${method}`);
    result = handler(params, res, id);
  } catch (err) {
    if (!(err instanceof RpcError)) throw err;
    return sendJson(res, 200, rpcError(id, err.code, err.message));
  }
  if (result === undefined) return; // the handler owns the response
  const json = result instanceof Raw ? result.json : JSON.stringify(result);
  const headers = method === 'initialize' ? { 'mcp-session-id': 'hostile-session' } : {};
  sendJson(res, 200, `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${json}}`, headers);
}

const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://localhost').pathname;
  if (path === '/stats' && req.method === 'GET') return sendJson(res, 200, JSON.stringify(stats));
  if (path !== '/mcp') return sendJson(res, 404, '{"error":"not found"}');
  switch (req.method) {
    case 'POST':
      return handlePost(req, res).catch((err) => {
        console.error('hostile-server:', err);
        if (!res.headersSent) sendJson(res, 500, rpcError(null, -32603, 'internal error'));
        else res.destroy();
      });
    case 'DELETE':
      return sendEmpty(res, 200);
    default: // GET (no server-initiated stream) and anything else
      return sendEmpty(res, 405, { allow: 'POST, DELETE' });
  }
});

server.listen(num('PORT', 0), '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
