//! What an upstream's discovery becomes: each discovered item checked as the untrusted input it
//! is (its name like a REST tool's, its description's length, its schemas' size, depth and
//! validity as JSON Schema) and turned into the rows a sync stores. An item that fails a check
//! is skipped and reported (`skipped`), or, in strict mode, refuses the whole discovery.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::actors::upstream::Discovery;
use crate::config::DiscoveryLimits;
use crate::db::federation::{
    DiscoveredPrompt, DiscoveredResource, DiscoveredTool, Skipped, SyncGateway,
};
use crate::db::now;
use crate::db::registry::GatewayRow;
use crate::upstream::UNREADABLE;

/// Members of a discovered definition the gateway does not interpret but serves as the upstream
/// sent them: display names and icons, `_meta` (where extensions live, e.g. an MCP App's `ui`
/// resource reference), a tool's `execution` and a resource's `annotations` and `size`.
const TOOL_PASSTHROUGH: &[&str] = &["title", "icons", "_meta", "execution"];
const RESOURCE_PASSTHROUGH: &[&str] = &["title", "icons", "_meta", "annotations", "size"];
const PROMPT_PASSTHROUGH: &[&str] = &["title", "icons", "_meta"];

/// The longest name (or URI) served, in characters, like a REST tool's name.
const MAX_NAME_CHARS: usize = 128;
/// The longest resource URI served, in characters.
const MAX_URI_CHARS: usize = 2048;
/// Skipped items listed in a report (the count is always complete).
const MAX_REPORTED: usize = 100;

/// The `members` present in `item`, as JSON object text.
fn passthrough(item: &Value, members: &[&str]) -> String {
    let kept: serde_json::Map<String, Value> = members
        .iter()
        .filter_map(|member| Some(((*member).to_owned(), item.get(*member)?.clone())))
        .collect();
    Value::Object(kept).to_string()
}

fn text_field(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// What the checks left out.
#[derive(Default)]
struct Report {
    skipped: Vec<Skipped>,
    count: usize,
}

impl Report {
    fn skip(&mut self, kind: &str, name: &str, reason: String) {
        self.count += 1;
        if self.skipped.len() < MAX_REPORTED {
            self.skipped.push(Skipped {
                kind: kind.to_owned(),
                name: name.chars().take(200).collect(),
                reason,
            });
        }
    }

    /// The outcome of one item's checks: kept, or skipped with the reason.
    fn keep<T>(&mut self, kind: &str, name: &str, checked: Result<T, String>) -> Option<T> {
        checked.map_err(|reason| self.skip(kind, name, reason)).ok()
    }

    /// Why strict mode refuses the discovery.
    fn refusal(&self) -> String {
        let first = &self.skipped[0];
        format!(
            "{} item(s) that fail the gateway's checks (UPSTREAM_DISCOVERY_STRICT is on), the first a {} {:?} that {}",
            self.count, first.kind, first.name, first.reason
        )
    }
}

/// A tool or prompt name: NFC-normalised, no invisible or mixed-script look-alikes, and like
/// a REST tool's name: 1–128 letters, digits, `_`, `-` and `.` (letters of one script, so a
/// localised name is served; no spaces, slashes or other punctuation).
fn checked_name(name: &str) -> Result<String, String> {
    let name = crate::registry::validate::federated_name(name)
        .map_err(|why| format!("is named so it {why}"))?;
    let length = name.chars().count();
    if length > MAX_NAME_CHARS {
        return Err(format!(
            "has a name of {length} characters; the most allowed is {MAX_NAME_CHARS}"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "has {c:?} in its name; names use only letters, digits, _ - ."
        ));
    }
    Ok(name)
}

fn checked_description(item: &Value, limits: &DiscoveryLimits) -> Result<Option<String>, String> {
    let description = text_field(item, "description");
    if let Some(length) = description.as_ref().map(|text| text.chars().count())
        && length > limits.max_description_chars
    {
        return Err(format!(
            "has a description of {length} characters; the most accepted is {} (UPSTREAM_MAX_DESCRIPTION_CHARS)",
            limits.max_description_chars
        ));
    }
    Ok(description)
}

/// How deeply `value` nests objects and arrays (a scalar is 0).
fn depth(value: &Value) -> usize {
    match value {
        Value::Object(members) => 1 + members.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A tool's input or output schema: an object schema of bounded size and depth that is valid
/// JSON Schema (2020-12, or the draft its `$schema` names, such as draft-07) and compiles (its
/// `$ref`s resolve). Returns its JSON text.
fn checked_schema(which: &str, schema: &Value, limits: &DiscoveryLimits) -> Result<String, String> {
    let text = schema.to_string();
    if text.len() > limits.max_schema_bytes {
        return Err(format!(
            "has an {which} of {} bytes; the most accepted is {} (UPSTREAM_MAX_SCHEMA_BYTES)",
            text.len(),
            limits.max_schema_bytes
        ));
    }
    let nesting = depth(schema);
    if nesting > limits.max_schema_depth {
        return Err(format!(
            "has an {which} nested {nesting} levels deep; the most accepted is {} (UPSTREAM_MAX_SCHEMA_DEPTH)",
            limits.max_schema_depth
        ));
    }
    if let Err(error) = jsonschema::meta::validate(schema) {
        return Err(format!(
            "has an {which} that is not valid JSON Schema: {error}"
        ));
    }
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err(format!(
            "has an {which} whose root is not {{\"type\": \"object\"}} (MCP requires an object schema)"
        ));
    }
    if let Err(error) = jsonschema::validator_for(schema) {
        return Err(format!("has an {which} that does not compile: {error}"));
    }
    Ok(text)
}

fn tool(
    item: &Value,
    name: String,
    original_name: String,
    limits: &DiscoveryLimits,
) -> Result<DiscoveredTool, String> {
    let description = checked_description(item, limits)?;
    // A missing input schema is the empty object schema (nothing to check arguments against).
    let input_schema = match item.get("inputSchema") {
        None => json!({"type": "object"}).to_string(),
        Some(schema) => checked_schema("inputSchema", schema, limits)?,
    };
    let output_schema = item
        .get("outputSchema")
        .map(|schema| checked_schema("outputSchema", schema, limits))
        .transpose()?;
    Ok(DiscoveredTool {
        name,
        original_name,
        description,
        input_schema,
        output_schema,
        annotations: match item.get("annotations") {
            Some(annotations @ Value::Object(_)) => annotations.to_string(),
            _ => "{}".to_owned(),
        },
        passthrough: passthrough(item, TOOL_PASSTHROUGH),
    })
}

fn resource(
    item: &Value,
    template: bool,
    limits: &DiscoveryLimits,
) -> Result<DiscoveredResource, String> {
    let field = if template { "uriTemplate" } else { "uri" };
    let address = text_field(item, field).ok_or_else(|| format!("has no {field}"))?;
    let length = address.chars().count();
    if length > MAX_URI_CHARS {
        return Err(format!(
            "has a {field} of {length} characters; the most allowed is {MAX_URI_CHARS}"
        ));
    }
    if !address.contains(':') || address.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("has a {field} that is not an absolute URI"));
    }
    let name = text_field(item, "name").unwrap_or_else(|| address.clone());
    if name.chars().count() > MAX_NAME_CHARS * 4 {
        return Err(format!(
            "has a name longer than {} characters",
            MAX_NAME_CHARS * 4
        ));
    }
    let (uri, uri_template) = if template {
        (None, Some(address))
    } else {
        (Some(address), None)
    };
    Ok(DiscoveredResource {
        name,
        uri,
        uri_template,
        description: checked_description(item, limits)?,
        mime_type: text_field(item, "mimeType"),
        passthrough: passthrough(item, RESOURCE_PASSTHROUGH),
    })
}

fn prompt(
    item: &Value,
    name: String,
    original_name: String,
    limits: &DiscoveryLimits,
) -> Result<DiscoveredPrompt, String> {
    let arguments = match item.get("arguments") {
        None | Some(Value::Null) => json!([]),
        Some(Value::Array(arguments))
            if arguments
                .iter()
                .all(|argument| argument.get("name").is_some_and(Value::is_string)) =>
        {
            Value::Array(arguments.clone())
        }
        Some(_) => return Err("has arguments that are not a list of named arguments".into()),
    };
    Ok(DiscoveredPrompt {
        name,
        original_name,
        description: checked_description(item, limits)?,
        arguments: arguments.to_string(),
        passthrough: passthrough(item, PROMPT_PASSTHROUGH),
    })
}

/// Checks what a discovery brought and makes the sync that stores it: names are served
/// NFC-normalised (calls upstream use the original), prefixed with the gateway's slug when it
/// prefixes. Items that fail a check are skipped and listed in the gateway's `skipped`; in
/// strict mode the first failure refuses everything (the error says what and why).
pub(super) fn build_sync(
    separator: &str,
    limits: &DiscoveryLimits,
    mut gateway: GatewayRow,
    discovery: &Discovery,
    is_new: bool,
) -> Result<SyncGateway, String> {
    let mut report = Report::default();
    let local = |name: String| {
        if gateway.prefix_tool_names {
            format!("{}{separator}{name}", gateway.slug)
        } else {
            name
        }
    };
    let mut seen = HashSet::new();
    let mut named = |report: &mut Report, kind: &str, item: &Value| {
        if let Some(why) = item.get(UNREADABLE).and_then(Value::as_str) {
            report.skip(
                kind,
                &text_field(item, "name").unwrap_or_default(),
                why.to_owned(),
            );
            return None;
        }
        let Some(original) = text_field(item, "name") else {
            report.skip(kind, "", "has no name".into());
            return None;
        };
        let name = report.keep(kind, &original, checked_name(&original))?;
        if !seen.insert((kind.to_owned(), name.clone())) {
            report.skip(
                kind,
                &original,
                "is listed twice; the first is served".into(),
            );
            return None;
        }
        Some((local(name), original))
    };
    let mut tools = Vec::new();
    for item in &discovery.tools {
        if let Some((name, original)) = named(&mut report, "tool", item) {
            let checked = tool(item, name, original.clone(), limits);
            tools.extend(report.keep("tool", &original, checked));
        }
    }
    let mut prompts = Vec::new();
    for item in &discovery.prompts {
        if let Some((name, original)) = named(&mut report, "prompt", item) {
            let checked = prompt(item, name, original.clone(), limits);
            prompts.extend(report.keep("prompt", &original, checked));
        }
    }
    let mut resources = Vec::new();
    let fixed = discovery.resources.iter().map(|item| (item, false));
    let templates = discovery.templates.iter().map(|item| (item, true));
    for (item, template) in fixed.chain(templates) {
        if let Some(why) = item.get(UNREADABLE).and_then(Value::as_str) {
            report.skip("resource", "", why.to_owned());
            continue;
        }
        let label =
            text_field(item, if template { "uriTemplate" } else { "uri" }).unwrap_or_default();
        let checked = resource(item, template, limits);
        resources.extend(report.keep("resource", &label, checked));
    }
    if limits.strict && report.count > 0 {
        return Err(report.refusal());
    }
    if report.count > 0 {
        tracing::warn!(gateway = %gateway.name, skipped = report.count, "discovered items skipped");
    }
    let seen_at = now();
    gateway.protocol_version = Some(discovery.protocol_version.clone());
    gateway.capabilities = discovery.capabilities.to_string();
    gateway.reachable = true;
    gateway.last_seen_at = Some(seen_at);
    gateway.updated_at = seen_at;
    gateway.skipped = serde_json::to_string(&report.skipped).unwrap_or_else(|_| "[]".into());
    gateway.degraded_reason = None;
    Ok(SyncGateway {
        gateway,
        is_new,
        tools,
        resources,
        prompts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> DiscoveryLimits {
        DiscoveryLimits {
            max_items: 100,
            max_page_bytes: 1 << 20,
            max_discovery_bytes: 1 << 22,
            max_description_chars: 100,
            max_schema_bytes: 4096,
            max_schema_depth: 8,
            strict: false,
        }
    }

    #[test]
    fn names_are_checked_like_rest_tool_names() {
        assert_eq!(
            checked_name("get_weather-v2.1").unwrap(),
            "get_weather-v2.1"
        );
        assert!(
            checked_name(&"x".repeat(129))
                .unwrap_err()
                .contains("129 characters")
        );
        assert!(checked_name("zero\u{200B}width").is_err());
        assert!(
            checked_name("p\u{0430}ypal")
                .unwrap_err()
                .contains("scripts")
        );
        assert!(checked_name("bad prompt!").unwrap_err().contains("' '"));
    }

    #[test]
    fn schemas_are_bounded_and_must_be_valid_json_schema() {
        let limits = limits();
        let check = |schema: Value| checked_schema("inputSchema", &schema, &limits);
        assert!(check(json!({"type": "object", "properties": {"a": {"type": "string"}}})).is_ok());
        let draft7 = json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "definitions": {"n": {"type": "number"}}, "properties": {"x": {"$ref": "#/definitions/n"}}});
        assert!(check(draft7).is_ok());
        assert!(check(json!({"type": "nonsense", "properties": 5})).is_err());
        assert!(
            check(json!({"type": "string"}))
                .unwrap_err()
                .contains("root")
        );
        let dangling = json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}});
        assert!(check(dangling).unwrap_err().contains("compile"));
        let mut deep = json!({"type": "string"});
        for _ in 0..10 {
            deep = json!({"type": "object", "properties": {"a": deep}});
        }
        assert!(
            check(deep)
                .unwrap_err()
                .contains("UPSTREAM_MAX_SCHEMA_DEPTH")
        );
        // A $ref elsewhere is never fetched (no HTTP or file retrieval is built in): the
        // schema does not compile, so a discovered schema cannot make the gateway connect.
        for elsewhere in ["https://example.com/schema.json", "file:///etc/passwd"] {
            let remote = json!({"type": "object", "properties": {"a": {"$ref": elsewhere}}});
            assert!(
                check(remote).unwrap_err().contains("compile"),
                "{elsewhere}"
            );
        }
        let big = json!({"type": "object", "description": "d".repeat(5000)});
        assert!(
            check(big)
                .unwrap_err()
                .contains("UPSTREAM_MAX_SCHEMA_BYTES")
        );
    }
}
