//! A result object as the gateway holds it: built here ([`Reply::Built`]), or kept as the text
//! an upstream sent ([`Reply::Relayed`]). Of a relayed result only the top-level members are
//! read or changed (the `resultType`, `isError`, `_meta` the gateway looks at or adjusts); the
//! rest is never parsed into a tree nor encoded again, so a large result is copied, not rebuilt.

use std::fmt;
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::{RawValue, to_raw_value};
use serde_json::{Map, Value};

/// A JSON object.
pub type Object = Map<String, Value>;

/// A JSON object's top-level members, each value kept as its own text.
#[derive(Debug, Default)]
pub struct RawObject {
    members: Vec<(String, Box<RawValue>)>,
}

/// The deepest nesting of arrays and objects relayed from an upstream (serde_json's own
/// limit when it parses a tree, so what is relayed stays readable by clients' parsers).
pub const MAX_NESTING: usize = 128;

/// Whether JSON `text`, found `start` levels down, nests arrays and objects deeper than
/// [`MAX_NESTING`] in all (one pass over its bytes; brackets inside strings do not count).
fn too_deep_from(text: &str, start: usize) -> bool {
    let bytes = text.as_bytes();
    let mut depth = start;
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            // A string is skipped to its closing quote (memchr: most of a result is text).
            b'"' => loop {
                at += 1;
                let Some(offset) = bytes
                    .get(at..)
                    .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                else {
                    return false;
                };
                at += offset;
                if bytes[at] == b'"' {
                    break;
                }
                // An escape: the escaped character is skipped with it.
                at += 1;
            },
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    false
}

impl RawObject {
    /// Reads an object's top-level members (each value is checked to be JSON and copied).
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Whether a member nests arrays and objects so deep that the whole is deeper than
    /// [`MAX_NESTING`] (its members were kept as text, never parsed into a tree).
    pub fn too_deep(&self) -> bool {
        self.members
            .iter()
            .any(|(_, value)| too_deep_from(value.get(), 1))
    }

    /// A member's text.
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.members
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| &**value)
    }

    /// A member read as `T` (`None` when absent or of another type).
    fn read<'a, T: Deserialize<'a>>(&'a self, key: &str) -> Option<T> {
        serde_json::from_str(self.get(key)?.get()).ok()
    }

    /// Removes a member.
    pub fn remove(&mut self, key: &str) -> Option<Box<RawValue>> {
        let index = self.members.iter().position(|(name, _)| name == key)?;
        Some(self.members.remove(index).1)
    }

    /// Sets a member (replacing one of the same name).
    pub fn insert(&mut self, key: &str, value: &Value) {
        let Ok(text) = to_raw_value(value) else {
            return;
        };
        match self.members.iter_mut().find(|(name, _)| name == key) {
            Some((_, slot)) => *slot = text,
            None => self.members.push((key.to_owned(), text)),
        }
    }

    /// Every member parsed.
    pub fn into_object(self) -> Object {
        self.members
            .into_iter()
            .filter_map(|(name, text)| Some((name, serde_json::from_str(text.get()).ok()?)))
            .collect()
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;

        impl<'de> Visitor<'de> for Members {
            type Value = RawObject;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut object = RawObject::default();
                while let Some((name, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    // A repeated name: the last one counts, as when parsed into a map.
                    match object.members.iter_mut().find(|(seen, _)| *seen == name) {
                        Some((_, slot)) => *slot = value,
                        None => object.members.push((name, value)),
                    }
                }
                Ok(object)
            }
        }

        deserializer.deserialize_map(Members)
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.members.len()))?;
        for (name, value) in &self.members {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// A result object, built by the gateway or relayed from an upstream.
#[derive(Debug)]
pub enum Reply {
    /// Built here.
    Built(Object),
    /// As an upstream sent it.
    Relayed(RawObject),
    /// A list: its items encoded once (when the catalog was built) and shared by every page
    /// they are on, then the other members.
    Listed {
        /// The array's name (`tools`, `prompts`, `resources`, `resourceTemplates`).
        field: &'static str,
        /// The items, encoded.
        items: Vec<Encoded>,
        /// The other members (`nextCursor`, and what decoration adds).
        rest: Object,
    },
}

impl From<Object> for Reply {
    fn from(object: Object) -> Self {
        Reply::Built(object)
    }
}

impl From<RawObject> for Reply {
    fn from(object: RawObject) -> Self {
        Reply::Relayed(object)
    }
}

impl Reply {
    /// A string member.
    pub fn str_member(&self, key: &str) -> Option<&str> {
        match self {
            Reply::Built(object) | Reply::Listed { rest: object, .. } => {
                object.get(key).and_then(Value::as_str)
            }
            Reply::Relayed(object) => object.read(key),
        }
    }

    /// Whether a member is `true`.
    pub fn is_true(&self, key: &str) -> bool {
        match self {
            Reply::Built(object) | Reply::Listed { rest: object, .. } => {
                object.get(key).and_then(Value::as_bool) == Some(true)
            }
            Reply::Relayed(object) => object.read::<bool>(key) == Some(true),
        }
    }

    /// Removes a member (never a list's items).
    pub fn remove(&mut self, key: &str) {
        match self {
            Reply::Built(object) | Reply::Listed { rest: object, .. } => {
                object.remove(key);
            }
            Reply::Relayed(object) => {
                object.remove(key);
            }
        }
    }

    /// Sets a member (never a list's items).
    pub fn insert(&mut self, key: &str, value: Value) {
        match self {
            Reply::Built(object) | Reply::Listed { rest: object, .. } => {
                object.insert(key.to_owned(), value);
            }
            Reply::Relayed(object) => object.insert(key, &value),
        }
    }

    /// Changes the `_meta` object (made when absent, removed when left empty; a `_meta` that is
    /// not an object is left alone).
    pub fn edit_meta(&mut self, edit: impl FnOnce(&mut Object)) {
        match self {
            Reply::Built(object) | Reply::Listed { rest: object, .. } => {
                let mut meta = match object.remove("_meta") {
                    None => Object::new(),
                    Some(Value::Object(meta)) => meta,
                    Some(other) => {
                        object.insert("_meta".into(), other);
                        return;
                    }
                };
                edit(&mut meta);
                if !meta.is_empty() {
                    object.insert("_meta".into(), Value::Object(meta));
                }
            }
            Reply::Relayed(object) => {
                let mut meta = match object.get("_meta") {
                    None => Object::new(),
                    Some(text) => match serde_json::from_str(text.get()) {
                        Ok(Value::Object(meta)) => meta,
                        _ => return,
                    },
                };
                edit(&mut meta);
                if meta.is_empty() {
                    object.remove("_meta");
                } else {
                    object.insert("_meta", &Value::Object(meta));
                }
            }
        }
    }

    /// The whole object, parsed.
    pub fn into_object(self) -> Object {
        match self {
            Reply::Built(object) => object,
            Reply::Relayed(object) => object.into_object(),
            Reply::Listed {
                field,
                items,
                mut rest,
            } => {
                let items = items.iter().map(Encoded::parse).collect();
                rest.insert(field.into(), Value::Array(items));
                rest
            }
        }
    }
}

impl Serialize for Reply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Reply::Built(object) => object.serialize(serializer),
            Reply::Relayed(object) => object.serialize(serializer),
            Reply::Listed { field, items, rest } => {
                let mut map = serializer.serialize_map(Some(rest.len() + 1))?;
                map.serialize_entry(field, items)?;
                for (name, value) in rest {
                    map.serialize_entry(name, value)?;
                }
                map.end()
            }
        }
    }
}

/// A JSON value encoded once (an item's definition, listed many times), shared.
#[derive(Clone)]
pub struct Encoded(Arc<RawValue>);

impl Encoded {
    /// Encodes `value`.
    pub fn new(value: &Value) -> Self {
        // Encoding a JSON value cannot fail; `null` stands in if it ever did.
        Encoded(Arc::from(to_raw_value(value).unwrap_or_default()))
    }

    /// The text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The value, parsed again.
    pub fn parse(&self) -> Value {
        serde_json::from_str(self.get()).unwrap_or(Value::Null)
    }
}

impl PartialEq for Encoded {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for Encoded {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.get())
    }
}

impl Serialize for Encoded {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings() {
        let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        assert!(!too_deep_from(&nested(MAX_NESTING), 0));
        assert!(too_deep_from(&nested(MAX_NESTING + 1), 0));
        assert!(!too_deep_from(&format!("\"{}\"", "[".repeat(500)), 0));
        assert!(!too_deep_from(r#"{"a": "\"[[[", "b": [1, {"c": 2}]}"#, 0));
    }

    #[test]
    fn a_relayed_result_keeps_its_text_and_changes_only_its_members() {
        let text = r#"{"content":[{"type":"text","text":"a\nb", "x" : 1.50}],"isError":true,
            "_meta":{"io.modelcontextprotocol/serverInfo":{"name":"up"},"keep":1},"cacheScope":"public"}"#;
        let mut reply = Reply::Relayed(RawObject::parse(text).unwrap());
        assert!(reply.is_true("isError"));
        assert_eq!(reply.str_member("cacheScope"), Some("public"));
        reply.remove("cacheScope");
        reply.edit_meta(|meta| {
            meta.remove("io.modelcontextprotocol/serverInfo");
        });
        reply.insert("resultType", json!("complete"));
        let out = serde_json::to_string(&reply).unwrap();
        // The content is passed on as the upstream wrote it (spacing and number form kept).
        assert!(out.starts_with(r#"{"content":[{"type":"text","text":"a\nb", "x" : 1.50}]"#));
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            json!({"content":[{"type":"text","text":"a\nb","x":1.50}],"isError":true,
                   "_meta":{"keep":1},"resultType":"complete"})
        );
    }

    #[test]
    fn meta_is_made_and_removed_as_needed() {
        let mut reply = Reply::Relayed(RawObject::parse(r#"{"_meta":{"a":1}}"#).unwrap());
        reply.edit_meta(|meta| {
            meta.remove("a");
        });
        assert_eq!(serde_json::to_string(&reply).unwrap(), "{}");
        reply.edit_meta(|meta| {
            meta.insert("b".into(), json!(2));
        });
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"_meta":{"b":2}}"#
        );
        let mut built = Reply::Built(Object::new());
        built.edit_meta(|meta| {
            meta.insert("b".into(), json!(2));
        });
        assert_eq!(reply.into_object(), built.into_object());
    }

    #[test]
    fn a_list_writes_its_encoded_items_then_its_other_members() {
        let items = vec![
            Encoded::new(&json!({"name": "a"})),
            Encoded::new(&json!({"name": "b"})),
        ];
        let mut reply = Reply::Listed {
            field: "tools",
            items,
            rest: Object::new(),
        };
        reply.insert("nextCursor", json!("x"));
        reply.edit_meta(|meta| {
            meta.insert("k".into(), json!(1));
        });
        let text = serde_json::to_string(&reply).unwrap();
        assert!(text.starts_with(r#"{"tools":[{"name":"a"},{"name":"b"}],"#));
        assert_eq!(
            Value::Object(reply.into_object()),
            json!({"tools":[{"name":"a"},{"name":"b"}],"nextCursor":"x","_meta":{"k":1}})
        );
    }

    #[test]
    fn only_objects_are_read_and_the_last_repeated_member_counts() {
        assert!(RawObject::parse("[1]").is_err());
        assert!(RawObject::parse(r#"{"a":}"#).is_err());
        let object = RawObject::parse(r#"{"a":1,"a":2}"#).unwrap();
        assert_eq!(
            object.into_object(),
            json!({"a":2}).as_object().unwrap().clone()
        );
    }
}
