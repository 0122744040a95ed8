//! The egress policy: where the gateway may connect on a user's behalf.
//!
//! Every outbound HTTP connection — REST tools, upstream MCP servers, their health checks and
//! notification streams, legacy SSE `endpoint` URLs, redirects — goes through one
//! [`HttpClient`], which refuses a URL whose host is a blocked address literal before sending,
//! and resolves host names with [`PolicyResolver`], which refuses a name when *any* address it
//! resolves to is blocked. The check is on the resolved address at connect time, in the client
//! itself, so a name that resolved to a public address when it was registered and to
//! `127.0.0.1` later (DNS rebinding) is refused when it is used.
//!
//! Blocked unless allowed: loopback and `0.0.0.0/8` (`SSRF_ALLOW_LOCALHOST`); private,
//! link-local, CGNAT, benchmarking (`198.18.0.0/15`), unique-local and site-local ranges
//! (`SSRF_ALLOW_PRIVATE_NETWORKS`). Always blocked unless listed in `SSRF_ALLOWLIST`: cloud
//! metadata addresses, multicast, broadcast, `240.0.0.0/4`, documentation ranges, Teredo.
//! IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by the
//! IPv4 address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// What the policy lets through.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Let outbound connections reach loopback (127.0.0.0/8, ::1) and 0.0.0.0/8.
    #[arg(id = "SSRF_ALLOW_LOCALHOST", long = "ssrf-allow-localhost", env = "SSRF_ALLOW_LOCALHOST", default_value = "false", value_parser = crate::config::parse::boolean(),
        action = clap::ArgAction::Set)]
    pub allow_localhost: bool,
    /// Let outbound connections reach private, link-local, CGNAT, benchmarking and
    /// unique-local ranges (never cloud metadata addresses).
    #[arg(id = "SSRF_ALLOW_PRIVATE_NETWORKS", long = "ssrf-allow-private-networks", env = "SSRF_ALLOW_PRIVATE_NETWORKS", default_value = "false", value_parser = crate::config::parse::boolean(),
        action = clap::ArgAction::Set)]
    pub allow_private_networks: bool,
    /// Comma-separated host names (exact, or *.example.com for its subdomains), addresses and
    /// CIDR networks allowed whatever they resolve to or are.
    #[arg(id = "SSRF_ALLOWLIST", long = "ssrf-allowlist", env = "SSRF_ALLOWLIST", default_value = "", value_parser = crate::config::parse::list(AllowEntry::parse))]
    pub allow: std::vec::Vec<AllowEntry>,
}

/// One entry of `SSRF_ALLOWLIST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowEntry {
    /// A host name (lowercase).
    Host(String),
    /// Every subdomain of this suffix (`.example.com`).
    Suffix(String),
    /// An address or network.
    Net(IpNet),
}

impl AllowEntry {
    /// Parses one entry: `10.0.0.5`, `10.1.0.0/16`, `fd00::/8`, `api.internal`, `*.corp.example`.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim().to_ascii_lowercase();
        if let Ok(net) = entry.parse::<IpNet>() {
            return Ok(AllowEntry::Net(net));
        }
        if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(AllowEntry::Net(IpNet::from(ip)));
        }
        let (suffix, name) = match entry.strip_prefix("*.") {
            Some(name) => (true, name),
            None => (false, entry.as_str()),
        };
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid {
            return Err(format!(
                "{entry:?} is not a host name, *.domain, IP address or CIDR network"
            ));
        }
        Ok(if suffix {
            AllowEntry::Suffix(format!(".{name}"))
        } else {
            AllowEntry::Host(name.to_owned())
        })
    }
}

/// The class of an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Public,
    Loopback,
    Private,
    Metadata,
    Reserved,
}

/// Addresses of cloud instance metadata services.
const METADATA_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(192, 0, 0, 192),
];
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)];

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, _] = ip.octets();
    if METADATA_V4.contains(&ip) {
        Class::Metadata
    } else if a == 127 || a == 0 {
        Class::Loopback
    } else if a == 10
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 169 && b == 254)
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || (a == 192 && b == 0 && c == 0)
    {
        Class::Private
    } else if a >= 224
        || (a == 192 && b == 0 && c == 2)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
    {
        // Multicast, 240.0.0.0/4 with the broadcast address, documentation.
        Class::Reserved
    } else {
        Class::Public
    }
}

fn embedded_v4(segments: [u16; 8], high: usize) -> Ipv4Addr {
    let [h1, h0] = segments[high].to_be_bytes();
    let [l1, l0] = segments[high + 1].to_be_bytes();
    Ipv4Addr::new(h1, h0, l1, l0)
}

fn classify(ip: IpAddr) -> Class {
    let v6 = match ip {
        IpAddr::V4(v4) => return classify_v4(v4),
        IpAddr::V6(v6) => v6,
    };
    let s = v6.segments();
    if METADATA_V6.contains(&v6) {
        Class::Metadata
    } else if v6.is_loopback() || v6.is_unspecified() {
        Class::Loopback
    } else if let Some(v4) = v6.to_ipv4_mapped() {
        classify_v4(v4)
    } else if s[..6] == [0; 6] {
        // IPv4-compatible (deprecated, still routed by some stacks).
        classify_v4(embedded_v4(s, 6))
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        // NAT64 well-known prefix.
        classify_v4(embedded_v4(s, 6))
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        // Local-use NAT64: translates into the operator's own network.
        match classify_v4(embedded_v4(s, 6)) {
            Class::Public => Class::Private,
            other => other,
        }
    } else if s[0] == 0x2002 {
        // 6to4 carries an IPv4 address in its second and third groups.
        classify_v4(embedded_v4(s, 1))
    } else if s[0] == 0x2001 && (s[1] == 0 || s[1] == 0xdb8) {
        // Teredo (obfuscated IPv4) and documentation.
        Class::Reserved
    } else if (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80 || (s[0] & 0xffc0) == 0xfec0 {
        Class::Private
    } else if (s[0] & 0xff00) == 0xff00 || (s[0] == 0x100 && s[1..4] == [0; 3]) {
        Class::Reserved
    } else {
        Class::Public
    }
}

/// Why the policy refused a destination; the message names the rule and the setting that
/// would allow it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("egress refused: {0}")]
pub struct EgressDenied(pub String);

impl EgressPolicy {
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allow.iter().any(|entry| match entry {
            AllowEntry::Host(name) => *name == host,
            AllowEntry::Suffix(suffix) => host.ends_with(suffix.as_str()),
            AllowEntry::Net(_) => false,
        })
    }

    /// Judges one address that `host` is or resolves to.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), EgressDenied> {
        let allowed_net = self.allow.iter().any(|entry| match entry {
            AllowEntry::Net(net) => {
                net.contains(&ip)
                    || matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| net.contains(&IpAddr::V4(v4))))
            }
            _ => false,
        });
        if allowed_net || self.host_allowed(host) {
            return Ok(());
        }
        let refuse = |what: &str, setting: &str| {
            Err(EgressDenied(format!("{host} is {what} ({ip}); {setting}")))
        };
        match classify(ip) {
            Class::Public => Ok(()),
            Class::Loopback if self.allow_localhost => Ok(()),
            Class::Private if self.allow_private_networks => Ok(()),
            Class::Loopback => refuse(
                "a loopback address",
                "set SSRF_ALLOW_LOCALHOST=true or list it in SSRF_ALLOWLIST to allow it",
            ),
            Class::Private => refuse(
                "a private-network address",
                "set SSRF_ALLOW_PRIVATE_NETWORKS=true or list it in SSRF_ALLOWLIST to allow it",
            ),
            Class::Metadata => refuse(
                "a cloud metadata address",
                "only an SSRF_ALLOWLIST entry allows it",
            ),
            Class::Reserved => refuse(
                "a reserved, multicast or documentation address",
                "only an SSRF_ALLOWLIST entry allows it",
            ),
        }
    }

    /// Checks a URL without resolving it: an `http`/`https` URL whose host, if an address
    /// literal (in any form the URL parser accepts: `2130706433`, `0x7f.1`, `[::ffff:…]`), is
    /// allowed. Host names are judged when they are resolved.
    pub fn check_url(&self, url: &url::Url) -> Result<(), EgressDenied> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressDenied(format!(
                "the scheme {:?} is not http or https",
                url.scheme()
            )));
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(&ip.to_string(), IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(&ip.to_string(), IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err(EgressDenied("the URL names no host".into())),
        }
    }

    /// Checks a URL now, resolving its host name: for registration and configuration changes,
    /// so a bad destination is refused with a clear message before it is stored. A name that
    /// does not resolve (yet) is not refused here; connecting to it will be checked.
    pub async fn check_url_now(&self, url: &str) -> Result<(), EgressDenied> {
        let parsed = url::Url::parse(url)
            .map_err(|error| EgressDenied(format!("the URL is not valid ({error})")))?;
        self.check_url(&parsed)?;
        if let Some(url::Host::Domain(host)) = parsed.host()
            && let Ok(addresses) = tokio::net::lookup_host((host, 0)).await
        {
            for address in addresses {
                self.check_ip(host, address.ip())?;
            }
        }
        Ok(())
    }

    /// Resolves `host` and returns its addresses if every one of them is allowed.
    pub async fn resolve(&self, host: &str) -> Result<Vec<SocketAddr>, EgressDenied> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|error| EgressDenied(format!("the host {host:?} does not resolve ({error})")))?
            .collect();
        if addresses.is_empty() {
            return Err(EgressDenied(format!("the host {host:?} has no address")));
        }
        for address in &addresses {
            self.check_ip(host, address.ip())?;
        }
        Ok(addresses)
    }
}

/// The DNS resolver of the shared HTTP client: resolves, then applies the policy to every
/// address, so the address connected to is the address checked.
#[derive(Clone, Debug)]
pub struct PolicyResolver {
    policy: Arc<EgressPolicy>,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let addresses = policy.resolve(name.as_str()).await?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The gateway's one outbound HTTP client: a keep-alive pool whose every connection passes the
/// egress policy, and which never follows redirects by itself (REST tool calls follow at most
/// one, checked, in `actors::upstream`).
#[derive(Clone)]
pub struct HttpClient {
    /// One connection pool per thread that sends: a pooled connection is driven by a task on
    /// the thread that opened it, so sharing one pool across the HTTP workers would make every
    /// request on another worker's connection cross threads twice.
    pools: Arc<thread_local::ThreadLocal<reqwest::Client>>,
    policy: Arc<EgressPolicy>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("HttpClient")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Builds the client under `policy` (its per-thread pools are made on first use, the
    /// calling thread's at once, so that a configuration error shows here).
    pub fn new(policy: EgressPolicy) -> Result<Self, String> {
        let client = HttpClient {
            pools: Arc::new(thread_local::ThreadLocal::new()),
            policy: Arc::new(policy),
        };
        client.pool()?;
        Ok(client)
    }

    /// This thread's pool.
    fn pool(&self) -> Result<&reqwest::Client, String> {
        self.pools.get_or_try(|| build(self.policy.clone()))
    }

    /// The policy the client enforces.
    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// A request to `url`, if the policy allows its destination.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, EgressDenied> {
        let parsed = url::Url::parse(url)
            .map_err(|error| EgressDenied(format!("the URL {url:?} is not valid ({error})")))?;
        self.request_to(method, &parsed)
    }

    /// A request to an already parsed URL (an upstream's endpoint, parsed once), if the policy
    /// allows its destination.
    pub fn request_to(
        &self,
        method: reqwest::Method,
        url: &url::Url,
    ) -> Result<reqwest::RequestBuilder, EgressDenied> {
        self.policy.check_url(url)?;
        let pool = self.pool().map_err(EgressDenied)?;
        Ok(pool.request(method, url.clone()))
    }

    /// A GET request.
    pub fn get(&self, url: &str) -> Result<reqwest::RequestBuilder, EgressDenied> {
        self.request(reqwest::Method::GET, url)
    }

    /// A POST request.
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, EgressDenied> {
        self.request(reqwest::Method::POST, url)
    }

    /// A DELETE request.
    pub fn delete(&self, url: &str) -> Result<reqwest::RequestBuilder, EgressDenied> {
        self.request(reqwest::Method::DELETE, url)
    }
}

/// One thread's pool: every outbound connection resolves through the policy.
#[allow(
    clippy::disallowed_methods,
    reason = "the gateway's one outbound HTTP client (a pool per thread), built with its egress policy"
)]
fn build(policy: Arc<EgressPolicy>) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("mcpgate/", env!("CARGO_PKG_VERSION")))
        .tcp_nodelay(true)
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .connect_timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        // Proxies from the environment would connect on our behalf, past the resolver.
        .no_proxy()
        .dns_resolver(Arc::new(PolicyResolver { policy }))
        .build()
        .map_err(|error| format!("cannot build the HTTP client: {error}"))
}

/// A response's body, refused once it passes `limit` bytes (what an untrusted server sends is
/// never read whole first).
pub async fn body_within(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| crate::upstream::transport::describe(&error))?
    {
        if body.len() + chunk.len() > limit {
            return Err(format!("the answer is larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether two URLs have the same origin (scheme, host and port).
pub fn same_origin(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> Class {
        classify(ip.parse().unwrap())
    }

    #[test]
    fn classes_cover_every_blocked_form() {
        for ip in ["127.0.0.1", "127.9.9.9", "0.0.0.0", "0.1.2.3", "::1", "::"] {
            assert_eq!(class(ip), Class::Loopback, "{ip}");
        }
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "198.18.0.1",
            "198.19.255.255",
            "fd00::1",
            "fe80::1",
            "::ffff:192.168.1.1",
            "64:ff9b:1::a00:1",
        ] {
            assert_eq!(class(ip), Class::Private, "{ip}");
        }
        for ip in [
            "169.254.169.254",
            "100.100.100.200",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            assert_eq!(class(ip), Class::Metadata, "{ip}");
        }
        for ip in [
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "2001:db8::1",
            "2001:0:4136:e378::1",
            "ff02::1",
        ] {
            assert_eq!(class(ip), Class::Reserved, "{ip}");
        }
        // IPv6 forms carrying a loopback IPv4 address.
        for ip in [
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
        ] {
            assert_eq!(class(ip), Class::Loopback, "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "64:ff9b::5db8:d822"] {
            assert_eq!(class(ip), Class::Public, "{ip}");
        }
    }

    #[test]
    fn url_literals_in_every_spelling_are_judged() {
        let policy = EgressPolicy::default();
        for url in [
            "http://127.0.0.1:8080/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://017700000001/",
            "http://[::ffff:127.0.0.1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0:80/",
        ] {
            let parsed = url::Url::parse(url).unwrap();
            assert!(policy.check_url(&parsed).is_err(), "{url}");
        }
        assert!(
            policy
                .check_url(&url::Url::parse("file:///etc/passwd").unwrap())
                .is_err()
        );
        assert!(
            policy
                .check_url(&url::Url::parse("https://93.184.216.34/").unwrap())
                .is_ok()
        );
    }

    #[test]
    fn settings_and_allow_list_open_what_they_name() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        let open = EgressPolicy {
            allow_localhost: true,
            allow_private_networks: true,
            allow: Vec::new(),
        };
        assert!(open.check_ip("x", loopback).is_ok());
        // Private networks allowed: the metadata service still is not.
        let refused = open.check_ip("x", metadata).unwrap_err();
        assert!(refused.0.contains("metadata"), "{refused}");
        let listed = EgressPolicy {
            allow: vec![
                AllowEntry::parse("127.0.0.1/32").unwrap(),
                AllowEntry::parse("*.corp.example").unwrap(),
            ],
            ..EgressPolicy::default()
        };
        assert!(listed.check_ip("x", loopback).is_ok());
        assert!(listed.check_ip("x", "127.0.0.2".parse().unwrap()).is_err());
        assert!(listed.check_ip("api.corp.example", metadata).is_ok());
        assert!(listed.check_ip("corp.example.evil", metadata).is_err());
        assert!(AllowEntry::parse("not a host").is_err());
    }

    #[tokio::test]
    async fn names_are_refused_for_what_they_resolve_to() {
        let policy = EgressPolicy::default();
        let refused = policy
            .check_url_now("http://localhost:9/")
            .await
            .unwrap_err();
        assert!(refused.0.contains("SSRF_ALLOW_LOCALHOST"), "{refused}");
        // The resolver the client uses applies the same rule.
        let resolver = PolicyResolver {
            policy: Arc::new(policy),
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let outcome = reqwest::dns::Resolve::resolve(&resolver, name).await;
        assert!(outcome.is_err());
    }
}
