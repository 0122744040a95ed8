//! External OpenID Connect providers whose tokens the gateway accepts (`OIDC_ISSUERS`) and
//! how often their signing keys are fetched again.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::parse;

/// The external identity providers.
#[derive(clap::Args, Clone, Debug)]
pub struct OidcSettings {
    /// A JSON array of trusted OpenID Connect providers, each {"issuer", "audiences",
    /// "algorithms", "email_claim", "groups_claim", "teams", "roles", "provision", "name",
    /// "client_id", "client_secret", "advertise"} (docs: README, external identity providers).
    #[arg(id = "OIDC_ISSUERS", long = "oidc-issuers", env = "OIDC_ISSUERS", hide_env_values = true, default_value = "[]", value_parser = providers)]
    pub issuers: Providers,
    /// How often each provider's signing keys are fetched again (a key it stopped publishing
    /// is refused from then on).
    #[arg(id = "OIDC_JWKS_REFRESH_SECONDS", long = "oidc-jwks-refresh-seconds", env = "OIDC_JWKS_REFRESH_SECONDS", default_value = "3600", value_parser = parse::seconds(86_400.0))]
    pub jwks_refresh: Duration,
    /// The shortest time between two fetches of a provider's signing keys when a token names a
    /// key the gateway does not know (a rotation).
    #[arg(id = "OIDC_JWKS_MIN_REFRESH_SECONDS", long = "oidc-jwks-min-refresh-seconds", env = "OIDC_JWKS_MIN_REFRESH_SECONDS", default_value = "10", value_parser = parse::seconds(3600.0))]
    pub jwks_min_refresh: Duration,
}

/// The providers of `OIDC_ISSUERS`, in the order given.
#[derive(Clone, Debug, Default)]
pub struct Providers(pub Vec<ProviderSettings>);

/// One trusted OpenID Connect provider.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Its issuer identifier, exactly as its tokens' `iss` (HTTPS, or HTTP on loopback).
    pub issuer: String,
    /// What the sign-in page's button says (default: the issuer's host).
    #[serde(default)]
    pub name: Option<String>,
    /// The `aud` values accepted: a token for one of these works on every endpoint. When one
    /// of them is this gateway's public origin (`https://gw.example`), a token whose `aud` is
    /// one of its MCP endpoint URLs is accepted too, on that endpoint only.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The signature algorithms accepted (asymmetric only; default RS256, PS256, ES256).
    #[serde(default = "default_algorithms", deserialize_with = "algorithms")]
    pub algorithms: Vec<Algorithm>,
    /// The claim holding the account's email (default `email`).
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    /// Refuse a token that does not say `email_verified: true` (default true; turn off only
    /// for a provider that verifies every email and does not send the claim).
    #[serde(default = "yes")]
    pub require_verified_email: bool,
    /// The email domains it may sign in for (default: any).
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// Whether it may sign in platform admins' accounts (default false: an admin's email at
    /// the provider does not make its holder an admin here).
    #[serde(default)]
    pub allow_admins: bool,
    /// The claim holding the user's groups, if the provider sends them.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Group -> team slug: a user in the group is made a member of the team; one who left the
    /// group stops being one (only teams named here are touched).
    #[serde(default)]
    pub teams: BTreeMap<String, String>,
    /// Group -> global role: a user in the group has the role; one who left the group loses
    /// it (only roles given this way are taken away; never platform_admin).
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// Create an account (with `DEFAULT_USER_ROLE`) the first time an unknown email signs in;
    /// otherwise an admin creates accounts (default false).
    #[serde(default)]
    pub provision: bool,
    /// The gateway's client id at the provider, for console single sign-on.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Its client secret (a public client uses PKCE alone).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Name this provider in the MCP endpoints' protected resource metadata (default true).
    #[serde(default = "yes")]
    pub advertise: bool,
}

fn default_algorithms() -> Vec<Algorithm> {
    vec![Algorithm::RS256, Algorithm::PS256, Algorithm::ES256]
}

fn default_email_claim() -> String {
    "email".into()
}

fn yes() -> bool {
    true
}

fn algorithms<'de, D: serde::Deserializer<'de>>(from: D) -> Result<Vec<Algorithm>, D::Error> {
    let names = Vec::<String>::deserialize(from)?;
    names
        .iter()
        .map(|name| match name.as_str() {
            "RS256" => Ok(Algorithm::RS256),
            "RS384" => Ok(Algorithm::RS384),
            "RS512" => Ok(Algorithm::RS512),
            "PS256" => Ok(Algorithm::PS256),
            "PS384" => Ok(Algorithm::PS384),
            "PS512" => Ok(Algorithm::PS512),
            "ES256" => Ok(Algorithm::ES256),
            "ES384" => Ok(Algorithm::ES384),
            "EdDSA" => Ok(Algorithm::EdDSA),
            other => Err(serde::de::Error::custom(format!(
                "algorithm {other:?} is not accepted (asymmetric ones only: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)"
            ))),
        })
        .collect()
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("provision", &self.provision)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<set>"),
            )
            .finish_non_exhaustive()
    }
}

impl ProviderSettings {
    /// What the sign-in button says.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            url::Url::parse(&self.issuer)
                .ok()
                .and_then(|url| url.host_str().map(str::to_owned))
                .unwrap_or_else(|| self.issuer.clone())
        })
    }
}

/// Parses and checks `OIDC_ISSUERS`.
fn providers(value: &str) -> Result<Providers, String> {
    let list: Vec<ProviderSettings> = serde_json::from_str(value)
        .map_err(|error| format!("not a JSON array of providers: {error}"))?;
    let mut seen = std::collections::HashSet::new();
    for provider in &list {
        let issuer = url::Url::parse(&provider.issuer)
            .map_err(|error| format!("issuer {:?} is not a URL: {error}", provider.issuer))?;
        let loopback = matches!(issuer.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
        if issuer.scheme() != "https" && !(issuer.scheme() == "http" && loopback) {
            return Err(format!(
                "issuer {:?} must be an HTTPS URL (plain HTTP only on loopback)",
                provider.issuer
            ));
        }
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(format!(
                "issuer {:?} has a query or fragment",
                provider.issuer
            ));
        }
        if !seen.insert(provider.issuer.clone()) {
            return Err(format!("issuer {:?} is listed twice", provider.issuer));
        }
        if provider.algorithms.is_empty() {
            return Err(format!("issuer {:?} accepts no algorithm", provider.issuer));
        }
        if provider.audiences.iter().any(String::is_empty) {
            return Err(format!(
                "issuer {:?} has an empty audience",
                provider.issuer
            ));
        }
        if provider.roles.values().any(|role| role == "platform_admin") {
            return Err(format!(
                "issuer {:?} maps a group to platform_admin, which only an admin gives",
                provider.issuer
            ));
        }
        if (!provider.teams.is_empty() || !provider.roles.is_empty())
            && provider.groups_claim.is_none()
        {
            return Err(format!(
                "issuer {:?} maps groups to teams or roles but names no groups_claim",
                provider.issuer
            ));
        }
        if provider.client_secret.is_some() && provider.client_id.is_none() {
            return Err(format!(
                "issuer {:?} has a client_secret without a client_id",
                provider.issuer
            ));
        }
    }
    Ok(Providers(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_checked() {
        let good = providers(
            r#"[{"issuer": "https://idp.example.com", "audiences": ["mcpgate"], "groups_claim": "groups",
                 "teams": {"eng": "engineering"}, "client_id": "gw", "client_secret": "s"}]"#,
        )
        .unwrap();
        assert_eq!(good.0[0].algorithms, default_algorithms());
        assert_eq!(good.0[0].email_claim, "email");
        assert!(good.0[0].advertise);
        assert_eq!(good.0[0].label(), "idp.example.com");
        assert!(!format!("{:?}", good.0[0]).contains("\"s\""), "no secret");
        for (bad, why) in [
            (r#"{"issuer": "x"}"#, "JSON array"),
            (r#"[{"issuer": "http://idp.example.com"}]"#, "HTTPS"),
            (
                r#"[{"issuer": "https://a.example", "algorithms": ["HS256"]}]"#,
                "HS256",
            ),
            (
                r#"[{"issuer": "https://a.example", "algorithms": ["none"]}]"#,
                "none",
            ),
            (
                r#"[{"issuer": "https://a.example", "algorithms": []}]"#,
                "no algorithm",
            ),
            (
                r#"[{"issuer": "https://a.example", "audience": "x"}]"#,
                "unknown field",
            ),
            (
                r#"[{"issuer": "https://a.example"}, {"issuer": "https://a.example"}]"#,
                "twice",
            ),
            (
                r#"[{"issuer": "https://a.example", "client_secret": "s"}]"#,
                "client_id",
            ),
        ] {
            let error = providers(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
        assert!(providers(r#"[{"issuer": "http://127.0.0.1:9000"}]"#).is_ok());
    }
}
