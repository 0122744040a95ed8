"""Connects to an MCP endpoint with the official Python SDK's OAuth client (`OAuthClientProvider`,
1.x or 2.x) and no token of its own, and prints what it saw as JSON.

usage: oauth_client.py URL EMAIL PASSWORD TOOL ARGS

The SDK does everything a spec-following client does: reads the 401's resource metadata and the
authorization server's metadata, registers itself, sends the user to the authorization endpoint
and exchanges the code with its PKCE verifier. This script plays the user's browser for it: it
follows the authorization URL, signs in with EMAIL and PASSWORD, allows the client, and hands
the SDK the code from the redirect. Then the SDK lists tools and calls TOOL with ARGS (JSON).
"""

import asyncio
import importlib.metadata
import json
import sys
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlparse

URL, EMAIL, PASSWORD, TOOL, ARGS = sys.argv[1:6]
MAJOR = int(importlib.metadata.version("mcp").split(".")[0])
REDIRECT = "http://127.0.0.1:8976/callback"
SEEN = {"authorize": None, "redirects": 0}

if MAJOR >= 2:
    import httpx2 as httpx
else:
    import httpx


class Form(HTMLParser):
    """The named inputs of a page's forms, as a browser would submit them."""

    def __init__(self, html):
        super().__init__()
        self.fields = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name") and attrs.get("type") != "submit":
            self.fields[attrs["name"]] = attrs.get("value") or ""


async def browse(authorize):
    """The user's browser: signs in when sent to, allows the client, answers the redirect's query."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=30) as browser:
        reply = await browser.get(authorize)
        if reply.status_code == 303 and "/admin/login" in reply.headers["location"]:
            login = urljoin(authorize, reply.headers["location"])
            fields = Form((await browser.get(login)).text).fields
            fields.update(email=EMAIL, password=PASSWORD)
            signed = await browser.post(urljoin(authorize, "/admin/login"), data=fields)
            assert signed.status_code == 303, signed.text
            reply = await browser.get(urljoin(authorize, signed.headers["location"]))
        if reply.status_code == 200:
            fields = Form(reply.text).fields
            fields["decision"] = "allow"
            reply = await browser.post(urljoin(authorize, "/admin/oauth/authorize"), data=fields)
        assert reply.status_code == 303, reply.text
        location = reply.headers["location"]
        assert location.startswith(REDIRECT), location
        return {key: values[0] for key, values in parse_qs(urlparse(location).query).items()}


class Memory:
    """The client's token storage, in memory."""

    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info):
        self.client = client_info


async def redirect_handler(url):
    SEEN["authorize"] = url
    SEEN["redirects"] += 1


async def callback_handler():
    answer = await browse(SEEN["authorize"])
    if MAJOR >= 2:
        from mcp.shared.auth import AuthorizationCodeResult

        return AuthorizationCodeResult(code=answer["code"], state=answer.get("state"), iss=answer.get("iss"))
    return answer["code"], answer.get("state")


def provider(storage):
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import OAuthClientMetadata

    metadata = OAuthClientMetadata(
        client_name=f"Python SDK {MAJOR}",
        redirect_uris=[REDIRECT],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    return OAuthClientProvider(
        server_url=URL,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )


async def exercise(session, storage):
    tools = await session.list_tools()
    call = await session.call_tool(TOOL, json.loads(ARGS))
    return {
        "sdk": importlib.metadata.version("mcp"),
        "tools": sorted(tool.name for tool in tools.tools),
        "is_error": getattr(call, "is_error", getattr(call, "isError", None)),
        "text": [getattr(item, "text", None) for item in call.content],
        "client_id": storage.client.client_id if storage.client else None,
        "token_type": storage.tokens.token_type if storage.tokens else None,
        "refresh": bool(storage.tokens and storage.tokens.refresh_token),
        "authorize": SEEN["authorize"],
        "redirects": SEEN["redirects"],
    }


async def run_v1(storage):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with streamablehttp_client(URL, auth=provider(storage)) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            return await exercise(session, storage)


async def run_v2(storage):
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx.AsyncClient(auth=provider(storage), timeout=30)
    async with Client(streamable_http_client(URL, http_client=http)) as client:
        return await exercise(client, storage)


async def main():
    storage = Memory()
    outcome = await (run_v2(storage) if MAJOR >= 2 else run_v1(storage))
    print(json.dumps(outcome))


asyncio.run(main())
