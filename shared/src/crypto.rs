//! Keyed hashes for codes and phone numbers, and password checks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use argon2::Argon2;
use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, oneshot};

use crate::types::ids::CodeId;
use crate::types::{Code, PhoneNumber};

type HmacSha256 = Hmac<Sha256>;

/// The secret key codes are hashed under (from Secrets Manager, or random per process locally).
#[derive(Clone)]
pub struct Keys {
    hmac_key: Vec<u8>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// Why a key was refused.
#[derive(Debug, thiserror::Error)]
#[error("the code hashing key must be at least 32 bytes")]
pub struct WeakKey;

impl Keys {
    /// At least 32 bytes of secret material.
    pub fn new(hmac_key: Vec<u8>) -> Result<Keys, WeakKey> {
        if hmac_key.len() < 32 {
            return Err(WeakKey);
        }
        Ok(Keys { hmac_key })
    }

    /// A fresh random key, for the in-memory backend.
    pub fn random() -> Result<Keys, getrandom::Error> {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Keys { hmac_key: key })
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail; fall back to an empty MAC
        // rather than panic, which can only ever make a comparison fail.
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.hmac_key) else {
            return [0u8; 32];
        };
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The stored form of a code: bound to its purpose and to the one code id it was sent as,
    /// so that a hash can never stand for another code, enrollment or purpose.
    pub fn code_hash(&self, purpose: &str, code_id: &CodeId, code: &Code) -> String {
        hex::encode(self.mac(&[
            b"code",
            purpose.as_bytes(),
            code_id.as_str().as_bytes(),
            code.expose().as_bytes(),
        ]))
    }

    /// Compares a guess with a stored hash in constant time.
    pub fn code_matches(
        &self,
        purpose: &str,
        code_id: &CodeId,
        guess: &Code,
        stored_hex: &str,
    ) -> bool {
        let Ok(stored) = hex::decode(stored_hex) else {
            return false;
        };
        let computed = self.mac(&[
            b"code",
            purpose.as_bytes(),
            code_id.as_str().as_bytes(),
            guess.expose().as_bytes(),
        ]);
        computed.as_slice().ct_eq(stored.as_slice()).into()
    }

    /// The stored form of a recovery code (normalised), bound to its user.
    pub fn recovery_hash(&self, app: &str, user: &str, normalised: &str) -> String {
        hex::encode(self.mac(&[
            b"recovery",
            app.as_bytes(),
            user.as_bytes(),
            normalised.as_bytes(),
        ]))
    }

    /// A stable pseudonym for a phone number: table keys and counters use it, never the number.
    pub fn number_tag(&self, number: &PhoneNumber) -> String {
        hex::encode(&self.mac(&[b"phone", number.e164().as_bytes()])[..16])
    }
}

/// Is `hash` an argon2id v=19 PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) whose
/// costs a Lambda can afford? A stored hash with absurd costs (say 4 GiB of memory) would make
/// every password check of that user exhaust the function, so memory is capped at 256 MiB, passes
/// at 10 and lanes at 8 — far above OWASP's recommendations (19 MiB, 2 passes, 1 lane).
pub fn is_argon2_phc(hash: &str) -> bool {
    let Ok(h) = PasswordHash::new(hash) else {
        return false;
    };
    let within = |name: &str, max: u32| {
        h.params
            .get_decimal(name)
            .is_some_and(|v| (1..=max).contains(&v))
    };
    h.algorithm.as_str() == "argon2id"
        && h.version == Some(19)
        && within("m", 256 * 1024)
        && within("t", 10)
        && within("p", 8)
        && h.salt.is_some()
        && h.hash.is_some()
}

/// A PHC string that no password matches in practice, so that a missing user costs one argon2
/// run like a real one (OWASP's argon2id parameters: 19 MiB, 2 passes).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtcmVhbC1zYWx0$5Ge5XKMOwTRXbyrU9NnBGV+hTIuXpdi1d6mk/7EKoK0";

/// What one password check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCheck {
    /// The password matches the user's hash (never true without a user).
    pub matches: bool,
    /// argon2 ran: on the user's hash, or on [`DUMMY_HASH`] when there is no user, so that a
    /// missing user costs what a real one does. False only for a hash that does not parse.
    pub hashed: bool,
}

/// How many password checks may run at once in this process: one per core
/// ([`std::thread::available_parallelism`], at least 1).
///
/// Each argon2id check allocates its memory cost (19 MiB at OWASP's parameters) on the thread
/// that runs it, and the allocator keeps those pages for reuse once the check ends. Unbounded,
/// a burst of 24 concurrent enrollments on `mfa-local` ran 24 checks at once and left the process
/// at 2.4 to 3 GB. Checks beyond the bound wait their turn in [`password_work`]: a burst then costs
/// latency, not memory, and no throughput (argon2 is CPU-bound, so more checks than cores
/// only share the same cores). A Lambda sandbox serves one request at a time and never waits.
pub fn password_check_bound() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().max(1))
}

/// The permits of [`password_check_bound`], shared by every check in the process.
fn password_permits() -> Arc<Semaphore> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    PERMITS
        .get_or_init(|| Arc::new(Semaphore::new(password_check_bound())))
        .clone()
}

/// Checks running now, and the most ever running at once (the high-water mark).
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The most password checks (and hashes) that ever ran at once in this process. Never above
/// [`password_check_bound`]; tests and the load tools read it.
pub fn password_checks_peak() -> usize {
    PEAK.load(Ordering::SeqCst)
}

/// Counts one running check for as long as it lives.
struct Running;

impl Running {
    fn start() -> Running {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(now, Ordering::SeqCst);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A unit of password work, run by one of the [`password_threads`].
type Job = Box<dyn FnOnce() + Send>;

/// The threads that run password work: [`password_check_bound`] of them, started on first use
/// and kept for the life of the process; `None` if they could not all be started.
///
/// Not tokio's blocking pool: a burst there spreads the checks over many short-lived threads,
/// and glibc gives each thread an arena of its own (up to 8 per core) that keeps the 19 MiB of
/// every check it ran; the bound alone left `mfa-local` at 465 MB after a burst. A fixed set of
/// threads keeps that memory in as many arenas as there are permits.
fn password_threads() -> Option<&'static Mutex<mpsc::Sender<Job>>> {
    static THREADS: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
    THREADS
        .get_or_init(|| {
            let (jobs, queue) = mpsc::channel::<Job>();
            let queue = Arc::new(Mutex::new(queue));
            for i in 0..password_check_bound() {
                let queue = queue.clone();
                let started = std::thread::Builder::new()
                    .name(format!("password-{i}"))
                    .spawn(move || {
                        loop {
                            // The lock is held only to take a job, never while running one.
                            let next = match queue.lock() {
                                Ok(q) => q.recv(),
                                Err(_) => return,
                            };
                            let Ok(job) = next else { return };
                            job();
                        }
                    });
                if started.is_err() {
                    return None;
                }
            }
            Some(Mutex::new(jobs))
        })
        .as_ref()
}

/// Runs `work` (an argon2 hash or check) on one of the [`password_threads`] once one of the
/// process-wide permits of [`password_check_bound`] is free; `None` if the work did not finish
/// (it panicked).
///
/// Waiting for a permit is asynchronous: a caller that gives up (a client that disconnects)
/// leaves the queue without a trace. Once taken, the permit moves into the job and is released
/// only when the work ends, so no more checks than the bound ever run. The permits are never
/// closed; if they were, the work would run unbounded rather than fail the request. Should the
/// threads be missing, the work runs on tokio's blocking pool, still within the bound.
pub async fn password_work<T, F>(work: F) -> Option<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let permit = password_permits().acquire_owned().await.ok();
    let (done, result) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _permit = permit;
        let _running = Running::start();
        // The caller may have gone; the answer is then dropped.
        let _ = done.send(work());
    });
    let refused = match password_threads().map(|t| t.lock()) {
        Some(Ok(jobs)) => jobs.send(job).err().map(|e| e.0),
        _ => Some(job),
    };
    if let Some(job) = refused {
        // The job holds its permit: the bound still holds on the blocking pool.
        drop(tokio::task::spawn_blocking(job));
    }
    result.await.ok()
}

/// Checks `password` against `phc` (or against [`DUMMY_HASH`] when there is no user) on one of
/// the password threads: argon2 takes tens of milliseconds of CPU and must not stall the runtime.
/// At most [`password_check_bound`] checks run at once; the others wait their turn.
pub async fn verify_password(phc: Option<String>, password: String) -> PasswordCheck {
    let result = password_work(move || {
        let stored = phc.as_deref().unwrap_or(DUMMY_HASH);
        let Ok(parsed) = PasswordHash::new(stored) else {
            return PasswordCheck {
                matches: false,
                hashed: false,
            };
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        PasswordCheck {
            matches: ok && phc.is_some(),
            hashed: true,
        }
    })
    .await;
    result.unwrap_or(PasswordCheck {
        matches: false,
        hashed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    fn keys() -> Keys {
        Keys::new(vec![7u8; 32]).unwrap()
    }

    #[test]
    fn code_hash_is_bound_to_purpose_and_code_id() {
        let k = keys();
        let code = Code::parse("123456").unwrap();
        let id1 = CodeId::generate().unwrap();
        let id2 = CodeId::generate().unwrap();
        let h = k.code_hash("enroll", &id1, &code);
        assert!(!h.contains("123456"));
        assert!(k.code_matches("enroll", &id1, &code, &h));
        assert!(!k.code_matches("enroll", &id2, &code, &h));
        assert!(!k.code_matches("challenge", &id1, &code, &h));
        assert!(!k.code_matches("enroll", &id1, &Code::parse("123457").unwrap(), &h));
        assert!(!k.code_matches("enroll", &id1, &code, "not hex"));
    }

    #[test]
    fn a_different_key_gives_a_different_hash() {
        let code = Code::parse("123456").unwrap();
        let id = CodeId::generate().unwrap();
        let other = Keys::new(vec![8u8; 32]).unwrap();
        assert_ne!(
            keys().code_hash("enroll", &id, &code),
            other.code_hash("enroll", &id, &code)
        );
        assert!(Keys::new(vec![1u8; 31]).is_err());
    }

    #[test]
    fn recognises_argon2_phc_strings_only() {
        assert!(is_argon2_phc(DUMMY_HASH));
        assert!(!is_argon2_phc("$2b$12$abcdefghijklmnopqrstuv"));
        // Only argon2id v=19, at costs a function can afford.
        assert!(!is_argon2_phc(&DUMMY_HASH.replace("argon2id", "argon2i")));
        assert!(!is_argon2_phc(&DUMMY_HASH.replace("v=19", "v=16")));
        assert!(!is_argon2_phc(&DUMMY_HASH.replace("m=19456", "m=4194304")));
        assert!(!is_argon2_phc(&DUMMY_HASH.replace("t=2", "t=50")));
        assert!(!is_argon2_phc("hunter2"));
        assert!(!is_argon2_phc(""));
    }

    #[tokio::test]
    async fn verifies_real_hashes_and_never_the_dummy() {
        let phc = Argon2::default()
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        let check = |matches, hashed| PasswordCheck { matches, hashed };
        let ok = verify_password(Some(phc.clone()), "correct horse".into()).await;
        assert_eq!(ok, check(true, true));
        let wrong = verify_password(Some(phc), "wrong".into()).await;
        assert_eq!(wrong, check(false, true));
        // No user: argon2 still runs, on the dummy hash, and nothing matches it.
        let ghost = verify_password(None, "correct horse".into()).await;
        assert_eq!(ghost, check(false, true));
        let garbage = verify_password(Some("garbage".into()), "x".into()).await;
        assert_eq!(garbage, check(false, false));
    }

    /// A burst of concurrent checks (four times the bound, and more than the blocking pool
    /// would run at once unbounded) all get their right answer, and the number running at once
    /// never exceeds one per core: the memory a burst takes is the bound's, not the burst's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_checks_never_exceed_one_per_core() {
        let bound = password_check_bound();
        assert!(bound >= 1);
        assert_eq!(
            bound,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        // Cheap costs (1 MiB, 1 pass), so that many checks finish quickly; the bound is the same.
        let params = argon2::Params::new(1024, 1, 1, None).unwrap();
        let phc = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        let burst = 4 * bound + 8;
        let checks: Vec<_> = (0..burst)
            .map(|i| {
                let phc = phc.clone();
                let password = if i % 2 == 0 { "correct horse" } else { "wrong" };
                tokio::spawn(verify_password(Some(phc), password.to_owned()))
            })
            .collect();
        for (i, check) in checks.into_iter().enumerate() {
            let got = check.await.unwrap();
            assert_eq!(
                got,
                PasswordCheck {
                    matches: i % 2 == 0,
                    hashed: true
                },
                "check {i}"
            );
        }
        // The work runs on the process's password threads, as many as the bound.
        let names: Vec<_> = (0..burst)
            .map(|_| {
                tokio::spawn(password_work(|| {
                    std::thread::current().name().map(str::to_owned)
                }))
            })
            .collect();
        let mut threads = std::collections::BTreeSet::new();
        for name in names {
            threads.insert(name.await.unwrap().unwrap().unwrap_or_default());
        }
        assert!(threads.len() <= bound, "{threads:?}");
        assert!(
            threads.iter().all(|n| n.starts_with("password-")),
            "{threads:?}"
        );
        let peak = password_checks_peak();
        assert!(peak >= 1, "no check was counted");
        assert!(
            peak <= bound,
            "{peak} checks ran at once, above the bound of {bound}"
        );
    }
}
