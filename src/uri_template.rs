//! RFC 6570 URI templates, the one place the gateway reads them: a REST tool's URL
//! (`https://api.example/weather/{city}{?units}`, expanded from the call's arguments) and a
//! resource template's URI (`docs://{section}/{page}`, matched against `resources/read`).
//! Parsing and expansion (levels 1–4) are the `iri-string` crate's; matching, which RFC 6570
//! does not define, is written here for the forms resource templates may use.

use iri_string::spec::UriSpec;
use iri_string::template::UriTemplateStr;
use iri_string::template::simple_context::{SimpleContext, Value as TemplateValue};
use serde_json::{Map, Value};

/// A validated URI template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UriTemplate(String);

/// One piece of a template: literal text or an expression.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Literal(&'a str),
    /// `{name}` (`reserved`: `{+name}`, whose value may contain `/`).
    Variable {
        name: &'a str,
        reserved: bool,
    },
    /// Any other expression (`{?a,b}`, `{/path*}`, `{#frag}` …).
    Other,
}

impl UriTemplate {
    /// Parses a template; the error says what is wrong.
    pub fn parse(value: &str) -> Result<Self, String> {
        UriTemplateStr::new(value)
            .map_err(|error| format!("is not an RFC 6570 URI template ({error})"))?;
        Ok(UriTemplate(value.to_owned()))
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn template(&self) -> &UriTemplateStr {
        // Checked by `parse`.
        UriTemplateStr::new(&self.0).expect("validated at parse")
    }

    /// The names of the variables, in order of appearance (once each).
    pub fn variables(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for name in self.template().variables() {
            if !names.iter().any(|known| known == name.as_str()) {
                names.push(name.as_str().to_owned());
            }
        }
        names
    }

    /// Whether every expression is `{name}` or `{+name}`: the forms [`Self::matches`] reads.
    pub fn is_matchable(&self) -> bool {
        self.pieces()
            .iter()
            .all(|piece| !matches!(piece, Piece::Other))
    }

    fn pieces(&self) -> Vec<Piece<'_>> {
        let mut pieces = Vec::new();
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Literal(&rest[..open]));
            }
            let Some(close) = rest[open..].find('}').map(|close| close + open) else {
                break;
            };
            let expression = &rest[open + 1..close];
            let (reserved, name) = match expression.strip_prefix('+') {
                Some(name) => (true, name),
                None => (false, expression),
            };
            let simple = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '%'));
            pieces.push(if simple {
                Piece::Variable { name, reserved }
            } else {
                Piece::Other
            });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest));
        }
        pieces
    }

    /// Expands the template with the call's arguments, removing the ones it used. A variable
    /// written as `{name}` or `{+name}` is required; the others (`{?q}`, `{/path*}` …) may be
    /// absent. Strings expand as they are, other scalars as JSON, arrays of scalars as lists,
    /// objects as associative arrays.
    pub fn expand(&self, arguments: &mut Map<String, Value>) -> Result<String, String> {
        let required: Vec<&str> = self
            .pieces()
            .into_iter()
            .filter_map(|piece| match piece {
                Piece::Variable { name, .. } => Some(name),
                _ => None,
            })
            .collect();
        let mut context = SimpleContext::new();
        for name in self.variables() {
            let Some(value) = arguments.remove(&name) else {
                if required.contains(&name.as_str()) {
                    return Err(format!(
                        "argument {name:?} is needed to build the tool's URL"
                    ));
                }
                continue;
            };
            // URL parsers treat `.` and `..` (even percent-encoded) as path steps: a value
            // must stay inside its segment.
            if required.contains(&name.as_str()) && matches!(value.as_str(), Some("." | "..")) {
                return Err(format!(
                    "argument {name:?} cannot be {value}: it would change the tool's URL path"
                ));
            }
            context.insert(name, template_value(value));
        }
        let expanded = self
            .template()
            .expand::<UriSpec, _>(&context)
            .map_err(|error| format!("the tool's URL could not be built: {error}"))?;
        Ok(expanded.to_string())
    }

    /// The variables a URI gives this template, or `None` when it does not match. A `{name}`
    /// takes one or more characters up to the next literal (or up to the next `/` at the end);
    /// a `{+name}` may also take `/`.
    pub fn matches(&self, uri: &str) -> Option<Vec<(String, String)>> {
        let pieces = self.pieces();
        let mut variables = Vec::new();
        let mut rest = uri;
        for (index, piece) in pieces.iter().enumerate() {
            match piece {
                Piece::Literal(literal) => rest = rest.strip_prefix(literal)?,
                Piece::Variable { name, reserved } => {
                    let end = match pieces.get(index + 1) {
                        Some(Piece::Literal(next)) => rest.find(next)?,
                        Some(_) => return None,
                        None if *reserved => rest.len(),
                        None => rest.find('/').unwrap_or(rest.len()),
                    };
                    let value = &rest[..end];
                    if value.is_empty() || (!reserved && value.contains('/')) {
                        return None;
                    }
                    variables.push(((*name).to_owned(), value.to_owned()));
                    rest = &rest[end..];
                }
                Piece::Other => return None,
            }
        }
        rest.is_empty().then_some(variables)
    }
}

fn scalar(value: Value) -> Option<String> {
    match value {
        Value::Null | Value::Array(_) | Value::Object(_) => None,
        Value::String(text) => Some(text),
        other => Some(other.to_string()),
    }
}

fn template_value(value: Value) -> TemplateValue {
    match value {
        Value::Null => TemplateValue::Undefined,
        Value::Array(items) => TemplateValue::List(items.into_iter().filter_map(scalar).collect()),
        Value::Object(entries) => TemplateValue::Assoc(
            entries
                .into_iter()
                .filter_map(|(key, value)| Some((key, scalar(value)?)))
                .collect(),
        ),
        other => scalar(other).map_or(TemplateValue::Undefined, TemplateValue::String),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn arguments(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn parse_refuses_what_is_not_a_template() {
        assert!(UriTemplate::parse("docs://{section").is_err());
        assert!(UriTemplate::parse("docs://{a{b}}").is_err());
        assert!(UriTemplate::parse("docs://{sec tion}").is_err());
        assert!(UriTemplate::parse("docs://{section}/{+rest}").is_ok());
    }

    #[test]
    fn expansion_encodes_and_takes_the_arguments_it_uses() {
        let template = UriTemplate::parse("http://h/weather/{city}/{days}{?units}").unwrap();
        let mut args =
            arguments(json!({"city": "São Paulo/x", "days": 3, "units": "metric", "other": 1}));
        assert_eq!(
            template.expand(&mut args).unwrap(),
            "http://h/weather/S%C3%A3o%20Paulo%2Fx/3?units=metric"
        );
        assert_eq!(args, arguments(json!({"other": 1})));
        // Optional query variables may be absent; path variables may not.
        let mut args = arguments(json!({"city": "Oslo", "days": 1}));
        assert_eq!(
            template.expand(&mut args).unwrap(),
            "http://h/weather/Oslo/1"
        );
        assert!(
            template
                .expand(&mut arguments(json!({"city": "Oslo"})))
                .is_err()
        );
        assert!(
            template
                .expand(&mut arguments(json!({"city": "..", "days": 1})))
                .is_err()
        );
        let list = UriTemplate::parse("http://h/items{?id*}").unwrap();
        assert_eq!(
            list.expand(&mut arguments(json!({"id": [1, "b"]})))
                .unwrap(),
            "http://h/items?id=1&id=b"
        );
    }

    #[test]
    fn matching_reads_simple_and_reserved_variables() {
        let template = UriTemplate::parse("docs://{section}/{page}").unwrap();
        assert_eq!(
            template.matches("docs://guide/intro"),
            Some(vec![
                ("section".into(), "guide".into()),
                ("page".into(), "intro".into())
            ])
        );
        assert_eq!(template.matches("docs://guide"), None);
        assert_eq!(template.matches("docs://a/b/c"), None);
        assert_eq!(template.matches("other://a/b"), None);
        let reserved = UriTemplate::parse("file:///{+path}").unwrap();
        assert_eq!(
            reserved.matches("file:///etc/hosts"),
            Some(vec![("path".into(), "etc/hosts".into())])
        );
        let query = UriTemplate::parse("docs://{section}{?q}").unwrap();
        assert!(!query.is_matchable());
        assert_eq!(query.matches("docs://a?q=1"), None);
        assert_eq!(template.variables(), ["section", "page"]);
    }
}
