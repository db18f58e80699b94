//! The build-time phone table (`types::phone_metadata`) against the `phonenumber` crate it
//! was generated from: the same verdict (valid or not, and the number type) on every example
//! number libphonenumber ships, and on neighbours of them that are one digit off or a digit
//! longer or shorter (those mostly fall outside the patterns, so invalid verdicts are tested
//! too). The crate has two known departures from libphonenumber (see `crate_quirk`); a
//! difference is allowed only when one of them is shown to explain it for that number.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mfa_shared::types::phone_metadata::{NumberType, validate};
use phonenumber::{Mode, Type};

fn ours(digits: &str) -> Option<(String, Option<String>, NumberType)> {
    validate(digits).map(|v| (format!("+{}{}", v.code, v.national), v.region, v.kind))
}

fn theirs(digits: &str) -> Option<(String, Option<String>, NumberType)> {
    let n = phonenumber::parse(None, format!("+{digits}")).ok()?;
    if !phonenumber::is_valid(&n) {
        return None;
    }
    let kind = match n.number_type(&phonenumber::metadata::DATABASE) {
        Type::PremiumRate => NumberType::PremiumRate,
        Type::TollFree => NumberType::TollFree,
        Type::SharedCost => NumberType::SharedCost,
        Type::Voip => NumberType::Voip,
        Type::PersonalNumber => NumberType::PersonalNumber,
        Type::Pager => NumberType::Pager,
        Type::Uan => NumberType::Uan,
        Type::Voicemail => NumberType::Voicemail,
        Type::FixedLine => NumberType::FixedLine,
        Type::FixedLineOrMobile => NumberType::FixedLineOrMobile,
        Type::Mobile => NumberType::Mobile,
        _ => return None,
    };
    let region = n.country().id().map(|id| id.as_ref().to_owned());
    Some((n.format().mode(Mode::E164).to_string(), region, kind))
}

/// Every example number of every type of every calling code, as digits after `+`.
fn examples() -> Vec<String> {
    let db = &*phonenumber::metadata::DATABASE;
    let mut out = Vec::new();
    for code in 1u16..=999 {
        for m in db.by_code(&code).unwrap_or_default() {
            let m = m.descriptors();
            let descs = [
                Some(m.general()),
                m.fixed_line(),
                m.mobile(),
                m.toll_free(),
                m.premium_rate(),
                m.shared_cost(),
                m.voip(),
                m.personal_number(),
                m.pager(),
                m.uan(),
                m.voicemail(),
            ];
            for d in descs.into_iter().flatten() {
                if let Some(example) = d.example() {
                    out.push(format!("{code}{example}"));
                }
            }
        }
    }
    out
}

fn neighbours(digits: &str) -> Vec<String> {
    let mut out = vec![digits.to_owned()];
    let bytes = digits.as_bytes();
    for i in (1..bytes.len()).step_by(2) {
        let mut b = bytes.to_vec();
        b[i] = if b[i] == b'9' { b'0' } else { b[i] + 1 };
        out.push(String::from_utf8(b).unwrap());
    }
    out.push(format!("{digits}5"));
    out.push(digits[..digits.len() - 1].to_owned());
    out
}

/// Why the `phonenumber` crate's verdict may differ from libphonenumber's, checked per case.
fn crate_quirk(
    digits: &str,
    ours: &Option<(String, Option<String>, NumberType)>,
) -> Option<&'static str> {
    let n = phonenumber::parse(None, format!("+{digits}")).ok();
    let code = n.as_ref().map(|n| n.code().value().to_string());
    // (B) The crate validated a different number than was typed: it strips a national
    // prefix even when the number was valid with it (+7 800..., RU toll-free: "8" dropped),
    // or loses an Italian leading zero. libphonenumber strips only when that makes it fit.
    if let (Some(n), Some(code)) = (&n, &code) {
        let typed = digits.strip_prefix(code.as_str()).unwrap_or(digits);
        if n.national().to_string() != typed {
            return Some("the crate changed the national number before validating it");
        }
    }
    // (C) The crate types a number by its national number without leading zeros, so a
    // number that starts with 0 gets no type (+679 0800 ..., Fiji toll-free) or another
    // one (+39 0800 123456, an Italian fixed line, typed as toll-free 800 123456).
    if let Some(n) = &n {
        let zero_led = n.national().to_string().starts_with('0');
        if zero_led && phonenumber::is_valid(n) {
            return Some("the crate types a number with a leading zero without it");
        }
    }
    // (A) The crate matches a type's pattern at the start of the number only (`find`, start
    // 0), so a longer number passes; libphonenumber requires the whole number to match.
    if ours.is_none() {
        let n = n?;
        let national = n.national().to_string();
        let db = &*phonenumber::metadata::DATABASE;
        let region = n.country().id().map(|id| id.as_ref().to_owned());
        let metas = db.by_code(&n.code().value()).unwrap_or_default();
        let meta = metas
            .into_iter()
            .find(|m| region.as_deref().is_none_or(|r| m.id() == r))?;
        let kind = n.number_type(db);
        let desc = meta.descriptors().get(kind)?;
        let pattern: String = desc.national_number().as_str().split_whitespace().collect();
        let full = regex::Regex::new(&format!("^(?:{pattern})$")).ok()?;
        if !full.is_match(&national) {
            return Some("the crate accepts a prefix match of the pattern");
        }
    }
    None
}

#[test]
fn every_example_number_is_valid_and_of_its_type() {
    let db = &*phonenumber::metadata::DATABASE;
    let mut checked = 0;
    for code in 1u16..=999 {
        for m in db.by_code(&code).unwrap_or_default() {
            let d = m.descriptors();
            let typed = [
                (
                    d.fixed_line(),
                    [NumberType::FixedLine, NumberType::FixedLineOrMobile],
                ),
                (
                    d.mobile(),
                    [NumberType::Mobile, NumberType::FixedLineOrMobile],
                ),
                (d.toll_free(), [NumberType::TollFree; 2]),
                (d.premium_rate(), [NumberType::PremiumRate; 2]),
                (d.shared_cost(), [NumberType::SharedCost; 2]),
                (d.voip(), [NumberType::Voip; 2]),
                (d.personal_number(), [NumberType::PersonalNumber; 2]),
                (d.pager(), [NumberType::Pager; 2]),
                (d.uan(), [NumberType::Uan; 2]),
                (d.voicemail(), [NumberType::Voicemail; 2]),
            ];
            for (desc, kinds) in typed {
                let Some(example) = desc.and_then(|d| d.example()) else {
                    continue;
                };
                let digits = format!("{code}{example}");
                let v = validate(&digits)
                    .unwrap_or_else(|| panic!("{} example +{digits} refused", m.id()));
                assert!(
                    kinds.contains(&v.kind),
                    "{} +{digits}: {:?}, expected {kinds:?}",
                    m.id(),
                    v.kind
                );
                assert_eq!(format!("+{}{}", v.code, v.national), format!("+{digits}"));
                // A code shared by several regions (+1, +7, +44, ...) gives the first region
                // whose rules take the number, as libphonenumber does: +1 800 is toll-free
                // everywhere in the NANP, so AG's example is the US's first.
                let regions = db.region(&code).unwrap_or_default();
                if regions.len() == 1 && m.id() != "001" {
                    assert_eq!(v.region.as_deref(), Some(m.id()), "+{digits}");
                } else if m.id() != "001" {
                    assert!(
                        v.region.as_deref().is_some_and(|r| regions.contains(&r)),
                        "+{digits}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn agrees_with_the_phonenumber_crate_on_neighbours_of_the_examples() {
    let examples = examples();
    assert!(examples.len() > 1000, "only {} examples", examples.len());
    let (mut checked, mut valid, mut quirks) = (0, 0, 0);
    let mut differences = Vec::new();
    for example in &examples {
        for digits in neighbours(example) {
            if !(7..=15).contains(&digits.len()) {
                continue;
            }
            checked += 1;
            let (a, b) = (ours(&digits), theirs(&digits));
            valid += usize::from(a.is_some());
            let same = match (&a, &b) {
                (None, None) => true,
                (Some((e1, r1, k1)), Some((e2, r2, k2))) => {
                    e1 == e2 && k1 == k2 && *r1 == r2.clone().filter(|r| r != "001")
                }
                _ => false,
            };
            if same {
                continue;
            }
            match crate_quirk(&digits, &a) {
                Some(_) => quirks += 1,
                None => differences.push(format!("+{digits}: ours {a:?}, phonenumber {b:?}")),
            }
        }
    }
    for d in &differences {
        eprintln!("{d}");
    }
    eprintln!(
        "{checked} numbers, {valid} valid; {quirks} differ by a quirk of the crate; {} otherwise",
        differences.len()
    );
    assert!(valid > 1000, "only {valid} valid numbers among {checked}");
    assert!(
        quirks < checked / 20,
        "{quirks} quirks: too many to be quirks"
    );
    assert!(
        differences.is_empty(),
        "{} unexplained differences (listed above)",
        differences.len()
    );
}
