//! Field validation shared by the registry entities. Every failure names the field.

use std::collections::BTreeMap;

use serde_json::Value;

/// A field that failed validation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The field, as the client spelled it (`input_schema`, `tags[2]`).
    pub field: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

/// Builds an [`Invalid`].
pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A required, trimmed, non-empty text of at most `max` characters.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String, Invalid> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    bounded(field, trimmed, max)?;
    Ok(trimmed.to_owned())
}

/// An optional text; empty becomes absent.
pub fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, Invalid> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => {
            bounded(field, text, max)?;
            Ok(Some(text.to_owned()))
        }
    }
}

fn bounded(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    let length = value.chars().count();
    if length > max {
        return Err(invalid(
            field,
            format!("is {length} characters long; the most allowed is {max}"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// An MCP tool or prompt name: 1–128 of `A-Z a-z 0-9 _ - .`.
pub fn mcp_name(field: &str, value: &str) -> Result<String, Invalid> {
    let name = required_text(field, value, 128)?;
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(invalid(
            field,
            format!("contains {bad:?}; use letters, digits, '_', '-' and '.' only"),
        ));
    }
    Ok(name)
}

/// A name an upstream offers (a tool's, a prompt's), NFC-normalised; refused when it could pass
/// for another name: control or invisible characters (zero-width, bidi controls, variation
/// selectors, tags, soft hyphen), characters UTS #39 does not allow in identifiers (fullwidth or
/// compatibility forms), or letters of more than one script (a Cyrillic "а" among Latin ones).
pub fn federated_name(name: &str) -> Result<String, String> {
    use unicode_normalization::UnicodeNormalization;
    use unicode_security::{GeneralSecurityProfile, MixedScript};
    let normal: String = name.nfc().collect();
    if normal.is_empty() {
        return Err("is empty".into());
    }
    for c in normal.chars() {
        let invisible = c.is_control() || matches!(c, '\u{200C}' | '\u{200D}');
        if invisible || !(c.is_ascii() || c.identifier_allowed()) {
            return Err(format!(
                "contains U+{:04X}, an invisible or look-alike character",
                u32::from(c)
            ));
        }
    }
    if !normal.is_single_script() {
        return Err("mixes letters of several scripts, so it can pass for another name".into());
    }
    Ok(normal)
}

/// Tags: trimmed, non-empty, at most 64 characters each, at most 32, duplicates removed.
pub fn tags(values: Option<&[String]>) -> Result<Vec<String>, Invalid> {
    let values = values.unwrap_or_default();
    if values.len() > 32 {
        return Err(invalid("tags", "at most 32 tags are allowed"));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for (index, tag) in values.iter().enumerate() {
        let tag = required_text(&format!("tags[{index}]"), tag, 64)?;
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

/// An absolute `http` or `https` URL.
pub fn http_url(field: &str, value: &str) -> Result<String, Invalid> {
    let trimmed = value.trim();
    let parsed = url::Url::parse(trimmed)
        .map_err(|error| invalid(field, format!("is not a valid URL ({error})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(field, "must be an http:// or https:// URL"));
    }
    if parsed.host_str().is_none() {
        return Err(invalid(field, "must name a host"));
    }
    Ok(trimmed.to_owned())
}

/// A REST tool's URL: an http(s) URL that may be an RFC 6570 template filled from the call's
/// arguments. Reserved (`{+name}`) and fragment (`{#name}`) expansion are refused: they would
/// let an argument add `/` or `..` and reach another path of the host.
pub fn tool_url(field: &str, value: &str) -> Result<String, Invalid> {
    let url = http_url(field, value)?;
    crate::uri_template::UriTemplate::parse(&url).map_err(|why| invalid(field, why))?;
    if url.contains("{+") || url.contains("{#") {
        return Err(invalid(
            field,
            "may not use {+name} or {#name}: an argument must not change the URL's path",
        ));
    }
    Ok(url)
}

/// HTTP header names and values a REST tool sends.
pub fn headers(
    field: &str,
    values: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Invalid> {
    if values.len() > 64 {
        return Err(invalid(field, "at most 64 headers are allowed"));
    }
    for (name, value) in values {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Err(invalid(
                format!("{field}.{name}"),
                "is not a valid HTTP header name",
            ));
        }
        if value.len() > 8192 || value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return Err(invalid(
                format!("{field}.{name}"),
                "is not a valid HTTP header value (control characters or over 8 KiB)",
            ));
        }
    }
    Ok(values.clone())
}

/// A JSON Schema for tool input or output: an object schema of `"type": "object"` that is a
/// valid JSON Schema document.
pub fn object_schema(field: &str, schema: &Value) -> Result<(), Invalid> {
    let Some(object) = schema.as_object() else {
        return Err(invalid(field, "must be a JSON object (a JSON Schema)"));
    };
    if object.get("type").and_then(Value::as_str) != Some("object") {
        return Err(invalid(
            field,
            "must have \"type\": \"object\" at its root, as MCP requires",
        ));
    }
    jsonschema::meta::validate(schema)
        .map_err(|error| invalid(field, format!("is not a valid JSON Schema: {error}")))?;
    jsonschema::validator_for(schema)
        .map(|_| ())
        .map_err(|error| invalid(field, format!("is not a usable JSON Schema: {error}")))
}

/// A MIME type such as `text/plain`.
pub fn mime_type(field: &str, value: &str) -> Result<String, Invalid> {
    let value = required_text(field, value, 255)?;
    let valid = value.split_once('/').is_some_and(|(kind, rest)| {
        !kind.is_empty()
            && !rest.is_empty()
            && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    });
    if valid {
        Ok(value)
    } else {
        Err(invalid(field, "is not a MIME type such as text/plain"))
    }
}

/// What masked secrets look like in responses; sending it back in an update keeps the secret.
pub const MASK: &str = "*****";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn federated_names_are_normalised_and_look_alikes_refused() {
        assert_eq!(federated_name("get_weather.v2").unwrap(), "get_weather.v2");
        assert_eq!(federated_name("検索_ツール").unwrap(), "検索_ツール");
        assert_eq!(federated_name("поиск").unwrap(), "поиск");
        // NFD "é" becomes NFC.
        assert_eq!(federated_name("cafe\u{301}").unwrap(), "caf\u{e9}");
        for bad in [
            "get\u{200B}weather", // zero-width space
            "get\u{200D}weather", // zero-width joiner
            "admin\u{202E}txt",   // right-to-left override
            "tool\u{FE0F}",       // variation selector
            "tool\u{E0041}",      // tag character
            "soft\u{AD}hyphen",   // soft hyphen
            "\u{FF41}dmin",       // fullwidth a
            "line\nbreak",
            "p\u{430}y", // a Cyrillic а among Latin letters
            "",
        ] {
            assert!(federated_name(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
