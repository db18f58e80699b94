//! The cost of 1000 enrollments at AWS list prices, and the share of it that is not the texts.
//!
//! Prices: us-east-1 public list prices as published on the AWS pricing pages named beside each
//! constant, as known on 2026-11-28 (not fetched live by the benchmark; re-check before quoting
//! them as current). First usage tier everywhere; free tiers ignored.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mfa_shared::messages::{self, Lang, Voice, sms};
use mfa_shared::types::Code;

/// aws.amazon.com/lambda/pricing: Arm (Graviton2), first 7.5 billion GB-s per month.
const LAMBDA_ARM_PER_GB_S: f64 = 0.000_013_333_4;
/// aws.amazon.com/lambda/pricing: requests, any architecture.
const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
/// aws.amazon.com/api-gateway/pricing: HTTP APIs, first 300 million requests per month.
const HTTP_API_PER_REQUEST: f64 = 1.00 / 1e6;
/// aws.amazon.com/dynamodb/pricing/on-demand: one read request unit (after the
/// November 2024 on-demand price cut).
const DDB_PER_RRU: f64 = 0.125 / 1e6;
/// aws.amazon.com/dynamodb/pricing/on-demand: one write request unit.
const DDB_PER_WRU: f64 = 0.625 / 1e6;
/// aws.amazon.com/end-user-messaging/pricing: outbound SMS to the United States, the AWS
/// base price per message part (segment): a text of two segments is billed twice.
const SMS_US_PER_MESSAGE: f64 = 0.005_81;
/// The US carriers' pass-through fee per message part, which AWS bills with every text to a
/// US number on top of the base price (listed with the End User Messaging prices: about
/// $0.0025 to $0.003 on 10DLC and toll-free numbers, 2024-2025). The low end is used, which
/// makes the non-SMS share an upper bound; the origination number's monthly fee is left out.
const SMS_US_CARRIER_FEE: f64 = 0.0025;
/// aws.amazon.com/ses/pricing: outbound email, per 1000 messages.
const SES_PER_EMAIL: f64 = 0.10 / 1000.0;

/// What one enrollment uses, beside the invocations: the AWS calls by operation as measured
/// by the load test's tap in front of moto (tests/load.sh; `target/load-report-moto.txt`,
/// 2026-11-28: 30.0 calls per completed enrollment), which also counts the admin's user
/// upsert that precedes each enrollment there (one write a sign-up makes anyway).
/// Issue 18 moved three of them: the text's count in the adoption figures (one UpdateItem
/// more), the completion's count (one transaction item more), and the upsert of a new user,
/// now a transaction of the profile and the count of users (one PutItem fewer, two
/// transaction items more).
const GET_ITEMS: f64 = 9.0;
const QUERIES: f64 = 5.0;
const UPDATE_ITEMS: f64 = 10.0 + 1.0;
const PUT_ITEMS: f64 = 2.0 - 1.0;
/// Items in the transactions: the completion (enrollment, phone, number claim, phone count,
/// the adoption count), the audit event written twice (application and user), and the new
/// user with the count of users. A transactional write costs 2 WRU per item.
const TRANSACTION_ITEMS: f64 = 5.0 + 2.0 + 2.0;
const TEXTS: f64 = 1.0;
const EMAILS: f64 = 1.0;

/// The text the model bills: the code text in English under the default display name (the
/// `app_id`; the reference page's `app-demo`), with the default code lifetime
/// (`MFA_CODE_TTL_SECONDS` 600) and no WebOTP line.
const BILLED_APP: &str = "app-demo";
const BILLED_TTL_SECS: u64 = 600;
/// The contract's worst case for the segment budget (issue 17): a 30-character display name, a
/// 40-character WebOTP domain, the longest code lifetime (an hour).
const NAME_30: &str = "Acme Travel International Grou";
const DOMAIN_40: &str = "auth.acme-travel-international-group.com";
const LONGEST_TTL_SECS: u64 = 3600;

/// The code text in `lang` under `app`, as `messages` renders it.
fn code_text(lang: Lang, app: &str, ttl_secs: u64, domain: Option<&str>) -> String {
    #[allow(clippy::expect_used)]
    let code = Code::parse("123456").expect("six digits are a code");
    messages::code_text(&Voice { app, lang }, &code, ttl_secs, domain)
}

/// The segments of that text, as `messages::sms` counts them.
fn code_text_segments(lang: Lang, app: &str, ttl_secs: u64, domain: Option<&str>) -> sms::Segments {
    sms::segments(&code_text(lang, app, ttl_secs, domain))
}

/// Segments billed per code text: the English text under the default name, no WebOTP line.
fn segments_per_text() -> f64 {
    code_text_segments(Lang::En, BILLED_APP, BILLED_TTL_SECS, None).parts as f64
}

/// `""` when the code text is in the full wording, `", short wording"` when `code_text` fell
/// back to the shorter one. The wordings are told apart by length: the full one under `app`
/// is as long as under a one-letter name (which is always in the full wording without the
/// WebOTP line; the test checks it fits) plus the name's extra letters and the WebOTP line.
/// `app` and `domain` are ASCII letters here, one unit each in either alphabet.
fn wording(lang: Lang, app: &str, ttl_secs: u64, domain: Option<&str>) -> &'static str {
    let one_letter = code_text_segments(lang, "A", ttl_secs, None).units;
    let line = domain.map_or(0, |d| "\n@ #123456".len() + d.len());
    let full = one_letter - 1 + app.len() + line;
    if code_text_segments(lang, app, ttl_secs, domain).units == full {
        ""
    } else {
        ", short wording"
    }
}

fn describe(s: sms::Segments) -> String {
    let (alphabet, unit) = match s.encoding {
        sms::Encoding::Gsm7 => ("GSM-7", "septets"),
        sms::Encoding::Ucs2 => ("UCS-2", "UTF-16 units"),
    };
    let plural = if s.parts == 1 { "" } else { "s" };
    format!(
        "{} segment{plural} ({alphabet}, {} {unit})",
        s.parts, s.units
    )
}

/// What the texts are billed as: the English code text the models bill, and what a Japanese
/// text with the WebOTP line costs instead.
fn segments_line() -> String {
    let en = code_text_segments(Lang::En, BILLED_APP, BILLED_TTL_SECS, None);
    let ja = code_text_segments(
        Lang::Ja,
        BILLED_APP,
        BILLED_TTL_SECS,
        Some("login.acme.example"),
    );
    format!(
        "  each text is billed per segment: the English code text (name \"{BILLED_APP}\", {} min, no WebOTP line) is {};\n  \
         a Japanese one with the WebOTP line \"@login.acme.example #123456\" is {}: ${:.5} per text instead of ${:.5}\n",
        BILLED_TTL_SECS / 60,
        describe(en),
        describe(ja),
        ja.parts as f64 * (SMS_US_PER_MESSAGE + SMS_US_CARRIER_FEE),
        en.parts as f64 * (SMS_US_PER_MESSAGE + SMS_US_CARRIER_FEE),
    )
}

/// The segments of every language's code text (Markdown, as the README shows it): as billed
/// (the default name, no WebOTP line), and at the contract's worst case without and with the
/// WebOTP line.
pub fn segments_table() -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| language | name `{BILLED_APP}`, {} min, no WebOTP line | 30-character name, {} min, no WebOTP line | 30-character name, {} min, 40-character WebOTP domain |",
        BILLED_TTL_SECS / 60,
        LONGEST_TTL_SECS / 60,
        LONGEST_TTL_SECS / 60
    );
    let _ = writeln!(s, "| --- | --- | --- | --- |");
    for lang in Lang::ALL {
        let plain = code_text_segments(lang, NAME_30, LONGEST_TTL_SECS, None);
        let with_line = code_text_segments(lang, NAME_30, LONGEST_TTL_SECS, Some(DOMAIN_40));
        let _ = writeln!(
            s,
            "| `{}` | {} | {}{} | {}{} |",
            lang.tag(),
            describe(code_text_segments(lang, BILLED_APP, BILLED_TTL_SECS, None)),
            describe(plain),
            wording(lang, NAME_30, LONGEST_TTL_SECS, None),
            describe(with_line),
            wording(lang, NAME_30, LONGEST_TTL_SECS, Some(DOMAIN_40)),
        );
    }
    s
}

/// The invocations of one enrollment: (what, the benchmark row whose warm p50 bills it).
/// Status (after sign-in, the prompt), Start (the password), phone, code: the screens of
/// the enrollment, as the load test and the reference web page call them.
const INVOCATIONS: &[(&str, &str)] = &[
    ("status", "enrollment-start GET status"),
    ("start (argon2)", "enrollment-start POST start"),
    ("phone", "phone-submit unknown id"),
    ("code", "code-verify unknown id"),
];

/// The model over measured durations: row label → (configured MB, warm p50 ms).
pub fn model(mode: &str, measured: &BTreeMap<&str, (u32, f64)>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n== cost model per 1000 enrollments (durations: warm p50 of mode {mode}) =="
    );
    let mut gb_s = 0.0;
    let mut missing = Vec::new();
    for (what, row) in INVOCATIONS {
        match measured.get(row) {
            Some((mem, p50)) => {
                // Billed in whole milliseconds, rounded up.
                let billed_ms = p50.ceil();
                let g = f64::from(*mem) / 1024.0 * billed_ms / 1000.0;
                gb_s += g;
                let _ = writeln!(
                    s,
                    "  invocation {what:<17} {mem:>5} MB x {billed_ms:>5.0} ms = {g:.6} GB-s   (from \"{row}\")"
                );
            }
            None => missing.push(*row),
        }
    }
    if !missing.is_empty() {
        let _ = writeln!(
            s,
            "  (not measured in this run, billed as 0 ms: {})",
            missing.join(", ")
        );
    }
    let n = INVOCATIONS.len() as f64;
    let parts = segments_per_text();
    let rru = GET_ITEMS + QUERIES;
    let wru = UPDATE_ITEMS + PUT_ITEMS + 2.0 * TRANSACTION_ITEMS;
    let per = 1000.0;
    let lines = [
        ("Lambda duration (arm64)", gb_s * LAMBDA_ARM_PER_GB_S * per),
        ("Lambda requests", n * LAMBDA_PER_REQUEST * per),
        ("HTTP API requests", n * HTTP_API_PER_REQUEST * per),
        ("DynamoDB reads", rru * DDB_PER_RRU * per),
        ("DynamoDB writes", wru * DDB_PER_WRU * per),
        ("SES emails", EMAILS * SES_PER_EMAIL * per),
        (
            "SMS texts (US), base price",
            TEXTS * parts * SMS_US_PER_MESSAGE * per,
        ),
        (
            "SMS carriers' fees (US)",
            TEXTS * parts * SMS_US_CARRIER_FEE * per,
        ),
    ];
    let _ = writeln!(
        s,
        "  per enrollment: {n:.0} invocations, {gb_s:.6} GB-s, {rru:.0} RRU ({GET_ITEMS:.0} GetItem + {QUERIES:.0} Query, \
         strongly consistent, <= 4 KB), {wru:.0} WRU ({UPDATE_ITEMS:.0} UpdateItem + {PUT_ITEMS:.0} PutItem + \
         {TRANSACTION_ITEMS:.0} transaction items x 2), {TEXTS:.0} text of {parts:.0} segment(s), {EMAILS:.0} email"
    );
    s.push_str(&segments_line());
    let total: f64 = lines.iter().map(|(_, c)| c).sum();
    let sms = TEXTS * parts * (SMS_US_PER_MESSAGE + SMS_US_CARRIER_FEE) * per;
    for (what, cost) in &lines {
        let _ = writeln!(
            s,
            "  {what:<26} ${cost:>9.5}  {:>6.2} %",
            cost / total * 100.0
        );
    }
    let not_sms = total - sms;
    let share = not_sms / total * 100.0;
    let _ = writeln!(s, "  {:<26} ${total:>9.5}", "total");
    let _ = writeln!(
        s,
        "  not SMS: ${not_sms:.5} = {share:.2} % of the total, a text billed as AWS bills one to a US number \
         (${SMS_US_PER_MESSAGE} + ${SMS_US_CARRIER_FEE} carriers' fee) (budget <= 2 %: {})",
        if share <= 2.0 { "met" } else { "MISSED" }
    );
    let base_only = not_sms / (not_sms + TEXTS * parts * SMS_US_PER_MESSAGE * per) * 100.0;
    let _ = writeln!(
        s,
        "  at the base price alone (${SMS_US_PER_MESSAGE} a text, no carriers' fee): not SMS = {base_only:.2} %"
    );
    let without_ses = not_sms - EMAILS * SES_PER_EMAIL * per;
    let _ = writeln!(
        s,
        "  of which SES is ${:.5}; everything but SMS and SES: {:.2} %",
        EMAILS * SES_PER_EMAIL * per,
        without_ses / total * 100.0
    );
    let _ = writeln!(
        s,
        "  note: phone and code are billed at their measured cheap route (unknown id → 404, one read);\n  \
         the real steps also write and call SNS/SES. Sensitivity: at 100 ms each, those two would add ${:.5}.",
        2.0 * 0.25 * 0.1 * LAMBDA_ARM_PER_GB_S * per
    );
    s
}

/// What one sign-in asks of DynamoDB and SNS: both steps (start the challenge, check its code),
/// the AWS calls of each counted through the proxy in front of moto by
/// `tests/tests/e2e/sign_in_calls.rs`, which fails when the flows change them (so these move
/// with the code). Reads are strongly consistent and every item is under 1 KB (4 KB for a
/// read), as the enrollment model assumes: one call, one unit; a transactional write, 2 WRU
/// per item (condition checks included).
struct SignIn {
    what: &'static str,
    get_items: f64,
    queries: f64,
    update_items: f64,
    put_items: f64,
    transaction_items: f64,
    texts: f64,
}

/// By text (`flows/challenge.rs`). Start: the user's factors (phones: Query; app: GetItem),
/// the user's record for the text's name and language (1 GetItem, issue 17; the policy comes
/// from the warm instance's cache, issue 19),
/// the challenge cooldown, the user's, IP's and application's text budgets and the code (5
/// UpdateItem), the challenge item (a transaction of 1, after a Query of the user's open
/// sessions); the text, and its count in the adoption figures (1 UpdateItem, issue 18). Code: the challenge (GetItem), the phone still the user's (Query), the
/// attempt and the user's failure budget taken and given back (3 UpdateItem), the completion
/// and its audit event (2 transactions, 4 items). Counted by `sign_in_calls.rs` on moto,
/// 2026-11-30.
const SMS_SIGN_IN: SignIn = SignIn {
    what: "by text (SMS)",
    get_items: 2.0 + 1.0,
    queries: 2.0 + 1.0,
    update_items: 6.0 + 3.0,
    put_items: 0.0,
    transaction_items: 1.0 + 4.0,
    texts: 1.0,
};

/// By authenticator app (`shared/src/flows/totp.rs`): nothing is sent. Start: the user's
/// factors (phones: Query; app: GetItem; no policy read, since the app is bound), the challenge
/// item (a transaction of 1, after the open-sessions Query). Code: the challenge and the app
/// (2 GetItem), the user's failure budget taken and given back and the attempt (3
/// UpdateItem), the completion (a transaction of 3: challenge, step used, app) and its audit
/// event (a transaction of 2). Counted by `sign_in_calls.rs` on moto, 2026-11-30.
const APP_SIGN_IN: SignIn = SignIn {
    what: "by authenticator app",
    get_items: 1.0 + 2.0,
    queries: 2.0,
    update_items: 3.0,
    put_items: 0.0,
    transaction_items: 1.0 + 5.0,
    texts: 0.0,
};

impl SignIn {
    /// Read and write request units of one sign-in.
    fn units(&self) -> (f64, f64) {
        let rru = self.get_items + self.queries;
        let wru = self.update_items + self.put_items + 2.0 * self.transaction_items;
        (rru, wru)
    }

    /// What 1000 sign-ins cost, line by line, with `gb_s` of Lambda duration and `n`
    /// invocations per sign-in.
    fn costs_per_1000(&self, gb_s: f64, n: f64) -> [(&'static str, f64); 7] {
        let (rru, wru) = self.units();
        let per = 1000.0;
        let parts = segments_per_text();
        [
            ("Lambda duration (arm64)", gb_s * LAMBDA_ARM_PER_GB_S * per),
            ("Lambda requests", n * LAMBDA_PER_REQUEST * per),
            ("HTTP API requests", n * HTTP_API_PER_REQUEST * per),
            ("DynamoDB reads", rru * DDB_PER_RRU * per),
            ("DynamoDB writes", wru * DDB_PER_WRU * per),
            (
                "SMS texts (US), base price",
                self.texts * parts * SMS_US_PER_MESSAGE * per,
            ),
            (
                "SMS carriers' fees (US)",
                self.texts * parts * SMS_US_CARRIER_FEE * per,
            ),
        ]
    }
}

/// Both steps run on the `challenge` function (1024 MB). Neither route is in the benchmark's
/// rows; each is billed at the warm p50 of the measured 1024 MB route that makes one DynamoDB
/// call (phone-edits `GET /v1/mfa/phones`): a lower bound, since a sign-in step makes 3 to 9
/// calls. The sensitivity line says what 20 ms more per step would add.
const SIGN_IN_INVOCATIONS: &[(&str, &str)] = &[
    ("challenge start", "phone-edits GET phones"),
    ("challenge code", "phone-edits GET phones"),
];

/// The cost of 1000 sign-ins by text and by authenticator app, over measured durations (row
/// label → (configured MB, warm p50 ms)); the function's own memory (1024 MB) is billed.
pub fn sign_in_model(mode: &str, measured: &BTreeMap<&str, (u32, f64)>) -> String {
    const CHALLENGE_MB: f64 = 1024.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n== cost model per 1000 sign-ins (durations: warm p50 of mode {mode}, a lower bound) =="
    );
    let mut gb_s = 0.0;
    for (what, row) in SIGN_IN_INVOCATIONS {
        match measured.get(row) {
            Some((_, p50)) => {
                let billed_ms = p50.ceil();
                let g = CHALLENGE_MB / 1024.0 * billed_ms / 1000.0;
                gb_s += g;
                let _ = writeln!(
                    s,
                    "  invocation {what:<17} {CHALLENGE_MB:>5.0} MB x {billed_ms:>5.0} ms = {g:.6} GB-s   (from \"{row}\")"
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "  invocation {what:<17} not measured in this run, billed as 0 ms"
                );
            }
        }
    }
    let n = SIGN_IN_INVOCATIONS.len() as f64;
    let per = 1000.0;
    let mut totals = Vec::new();
    for f in [&SMS_SIGN_IN, &APP_SIGN_IN] {
        let (rru, wru) = f.units();
        let lines = f.costs_per_1000(gb_s, n);
        let total: f64 = lines.iter().map(|(_, c)| c).sum();
        let _ = writeln!(
            s,
            "  sign-in {}: {n:.0} invocations, {rru:.0} RRU ({:.0} GetItem + {:.0} Query), {wru:.0} WRU \
             ({:.0} UpdateItem + {:.0} PutItem + {:.0} transaction items x 2), {:.0} text(s) of {:.0} segment(s)",
            f.what,
            f.get_items,
            f.queries,
            f.update_items,
            f.put_items,
            f.transaction_items,
            f.texts,
            segments_per_text()
        );
        for (what, cost) in &lines {
            let _ = writeln!(s, "    {what:<26} ${cost:>9.5}");
        }
        let _ = writeln!(s, "    {:<26} ${total:>9.5}", "total");
        totals.push(total);
    }
    let (sms, app) = (totals[0], totals[1]);
    let _ = writeln!(
        s,
        "  an app sign-in costs {:.2} % of a text sign-in (${app:.5} against ${sms:.5} per 1000); \
         without its text, a text sign-in would cost ${:.5}",
        app / sms * 100.0,
        sms - SMS_SIGN_IN.texts
            * segments_per_text()
            * (SMS_US_PER_MESSAGE + SMS_US_CARRIER_FEE)
            * per
    );
    let _ = writeln!(
        s,
        "  sensitivity: 20 ms more per step (1024 MB) adds ${:.5} per 1000 sign-ins, either way",
        n * 1.0 * 0.02 * LAMBDA_ARM_PER_GB_S * per
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The enrollment model over the durations the README quotes (TLS + CPU share,
    /// 2026-11-30: status 5.34 ms and Start 48.60 ms at 1024 MB, phone 1.88 ms and code 2.03 ms
    /// at 256 MB); `cargo test -p mfa-bench -- --nocapture` prints it.
    #[test]
    fn an_enrollment_bills_its_text_by_segments() {
        let measured = BTreeMap::from([
            ("enrollment-start GET status", (1024, 5.34)),
            ("enrollment-start POST start", (1024, 48.60)),
            ("phone-submit unknown id", (256, 1.88)),
            ("code-verify unknown id", (256, 2.03)),
        ]);
        let out = model("tls+cpu-share", &measured);
        println!("{out}");
        assert_eq!(
            segments_per_text(),
            1.0,
            "the billed English text is one segment"
        );
        assert!(out.contains("1 segment (GSM-7"), "{out}");
        assert!(
            out.contains("is 2 segments (UCS-2"),
            "a Japanese text with the WebOTP line: {out}"
        );
    }

    /// Every language's code text, as `messages` renders and counts it: the README's table.
    #[test]
    fn segments_per_language() {
        let table = segments_table();
        println!("{table}");
        for lang in Lang::ALL {
            let one_letter = code_text(lang, "A", LONGEST_TTL_SECS, None);
            assert!(
                messages::within_budget(lang, &one_letter, false),
                "{}",
                lang.tag()
            );
            let worst = code_text_segments(lang, NAME_30, LONGEST_TTL_SECS, Some(DOMAIN_40));
            let plain = code_text_segments(lang, NAME_30, LONGEST_TTL_SECS, None);
            if lang.is_latin() {
                assert_eq!(
                    (worst.encoding, worst.parts),
                    (sms::Encoding::Gsm7, 1),
                    "{}",
                    lang.tag()
                );
            } else {
                assert_eq!(plain.parts, 1, "{}", lang.tag());
                assert!(worst.parts <= 2, "{}", lang.tag());
            }
        }
    }

    /// The model over the duration the README quotes (TLS + CPU share, 2026-11-30: phone-edits
    /// GET phones 2.08 ms at 1024 MB); `cargo test -p mfa-bench -- --nocapture` prints it.
    #[test]
    fn an_app_sign_in_sends_no_text_and_costs_a_small_fraction_of_one_by_text() {
        let measured = BTreeMap::from([("phone-edits GET phones", (1024, 2.08))]);
        let out = sign_in_model("tls+cpu-share", &measured);
        println!("{out}");
        let total =
            |f: &SignIn| -> f64 { f.costs_per_1000(0.006, 2.0).iter().map(|(_, c)| c).sum() };
        assert_eq!(APP_SIGN_IN.texts, 0.0);
        assert_eq!(SMS_SIGN_IN.texts, 1.0);
        let (app, sms) = (total(&APP_SIGN_IN), total(&SMS_SIGN_IN));
        assert!(app > 0.0 && app < sms / 100.0, "app {app}, sms {sms}");
        assert!(out.contains("an app sign-in costs"), "{out}");
    }
}
