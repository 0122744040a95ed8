//! The SSRF guard for upstream URLs registered by users: loopback and private addresses are
//! refused unless allowed (`SSRF_ALLOW_LOCALHOST`, `SSRF_ALLOW_PRIVATE_NETWORKS`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the guard lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Loopback (127.0.0.0/8, ::1, and the unspecified address).
    pub allow_localhost: bool,
    /// Private, shared, link-local and unique-local ranges (incl. cloud metadata addresses).
    pub allow_private_networks: bool,
}

/// The class of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Loopback,
    Private,
    Refused,
    Public,
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    if ip.is_loopback() || ip.is_unspecified() {
        Class::Loopback
    } else if ip.is_private()
        || ip.is_link_local()
        || (ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1]))
    {
        Class::Private
    } else if ip.is_multicast() || ip.is_broadcast() || ip.is_documentation() {
        Class::Refused
    } else {
        Class::Public
    }
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() || v6 == Ipv6Addr::UNSPECIFIED {
                Class::Loopback
            } else if (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80 {
                Class::Private
            } else if v6.is_multicast() {
                Class::Refused
            } else {
                Class::Public
            }
        }
    }
}

/// Resolves the URL's host and refuses it when any address is not allowed; the message says
/// which setting would allow it.
pub async fn check(url: &str, policy: Policy) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|error| format!("the URL is not valid ({error})"))?;
    let host = parsed
        .host_str()
        .ok_or("the URL names no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|error| format!("the host {host:?} does not resolve ({error})"))?
            .map(|address| address.ip())
            .collect(),
    };
    for ip in addresses {
        match classify(ip) {
            Class::Public => {}
            Class::Loopback if policy.allow_localhost => {}
            Class::Private if policy.allow_private_networks => {}
            Class::Loopback => {
                return Err(format!(
                    "{host} is a loopback address ({ip}); set SSRF_ALLOW_LOCALHOST=true to allow it"
                ));
            }
            Class::Private => {
                return Err(format!(
                    "{host} is a private-network address ({ip}); set SSRF_ALLOW_PRIVATE_NETWORKS=true to allow it"
                ));
            }
            Class::Refused => {
                return Err(format!(
                    "{host} resolves to {ip}, which cannot be an upstream"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify("127.0.0.1".parse().unwrap()), Class::Loopback);
        assert_eq!(classify("0.0.0.0".parse().unwrap()), Class::Loopback);
        assert_eq!(classify("::1".parse().unwrap()), Class::Loopback);
        assert_eq!(classify("10.1.2.3".parse().unwrap()), Class::Private);
        assert_eq!(classify("169.254.169.254".parse().unwrap()), Class::Private);
        assert_eq!(classify("100.64.0.1".parse().unwrap()), Class::Private);
        assert_eq!(classify("fd00::1".parse().unwrap()), Class::Private);
        assert_eq!(
            classify("::ffff:192.168.1.1".parse().unwrap()),
            Class::Private
        );
        assert_eq!(classify("93.184.216.34".parse().unwrap()), Class::Public);
    }
}
