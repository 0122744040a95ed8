//! When API tokens were last used: noted on the request's own thread at most once a minute per
//! token (a sharded map read, rarely a write), taken by the AuthActor every few seconds and
//! written in one unit of work — never a database write per request.

use std::sync::Mutex;

use dashmap::DashMap;

/// Tokens not used for this many minutes are forgotten (and noted again on their next use).
const FORGET_AFTER_MINUTES: i64 = 10;

/// Uses not yet written.
#[derive(Debug, Default)]
pub struct TokenUse {
    /// Token id → the minute (since the epoch) its use was last noted.
    noted: DashMap<String, i64>,
    /// `(token id, when)` to write.
    pending: Mutex<Vec<(String, chrono::NaiveDateTime)>>,
}

impl TokenUse {
    /// Notes that token `jti` was used at `now` (once a minute per token).
    pub fn touch(&self, jti: &str, now: chrono::DateTime<chrono::Utc>) {
        let minute = now.timestamp().div_euclid(60);
        if self.noted.get(jti).is_some_and(|noted| *noted == minute) {
            return;
        }
        if self.noted.insert(jti.to_owned(), minute) == Some(minute) {
            return;
        }
        let at = chrono::DateTime::from_timestamp(minute * 60, 0)
            .unwrap_or(now)
            .naive_utc();
        if let Ok(mut pending) = self.pending.lock() {
            pending.push((jti.to_owned(), at));
        }
    }

    /// What to write: the latest use of each token since the last call. Forgets tokens idle
    /// for a while, so the map stays as small as the set of tokens in use.
    pub fn take(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<(String, chrono::NaiveDateTime)> {
        let minute = now.timestamp().div_euclid(60);
        self.noted
            .retain(|_, noted| minute - *noted < FORGET_AFTER_MINUTES);
        let mut uses = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => Vec::new(),
        };
        uses.sort_unstable();
        // Sorted by token, then time: keep each token's last.
        uses.reverse();
        uses.dedup_by(|later, earlier| later.0 == earlier.0);
        uses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn a_token_is_noted_once_a_minute() {
        let usage = TokenUse::default();
        usage.touch("a", at("2026-12-05T10:00:05Z"));
        usage.touch("a", at("2026-12-05T10:00:59Z"));
        usage.touch("b", at("2026-12-05T10:00:30Z"));
        usage.touch("a", at("2026-12-05T10:01:10Z"));
        let taken = usage.take(at("2026-12-05T10:01:20Z"));
        let minute = |text: &str| at(text).naive_utc();
        assert_eq!(
            taken,
            vec![
                ("b".to_owned(), minute("2026-12-05T10:00:00Z")),
                ("a".to_owned(), minute("2026-12-05T10:01:00Z")),
            ]
        );
        assert!(usage.take(at("2026-12-05T10:01:30Z")).is_empty());
        // Idle tokens are forgotten; a later use is noted again.
        usage.take(at("2026-12-05T11:00:00Z"));
        assert!(usage.noted.is_empty());
        usage.touch("a", at("2026-12-05T11:00:01Z"));
        assert_eq!(usage.take(at("2026-12-05T11:00:02Z")).len(), 1);
    }
}
