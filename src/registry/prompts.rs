//! Prompts: Jinja templates with declared arguments.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::validate::{invalid, mcp_name, optional_text, required_text, tags};
use super::{
    Change, Entity, Invalid, ItemMeta, Visibility, item_meta, new_id, nullable, stored_json, taken,
    to_json_text, update_meta,
};
use crate::db::registry::PromptRow;

/// One declared prompt argument.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptArgument {
    /// The variable name used in the template (`[A-Za-z_][A-Za-z0-9_]*`).
    pub name: String,
    /// What to pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether `prompts/get` must receive it.
    #[serde(default)]
    pub required: bool,
    /// Suggested values, offered by `completion/complete`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// `POST /prompts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptCreate {
    /// The MCP name: 1–128 of `A-Z a-z 0-9 _ - .`; unique.
    pub name: String,
    /// What the prompt is for.
    #[serde(default)]
    pub description: Option<String>,
    /// A Jinja template (`Summarise {{ text }} in {{ words }} words`).
    pub template: String,
    /// Its arguments.
    #[serde(default)]
    pub arguments: Option<Vec<PromptArgument>>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Who may see it (default `public`).
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// The team it belongs to (one of yours): with `"visibility": "team"`, its members see it.
    #[serde(default)]
    pub team_id: Option<String>,
}

/// `PUT /prompts/{id}`: absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptUpdate {
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// A new description, or `null` to clear it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// A new template.
    #[serde(default)]
    pub template: Option<String>,
    /// Replaces all arguments.
    #[serde(default)]
    pub arguments: Option<Vec<PromptArgument>>,
    /// Replaces all tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// A new visibility.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// Move it to another of your teams (`null`: no team).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub team_id: Option<Option<String>>,
}

/// A prompt as clients see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PromptView {
    /// Its id.
    pub id: String,
    /// Its MCP name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its Jinja template.
    pub template: String,
    /// Its arguments.
    pub arguments: Vec<PromptArgument>,
    /// The upstream MCP server it came from.
    pub gateway_id: Option<String>,
    /// Its name on that upstream.
    pub original_name: Option<String>,
    /// Tags, state, visibility, owner and timestamps.
    #[serde(flatten)]
    pub meta: ItemMeta,
}

/// The prompt entity.
pub struct Prompts;

/// Checks the template compiles (Jinja).
fn template(value: &str) -> Result<String, Invalid> {
    if value.trim().is_empty() {
        return Err(invalid("template", "must not be empty"));
    }
    if value.len() > 256 * 1024 {
        return Err(invalid("template", "is larger than 256 KiB"));
    }
    crate::prompt_render::check_syntax(value).map_err(|error| {
        invalid(
            "template",
            format!("is not a valid Jinja template: {error}"),
        )
    })?;
    Ok(value.to_owned())
}

fn arguments(values: &[PromptArgument]) -> Result<Vec<PromptArgument>, Invalid> {
    if values.len() > 64 {
        return Err(invalid("arguments", "at most 64 arguments are allowed"));
    }
    let mut out: Vec<PromptArgument> = Vec::with_capacity(values.len());
    for (index, argument) in values.iter().enumerate() {
        let field = format!("arguments[{index}].name");
        let name = required_text(&field, &argument.name, 64)?;
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(invalid(
                field,
                "must be a variable name: a letter or '_', then letters, digits or '_'",
            ));
        }
        if out.iter().any(|existing| existing.name == name) {
            return Err(invalid(field, format!("{name:?} is declared twice")));
        }
        out.push(PromptArgument {
            name,
            description: optional_text(
                &format!("arguments[{index}].description"),
                argument.description.as_deref(),
                2048,
            )?,
            required: argument.required,
            values: suggested_values(index, &argument.values)?,
        });
    }
    Ok(out)
}

fn suggested_values(index: usize, values: &[String]) -> Result<Vec<String>, Invalid> {
    let field = format!("arguments[{index}].values");
    if values.len() > 1000 {
        return Err(invalid(field, "at most 1000 suggested values are allowed"));
    }
    values
        .iter()
        .map(|value| required_text(&field, value, 256))
        .collect()
}

impl Entity for Prompts {
    type Record = PromptRow;
    type Create = PromptCreate;
    type Update = PromptUpdate;
    type View = PromptView;

    const NOUN: &'static str = "prompt";
    const PATH: &'static str = "prompts";

    fn create(input: PromptCreate, change: &Change<'_>) -> Result<PromptRow, Invalid> {
        Ok(PromptRow {
            id: new_id(),
            name: mcp_name("name", &input.name)?,
            description: optional_text("description", input.description.as_deref(), 8192)?,
            template: template(&input.template)?,
            arguments: to_json_text(&arguments(input.arguments.as_deref().unwrap_or_default())?),
            tags: to_json_text(&tags(input.tags.as_deref())?),
            gateway_id: None,
            original_name: None,
            enabled: true,
            owner_email: Some(change.actor_email.to_owned()),
            team_id: optional_text("team_id", input.team_id.as_deref(), 64)?,
            visibility: input.visibility.unwrap_or_default(),
            created_at: change.now,
            updated_at: change.now,
            passthrough: "{}".into(),
        })
    }

    fn update(
        mut row: PromptRow,
        input: &PromptUpdate,
        change: &Change<'_>,
    ) -> Result<PromptRow, Invalid> {
        if let Some(name) = &input.name {
            row.name = mcp_name("name", name)?;
        }
        if let Some(description) = &input.description {
            row.description = optional_text("description", description.as_deref(), 8192)?;
        }
        if let Some(value) = &input.template {
            row.template = template(value)?;
        }
        if let Some(values) = &input.arguments {
            row.arguments = to_json_text(&arguments(values)?);
        }
        update_meta(
            (
                &mut row.tags,
                &mut row.visibility,
                &mut row.team_id,
                &mut row.updated_at,
            ),
            input.tags.as_deref(),
            input.visibility,
            input.team_id.as_ref(),
            change,
        )?;
        Ok(row)
    }

    fn view(row: PromptRow) -> PromptView {
        PromptView {
            meta: item_meta!(row, "prompts"),
            arguments: stored_json("prompts.arguments", &row.arguments),
            id: row.id,
            name: row.name,
            description: row.description,
            template: row.template,
            gateway_id: row.gateway_id,
            original_name: row.original_name,
        }
    }

    fn conflict_message(_constraint: &str) -> String {
        taken("name", "this name")
    }
}
