//! The contract's counters: password lockout, failed codes per user, and the text budgets.
//! Each takes its unit before the guarded work runs, so that concurrent requests can never
//! get more tries than the limit; units are given back when the work turns out not to count
//! (a right password, a right code, a text that could not be sent). The application's daily
//! text budget is spread over several counters ([`TEXT_BUDGET_SHARDS`]), so that a big
//! tenant's texts do not all meet on one item.

use crate::config::PASSWORD_WINDOW_SECS;
use crate::error::MfaError;
use crate::metrics::{Metric, Reason};
use crate::ports::{Counted, Window};
use crate::service::Service;
use crate::types::{AppId, PhoneNumber, UnixTime};

use super::Caller;
use super::audit::{self, Action};

/// A unit taken from one counter, to be given back if the work does not count.
#[derive(Debug, Clone)]
pub struct Taken {
    key: String,
    window_start: UnixTime,
    /// Units taken in this window, this one included.
    pub count: u32,
}

impl Taken {
    /// Seconds until this unit's window of `window_secs` ends.
    pub fn resets_in(&self, svc: &Service, window_secs: u64) -> u64 {
        svc.clock
            .now()
            .secs_until(self.window_start.plus_secs(window_secs))
    }

    pub async fn give_back(&self, svc: &Service) {
        if let Err(e) = svc
            .store
            .counter_give_back(&self.key, self.window_start)
            .await
        {
            // Failing to give back only over-counts (fails safe); say so and go on.
            tracing::warn!(error = %e.0, "could not give a counter unit back");
        }
    }
}

/// A counter's refusal: until when, and whether it is the first of its window or block (the
/// only one that is audited; later ones are only counted in the metric).
#[derive(Debug, Clone, Copy)]
pub(super) struct Refused {
    pub(super) until: UnixTime,
    first: bool,
}

/// What asking a counter for a unit gave.
#[derive(Debug)]
pub(super) enum Take {
    Taken(Taken),
    Refused(Refused),
}

/// The key of one counter. The strings are stored data (DynamoDB items, and what operators
/// search for): [`CounterKey::key`] is the one place they are built, and they never change.
#[derive(Debug, Clone, Copy)]
pub enum CounterKey<'a> {
    /// `pw#{app}#{user}`: wrong passwords (the lockout).
    Password(&'a Caller),
    /// `codefail#{app}#{user}`: wrong codes per user per hour, across all their codes.
    CodeFailures(&'a Caller),
    /// `txt-user#{app}#{user}`: texts per user per day.
    TextsPerUser(&'a Caller),
    /// `txt-num#{tag}`: texts per number per hour, by the number's keyed tag (never the number).
    TextsPerNumber(&'a str),
    /// `txt-ip#{bucket}`: texts per client per hour, by [`ip_bucket`].
    TextsPerIp(&'a str),
    /// `txt-app#{app}#{shard}`: texts per application per day, one of the
    /// [`TEXT_BUDGET_SHARDS`] counters the budget is spread over.
    TextsPerApp(&'a AppId, u32),
    /// `chl-cool#{app}#{user}`: the cooldown between a user's challenge texts.
    ChallengeCooldown(&'a Caller),
}

impl CounterKey<'_> {
    /// The key as stored.
    pub fn key(self) -> String {
        match self {
            CounterKey::Password(c) => format!("pw#{}#{}", c.app, c.user),
            CounterKey::CodeFailures(c) => format!("codefail#{}#{}", c.app, c.user),
            CounterKey::TextsPerUser(c) => format!("txt-user#{}#{}", c.app, c.user),
            CounterKey::TextsPerNumber(tag) => format!("txt-num#{tag}"),
            CounterKey::TextsPerIp(bucket) => format!("txt-ip#{bucket}"),
            CounterKey::TextsPerApp(app, shard) => format!("txt-app#{app}#{shard}"),
            CounterKey::ChallengeCooldown(c) => format!("chl-cool#{}#{}", c.app, c.user),
        }
    }
}

/// Asks counter `key` for one unit of `limit` per window of `window_secs`.
pub(super) async fn take(
    svc: &Service,
    key: CounterKey<'_>,
    limit: u32,
    window_secs: u64,
) -> Result<Take, MfaError> {
    let key = key.key();
    let now = svc.clock.now();
    Ok(
        match svc
            .store
            .counter_take(&key, Window::new(limit, window_secs), now)
            .await?
        {
            Counted::Taken {
                count,
                window_start,
            } => Take::Taken(Taken {
                key,
                window_start,
                count,
            }),
            Counted::Limited { until, first } => Take::Refused(Refused { until, first }),
        },
    )
}

/// How many counters an application's daily text budget is spread over, at most (never more
/// than the limit, so that no counter has 0).
///
/// Why 32: every text of a tenant takes a unit of its budget, one conditional UpdateItem of
/// a small item (1 write unit), and one item takes about 1,000 write units a second. At the
/// design peak of one tenant (issue 19: 2,000 enrollments and 5,000 SMS sign-ins a second)
/// that is about 7,000 takes a second: at least 7 counters, and 32 run each near 220 a
/// second (about a fifth of the limit), leaving room for resends, bursts above the peak and
/// the walks of a nearly spent budget. More would only lengthen the walk of a refused text
/// (up to one take per counter).
pub const TEXT_BUDGET_SHARDS: u32 = 32;

/// How many counters a daily budget of `limit` texts is spread over: [`TEXT_BUDGET_SHARDS`],
/// fewer for a smaller budget (one unit each at least), one for a budget of 0 (refusing all).
pub fn text_budget_shards(limit: u32) -> u32 {
    TEXT_BUDGET_SHARDS.min(limit).max(1)
}

/// Shard `shard`'s part of a daily limit spread over `shards` counters: the limit divided,
/// the remainder one each to the first shards, so that the parts sum to the limit.
fn shard_limit(limit: u32, shards: u32, shard: u32) -> u32 {
    limit / shards + u32::from(shard < limit % shards)
}

/// Asks the application's daily text budget for one unit.
///
/// The budget `limit` is spread over [`text_budget_shards`] counters `txt-app#{app}#{k}`
/// whose limits sum to `limit` ([`shard_limit`]), so that no counter carries every text of a
/// big tenant. A take starts at a random counter and walks the others in order until one
/// takes: it is refused only when every counter refuses, so every unit stays reachable, and
/// the budget is never exceeded, even under concurrency (each counter guards its own part in
/// its conditional write). Each counter's window opens at its own first unit, as any
/// counter's does. The unit taken carries its counter's key, so a give-back returns it there.
///
/// A refusal's `until` (the answer's `Retry-After`) is the earliest end among the refusing
/// counters' windows: when a unit may come back. It is `first` when any counter answered its
/// first refusal, so the audit of the block is written at most once per counter window (up
/// to one per counter and day, where a single counter wrote one a day: concurrent walks may
/// each meet another counter's first refusal), and at least once: the counter filled last
/// refuses nothing before every counter is full, so its first refusal falls in a walk that
/// every counter refuses (unless a unit came back meanwhile). The metric counts every
/// refused text, as before. The former single counter `txt-app#{app}` is no longer read: no
/// deployment older than the shards exists.
async fn take_app_text(svc: &Service, app: &AppId, limit: u32) -> Result<Take, MfaError> {
    let shards = text_budget_shards(limit);
    let start = getrandom::u32().unwrap_or(0) % shards;
    let mut refused = Refused {
        until: UnixTime(i64::MAX),
        first: false,
    };
    for i in 0..shards {
        let shard = (start + i) % shards;
        let key = CounterKey::TextsPerApp(app, shard);
        match take(svc, key, shard_limit(limit, shards, shard), 86_400).await? {
            Take::Taken(t) => return Ok(Take::Taken(t)),
            Take::Refused(r) => {
                refused.until = refused.until.min(r.until);
                refused.first |= r.first;
            }
        }
    }
    Ok(Take::Refused(refused))
}

/// Takes a password attempt: `429 too_many_attempts` while locked or at the limit.
pub async fn take_password_attempt(svc: &Service, c: &Caller) -> Result<Taken, MfaError> {
    let limit = svc.limits.password_max_attempts;
    match take(svc, CounterKey::Password(c), limit, PASSWORD_WINDOW_SECS).await? {
        Take::Taken(t) => Ok(t),
        Take::Refused(Refused { until, .. }) => {
            tracing::info!(app_id = %c.app, user_id = %c.user, "password checks locked");
            svc.count(&c.app, Metric::RateLimited(Reason::PasswordAttempts));
            Err(MfaError::TooManyAttempts {
                retry_after: svc.clock.now().secs_until(until),
            })
        }
    }
}

/// Settles a password attempt: a right password gives its unit back; the wrong one that
/// reaches the limit locks password checks for the window and answers 429.
pub async fn settle_password_attempt(
    svc: &Service,
    c: &Caller,
    taken: Taken,
    correct: bool,
) -> Result<(), MfaError> {
    if correct {
        taken.give_back(svc).await;
        return Ok(());
    }
    let limit = svc.limits.password_max_attempts;
    if taken.count >= limit {
        let until = svc.clock.now().plus_secs(PASSWORD_WINDOW_SECS);
        svc.store.counter_block(&taken.key, until).await?;
        tracing::warn!(app_id = %c.app, user_id = %c.user, "password lockout");
        svc.count(&c.app, Metric::Lockout);
        audit::user(
            svc,
            c,
            Action::PasswordLockout,
            serde_json::json!({ "locked_until": until, "limit": "wrong passwords per user per 15 min" }),
        )
        .await;
        return Err(MfaError::TooManyAttempts {
            retry_after: PASSWORD_WINDOW_SECS,
        });
    }
    Err(MfaError::InvalidPassword {
        attempts_remaining: limit - taken.count,
    })
}

/// Takes one unit of the user's hourly budget of failed codes (across all their codes).
pub async fn take_code_failure(svc: &Service, c: &Caller) -> Result<Taken, MfaError> {
    let key = CounterKey::CodeFailures(c);
    match take(svc, key, svc.limits.code_failures_per_user_per_hour, 3600).await? {
        Take::Taken(t) => Ok(t),
        Take::Refused(refused) => {
            let until = refused.until;
            tracing::warn!(app_id = %c.app, user_id = %c.user, "code failures per user limit");
            svc.count(&c.app, Metric::RateLimited(Reason::CodeFailuresPerUser));
            blocked(svc, c, "wrong codes per user per hour", refused).await;
            Err(MfaError::TooManyAttempts {
                retry_after: svc.clock.now().secs_until(until),
            })
        }
    }
}

/// Units taken for one text from every text budget.
#[derive(Debug)]
pub struct TextBudget(Vec<Taken>);

impl TextBudget {
    /// Gives every unit back: the text was not sent.
    pub async fn give_back(self, svc: &Service) {
        for t in &self.0 {
            t.give_back(svc).await;
        }
    }

    /// Passes `result` on, giving every unit back first if it failed (nothing was sent).
    pub async fn give_back_on_err<T>(
        &self,
        svc: &Service,
        result: Result<T, MfaError>,
    ) -> Result<T, MfaError> {
        if result.is_err() {
            for t in &self.0 {
                t.give_back(svc).await;
            }
        }
        result
    }
}

/// Whom a text goes to, for the per-number budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// A number nobody has proven to hold yet (an enrollment, an add, a replace): the
    /// per-number budget guards it against being bombed from many accounts.
    Unproven,
    /// One of the caller's own verified phones (a sign-in challenge): the per-number budget
    /// neither counts nor refuses it, so that strangers submitting the same number elsewhere
    /// can never block its owner's sign-in (contract v2, "Budgets a stranger cannot spend").
    /// The user's, IP's and application's budgets still apply.
    OwnVerifiedPhone,
}

/// Takes one text from the user's daily, the number's hourly (unless `to` is the caller's own
/// verified phone), the IP's hourly and the application's daily budget, or none of them:
/// `429 rate_limited` naming the limit that was reached. The application's budget comes last
/// so that one abuser trips their own limits before they can spend the tenant's.
pub async fn take_text_budget(
    svc: &Service,
    c: &Caller,
    number: &PhoneNumber,
    to: Recipient,
) -> Result<TextBudget, MfaError> {
    let l = &svc.limits;
    let number_tag = (to == Recipient::Unproven).then(|| svc.keys.number_tag(number));
    let ip = ip_bucket(&c.source_ip);
    // Each budget's counter; `None` for the application's, spread over counters (see
    // [`take_app_text`]).
    let mut budgets = vec![(
        Some(CounterKey::TextsPerUser(c)),
        l.texts_per_user_per_day,
        86_400,
        "texts per user per day",
        Reason::TextsPerUser,
    )];
    if let Some(tag) = &number_tag {
        budgets.push((
            Some(CounterKey::TextsPerNumber(tag)),
            l.texts_per_number_per_hour,
            3600,
            "texts per phone number per hour",
            Reason::TextsPerNumber,
        ));
    }
    budgets.push((
        Some(CounterKey::TextsPerIp(&ip)),
        l.texts_per_ip_per_hour,
        3600,
        "texts per client IP per hour",
        Reason::TextsPerIp,
    ));
    budgets.push((
        None,
        l.texts_per_app_per_day,
        86_400,
        "texts per application per day",
        Reason::TextsPerApp,
    ));
    let mut taken = Vec::with_capacity(budgets.len());
    for (key, limit, window, name, reason) in budgets {
        let took = match key {
            Some(key) => take(svc, key, limit, window).await,
            None => take_app_text(svc, &c.app, limit).await,
        };
        match took {
            Ok(Take::Taken(t)) => taken.push(t),
            Ok(Take::Refused(refused)) => {
                let until = refused.until;
                TextBudget(taken).give_back(svc).await;
                tracing::warn!(app_id = %c.app, user_id = %c.user, limit = name, "text rate limit");
                svc.count(&c.app, Metric::RateLimited(reason));
                blocked(svc, c, name, refused).await;
                return Err(MfaError::RateLimited {
                    retry_after: svc.clock.now().secs_until(until),
                    limit: name,
                });
            }
            Err(e) => {
                TextBudget(taken).give_back(svc).await;
                return Err(e);
            }
        }
    }
    Ok(TextBudget(taken))
}

/// Audits a request refused by a rate limit, naming the limit: only the first refusal of a
/// window or block, so that refused requests cannot flood the audit log (the metric counts
/// every one).
async fn blocked(svc: &Service, c: &Caller, limit: &str, refused: Refused) {
    if !refused.first {
        return;
    }
    audit::user(
        svc,
        c,
        Action::RateLimitBlocked,
        serde_json::json!({ "limit": limit }),
    )
    .await;
}

/// The client a per-IP budget counts: an IPv4 address, or an IPv6 address's /64 (one subscriber's
/// network: whoever holds one can use all of its addresses, so each must not get a budget).
pub fn ip_bucket(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(v4) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::UserId;

    /// The keys are stored data: a changed string would reset every counter in production.
    #[test]
    fn counter_keys_keep_their_stored_shape() {
        let c = Caller {
            app: AppId::parse("app1").unwrap(),
            user: UserId::parse("u1").unwrap(),
            source_ip: "198.51.100.7".into(),
        };
        let keys = [
            (CounterKey::Password(&c), "pw#app1#u1"),
            (CounterKey::CodeFailures(&c), "codefail#app1#u1"),
            (CounterKey::TextsPerUser(&c), "txt-user#app1#u1"),
            (CounterKey::TextsPerNumber("tag"), "txt-num#tag"),
            (
                CounterKey::TextsPerIp("198.51.100.7"),
                "txt-ip#198.51.100.7",
            ),
            (CounterKey::TextsPerApp(&c.app, 0), "txt-app#app1#0"),
            (CounterKey::TextsPerApp(&c.app, 31), "txt-app#app1#31"),
            (CounterKey::ChallengeCooldown(&c), "chl-cool#app1#u1"),
        ];
        for (key, stored) in keys {
            assert_eq!(key.key(), stored);
        }
    }

    #[test]
    fn the_application_budget_parts_sum_to_the_limit_and_none_is_empty() {
        for limit in [1, 2, 7, 31, 32, 33, 40, 10_000, 1_000_003] {
            let shards = text_budget_shards(limit);
            let parts: Vec<u32> = (0..shards).map(|k| shard_limit(limit, shards, k)).collect();
            assert_eq!(parts.iter().sum::<u32>(), limit, "{limit}: {parts:?}");
            assert!(parts.iter().all(|p| *p >= 1), "{limit}: {parts:?}");
            // Even: no part more than one above another.
            assert!(parts.iter().max().unwrap() - parts.iter().min().unwrap() <= 1);
        }
        assert_eq!(shard_limit(40, 32, 7), 2);
        assert_eq!(shard_limit(40, 32, 8), 1);
        // A budget of 0: one counter, refusing every text.
        assert_eq!(text_budget_shards(0), 1);
        assert_eq!(shard_limit(0, 1, 0), 0);
    }

    #[test]
    fn ipv6_clients_share_their_64_and_ipv4_stays_whole() {
        assert_eq!(ip_bucket("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(
            ip_bucket("2001:db8:1:2:ffff::1"),
            ip_bucket("2001:db8:1:2::9")
        );
        assert_ne!(ip_bucket("2001:db8:1:3::1"), ip_bucket("2001:db8:1:2::1"));
        assert_eq!(ip_bucket("198.51.100.7"), "198.51.100.7");
        assert_eq!(ip_bucket("::ffff:198.51.100.7"), "198.51.100.7");
        assert_eq!(ip_bucket("unknown"), "unknown");
    }
}
