//! The export document, the import's options and report, and the passphrase sealer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::registry::validate::invalid;
use crate::secrets::SecretBox;

/// The `format` of a document.
pub const FORMAT: &str = "mcpgate-export";
/// The document version this gateway writes and reads.
pub const VERSION: u32 = 1;
/// The mark of an encrypted value.
const ENCRYPTED: &str = "encrypted:v1:";

/// A configuration export: versioned JSON, items referring to each other by name.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Always `mcpgate-export`.
    pub format: String,
    /// The document version (1).
    pub version: u32,
    /// When it was written.
    pub exported_at: chrono::DateTime<chrono::Utc>,
    /// Who wrote it.
    pub exported_by: String,
    /// The gateway version that wrote it.
    pub gateway_version: String,
    /// How credentials are carried.
    pub secrets: SecretsInfo,
    /// Teams (personal teams are not exported) and their members.
    #[serde(default)]
    pub teams: Vec<TeamItem>,
    /// Role assignments.
    #[serde(default)]
    pub roles: Vec<RoleItem>,
    /// Upstream MCP servers: `POST /gateways` bodies plus `enabled`, `team` and what was
    /// discovered from them.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub gateways: Vec<Value>,
    /// REST tools: `POST /tools` bodies plus `enabled` and `team`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<Value>,
    /// Resources: `POST /resources` bodies plus `enabled` and `team`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub resources: Vec<Value>,
    /// Prompts: `POST /prompts` bodies plus `enabled` and `team`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub prompts: Vec<Value>,
    /// Virtual servers: `POST /servers` bodies with `tools`, `resources` and `prompts` by name
    /// (resources by URI) instead of ids, plus `enabled` and `team`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub servers: Vec<Value>,
}

impl Document {
    /// An empty document written by `principal`.
    pub fn new(principal: &Principal, mode: &str) -> Self {
        Document {
            format: FORMAT.into(),
            version: VERSION,
            exported_at: chrono::Utc::now(),
            exported_by: principal.email.clone(),
            gateway_version: env!("CARGO_PKG_VERSION").into(),
            secrets: SecretsInfo {
                mode: mode.into(),
                salt: None,
                omitted: Vec::new(),
            },
            teams: Vec::new(),
            roles: Vec::new(),
            gateways: Vec::new(),
            tools: Vec::new(),
            resources: Vec::new(),
            prompts: Vec::new(),
            servers: Vec::new(),
        }
    }
}

/// How a document carries credentials.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretsInfo {
    /// `omitted` (left out, listed in `omitted`) or `encrypted` (each value sealed for a
    /// passphrase: Argon2id with `salt`, then AES-256-GCM).
    pub mode: String,
    /// The key derivation's salt (base64), when encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// Credentials left out: enter them again after an import.
    #[serde(default)]
    pub omitted: Vec<Omitted>,
}

/// A credential left out of a document.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Omitted {
    /// `gateway` or `tool`.
    pub kind: String,
    /// The item's name.
    pub name: String,
    /// The field (`auth`, `headers.X-Api-Key`).
    pub field: String,
}

/// A team in a document.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamItem {
    /// Its name (unique).
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Its members (applied to users that exist where it is imported).
    #[serde(default)]
    pub members: Vec<MemberItem>,
}

/// A team member in a document.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberItem {
    /// The user.
    pub email: String,
    /// `owner` or `member`.
    pub role: String,
}

/// A role assignment in a document.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleItem {
    /// The user.
    pub email: String,
    /// The role.
    pub role: String,
    /// The team it is limited to, by name (absent: everywhere).
    #[serde(default)]
    pub team: Option<String>,
}

/// What happens to an item that exists already (same name; a resource: same URI).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Conflict {
    /// Keep what is there.
    #[default]
    Skip,
    /// Change it to what the document says.
    Update,
    /// Create the item under a free name (`name-2`, …).
    Rename,
}

/// `POST /import`'s query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportOptions {
    /// Only report what would change (default `false`).
    #[serde(default)]
    pub dry_run: bool,
    /// What to do with an item that exists already: `skip` (default), `update` or `rename`.
    #[serde(default)]
    #[param(inline)]
    pub conflict: Conflict,
    /// Opens encrypted credentials (REST: the `X-Import-Passphrase` header, never the query).
    #[serde(skip)]
    #[param(ignore)]
    pub passphrase: Option<String>,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ImportReport {
    /// Whether this was a dry run (nothing stored).
    pub dry_run: bool,
    /// `mcpgate` or the peer gateway's format (`mcp-context-forge`).
    pub source_format: String,
    /// How many items were (or would be) created, updated, renamed, skipped and failed.
    pub summary: BTreeMap<String, usize>,
    /// Each item's outcome, in the order applied.
    pub items: Vec<ItemOutcome>,
    /// Credentials the document did not carry: enter them again.
    pub secrets_missing: Vec<Omitted>,
    /// What the document holds that this gateway does not carry over (a peer export's roots,
    /// say).
    pub warnings: Vec<String>,
}

impl ImportReport {
    /// Records an outcome.
    pub fn push(&mut self, outcome: ItemOutcome) {
        *self.summary.entry(outcome.action.clone()).or_default() += 1;
        self.items.push(outcome);
    }
}

/// One item's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemOutcome {
    /// `team`, `gateway`, `tool`, `resource`, `prompt`, `server`, `role` or `member`.
    pub kind: String,
    /// Its name in the document.
    pub name: String,
    /// `create`, `update`, `rename`, `skip`, `grant` (a role), `add` (a team member) or `failed`.
    pub action: String,
    /// The new name (`rename`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// Why (a skip, a failure, a warning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ItemOutcome {
    /// An outcome without a message.
    pub fn new(kind: &str, name: &str, action: &str) -> Self {
        ItemOutcome {
            kind: kind.into(),
            name: name.into(),
            action: action.into(),
            new_name: None,
            message: None,
        }
    }

    /// With a message.
    pub fn because(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
}

/// Seals and opens credentials for a passphrase: Argon2id(passphrase, salt) keys AES-256-GCM.
pub struct Sealer {
    salt: [u8; 16],
    secrets: SecretBox,
}

impl Sealer {
    /// A sealer with a new salt.
    pub fn new(passphrase: &str) -> Result<Self, ApiError> {
        Self::with_salt(passphrase, rand::random())
    }

    /// The sealer of a document's salt.
    pub fn for_document(passphrase: &str, salt: &str) -> Result<Self, ApiError> {
        use base64::Engine;
        let salt = base64::engine::general_purpose::STANDARD
            .decode(salt)
            .ok()
            .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
            .ok_or_else(|| invalid("secrets.salt", "must be 16 bytes of base64"))?;
        Self::with_salt(passphrase, salt)
    }

    fn with_salt(passphrase: &str, salt: [u8; 16]) -> Result<Self, ApiError> {
        if passphrase.chars().count() < 12 {
            return Err(invalid("passphrase", "must be at least 12 characters").into());
        }
        let mut key = [0u8; 32];
        argon2::Argon2::default()
            .hash_password_into(passphrase.as_bytes(), &salt, &mut key)
            .map_err(|error| {
                tracing::error!(%error, "key derivation failed");
                ApiError::Internal
            })?;
        let hex: String = key.iter().map(|byte| format!("{byte:02x}")).collect();
        Ok(Sealer {
            salt,
            secrets: SecretBox::new(&hex),
        })
    }

    /// The salt, as the document carries it.
    pub fn salt(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.salt)
    }

    /// A value sealed for the document.
    pub fn seal(&self, plain: &str) -> String {
        format!("{ENCRYPTED}{}", self.secrets.seal(plain))
    }

    /// Opens a sealed value (`None`: it is not sealed, or not for this passphrase).
    pub fn open(&self, value: &str) -> Option<String> {
        self.secrets.open(value.strip_prefix(ENCRYPTED)?).ok()
    }

    /// Whether a value is sealed.
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(ENCRYPTED)
    }
}
