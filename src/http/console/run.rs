//! The console's test-run of a tool: a form from the tool's input schema (enums as lists,
//! defaults filled in, errors beside the field they concern), the result rendered (text,
//! images, structured content, links; the raw JSON beside it) and the same call as a curl
//! command to copy.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::{ConsoleRefusal, ConsoleUser};
use crate::catalog::Scope;
use crate::http::AppState;

/// Image types shown inline (raster only: nothing that could carry script).
const INLINE_IMAGES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// How a JSON value reads in a form field: strings as they are, the rest as JSON.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// One input of the form, from a top-level property of the tool's input schema; what was
/// submitted, else the schema's default.
fn fields(
    schema: &Value,
    submitted: Option<&Map<String, Value>>,
    problem: Option<&Problem>,
) -> Vec<Value> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema["properties"].as_object() else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, property)| {
            let options: Option<Vec<String>> = property["enum"]
                .as_array()
                .map(|values| values.iter().map(as_text).collect());
            let kind = if options.is_some() {
                "enum"
            } else {
                property["type"].as_str().unwrap_or("json")
            };
            let value = match submitted {
                Some(submitted) => submitted.get(name).map(as_text).unwrap_or_default(),
                None => property.get("default").map(as_text).unwrap_or_default(),
            };
            json!({
                "name": name,
                "kind": kind,
                "options": options.unwrap_or_default(),
                "required": required.contains(&name.as_str()),
                "description": property["description"].as_str().unwrap_or(""),
                "value": value,
                "error": problem.filter(|problem| problem.field == *name).map(|problem| &problem.message),
            })
        })
        .collect()
}

/// What is wrong with one argument.
#[derive(Debug, PartialEq)]
struct Problem {
    field: String,
    message: String,
}

/// Turns the form's `arg.<name>` fields into arguments, typed by the schema; empty optional
/// fields are left out.
fn arguments(schema: &Value, form: &Map<String, Value>) -> Result<Map<String, Value>, Problem> {
    let mut arguments = Map::new();
    for (key, raw) in form {
        let Some(name) = key.strip_prefix("arg.") else {
            continue;
        };
        let text = raw.as_str().unwrap_or_default().trim();
        if text.is_empty() {
            continue;
        }
        let property = &schema["properties"][name];
        let problem = |message: &str| Problem {
            field: name.to_owned(),
            message: message.to_owned(),
        };
        let value = if let Some(options) = property["enum"].as_array() {
            options
                .iter()
                .find(|option| as_text(option) == text)
                .cloned()
                .ok_or_else(|| problem("choose one of the listed values"))?
        } else {
            match property["type"].as_str().unwrap_or("json") {
                "string" => Value::String(text.to_owned()),
                "boolean" => Value::Bool(text == "true"),
                "integer" => text
                    .parse::<i64>()
                    .map(Value::from)
                    .map_err(|_| problem("a whole number is expected"))?,
                "number" => text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| problem("a number is expected"))?,
                _ => serde_json::from_str(text)
                    .map_err(|error| problem(&format!("not JSON ({error})")))?,
            }
        };
        arguments.insert(name.to_owned(), value);
    }
    Ok(arguments)
}

/// A result's content as the page shows it: text, inline images, links and notes.
fn content(result: &Value) -> Vec<Value> {
    let Some(items) = result["content"].as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| match item["type"].as_str().unwrap_or_default() {
            "text" => json!({"kind": "text", "text": item["text"].as_str().unwrap_or_default()}),
            "image" => {
                let mime = item["mimeType"].as_str().unwrap_or_default();
                let data = item["data"].as_str().unwrap_or_default();
                let base64 = data
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"+/=".contains(&byte));
                if INLINE_IMAGES.contains(&mime) && base64 && !data.is_empty() {
                    json!({"kind": "image", "src": format!("data:{mime};base64,{data}"), "mime": mime})
                } else {
                    json!({"kind": "note", "text": format!("an image ({mime}) not shown inline")})
                }
            }
            "audio" => json!({"kind": "note", "text": format!(
                "audio ({}), {} characters of base64",
                item["mimeType"].as_str().unwrap_or("unknown type"),
                item["data"].as_str().map_or(0, str::len)
            )}),
            "resource_link" => {
                let uri = item["uri"].as_str().unwrap_or_default();
                // Only web addresses are links; any other scheme is shown as text.
                let web = uri.starts_with("https://") || uri.starts_with("http://");
                json!({"kind": "link", "uri": uri, "href": web.then_some(uri),
                       "name": item["name"].as_str().unwrap_or(uri)})
            }
            "resource" => match item["resource"]["text"].as_str() {
                Some(text) => json!({"kind": "text", "text": text}),
                None => json!({"kind": "note", "text": format!(
                    "an embedded resource: {}", item["resource"]["uri"].as_str().unwrap_or_default())}),
            },
            other => json!({"kind": "note", "text": format!("content of type {other:?}")}),
        })
        .collect()
}

/// What the page shows.
struct Run<'a> {
    name: &'a str,
    submitted: Option<&'a Map<String, Value>>,
    outcome: Option<(Value, bool, f64)>,
    problem: Option<Problem>,
    error: Option<String>,
}

fn run_page(
    state: &AppState,
    request: &HttpRequest,
    user: &ConsoleUser,
    run: Run<'_>,
) -> HttpResponse {
    let catalog = state.catalog.current();
    let Some(tool) = catalog.tool(&Scope::All, &user.principal, run.name) else {
        let mut context = user.context("tools");
        context.insert(
            "error",
            &format!("There is no tool {:?} you can see.", run.name),
        );
        context.insert("tools", &Vec::<Value>::new());
        context.insert("q", "");
        context.insert("form", &json!({}));
        context.insert("methods", &Vec::<String>::new());
        context.insert("may_create", &false);
        return state
            .console
            .page(StatusCode::NOT_FOUND, "tools.html", &context);
    };
    let definition = tool.definition.parse();
    let schema = definition["inputSchema"].clone();
    let mut context = user.context("tools");
    context.insert(
        "tool",
        &json!({"name": tool.name, "description": definition["description"].as_str().unwrap_or("")}),
    );
    context.insert(
        "fields",
        &fields(&schema, run.submitted, run.problem.as_ref()),
    );
    let error = run
        .problem
        .as_ref()
        .map(|problem| format!("{}: {}", problem.field, problem.message))
        .or(run.error);
    context.insert("error", &error);
    // The same call from a terminal, with the arguments as entered (or the defaults).
    let arguments = run
        .submitted
        .and_then(|submitted| {
            let form: Map<String, Value> = submitted
                .iter()
                .map(|(name, value)| (format!("arg.{name}"), value.clone()))
                .collect();
            arguments(&schema, &form).ok()
        })
        .unwrap_or_default();
    let (scheme, host) = crate::http::public_origin(request);
    context.insert(
        "curl",
        &super::connect::curl(
            &format!("{scheme}://{host}/mcp"),
            "Bearer YOUR_TOKEN",
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": tool.name, "arguments": arguments}}),
        ),
    );
    match run.outcome {
        Some((result, is_error, elapsed_ms)) => {
            context.insert("content", &content(&result));
            context.insert(
                "structured",
                &result
                    .get("structuredContent")
                    .map(|structured| serde_json::to_string_pretty(structured).unwrap_or_default()),
            );
            context.insert(
                "result",
                &serde_json::to_string_pretty(&result).unwrap_or_default(),
            );
            context.insert("is_error", &is_error);
            context.insert("elapsed_ms", &format!("{elapsed_ms:.1}"));
        }
        None => {
            context.insert("result", &Value::Null);
            context.insert("content", &Vec::<Value>::new());
            context.insert("structured", &Value::Null);
        }
    }
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    state.console.page(status, "run.html", &context)
}

/// `GET /admin/tools/{name}/run`: the test-run form, its inputs from the tool's schema.
pub async fn run_form(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: ConsoleUser,
    name: web::Path<String>,
) -> HttpResponse {
    let run = Run {
        name: &name,
        submitted: None,
        outcome: None,
        problem: None,
        error: None,
    };
    run_page(&state, &request, &user, run)
}

/// `POST /admin/tools/{name}/run`: runs the tool as `tools/call` would and shows the result and
/// the time it took.
pub async fn run(
    state: web::Data<AppState>,
    request: HttpRequest,
    user: ConsoleUser,
    name: web::Path<String>,
    form: web::Form<Map<String, Value>>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let form = form.into_inner();
    user.check_csrf(form.get("csrf").and_then(Value::as_str))?;
    let name = name.into_inner();
    let submitted: Map<String, Value> = form
        .iter()
        .filter_map(|(key, value)| {
            key.strip_prefix("arg.")
                .map(|k| (k.to_owned(), value.clone()))
        })
        .collect();
    let schema = state
        .catalog
        .current()
        .tool(&Scope::All, &user.principal, &name)
        .map(|tool| tool.definition.parse()["inputSchema"].clone())
        .unwrap_or(Value::Null);
    let mut run = Run {
        name: &name,
        submitted: Some(&submitted),
        outcome: None,
        problem: None,
        error: None,
    };
    let arguments = match arguments(&schema, &form) {
        Ok(arguments) => arguments,
        Err(problem) => {
            run.problem = Some(problem);
            return Ok(run_page(&state, &request, &user, run));
        }
    };
    let started = Instant::now();
    let outcome = crate::http::mcp::call_tool(
        &state,
        user.principal.clone(),
        &name,
        Value::Object(arguments),
    )
    .await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(result) => {
            let is_error = result
                .get("isError")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            run.outcome = Some((Value::Object(result), is_error, elapsed_ms));
        }
        Err(error) => run.error = Some(error.to_string()),
    }
    Ok(run_page(&state, &request, &user, run))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "required": ["unit"], "properties": {
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
            "days": {"type": "integer", "default": 3},
            "level": {"enum": [1, 2]},
            "raw": {"type": "object"},
        }})
    }

    #[test]
    fn enums_are_lists_and_defaults_are_filled_in() {
        let fields = fields(&schema(), None, None);
        let unit = fields.iter().find(|f| f["name"] == "unit").unwrap();
        assert_eq!(unit["kind"], "enum");
        assert_eq!(unit["options"], json!(["celsius", "fahrenheit"]));
        assert_eq!(unit["value"], "celsius");
        let days = fields.iter().find(|f| f["name"] == "days").unwrap();
        assert_eq!(days["value"], "3");
        // What was submitted wins over the default, even when empty.
        let submitted = Map::from_iter([("days".to_owned(), json!(""))]);
        let fields = super::fields(&schema(), Some(&submitted), None);
        assert_eq!(
            fields.iter().find(|f| f["name"] == "days").unwrap()["value"],
            ""
        );
    }

    #[test]
    fn arguments_are_typed_and_problems_name_their_field() {
        let form = Map::from_iter([
            ("arg.unit".to_owned(), json!("fahrenheit")),
            ("arg.days".to_owned(), json!("5")),
            ("arg.level".to_owned(), json!("2")),
            ("arg.raw".to_owned(), json!("{\"a\": 1}")),
            ("csrf".to_owned(), json!("x")),
        ]);
        let arguments = arguments(&schema(), &form).unwrap();
        assert_eq!(
            Value::Object(arguments),
            json!({"unit": "fahrenheit", "days": 5, "level": 2, "raw": {"a": 1}})
        );
        let bad = Map::from_iter([("arg.unit".to_owned(), json!("kelvin"))]);
        assert_eq!(
            super::arguments(&schema(), &bad).unwrap_err(),
            Problem {
                field: "unit".into(),
                message: "choose one of the listed values".into()
            }
        );
        let bad = Map::from_iter([("arg.days".to_owned(), json!("many"))]);
        let problem = super::arguments(&schema(), &bad).unwrap_err();
        assert_eq!(problem.field, "days");
        let fields = fields(&schema(), Some(&Map::new()), Some(&problem));
        let days = fields.iter().find(|f| f["name"] == "days").unwrap();
        assert_eq!(days["error"], "a whole number is expected");
        assert!(fields.iter().find(|f| f["name"] == "unit").unwrap()["error"].is_null());
    }

    #[test]
    fn content_is_rendered_and_only_raster_images_inline() {
        let shown = content(&json!({"content": [
            {"type": "text", "text": "hello"},
            {"type": "image", "mimeType": "image/png", "data": "iVBORw0KGgo="},
            {"type": "image", "mimeType": "image/svg+xml", "data": "PHN2Zz4="},
            {"type": "image", "mimeType": "image/png", "data": "\"><script>"},
            {"type": "resource_link", "uri": "file:///a.txt", "name": "a.txt"},
            {"type": "audio", "mimeType": "audio/wav", "data": "AAAA"},
        ]}));
        assert_eq!(shown[0]["kind"], "text");
        assert_eq!(shown[1]["src"], "data:image/png;base64,iVBORw0KGgo=");
        assert_eq!(shown[2]["kind"], "note", "no SVG inline");
        assert_eq!(shown[3]["kind"], "note", "not base64");
        assert_eq!(shown[4]["name"], "a.txt");
        assert!(shown[4]["href"].is_null(), "only web addresses are links");
        assert!(shown[5]["text"].as_str().unwrap().contains("audio/wav"));
    }
}
