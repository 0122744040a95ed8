//! Create and edit forms: the fields each kind's form shows, and turning a submitted form into
//! the REST API's JSON body (the same validation follows).

use super::*;

/// How a form field is entered.
#[derive(Clone, Copy)]
pub enum Input {
    /// One line of text.
    Text,
    /// A URL.
    Url,
    /// Several lines of text.
    Area,
    /// JSON, checked in the browser before sending and parsed here.
    Json,
    /// Comma-separated labels.
    Tags,
    /// One of fixed values.
    Choice(&'static [&'static str]),
    /// One of the user's teams, or none.
    Team,
    /// Checkboxes of visible items of a kind (`tools`, `resources`, `prompts`).
    Members(&'static str),
}

/// One field of a create or edit form: `name` is the REST API's field.
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub input: Input,
    pub required: bool,
}

pub(super) const fn field(name: &'static str, label: &'static str, input: Input) -> Field {
    Field {
        name,
        label,
        input,
        required: false,
    }
}

pub(super) const fn required(name: &'static str, label: &'static str, input: Input) -> Field {
    Field {
        name,
        label,
        input,
        required: true,
    }
}

/// The fields every item has: tags, visibility and team.
pub(super) const SHARING: [Field; 3] = [
    field("tags", "Tags (comma-separated)", Input::Tags),
    field(
        "visibility",
        "Visibility",
        Input::Choice(&["public", "team", "private"]),
    ),
    field("team_id", "Team", Input::Team),
];

/// A submitted form: its pairs in order (checkbox groups repeat a name).
pub type Pairs = Vec<(String, String)>;

pub(super) fn submitted<'a>(pairs: &'a Pairs, name: &str) -> impl Iterator<Item = &'a str> {
    pairs
        .iter()
        .filter(move |(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

pub(super) fn csrf_of_form(pairs: &Pairs) -> Option<&str> {
    submitted(pairs, "csrf").next()
}

/// What is wrong with a submitted form, and the field it concerns when there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub status: actix_web::http::StatusCode,
    pub field: Option<String>,
    pub message: String,
}

impl Refused {
    /// A problem with one field (422).
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Refused {
            status: actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// What the top of the page says.
    pub fn summary(&self) -> String {
        match &self.field {
            Some(field) => format!("{field}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

impl From<crate::http::error::ApiError> for Refused {
    fn from(error: crate::http::error::ApiError) -> Self {
        let status = actix_web::ResponseError::status_code(&error);
        match error {
            crate::http::error::ApiError::InvalidField { field, message } => Refused {
                status,
                field: Some(field),
                message,
            },
            other => Refused {
                status,
                field: None,
                message: other.to_string(),
            },
        }
    }
}

/// Marks the drawn field a problem concerns with its message.
pub(super) fn mark(fields: &mut [Value], refused: Option<&Refused>) {
    let Some(Refused {
        field: Some(name),
        message,
        ..
    }) = refused
    else {
        return;
    };
    for field in fields
        .iter_mut()
        .filter(|field| field["name"] == name.as_str())
    {
        field["error"] = json!(message);
    }
}

/// Builds the REST body from a form: an empty field is `null` (on an update: a clearable
/// field is cleared, another is left as it is), JSON fields are parsed, tags split.
pub(super) fn body_from(
    fields: &[Field],
    pairs: &Pairs,
    creating: bool,
) -> Result<Map<String, Value>, Refused> {
    let mut body = Map::new();
    for field in fields {
        let text = submitted(pairs, field.name)
            .next()
            .map(str::trim)
            .unwrap_or_default();
        let value = match field.input {
            Input::Members(_) => json!(submitted(pairs, field.name).collect::<Vec<_>>()),
            Input::Tags => json!(
                text.split(',')
                    .map(str::trim)
                    .filter(|tag| !tag.is_empty())
                    .collect::<Vec<_>>()
            ),
            _ if text.is_empty() => {
                if field.required {
                    return Err(Refused::field(field.name, "this field is required"));
                }
                Value::Null
            }
            Input::Json => serde_json::from_str(text)
                .map_err(|error| Refused::field(field.name, format!("not valid JSON ({error})")))?,
            _ => json!(text),
        };
        if creating && value.is_null() {
            continue;
        }
        body.insert(field.name.to_owned(), value);
    }
    Ok(body)
}

/// Parses a form into a create or update body, naming the field a problem is in.
pub(super) fn parse<T: serde::de::DeserializeOwned>(
    fields: &[Field],
    pairs: &Pairs,
    creating: bool,
) -> Result<T, Refused> {
    let body = body_from(fields, pairs, creating)?;
    serde_path_to_error::deserialize(Value::Object(body)).map_err(|error| {
        let path = error.path().to_string();
        // `tags[0]` or `annotations.title`: the form's field is the first step.
        let field = path.split(['.', '[']).next().unwrap_or_default().to_owned();
        Refused::field(&field, error.into_inner().to_string())
    })
}

/// The form's fields as the template draws them, with values (from a record or the submitted
/// form) and the options of choices, teams and member lists.
pub(super) async fn form_fields(
    state: &AppState,
    user: &ConsoleUser,
    teams: &[(String, String)],
    fields: &[Field],
    values: &Value,
) -> Vec<Value> {
    let mut drawn = Vec::new();
    for field in fields {
        let current = &values[field.name];
        let mut value = json!({
            "name": field.name, "label": field.label, "required": field.required,
        });
        let (kind, text, options) = match field.input {
            Input::Text => ("text", plain(current), Value::Null),
            Input::Url => ("url", plain(current), Value::Null),
            Input::Area => ("area", plain(current), Value::Null),
            Input::Json => (
                "json",
                if current.is_null() || current.is_string() {
                    plain(current)
                } else {
                    serde_json::to_string_pretty(current).unwrap_or_default()
                },
                Value::Null,
            ),
            Input::Tags => (
                "text",
                match current {
                    Value::Array(tags) => tags
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                    other => plain(other),
                },
                Value::Null,
            ),
            Input::Choice(choices) => ("choice", plain(current), json!(choices)),
            Input::Team => {
                let teams: Vec<Value> = teams
                    .iter()
                    .map(|(id, name)| json!({"value": id, "label": name}))
                    .collect();
                ("team", plain(current), json!(teams))
            }
            Input::Members(kind) => {
                let chosen: Vec<&str> = current
                    .as_array()
                    .map(|ids| ids.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let items = match kind {
                    "tools" => Tools::views(state, user).await,
                    "resources" => Resources::views(state, user).await,
                    _ => Prompts::views(state, user).await,
                }
                .unwrap_or_default();
                let options: Vec<Value> = items
                    .iter()
                    .map(|item| {
                        let id = item["id"].as_str().unwrap_or_default();
                        json!({
                            "value": id,
                            "label": item["name"].as_str().or(item["uri"].as_str()).unwrap_or(id),
                            "checked": chosen.contains(&id),
                        })
                    })
                    .collect();
                ("members", String::new(), json!(options))
            }
        };
        value["kind"] = json!(kind);
        value["value"] = json!(text);
        value["options"] = options;
        drawn.push(value);
    }
    drawn
}

pub(super) fn plain(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// What a submitted form says, as values to draw it again with (after an error).
pub(super) fn values_of(fields: &[Field], pairs: &Pairs) -> Value {
    let mut values = Map::new();
    for field in fields {
        let value = match field.input {
            Input::Members(_) => json!(submitted(pairs, field.name).collect::<Vec<_>>()),
            _ => json!(submitted(pairs, field.name).next().unwrap_or_default()),
        };
        values.insert(field.name.to_owned(), value);
    }
    Value::Object(values)
}
