"""A 2026-07-28 upstream MCP server on the official Python SDK (2.x) whose tool asks through the
multi round-trip pattern: `confirm` answers `input_required` with an elicitation until the
retry brings the answer, then reports it; `grow` adds a tool and announces the change on
`subscriptions/listen`; `chatty` logs at four levels (sent only at or above the request's own
`_meta` log level, as 2026-07-28 has it) and reports progress. mcpgate's interop tests and its
2026-07-28 scenario set (modern_scenarios.py) federate it.

usage: mrtr_server.py PORT   (Streamable HTTP on 127.0.0.1:PORT/mcp)
"""

import sys
import warnings

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus, ToolsListChanged
from mcp.types import (
    CallToolResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    InputRequiredResult,
    TextContent,
)

bus = InMemorySubscriptionBus()
server = MCPServer("mrtr-fixture", subscriptions=bus)


@server.tool(description="Asks the user to confirm an action, through input_required")
async def confirm(action: str, ctx: Context) -> CallToolResult | InputRequiredResult:
    answer = (ctx.input_responses or {}).get("confirmation")
    if answer is None:
        question = ElicitRequest(
            params=ElicitRequestFormParams(
                message=f"Confirm {action}?",
                requested_schema={
                    "type": "object",
                    "properties": {"username": {"type": "string"}, "email": {"type": "string"}},
                    "required": ["username"],
                },
            )
        )
        return InputRequiredResult(input_requests={"confirmation": question}, request_state=f"confirm:{action}")
    if isinstance(answer, ElicitResult):
        action_taken, content = answer.action, answer.content
    else:
        action_taken, content = answer.get("action"), answer.get("content")
    text = f"{action} {action_taken} by {(content or {}).get('username')} (state {ctx.request_state})"
    return CallToolResult(content=[TextContent(type="text", text=text)])


@server.tool(description="Adds a tool called `name` and announces the new tool list")
async def grow(name: str) -> str:
    def added() -> str:
        return f"{name} is here"

    server.add_tool(added, name=name, description=f"Added by grow({name!r})")
    await bus.publish(ToolsListChanged())
    return f"added {name}"


@server.tool(description="Logs at debug, info, warning and error, and reports progress in 3 steps")
async def chatty(ctx: Context) -> str:
    with warnings.catch_warnings():
        # Server-sent log messages are deprecated in the SDK (SEP-2577) but still part of 2026-07-28.
        warnings.simplefilter("ignore")
        for level in ("debug", "info", "warning", "error"):
            await ctx.log(level, f"a {level} message", logger_name="chatty")
    for step in (1, 2, 3):
        await ctx.report_progress(step, 3, f"step {step}")
    return "chatted"


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
