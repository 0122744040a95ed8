//! The scope of an API token: which virtual server it is for, which permissions it keeps,
//! from which addresses and at which times it may be used. The scope is signed into the token
//! (it never changes; a token is revoked, not edited), so checking it needs no database.

use std::net::IpAddr;

use chrono::{Datelike, Timelike};
use serde::{Deserialize, Serialize};

use super::rbac::PERMISSIONS;

/// Restrictions of an API token. Everything absent is unrestricted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenScope {
    /// The token works only on this virtual server's MCP endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// The token keeps only these of its owner's permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// Addresses (`203.0.113.7`) or networks (`10.0.0.0/8`, `2001:db8::/32`) it may be used from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_restrictions: Vec<String>,
    /// When (UTC) it may be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_restrictions: Option<TimeWindow>,
}

/// A daily window in UTC, optionally on some weekdays only. A window whose end is before its
/// start spans midnight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeWindow {
    /// `HH:MM`, inclusive.
    pub start_time: String,
    /// `HH:MM`, exclusive.
    pub end_time: String,
    /// `mon` … `sun`; absent or empty: every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A scope field that is not acceptable: the field and why.
pub type ScopeProblem = (String, String);

fn minutes(field: &str, value: &str) -> Result<u32, ScopeProblem> {
    let problem = || (field.to_owned(), "use HH:MM (00:00 to 23:59)".to_owned());
    let (hours, mins) = value.split_once(':').ok_or_else(problem)?;
    let (hours, mins): (u32, u32) = (
        hours.parse().map_err(|_| problem())?,
        mins.parse().map_err(|_| problem())?,
    );
    if hours < 24 && mins < 60 && value.len() == 5 {
        Ok(hours * 60 + mins)
    } else {
        Err(problem())
    }
}

fn network(value: &str) -> Option<ipnet::IpNet> {
    value
        .parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| value.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

impl TokenScope {
    /// Checks the scope's own consistency (field names are those of `POST /tokens`).
    pub fn validate(&self) -> Result<(), ScopeProblem> {
        if let Some(permissions) = &self.permissions {
            for (index, permission) in permissions.iter().enumerate() {
                if !PERMISSIONS.contains(&permission.as_str()) {
                    return Err((
                        format!("scope.permissions[{index}]"),
                        format!("{permission:?} is not a permission"),
                    ));
                }
            }
        }
        for (index, value) in self.ip_restrictions.iter().enumerate() {
            if network(value).is_none() {
                return Err((
                    format!("scope.ip_restrictions[{index}]"),
                    format!("{value:?} is not an IP address or CIDR network"),
                ));
            }
        }
        if let Some(window) = &self.time_restrictions {
            let start = minutes("scope.time_restrictions.start_time", &window.start_time)?;
            let end = minutes("scope.time_restrictions.end_time", &window.end_time)?;
            if start == end {
                return Err((
                    "scope.time_restrictions".into(),
                    "start_time and end_time are equal: the window would be empty".into(),
                ));
            }
            for (index, day) in window.days.iter().enumerate() {
                if !DAYS.contains(&day.as_str()) {
                    return Err((
                        format!("scope.time_restrictions.days[{index}]"),
                        format!("use one of {}", DAYS.join(", ")),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the scope keeps `permission`.
    pub fn keeps(&self, permission: &str) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|kept| kept.iter().any(|p| p == permission))
    }

    /// Refuses use from an address outside the allow list or outside the time window.
    pub fn admits(
        &self,
        client: Option<IpAddr>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), String> {
        if !self.ip_restrictions.is_empty() {
            let allowed = client.is_some_and(|client| {
                let client = canonical(client);
                self.ip_restrictions
                    .iter()
                    .filter_map(|value| network(value))
                    .any(|net| net.contains(&client))
            });
            if !allowed {
                return Err("this token may not be used from this address".into());
            }
        }
        if let Some(window) = &self.time_restrictions {
            let (Ok(start), Ok(end)) = (
                minutes("start_time", &window.start_time),
                minutes("end_time", &window.end_time),
            ) else {
                return Err("this token's time window is malformed".into());
            };
            let day = DAYS[now.weekday().num_days_from_monday() as usize];
            let minute = now.hour() * 60 + now.minute();
            let in_window = if start < end {
                (start..end).contains(&minute)
            } else {
                minute >= start || minute < end
            };
            let on_day = window.days.is_empty() || window.days.iter().any(|d| d == day);
            if !(in_window && on_day) {
                return Err(format!(
                    "this token may be used only {}–{} UTC{}",
                    window.start_time,
                    window.end_time,
                    if window.days.is_empty() {
                        String::new()
                    } else {
                        format!(" on {}", window.days.join(", "))
                    }
                ));
            }
        }
        Ok(())
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(address),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: u32, minute: u32) -> chrono::DateTime<chrono::Utc> {
        // 2026-12-02 is a Wednesday.
        chrono::NaiveDate::from_ymd_opt(2026, 12, 2)
            .unwrap()
            .and_hms_opt(hour, minute, 0)
            .unwrap()
            .and_utc()
    }

    #[test]
    fn addresses_and_windows() {
        let scope = TokenScope {
            ip_restrictions: vec!["10.0.0.0/8".into(), "2001:db8::1".into()],
            time_restrictions: Some(TimeWindow {
                start_time: "22:00".into(),
                end_time: "06:00".into(),
                days: vec!["wed".into()],
            }),
            ..TokenScope::default()
        };
        scope.validate().unwrap();
        let inside: IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let outside: IpAddr = "192.168.1.1".parse().unwrap();
        assert!(scope.admits(Some(inside), at(23, 0)).is_ok());
        assert!(scope.admits(Some(mapped), at(5, 59)).is_ok());
        assert!(scope.admits(Some(outside), at(23, 0)).is_err());
        assert!(scope.admits(None, at(23, 0)).is_err());
        assert!(scope.admits(Some(inside), at(12, 0)).is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let bad = |scope: TokenScope| scope.validate().unwrap_err().0;
        assert_eq!(
            bad(TokenScope {
                permissions: Some(vec!["tools.read".into(), "root".into()]),
                ..TokenScope::default()
            }),
            "scope.permissions[1]"
        );
        assert_eq!(
            bad(TokenScope {
                ip_restrictions: vec!["10.0.0.0/33".into()],
                ..TokenScope::default()
            }),
            "scope.ip_restrictions[0]"
        );
        assert_eq!(
            bad(TokenScope {
                time_restrictions: Some(TimeWindow {
                    start_time: "9:00".into(),
                    end_time: "17:00".into(),
                    days: vec![],
                }),
                ..TokenScope::default()
            }),
            "scope.time_restrictions.start_time"
        );
    }
}
