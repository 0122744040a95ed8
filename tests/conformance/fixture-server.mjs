// The fixture upstream MCP server behind mcpgate's conformance run: it offers every tool,
// resource, template and prompt the official conformance suite's server scenarios call
// (`test_simple_text`, `test://static-text`, `test_simple_prompt`, …), so that the suite can be
// run against a virtual server of the gateway whose items are all federated from here.
//
// Written on the official TypeScript SDK's low-level `Server` (pinned in
// tests/interop/node/package.json). Streamable HTTP with sessions (the era the gateway keeps a
// pooled session with), on 127.0.0.1 and $PORT (default: a free port), printed as
// `{"port": N}` on stdout once it listens.
import { randomUUID } from 'node:crypto';
import http from 'node:http';

import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  CreateMessageResultSchema,
  ElicitResultSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';

// A 1×1 red PNG and a 44-byte WAV header with two silent samples.
const PNG =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const WAV = Buffer.concat([
  Buffer.from('RIFF', 'ascii'),
  le32(40),
  Buffer.from('WAVEfmt ', 'ascii'),
  le32(16),
  le16(1), // PCM
  le16(1), // mono
  le32(8000),
  le32(16000),
  le16(2),
  le16(16),
  Buffer.from('data', 'ascii'),
  le32(4),
  Buffer.alloc(4),
]).toString('base64');

function le32(n) {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
function le16(n) {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (t) => ({ type: 'text', text: t });
const noArgs = { type: 'object', properties: {} };

// ---- tools ------------------------------------------------------------------------------

const tools = [
  {
    name: 'test_simple_text',
    description: 'Returns one text block',
    inputSchema: noArgs,
    run: async () => ({ content: [text('This is a simple text response for testing.')] }),
  },
  {
    name: 'test_image_content',
    description: 'Returns a PNG image',
    inputSchema: noArgs,
    run: async () => ({ content: [{ type: 'image', data: PNG, mimeType: 'image/png' }] }),
  },
  {
    name: 'test_audio_content',
    description: 'Returns a WAV clip',
    inputSchema: noArgs,
    run: async () => ({ content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }] }),
  },
  {
    name: 'test_embedded_resource',
    description: 'Returns an embedded text resource',
    inputSchema: noArgs,
    run: async () => ({
      content: [
        {
          type: 'resource',
          resource: {
            uri: 'test://embedded-resource',
            mimeType: 'text/plain',
            text: 'This is an embedded resource content.',
          },
        },
      ],
    }),
  },
  {
    name: 'test_multiple_content_types',
    description: 'Returns text, an image and an embedded resource',
    inputSchema: noArgs,
    run: async () => ({
      content: [
        text('Multiple content types test:'),
        { type: 'image', data: PNG, mimeType: 'image/png' },
        {
          type: 'resource',
          resource: {
            uri: 'test://mixed-content-resource',
            mimeType: 'application/json',
            text: JSON.stringify({ test: 'data', value: 123 }),
          },
        },
      ],
    }),
  },
  {
    name: 'test_tool_with_logging',
    description: 'Sends three log messages while it runs',
    inputSchema: noArgs,
    run: async (_args, extra) => {
      const log = (data) =>
        extra.sendNotification({
          method: 'notifications/message',
          params: { level: 'info', logger: 'fixture', data },
        });
      await log('Tool execution started');
      await sleep(50);
      await log('Tool processing data');
      await sleep(50);
      await log('Tool execution completed');
      return { content: [text('Logging test completed')] };
    },
  },
  {
    name: 'test_error_handling',
    description: 'Always fails',
    inputSchema: noArgs,
    run: async () => ({
      isError: true,
      content: [text('This tool intentionally returns an error for testing')],
    }),
  },
  {
    name: 'test_tool_with_progress',
    description: 'Reports progress 0, 50 and 100 of 100',
    inputSchema: noArgs,
    run: async (_args, extra, request) => {
      const token = request.params._meta?.progressToken;
      for (const progress of [0, 50, 100]) {
        if (token !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken: token, progress, total: 100, message: `${progress}%` },
          });
        }
        if (progress < 100) await sleep(50);
      }
      return { content: [text('Progress test completed')] };
    },
  },
  {
    name: 'test_sampling',
    description: 'Asks the client to sample an LLM',
    inputSchema: {
      type: 'object',
      properties: { prompt: { type: 'string', description: 'The prompt to send' } },
      required: ['prompt'],
    },
    run: async (args, extra) => {
      const result = await extra.sendRequest(
        {
          method: 'sampling/createMessage',
          params: {
            messages: [{ role: 'user', content: text(String(args.prompt)) }],
            maxTokens: 100,
          },
        },
        CreateMessageResultSchema,
      );
      const answer = result.content?.type === 'text' ? result.content.text : JSON.stringify(result.content);
      return { content: [text(`LLM response: ${answer}`)] };
    },
  },
  {
    name: 'test_sampling_withdrawn',
    description: 'Asks the client to sample, then withdraws the question (notifications/cancelled)',
    inputSchema: noArgs,
    run: async (_args, extra) => {
      const controller = new AbortController();
      setTimeout(() => controller.abort('no longer needed'), 300);
      try {
        await extra.sendRequest(
          {
            method: 'sampling/createMessage',
            params: { messages: [{ role: 'user', content: text('withdrawn soon') }], maxTokens: 10 },
          },
          CreateMessageResultSchema,
          { signal: controller.signal },
        );
        return { content: [text('answered')] };
      } catch {
        return { content: [text('withdrawn')] };
      }
    },
  },
  {
    name: 'test_elicitation',
    description: 'Asks the user for a name and an email address',
    inputSchema: {
      type: 'object',
      properties: { message: { type: 'string', description: 'The message to show' } },
      required: ['message'],
    },
    run: async (args, extra) => {
      const result = await elicit(extra, String(args.message), {
        type: 'object',
        properties: {
          username: { type: 'string', description: "User's response" },
          email: { type: 'string', description: "User's email address" },
        },
        required: ['username', 'email'],
      });
      return {
        content: [
          text(`User response: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`),
        ],
      };
    },
  },
  {
    name: 'test_elicitation_sep1034_defaults',
    description: 'Elicits every primitive type with a default (SEP-1034)',
    inputSchema: noArgs,
    run: async (_args, extra) =>
      elicitationDone(
        await elicit(extra, 'Please review and update the form fields with defaults', {
          type: 'object',
          properties: {
            name: { type: 'string', description: 'User name', default: 'John Doe' },
            age: { type: 'integer', description: 'User age', default: 30 },
            score: { type: 'number', description: 'User score', default: 95.5 },
            status: {
              type: 'string',
              description: 'User status',
              enum: ['active', 'inactive', 'pending'],
              default: 'active',
            },
            verified: { type: 'boolean', description: 'Verification status', default: true },
          },
          required: [],
        }),
      ),
  },
  {
    name: 'test_elicitation_sep1330_enums',
    description: 'Elicits every enum variant (SEP-1330)',
    inputSchema: noArgs,
    run: async (_args, extra) =>
      elicitationDone(
        await elicit(extra, 'Please select options from the enum fields', {
          type: 'object',
          properties: {
            untitledSingle: {
              type: 'string',
              description: 'Select one option',
              enum: ['option1', 'option2', 'option3'],
            },
            titledSingle: {
              type: 'string',
              description: 'Select one option with titles',
              oneOf: [
                { const: 'value1', title: 'First Option' },
                { const: 'value2', title: 'Second Option' },
                { const: 'value3', title: 'Third Option' },
              ],
            },
            legacyEnum: {
              type: 'string',
              description: 'Select one option (legacy)',
              enum: ['opt1', 'opt2', 'opt3'],
              enumNames: ['Option One', 'Option Two', 'Option Three'],
            },
            untitledMulti: {
              type: 'array',
              description: 'Select multiple options',
              minItems: 1,
              maxItems: 3,
              items: { type: 'string', enum: ['option1', 'option2', 'option3'] },
            },
            titledMulti: {
              type: 'array',
              description: 'Select multiple options with titles',
              minItems: 1,
              maxItems: 3,
              items: {
                anyOf: [
                  { const: 'value1', title: 'First Choice' },
                  { const: 'value2', title: 'Second Choice' },
                  { const: 'value3', title: 'Third Choice' },
                ],
              },
            },
          },
          required: [],
        }),
      ),
  },
];

function elicit(extra, message, requestedSchema) {
  return extra.sendRequest(
    { method: 'elicitation/create', params: { message, requestedSchema } },
    ElicitResultSchema,
  );
}

function elicitationDone(result) {
  return {
    content: [
      text(`Elicitation completed: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`),
    ],
  };
}

// ---- resources ---------------------------------------------------------------------------

const resources = [
  {
    uri: 'test://static-text',
    name: 'Static text',
    description: 'A static text resource',
    mimeType: 'text/plain',
    contents: { text: 'This is the content of the static text resource.' },
  },
  {
    uri: 'test://static-binary',
    name: 'Static binary',
    description: 'A static PNG image',
    mimeType: 'image/png',
    contents: { blob: PNG },
  },
  {
    uri: 'test://watched-resource',
    name: 'Watched resource',
    description: 'A resource clients subscribe to',
    mimeType: 'text/plain',
    contents: { text: 'Watched resource content' },
  },
];

const TEMPLATE = /^test:\/\/template\/([^/]+)\/data$/;

function readResource(uri) {
  const found = resources.find((r) => r.uri === uri);
  if (found) return { contents: [{ uri, mimeType: found.mimeType, ...found.contents }] };
  const match = TEMPLATE.exec(uri);
  if (match) {
    const id = decodeURIComponent(match[1]);
    return {
      contents: [
        {
          uri,
          mimeType: 'application/json',
          text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }),
        },
      ],
    };
  }
  throw Object.assign(new Error(`Resource not found: ${uri}`), { code: -32002 });
}

// ---- prompts -----------------------------------------------------------------------------

const prompts = [
  {
    name: 'test_simple_prompt',
    description: 'A prompt without arguments',
    render: () => [{ role: 'user', content: text('This is a simple prompt for testing.') }],
  },
  {
    name: 'test_prompt_with_arguments',
    description: 'A prompt with two required arguments',
    arguments: [
      { name: 'arg1', description: 'First test argument', required: true },
      { name: 'arg2', description: 'Second test argument', required: true },
    ],
    render: (args) => [
      { role: 'user', content: text(`Prompt with arguments: arg1='${args.arg1}', arg2='${args.arg2}'`) },
    ],
  },
  {
    name: 'test_prompt_with_embedded_resource',
    description: 'A prompt that embeds a resource',
    arguments: [{ name: 'resourceUri', description: 'URI of the resource to embed', required: true }],
    render: (args) => [
      {
        role: 'user',
        content: {
          type: 'resource',
          resource: {
            uri: args.resourceUri,
            mimeType: 'text/plain',
            text: 'Embedded resource content for testing.',
          },
        },
      },
      { role: 'user', content: text('Please process the embedded resource above.') },
    ],
  },
  {
    name: 'test_prompt_with_image',
    description: 'A prompt with an image',
    render: () => [
      { role: 'user', content: { type: 'image', data: PNG, mimeType: 'image/png' } },
      { role: 'user', content: text('Please analyze the image above.') },
    ],
  },
];

const COMPLETIONS = ['paris', 'park', 'party', 'hello', 'help'];

// $EXTRA_TOOL_NAMES (a JSON array, for the gateway's own tests): more tools of these names, as
// a careless or hostile upstream might offer them (look-alike or invisible characters).
for (const name of JSON.parse(process.env.EXTRA_TOOL_NAMES ?? '[]')) {
  tools.push({
    name,
    description: 'An extra tool named by the test that started this fixture.',
    inputSchema: { type: 'object', properties: {} },
    run: async () => ({ content: [{ type: 'text', text: `called ${name}` }] }),
  });
}

// ---- the server --------------------------------------------------------------------------

function newServer() {
  const server = new Server(
    { name: 'mcpgate-conformance-fixture', version: '1.0.0' },
    {
      capabilities: {
        tools: {},
        resources: { subscribe: true },
        prompts: {},
        logging: {},
        completions: {},
      },
    },
  );
  const strip = ({ run: _r, render: _p, contents: _c, ...listed }) => listed;
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: tools.map(strip) }));
  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const tool = tools.find((t) => t.name === request.params.name);
    if (!tool) throw Object.assign(new Error(`Unknown tool: ${request.params.name}`), { code: -32602 });
    // QUESTIONS_ON_GET_STREAM=1: the tool's questions and notifications go out as the
    // server's own (no related request), which the transport sends on the standalone GET
    // stream, as `server.createMessage()` and `server.elicitInput()` do.
    const context = process.env.QUESTIONS_ON_GET_STREAM === '1'
      ? {
          ...extra,
          sendRequest: (req, schema, options) => server.request(req, schema, options),
          sendNotification: (notification) => server.notification(notification),
        }
      : extra;
    return tool.run(request.params.arguments ?? {}, context, request);
  });
  server.setRequestHandler(ListResourcesRequestSchema, async () => ({ resources: resources.map(strip) }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({
    resourceTemplates: [
      {
        uriTemplate: 'test://template/{id}/data',
        name: 'Template data',
        description: 'Data for one id',
        mimeType: 'application/json',
      },
    ],
  }));
  server.setRequestHandler(ReadResourceRequestSchema, async (request) => readResource(request.params.uri));
  // A subscription is answered, then its resource "changes" once, told on the GET stream.
  server.setRequestHandler(SubscribeRequestSchema, async (request) => {
    setTimeout(() => server.sendResourceUpdated({ uri: request.params.uri }).catch(() => {}), 100);
    return {};
  });
  server.setRequestHandler(UnsubscribeRequestSchema, async () => ({}));
  server.setRequestHandler(ListPromptsRequestSchema, async () => ({ prompts: prompts.map(strip) }));
  server.setRequestHandler(GetPromptRequestSchema, async (request) => {
    const prompt = prompts.find((p) => p.name === request.params.name);
    if (!prompt) throw Object.assign(new Error(`Unknown prompt: ${request.params.name}`), { code: -32602 });
    return { messages: prompt.render(request.params.arguments ?? {}) };
  });
  server.setRequestHandler(CompleteRequestSchema, async (request) => {
    const prefix = request.params.argument.value ?? '';
    const values = COMPLETIONS.filter((v) => v.startsWith(prefix));
    return { completion: { values, total: values.length, hasMore: false } };
  });
  server.setRequestHandler(SetLevelRequestSchema, async () => ({}));
  return server;
}

const sessions = new Map();

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const raw = Buffer.concat(chunks).toString('utf8');
  return raw ? JSON.parse(raw) : undefined;
}

function fail(res, status, message) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

// The same server over the legacy HTTP+SSE transport: GET /sse, then POST /messages.
const sseSessions = new Map();

async function legacySse(req, res, url) {
  if (req.method === 'GET' && url.pathname === '/sse') {
    const transport = new SSEServerTransport('/messages', res);
    sseSessions.set(transport.sessionId, transport);
    res.on('close', () => sseSessions.delete(transport.sessionId));
    await newServer().connect(transport);
    return true;
  }
  if (req.method === 'POST' && url.pathname === '/messages') {
    const transport = sseSessions.get(url.searchParams.get('sessionId'));
    if (!transport) {
      fail(res, 404, 'Session not found');
      return true;
    }
    await transport.handlePostMessage(req, res, await readBody(req));
    return true;
  }
  return false;
}

// What the gateway's tests look at: the sessions opened, open and ended by a client's DELETE
// (GET /stats), and a way to forget every session as a restarted server would (POST /expire).
const stats = { opened: 0, deleted: 0 };

function testEndpoints(req, res, url) {
  if (req.method === 'GET' && url.pathname === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...stats, open: sessions.size }));
    return true;
  }
  if (req.method === 'POST' && url.pathname === '/expire') {
    sessions.clear();
    res.writeHead(204);
    res.end();
    return true;
  }
  return false;
}

const httpServer = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (testEndpoints(req, res, url)) return;
    if (await legacySse(req, res, url)) return;
    const id = req.headers['mcp-session-id'];
    if (id) {
      const transport = sessions.get(id);
      if (!transport) return fail(res, 404, 'Session not found');
      if (req.method === 'DELETE') stats.deleted += 1;
      const body = req.method === 'POST' ? await readBody(req) : undefined;
      return await transport.handleRequest(req, res, body);
    }
    if (req.method !== 'POST') return fail(res, 400, 'No session: send initialize first');
    const body = await readBody(req);
    if (body?.method !== 'initialize') return fail(res, 400, 'Bad Request: Server not initialized');
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (sid) => {
        stats.opened += 1;
        sessions.set(sid, transport);
      },
    });
    transport.onclose = () => transport.sessionId && sessions.delete(transport.sessionId);
    await newServer().connect(transport);
    await transport.handleRequest(req, res, body);
  } catch (error) {
    if (!res.headersSent) fail(res, 400, `Bad request: ${error.message}`);
  }
});

httpServer.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: httpServer.address().port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
