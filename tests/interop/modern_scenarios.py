"""mcpgate's own 2026-07-28 scenario set: the official Python SDK 2.x client against the gateway
(URL, its /mcp), which federates mrtr_server.py (a 2026-07-28 upstream on the same SDK) under
the prefix `asker-`. Each scenario prints what it observed; the Rust test (tests/it/modern.rs)
decides what passes. A scenario that raises reports the error instead.

usage: modern_scenarios.py URL TOKEN
"""

import asyncio
import json
import sys
import traceback

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

URL, TOKEN = sys.argv[1], sys.argv[2]
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
MODERN = "2026-07-28"


class Wire:
    """An HTTP client that records the MCP headers of every request it sends."""

    def __init__(self):
        self.requests = []

        async def record(request):
            self.requests.append({name: request.headers.get(name) for name in ("mcp-method", "mcp-name", "mcp-protocol-version", "mcp-session-id")})

        self.http = httpx2.AsyncClient(headers=HEADERS, timeout=30, event_hooks={"request": [record]})

    def client(self, mode=MODERN, **options):
        return Client(streamable_http_client(URL, http_client=self.http), mode=mode, **options)


async def discover():
    async with Wire().client(mode="auto") as client:
        capabilities = client.server_capabilities
        return {
            "protocol": client.protocol_version,
            "server": client.server_info.name if client.server_info else None,
            "tools": capabilities.tools is not None,
            "resources": capabilities.resources is not None,
            "prompts": capabilities.prompts is not None,
        }


async def cache_hints():
    wire = Wire()
    async with wire.client() as client:
        first = await client.list_tools()
        sent = len(wire.requests)
        again = await client.list_tools()
        reused = len(wire.requests) == sent
        bypassed = await client.list_tools(cache_mode="bypass")
        return {
            "ttl_ms": first.ttl_ms,
            "cache_scope": first.cache_scope,
            "second_list_served_from_cache": reused,
            "bypass_went_to_the_gateway": len(wire.requests) == sent + 1,
            "same_tools": [t.name for t in again.tools] == [t.name for t in bypassed.tools],
        }


async def headers():
    wire = Wire()
    async with wire.client() as client:
        await client.call_tool("asker-grow", {"name": "header_probe"})
    sent = [request for request in wire.requests if request["mcp-method"] == "tools/call"]
    # The same call written by hand, with the headers wrong or missing.
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "asker-confirm",
            "arguments": {"action": "x"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientInfo": {"name": "scenarios", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    right = {"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": "asker-confirm", "accept": "application/json, text/event-stream"}
    refusals = {}
    for case, changed in {
        "method_mismatch": {"mcp-method": "tools/list"},
        "name_mismatch": {"mcp-name": "asker-grow"},
        "name_missing": {"mcp-name": None},
        "version_mismatch": {"mcp-protocol-version": "2025-11-25"},
    }.items():
        headers = {k: v for k, v in {**right, **changed}.items() if v is not None}
        response = await wire.http.post(URL, json=body, headers=headers)
        refusals[case] = {"status": response.status_code, "code": response.json().get("error", {}).get("code")}
    return {"sent": sent, "refusals": refusals}


async def listen():
    async with Wire().client() as client:
        async with client.listen(tools_list_changed=True) as subscription:
            await client.call_tool("asker-grow", {"name": "sprout"})
            event = await asyncio.wait_for(anext(aiter(subscription)), 30)
        tools = await client.list_tools()
        return {
            "honored": bool(subscription.honored.tools_list_changed),
            "event": type(event).__name__,
            "new_tool_listed": "asker-sprout" in [t.name for t in tools.tools],
        }


async def mrtr():
    asked = []

    async def answer_elicitation(context, params):
        from mcp.types import ElicitResult

        asked.append(params.message)
        return ElicitResult(action="accept", content={"username": "octocat"})

    wire = Wire()
    async with wire.client(elicitation_callback=answer_elicitation) as client:
        call = await client.call_tool("asker-confirm", {"action": "deploy"})
    calls = [request for request in wire.requests if request["mcp-method"] == "tools/call"]
    return {
        "asked": asked,
        "text": [item.text for item in call.content],
        "is_error": call.is_error,
        "round_trips": len(calls),
    }


async def log_level():
    levels, progress = [], []

    async def on_log(params):
        levels.append(params.level)

    async def on_progress(step, total, message):
        progress.append(step)

    outcome = {}
    async with Wire().client(log_level="warning", logging_callback=on_log) as client:
        await client.call_tool("asker-chatty", {}, progress_callback=on_progress)
        outcome["at_warning"], levels[:] = list(levels), []
        outcome["progress"] = list(progress)
        await client.call_tool("asker-chatty", {}, meta={"io.modelcontextprotocol/logLevel": "error"})
        outcome["at_error"], levels[:] = list(levels), []
    async with Wire().client(logging_callback=on_log) as client:
        await client.call_tool("asker-chatty", {})
        outcome["unasked"] = list(levels)
    return outcome


async def main():
    outcome = {}
    for scenario in (discover, cache_hints, headers, listen, mrtr, log_level):
        try:
            outcome[scenario.__name__] = await scenario()
        except Exception:  # reported, not raised: every scenario runs
            outcome[scenario.__name__] = {"error": traceback.format_exc()}
    print(json.dumps(outcome))


asyncio.run(main())
