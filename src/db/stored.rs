//! Enumerations stored as `TEXT` (and checked by the database: migrations
//! `2026-12-03-000005_checked_enums` and `2026-12-03-000006_request_type_checked`): each variant
//! has one stored spelling, written and read by diesel through the enum itself, so no code compares
//! strings and a value the gateway does not know fails loudly when read (a deserialization error
//! naming the value and the column's type) instead of falling back to a default.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::rbac::Visibility;

/// Implements the stored spelling, `FromStr` and the diesel `Text` conversions of an enum.
macro_rules! stored_as_text {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// The stored spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(value: &str) -> Result<Self, String> {
                match value {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "{other:?} is not a stored {} (expected one of {})",
                        stringify!($name),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl<DB: Backend> ToSql<Text, DB> for $name
        where
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.as_str().to_sql(out)
            }
        }

        impl<DB: Backend> FromSql<Text, DB> for $name
        where
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let text = String::from_sql(bytes)?;
                text.parse().map_err(|message: String| message.into())
            }
        }
    };
}

/// The transport an upstream MCP server speaks (`gateways.transport`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    ToSchema,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[diesel(sql_type = Text)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Streamable HTTP (the current transport).
    #[serde(
        alias = "STREAMABLEHTTP",
        alias = "streamable_http",
        alias = "streamable-http"
    )]
    Streamablehttp,
    /// The legacy HTTP+SSE transport.
    #[serde(alias = "SSE")]
    Sse,
    /// A local program the gateway runs, spoken to over its stdin and stdout.
    #[serde(alias = "STDIO")]
    Stdio,
}

stored_as_text!(Transport {
    Streamablehttp => "streamablehttp",
    Sse => "sse",
    Stdio => "stdio",
});

/// How a tool is carried out (`tools.integration_type`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    ToSchema,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[diesel(sql_type = Text)]
pub enum IntegrationType {
    /// An HTTP call to a REST endpoint.
    #[serde(rename = "REST")]
    Rest,
    /// A tool of an upstream MCP server, registered through `/gateways`.
    #[serde(rename = "MCP")]
    Mcp,
}

stored_as_text!(IntegrationType {
    Rest => "REST",
    Mcp => "MCP",
});

stored_as_text!(Visibility {
    Private => "private",
    Team => "team",
    Public => "public",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_spellings_round_trip_and_unknown_values_are_refused() {
        for transport in [Transport::Streamablehttp, Transport::Sse] {
            assert_eq!(transport.as_str().parse::<Transport>(), Ok(transport));
        }
        for kind in [IntegrationType::Rest, IntegrationType::Mcp] {
            assert_eq!(kind.as_str().parse::<IntegrationType>(), Ok(kind));
        }
        for visibility in [Visibility::Private, Visibility::Team, Visibility::Public] {
            assert_eq!(visibility.as_str().parse::<Visibility>(), Ok(visibility));
        }
        assert!("everyone".parse::<Visibility>().is_err());
        let refused = "websocket".parse::<Transport>().unwrap_err();
        assert!(
            refused.contains("websocket") && refused.contains("sse"),
            "{refused}"
        );
    }
}

/// The HTTP method of a REST tool (`tools.request_type`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    ToSchema,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[diesel(sql_type = Text)]
#[serde(rename_all = "UPPERCASE")]
pub enum RequestType {
    /// GET: the arguments go in the query string.
    Get,
    /// POST: the arguments are the JSON body.
    Post,
    /// PUT: the arguments are the JSON body.
    Put,
    /// PATCH: the arguments are the JSON body.
    Patch,
    /// DELETE: the arguments go in the query string.
    Delete,
}

stored_as_text!(RequestType {
    Get => "GET",
    Post => "POST",
    Put => "PUT",
    Patch => "PATCH",
    Delete => "DELETE",
});
