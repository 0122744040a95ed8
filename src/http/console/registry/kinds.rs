//! The five registry kinds in the console: each one's title, form fields and operations, all
//! through the service layer.

use super::*;

/// A registry kind as the console shows it. The operations are the REST API's, bound to the
/// kind's record type.
pub trait Kind: Entity {
    /// The page title (`Resources`).
    const TITLE: &'static str;
    /// The singular, capitalised (`Resource`).
    const SINGULAR: &'static str;

    /// The fields of the edit form (and of the create form, where the console offers one).
    fn fields() -> Vec<Field>;

    /// Every record the user may see, disabled ones included, as the REST API shows them.
    async fn views(state: &AppState, user: &ConsoleUser) -> Result<Vec<Value>, ApiError>;
    /// One record the user may see (else not found).
    async fn read(state: &AppState, user: &ConsoleUser, id: &str) -> Result<Value, ApiError>;
    /// Creates a record.
    async fn add(
        state: &AppState,
        user: &ConsoleUser,
        input: Self::Create,
    ) -> Result<Value, ApiError>;
    /// Updates a record.
    async fn change(
        state: &AppState,
        user: &ConsoleUser,
        id: &str,
        input: Self::Update,
    ) -> Result<Value, ApiError>;
    /// Deletes a record; returns what it was.
    async fn remove(state: &AppState, user: &ConsoleUser, id: &str) -> Result<Value, ApiError>;
    /// Flips whether a record is enabled.
    async fn flip(state: &AppState, user: &ConsoleUser, id: &str) -> Result<Value, ApiError>;
}

pub(super) fn view_json<E: Entity>(record: E::Record) -> Value {
    serde_json::to_value(E::view(record)).unwrap_or_default()
}

macro_rules! console_kind {
    ($entity:ty, $title:literal, $singular:literal, [$($field:expr),* $(,)?]) => {
        impl Kind for $entity {
            const TITLE: &'static str = $title;
            const SINGULAR: &'static str = $singular;

            fn fields() -> Vec<Field> {
                let mut fields = vec![$($field),*];
                fields.extend(SHARING);
                fields
            }

            async fn views(state: &AppState, user: &ConsoleUser) -> Result<Vec<Value>, ApiError> {
                Ok(ops::visible::<$entity>(&state.services, &user.principal, crate::http::console::VISIBLE_MAX)
                    .await?
                    .into_iter()
                    .map(view_json::<$entity>)
                    .collect())
            }

            async fn read(state: &AppState, user: &ConsoleUser, id: &str) -> Result<Value, ApiError> {
                ops::get::<$entity>(&state.services, &user.principal, id)
                    .await
                    .map(view_json::<$entity>)
            }

            async fn add(
                state: &AppState,
                user: &ConsoleUser,
                input: Self::Create,
            ) -> Result<Value, ApiError> {
                ops::create::<$entity>(&state.services, &user.principal, input)
                    .await
                    .map(view_json::<$entity>)
            }

            async fn change(
                state: &AppState,
                user: &ConsoleUser,
                id: &str,
                input: Self::Update,
            ) -> Result<Value, ApiError> {
                ops::update::<$entity>(&state.services, &user.principal, id, input)
                    .await
                    .map(view_json::<$entity>)
            }

            async fn remove(state: &AppState, user: &ConsoleUser, id: &str) -> Result<Value, ApiError> {
                ops::delete::<$entity>(&state.services, &user.principal, id)
                    .await
                    .map(view_json::<$entity>)
            }

            async fn flip(state: &AppState, user: &ConsoleUser, id: &str) -> Result<Value, ApiError> {
                ops::set_enabled::<$entity>(&state.services, &user.principal, id, None)
                    .await
                    .map(view_json::<$entity>)
            }
        }
    };
}

console_kind!(
    Tools,
    "Tools",
    "Tool",
    [
        required("name", "Name", Input::Text),
        field("description", "Description", Input::Area),
        field("url", "URL (REST tools)", Input::Url),
        field(
            "request_type",
            "Method (REST tools)",
            Input::Choice(&["GET", "POST", "PUT", "PATCH", "DELETE"])
        ),
        field("input_schema", "Input schema (JSON Schema)", Input::Json),
    ]
);
console_kind!(
    Resources,
    "Resources",
    "Resource",
    [
        field("uri", "URI", Input::Text),
        field(
            "uri_template",
            "URI template (instead of a URI, e.g. docs://{section})",
            Input::Text
        ),
        required("name", "Name", Input::Text),
        field("description", "Description", Input::Area),
        field("mime_type", "MIME type", Input::Text),
        field("content", "Content", Input::Area),
    ]
);
console_kind!(
    Prompts,
    "Prompts",
    "Prompt",
    [
        required("name", "Name", Input::Text),
        field("description", "Description", Input::Area),
        required(
            "template",
            "Template (tera, e.g. Summarise {{ text }})",
            Input::Area
        ),
        field(
            "arguments",
            "Arguments (JSON list of {\"name\", \"description\", \"required\"})",
            Input::Json
        ),
    ]
);
console_kind!(
    Servers,
    "Virtual servers",
    "Virtual server",
    [
        required("name", "Name", Input::Text),
        field("description", "Description", Input::Area),
        field("tool_ids", "Tools", Input::Members("tools")),
        field("resource_ids", "Resources", Input::Members("resources")),
        field("prompt_ids", "Prompts", Input::Members("prompts")),
    ]
);
console_kind!(
    Gateways,
    "Gateways",
    "Gateway",
    [
        required("name", "Name", Input::Text),
        field("description", "Description", Input::Area),
    ]
);
