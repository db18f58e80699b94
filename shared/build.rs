#![allow(clippy::expect_used)] // a build script: failing loudly at build time is the point
//! Compiles libphonenumber's metadata (through the `phonenumber` crate, a *build* dependency)
//! into a plain Rust table, `$OUT_DIR/phone_metadata.rs`, used by `types::phone_metadata`.
//!
//! Why: linked at run time, the `phonenumber` crate deserialises and syntax-checks every
//! pattern of every region on first use (~100 ms at a full core, ~500 ms at 256 MB's CPU
//! share, in a Lambda's cold start) and brings the full `regex` engine, `nom`, `quick-xml`
//! and `postcard` into each binary. The table holds only what validation needs (the
//! patterns of each number type, possible lengths, leading digits, national prefixes);
//! patterns are compiled with `regex-lite`, one region at a time, when a number of that
//! region is first seen.
use std::fmt::Write as _;

fn desc(out: &mut String, d: Option<&phonenumber::metadata::Descriptor>) {
    match d {
        None => out.push_str("None"),
        Some(d) => {
            let list = |l: &[u16]| l.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
            let _ = write!(
                out,
                "Some(Desc {{ pattern: {:?}, lengths: &[{}], local: &[{}] }})",
                squeeze(d.national_number().as_str()),
                list(d.possible_length()),
                list(d.possible_local_length()),
            );
        }
    }
}

/// The general rule. Its possible lengths are absent from the XML; as libphonenumber's
/// metadata builder does, they are the union of the types' lengths (and the local-only
/// lengths the union of theirs, less any length that is possible in full).
fn general(
    out: &mut String,
    g: &phonenumber::metadata::Descriptor,
    types: &[(&str, Option<&phonenumber::metadata::Descriptor>)],
) {
    let mut lengths: Vec<u16> = g.possible_length().to_vec();
    let mut local: Vec<u16> = g.possible_local_length().to_vec();
    if lengths.is_empty() {
        for d in types.iter().filter_map(|(_, d)| *d) {
            lengths.extend(d.possible_length());
            local.extend(d.possible_local_length());
        }
    }
    lengths.sort_unstable();
    lengths.dedup();
    local.sort_unstable();
    local.dedup();
    local.retain(|l| !lengths.contains(l));
    let list = |l: &[u16]| l.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    let _ = write!(
        out,
        "general: Some(Desc {{ pattern: {:?}, lengths: &[{}], local: &[{}] }})",
        squeeze(g.national_number().as_str()),
        list(&lengths),
        list(&local),
    );
}

/// Patterns in the XML are laid out with whitespace (compiled with `x` mode); a phone
/// pattern never matches a space, so the whitespace is removed once here.
fn squeeze(pattern: &str) -> String {
    pattern.chars().filter(|c| !c.is_whitespace()).collect()
}

/// `$1` → `${1}`: regex-lite would read `$1x` as a group named `1x`.
fn transform_rule(rule: &str) -> String {
    let mut out = String::new();
    let mut chars = rule.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push_str("${");
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                out.push(d);
            }
            out.push('}');
        } else {
            out.push(c);
        }
    }
    out
}

fn opt(s: Option<String>) -> String {
    match s {
        Some(s) => format!("Some({s:?})"),
        None => "None".into(),
    }
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let db = &*phonenumber::metadata::DATABASE;
    let mut regions = String::new();
    let mut codes = String::new();
    let mut index = 0usize;
    for code in 1u16..=999 {
        let Some(metas) = db.by_code(&code) else {
            continue;
        };
        let mut members = Vec::new();
        for m in metas {
            let _ = write!(regions, "    Region {{ id: {:?}, ", m.id());
            let _ = write!(
                regions,
                "leading_digits: {}, prefix_for_parsing: {}, transform_rule: {}, ",
                opt(m.leading_digits().map(|r| squeeze(r.as_str()))),
                // As libphonenumber's metadata builder: without its own pattern, the
                // prefix for parsing is the national prefix.
                opt(m
                    .national_prefix_for_parsing()
                    .map(|r| squeeze(r.as_str()))
                    .or_else(|| m.national_prefix().map(str::to_owned))),
                opt(m.national_prefix_transform_rule().map(transform_rule)),
            );
            let types = [
                ("premium_rate", m.descriptors().premium_rate()),
                ("toll_free", m.descriptors().toll_free()),
                ("shared_cost", m.descriptors().shared_cost()),
                ("voip", m.descriptors().voip()),
                ("personal_number", m.descriptors().personal_number()),
                ("pager", m.descriptors().pager()),
                ("uan", m.descriptors().uan()),
                ("voicemail", m.descriptors().voicemail()),
                ("fixed_line", m.descriptors().fixed_line()),
                ("mobile", m.descriptors().mobile()),
            ];
            general(&mut regions, m.descriptors().general(), &types);
            for (name, d) in [
                ("premium_rate", m.descriptors().premium_rate()),
                ("toll_free", m.descriptors().toll_free()),
                ("shared_cost", m.descriptors().shared_cost()),
                ("voip", m.descriptors().voip()),
                ("personal_number", m.descriptors().personal_number()),
                ("pager", m.descriptors().pager()),
                ("uan", m.descriptors().uan()),
                ("voicemail", m.descriptors().voicemail()),
                ("fixed_line", m.descriptors().fixed_line()),
                ("mobile", m.descriptors().mobile()),
            ] {
                let _ = write!(regions, ", {name}: ");
                desc(&mut regions, d);
            }
            regions.push_str(" },\n");
            members.push(index.to_string());
            index += 1;
        }
        let _ = writeln!(codes, "    ({code}, &[{}]),", members.join(", "));
    }
    let out = format!(
        "/// Every region's metadata (libphonenumber {version}), in calling-code order and, within\n\
         /// a code, with the code's main country first.\n\
         pub(crate) static REGIONS: [Region; {index}] = [\n{regions}];\n\n\
         /// Calling code → indices into `REGIONS`, main country first (ascending codes).\n\
         pub(crate) static CODES: &[(u16, &[usize])] = &[\n{codes}];\n",
        version = "via phonenumber 0.3.10+9.0.33",
    );
    let path =
        std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("phone_metadata.rs");
    std::fs::write(path, out).expect("write phone_metadata.rs");
}
