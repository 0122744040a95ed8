"""Drives an MCP server with the official Python SDK (1.x or 2.x) and prints what it saw as JSON.

usage: client.py URL TOKEN streamable|sse                  (the standard exercise)
       client.py URL TOKEN streamable|sse TOOL ARGS        (call one tool with JSON arguments,
           following its progress: the progress values received are printed with the result)
       client.py URL TOKEN streamable|sse sample TOOL ARGS (declare sampling and elicitation and
           answer them with canned callbacks, then call one tool: a session-era client is asked
           on its session, a 2026-07-28 client through input_required)
2.x reads its connection mode from MCP_CLIENT_MODE (auto, legacy or 2026-07-28; default auto).
"""

import asyncio
import importlib.metadata
import json
import os
import sys

URL, TOKEN, TRANSPORT = sys.argv[1], sys.argv[2], sys.argv[3]
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
MAJOR = int(importlib.metadata.version("mcp").split(".")[0])
ANSWER = len(sys.argv) > 4 and sys.argv[4] == "sample"
CALL = sys.argv[5:7] if ANSWER else sys.argv[4:6]


def field(obj, camel, snake):
    """Reads a field under its camelCase (older SDKs) or snake_case (newer SDKs) name."""
    return getattr(obj, snake) if hasattr(obj, snake) else getattr(obj, camel)


def text_of(content):
    return [getattr(item, "text", None) for item in content]


async def call_one(session, protocol):
    name, arguments = CALL[0], json.loads(CALL[1])
    progress = []

    async def on_progress(done, total, message):
        progress.append(int(done) if float(done).is_integer() else done)

    call = await session.call_tool(name, arguments, progress_callback=on_progress)
    return {
        "progress": progress,
        "sdk": importlib.metadata.version("mcp"),
        "protocol": protocol,
        "is_error": field(call, "isError", "is_error"),
        "text": text_of(call.content),
        "structured": field(call, "structuredContent", "structured_content"),
        "asked": ASKED,
    }


async def exercise(session, protocol):
    if CALL:
        return await call_one(session, protocol)
    await session.send_ping()
    tools = await session.list_tools()
    call = await session.call_tool("get_weather", {"city": "Paris"})
    resources = await session.list_resources()
    read = await session.read_resource("docs://guide")
    prompts = await session.list_prompts()
    prompt = await session.get_prompt("summarise", {"text": "the news", "style": "formal"})
    return {
        "sdk": importlib.metadata.version("mcp"),
        "protocol": protocol,
        "tools": [tool.name for tool in tools.tools],
        "call": {
            "is_error": field(call, "isError", "is_error"),
            "text": text_of(call.content),
            "structured": field(call, "structuredContent", "structured_content"),
        },
        "resources": [str(resource.uri) for resource in resources.resources],
        "read": [getattr(content, "text", None) for content in read.contents],
        "prompts": [p.name for p in prompts.prompts],
        "prompt": [message.content.text for message in prompt.messages],
    }


SAMPLED_TEXT = "canned reply from the client"


ELICITED = {"username": "octocat", "email": "octocat@example.com"}
ASKED = []


async def answer_sampling(context, params):
    from mcp.types import CreateMessageResult, TextContent

    ASKED.append("sampling")
    return CreateMessageResult(
        role="assistant",
        content=TextContent(type="text", text=SAMPLED_TEXT),
        model="mcpgate-test-model",
        stopReason="endTurn",
    )


async def answer_elicitation(context, params):
    from mcp.types import ElicitResult

    ASKED.append("elicitation")
    return ElicitResult(action="accept", content=ELICITED)


def callbacks():
    """The sampling and elicitation callbacks, when the run answers the server's questions."""
    if ANSWER:
        return {"sampling_callback": answer_sampling, "elicitation_callback": answer_elicitation}
    return {}


async def run_v1():
    from mcp import ClientSession
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamablehttp_client

    if TRANSPORT == "sse":
        connection = sse_client(URL, headers=HEADERS)
    else:
        connection = streamablehttp_client(URL, headers=HEADERS)
    async with connection as streams:
        async with ClientSession(streams[0], streams[1], **callbacks()) as session:
            init = await session.initialize()
            return await exercise(session, field(init, "protocolVersion", "protocol_version"))


async def run_v2():
    import httpx2
    from mcp import Client
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client

    # MCP_CLIENT_MODE: auto (the default: probe server/discover, fall back to a session), legacy
    # (the initialize handshake) or a pinned modern version (2026-07-28).
    mode = os.environ.get("MCP_CLIENT_MODE", "auto")
    if TRANSPORT == "sse":
        transport = sse_client(URL, headers=HEADERS)
    else:
        http = httpx2.AsyncClient(headers=HEADERS, timeout=30)
        transport = streamable_http_client(URL, http_client=http)
    async with Client(transport, mode=mode, **callbacks()) as client:
        return await exercise(client, client.protocol_version)


async def main():
    outcome = await (run_v2() if MAJOR >= 2 else run_v1())
    print(json.dumps(outcome))


asyncio.run(main())
