//! OpenAPI 3.0 / 3.1 documents turned into REST tools: every operation (or a chosen subset)
//! becomes a tool named after its `operationId`, described by its summary and description,
//! calling `<base URL><path>` with its method; its input schema merges the path and query
//! parameters and the properties of a JSON object request body (`$ref`s resolved inline), its
//! output schema is the JSON object schema of its success response. Path parameters fill the
//! URL template's `{name}`, query parameters its `{?a,b}`; what remains of the arguments is the
//! JSON body. An operation that cannot be called this way (a header or cookie parameter that is
//! required, a body that is not a JSON object, a name clash, an external `$ref`) is skipped
//! with the reason.

use serde_json::{Map, Value, json};

/// The methods an operation may have, as OpenAPI spells them.
const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];
/// How deep `$ref`s are followed inline (a recursive schema stops here as `{}`).
const MAX_REF_DEPTH: usize = 24;
/// How many schema nodes one operation's schemas may have once inlined (`$ref`s that fan out
/// would otherwise grow without bound: an operation past it is skipped).
const MAX_INLINED_NODES: usize = 20_000;

/// One operation, as a tool.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// Its `operationId` (or, without one, `<method>_<path>`).
    pub operation_id: String,
    /// The tool's name.
    pub name: String,
    /// Summary and description.
    pub description: Option<String>,
    /// `GET`, `POST`, …
    pub method: String,
    /// The URL template.
    pub url: String,
    /// The arguments' schema.
    pub input_schema: Value,
    /// The JSON object result's schema, if the success response declares one.
    pub output_schema: Option<Value>,
}

/// What a document gives.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Imported {
    /// The operations that become tools.
    pub operations: Vec<Operation>,
    /// Operations left out, with why.
    pub skipped: Vec<(String, String)>,
}

/// A document as text: JSON, or YAML (as most published API descriptions are). YAML is read
/// within the parser's budget (anchors and aliases cannot blow it up), into the same tree.
pub fn parse(text: &[u8]) -> Result<Value, String> {
    if let Ok(document) = serde_json::from_slice(text) {
        return Ok(document);
    }
    let text =
        std::str::from_utf8(text).map_err(|_| "is neither JSON nor YAML (not UTF-8)".to_owned())?;
    match serde_saphyr::from_str::<Value>(text) {
        Ok(document @ Value::Object(_)) => Ok(document),
        Ok(_) => Err("is not an OpenAPI document (not a JSON or YAML object)".to_owned()),
        Err(error) => Err(format!(
            "is neither JSON nor YAML ({})",
            first_line(&error.to_string())
        )),
    }
}

/// The first line of a parser's message (YAML errors draw the source below it).
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}

/// Reads `document`; `base_url` is where its paths are served (no trailing `/` needed);
/// `only`: the operation ids to import (all when `None`). The error names what is wrong with
/// the document as a whole.
pub fn read(document: &Value, base_url: &str, only: Option<&[String]>) -> Result<Imported, String> {
    let version = document
        .get("openapi")
        .and_then(Value::as_str)
        .ok_or("the document has no \"openapi\" version (OpenAPI 3.0 or 3.1 is expected)")?;
    if !(version.starts_with("3.0") || version.starts_with("3.1")) {
        return Err(format!(
            "the document is OpenAPI {version}; 3.0 and 3.1 are read"
        ));
    }
    let paths = document
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("the document has no \"paths\" object")?;
    let base = base_url.trim_end_matches('/');
    let mut imported = Imported::default();
    let mut names = std::collections::HashSet::new();
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            return Err(format!("paths.{path} is not an object"));
        };
        let shared = item.get("parameters");
        for method in METHODS {
            let Some(operation) = item.get(*method) else {
                continue;
            };
            let id = operation
                .get("operationId")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{method}_{path}"));
            if only.is_some_and(|only| !only.contains(&id)) {
                continue;
            }
            match one(document, base, path, method, &id, operation, shared) {
                Ok(operation) if !names.insert(operation.name.clone()) => imported.skipped.push((
                    id,
                    format!("another operation gives the tool name {:?}", operation.name),
                )),
                Ok(operation) => imported.operations.push(operation),
                Err(reason) => imported.skipped.push((id, reason)),
            }
        }
    }
    if let Some(only) = only {
        for wanted in only {
            let found = imported
                .operations
                .iter()
                .any(|op| &op.operation_id == wanted)
                || imported.skipped.iter().any(|(id, _)| id == wanted);
            if !found {
                return Err(format!("the document has no operation {wanted:?}"));
            }
        }
    }
    Ok(imported)
}

/// A tool name from an operation id: `A-Z a-z 0-9 _ - .`, at most 128.
fn tool_name(id: &str) -> String {
    let name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = name.trim_matches('_');
    name.chars().take(128).collect()
}

fn one(
    document: &Value,
    base: &str,
    path: &str,
    method: &str,
    id: &str,
    operation: &Value,
    shared: Option<&Value>,
) -> Result<Operation, String> {
    let name = tool_name(id);
    if name.is_empty() {
        return Err("its operationId has no letter or digit to name a tool with".into());
    }
    let inliner = Inliner::new(document);
    let mut properties = Map::new();
    let mut required: Vec<Value> = Vec::new();
    let mut query = Vec::new();
    // Operation parameters override path-level ones of the same name and place.
    let mut parameters: Vec<Value> = Vec::new();
    for list in [shared, operation.get("parameters")].into_iter().flatten() {
        let list = list.as_array().ok_or("its parameters are not a list")?;
        for parameter in list {
            let parameter = resolve(document, parameter, 0)?;
            let key = |p: &Value| (p["name"].clone(), p["in"].clone());
            parameters.retain(|known| key(known) != key(&parameter));
            parameters.push(parameter);
        }
    }
    for parameter in &parameters {
        let name = parameter["name"]
            .as_str()
            .ok_or("a parameter has no name")?;
        let place = parameter["in"].as_str().unwrap_or_default();
        let needed = parameter["required"].as_bool().unwrap_or(place == "path");
        match place {
            "path" | "header" => {}
            "query" => query.push(name.to_owned()),
            "cookie" if needed => {
                return Err(format!(
                    "it needs the cookie parameter {name:?}, which a tool's arguments cannot set"
                ));
            }
            "cookie" => continue,
            other => return Err(format!("parameter {name:?} is in {other:?}")),
        }
        if place == "header" && !super::tools::header_argument_allowed(name) {
            if needed {
                return Err(format!(
                    "it needs the header {name:?}, which a tool's arguments may not set"
                ));
            }
            continue;
        }
        let mut schema = match parameter.get("schema") {
            Some(schema) => inliner.inline(schema, 0)?,
            None => json!({"type": "string"}),
        };
        if place == "header"
            && let Value::Object(fields) = &mut schema
        {
            // The argument is sent as this header.
            fields.insert(super::tools::HEADER_KEYWORD.into(), json!(name));
        }
        if let (Some(text), Value::Object(fields)) = (parameter.get("description"), &mut schema) {
            fields.entry("description").or_insert_with(|| text.clone());
        }
        properties.insert(name.to_owned(), schema);
        if needed {
            required.push(json!(name));
        }
    }
    if let Some(body) = operation.get("requestBody") {
        let body = resolve(document, body, 0)?;
        let schema = body["content"]
            .as_object()
            .and_then(|content| {
                content.iter().find(|(kind, _)| {
                    kind.starts_with("application/json") || kind.ends_with("+json")
                })
            })
            .map(|(_, media)| media.get("schema").cloned().unwrap_or(json!({})));
        match schema {
            Some(schema) => {
                let schema = inliner.inline(&schema, 0)?;
                let object = schema.get("type").is_none_or(|kind| kind == "object")
                    && schema.get("properties").is_some_and(Value::is_object);
                if !object {
                    return Err("its request body is not a JSON object with properties".into());
                }
                for (field, field_schema) in schema["properties"].as_object().into_iter().flatten()
                {
                    if properties.contains_key(field) {
                        return Err(format!(
                            "its body field {field:?} has the name of a parameter"
                        ));
                    }
                    properties.insert(field.clone(), field_schema.clone());
                }
                if body["required"].as_bool().unwrap_or(false) {
                    required.extend(schema["required"].as_array().into_iter().flatten().cloned());
                }
            }
            // A body only in another form (a form, a file) cannot be sent by a JSON tool, even
            // an optional one: the tool would silently lack what the operation is for.
            None => {
                let kinds: Vec<&str> = body["content"]
                    .as_object()
                    .map(|content| content.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                if !kinds.is_empty() {
                    return Err(format!(
                        "its request body is {}, not JSON",
                        kinds.join(" or ")
                    ));
                }
            }
        }
    }
    let mut url = format!("{base}{path}");
    if !query.is_empty() {
        url.push_str(&format!("{{?{}}}", query.join(",")));
    }
    crate::uri_template::UriTemplate::parse(&url)
        .map_err(|why| format!("its URL {url:?} {why}"))?;
    let mut input_schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        input_schema["required"] = Value::Array(required);
    }
    let text = |key: &str| operation.get(key).and_then(Value::as_str).map(str::trim);
    let description = match (text("summary"), text("description")) {
        (Some(summary), Some(more)) if !more.is_empty() && more != summary => {
            Some(format!("{summary}\n\n{more}"))
        }
        (Some(summary), _) if !summary.is_empty() => Some(summary.to_owned()),
        (_, Some(more)) if !more.is_empty() => Some(more.to_owned()),
        _ => None,
    };
    Ok(Operation {
        operation_id: id.to_owned(),
        name,
        description,
        method: method.to_ascii_uppercase(),
        url,
        input_schema,
        output_schema: output_schema(document, operation),
    })
}

/// The JSON object schema of the first 2xx response, if it has one.
fn output_schema(document: &Value, operation: &Value) -> Option<Value> {
    let responses = operation.get("responses")?.as_object()?;
    let (_, response) = responses
        .iter()
        .filter(|(status, _)| status.starts_with('2'))
        .min_by_key(|(status, _)| status.as_str())?;
    let response = resolve(document, response, 0).ok()?;
    let schema = response["content"]
        .as_object()?
        .iter()
        .find(|(kind, _)| kind.starts_with("application/json"))?
        .1
        .get("schema")?;
    let schema = Inliner::new(document).inline(schema, 0).ok()?;
    (schema.get("type") == Some(&json!("object"))).then_some(schema)
}

/// `value` itself, or what its `$ref` points to in `document`.
fn resolve(document: &Value, value: &Value, depth: usize) -> Result<Value, String> {
    let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
        return Ok(value.clone());
    };
    if depth > MAX_REF_DEPTH {
        return Ok(json!({}));
    }
    let pointer = reference
        .strip_prefix('#')
        .ok_or_else(|| format!("it refers to {reference:?} outside the document"))?;
    let target = document
        .pointer(pointer)
        .ok_or_else(|| format!("its $ref {reference:?} points to nothing"))?;
    resolve(document, target, depth + 1)
}

/// Inlines the `$ref`s of one operation's schemas, within [`MAX_INLINED_NODES`].
struct Inliner<'a> {
    document: &'a Value,
    budget: std::cell::Cell<usize>,
}

impl<'a> Inliner<'a> {
    fn new(document: &'a Value) -> Self {
        Inliner {
            document,
            budget: std::cell::Cell::new(MAX_INLINED_NODES),
        }
    }

    /// A schema with every `$ref` replaced by what it points to (recursion stops at
    /// [`MAX_REF_DEPTH`]); OpenAPI 3.0's `nullable` becomes a JSON Schema type list, and its
    /// keywords that are no JSON Schema (`example`, `xml`, `discriminator`) are dropped. Only
    /// keywords that hold schemas are followed (an `enum` or `default` value is kept as it is).
    fn inline(&self, schema: &Value, depth: usize) -> Result<Value, String> {
        if depth > MAX_REF_DEPTH {
            return Ok(json!({}));
        }
        let left = self.budget.get();
        if left == 0 {
            return Err(format!(
                "its schemas are larger than {MAX_INLINED_NODES} nodes once their $refs are inlined"
            ));
        }
        self.budget.set(left - 1);
        if schema.get("$ref").is_some() {
            let target = resolve(self.document, schema, 0)?;
            return self.inline(&target, depth + 1);
        }
        let Value::Object(fields) = schema else {
            return Ok(schema.clone());
        };
        let one = |value: &Value| self.inline(value, depth + 1);
        let mut out = Map::new();
        for (key, value) in fields {
            let value = match key.as_str() {
                "nullable" | "example" | "xml" | "discriminator" => continue,
                "items"
                | "additionalProperties"
                | "not"
                | "if"
                | "then"
                | "else"
                | "contains"
                | "propertyNames"
                | "unevaluatedProperties"
                | "unevaluatedItems" => one(value)?,
                "allOf" | "anyOf" | "oneOf" | "prefixItems" => match value {
                    Value::Array(schemas) => {
                        Value::Array(schemas.iter().map(one).collect::<Result<_, _>>()?)
                    }
                    other => one(other)?,
                },
                "properties" | "patternProperties" | "$defs" | "definitions"
                | "dependentSchemas" => match value {
                    Value::Object(named) => Value::Object(
                        named
                            .iter()
                            .map(|(name, schema)| Ok((name.clone(), one(schema)?)))
                            .collect::<Result<_, String>>()?,
                    ),
                    other => other.clone(),
                },
                _ => value.clone(),
            };
            out.insert(key.clone(), value);
        }
        if fields.get("nullable") == Some(&Value::Bool(true))
            && let Some(Value::String(kind)) = out.get("type").cloned()
        {
            out.insert("type".into(), json!([kind, "null"]));
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests;
