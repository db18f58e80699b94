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
//!
//! Layout: every pattern is a span of one string, `PATTERNS`, and lengths are bitmasks, so
//! the table holds no pointers: it is read-only data with no load-time relocations (a table
//! of `&str`s cost ~0.4 MB of relocations and relocated data in each binary).
use std::fmt::Write as _;

type Desc = phonenumber::metadata::Descriptor;

/// All patterns, concatenated; spans into it are `(start, len)`.
#[derive(Default)]
struct Patterns(String);

impl Patterns {
    fn span(&mut self, pattern: &str) -> String {
        let start = self.0.len();
        self.0.push_str(pattern);
        format!("({start}, {})", pattern.len())
    }
}

fn mask(lengths: &[u16]) -> u32 {
    lengths
        .iter()
        .filter(|&&l| l < 32)
        .fold(0, |m, &l| m | (1u32 << l))
}

fn desc(out: &mut String, p: &mut Patterns, d: Option<&Desc>) {
    match d {
        None => out.push_str("None"),
        Some(d) => {
            let span = p.span(&squeeze(d.national_number().as_str()));
            let _ = write!(
                out,
                "Some(Desc {{ pattern: {span}, lengths: {:#x}, local: {:#x} }})",
                mask(d.possible_length()),
                mask(d.possible_local_length()),
            );
        }
    }
}

/// The general rule. Its possible lengths are absent from the XML; as libphonenumber's
/// metadata builder does, they are the union of the types' lengths (and the local-only
/// lengths the union of theirs, less any length that is possible in full).
fn general(out: &mut String, p: &mut Patterns, g: &Desc, types: &[Option<&Desc>]) {
    let mut lengths = mask(g.possible_length());
    let mut local = mask(g.possible_local_length());
    if lengths == 0 {
        for d in types.iter().flatten() {
            lengths |= mask(d.possible_length());
            local |= mask(d.possible_local_length());
        }
    }
    local &= !lengths;
    let span = p.span(&squeeze(g.national_number().as_str()));
    let _ = write!(
        out,
        "general: Some(Desc {{ pattern: {span}, lengths: {lengths:#x}, local: {local:#x} }})"
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

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let db = &*phonenumber::metadata::DATABASE;
    let mut p = Patterns::default();
    let mut regions = String::new();
    let mut codes = String::new();
    let mut index = 0usize;
    for code in 1u16..=999 {
        let Some(metas) = db.by_code(&code) else {
            continue;
        };
        let mut members = Vec::new();
        for m in metas {
            let id = m.id().as_bytes();
            let id = if id.len() == 2 {
                [id[0], id[1]]
            } else {
                *b"00"
            };
            let leading = match m.leading_digits() {
                Some(r) => format!("Some({})", p.span(&squeeze(r.as_str()))),
                None => "None".into(),
            };
            // As libphonenumber's metadata builder: without its own pattern, the prefix
            // for parsing is the national prefix.
            let prefix = m
                .national_prefix_for_parsing()
                .map(|r| squeeze(r.as_str()))
                .or_else(|| m.national_prefix().map(str::to_owned));
            let prefix = match prefix {
                Some(s) => format!("Some({})", p.span(&s)),
                None => "None".into(),
            };
            let transform = match m.national_prefix_transform_rule() {
                Some(r) => format!("Some({})", p.span(&transform_rule(r))),
                None => "None".into(),
            };
            let _ = write!(
                regions,
                "    Region {{ id: *b{:?}, leading_digits: {leading}, prefix_for_parsing: {prefix}, transform_rule: {transform}, ",
                String::from_utf8_lossy(&id)
            );
            let d = m.descriptors();
            let types = [
                ("premium_rate", d.premium_rate()),
                ("toll_free", d.toll_free()),
                ("shared_cost", d.shared_cost()),
                ("voip", d.voip()),
                ("personal_number", d.personal_number()),
                ("pager", d.pager()),
                ("uan", d.uan()),
                ("voicemail", d.voicemail()),
                ("fixed_line", d.fixed_line()),
                ("mobile", d.mobile()),
            ];
            let descs: Vec<Option<&Desc>> = types.iter().map(|(_, d)| *d).collect();
            general(&mut regions, &mut p, d.general(), &descs);
            for (name, d) in types {
                let _ = write!(regions, ", {name}: ");
                desc(&mut regions, &mut p, d);
            }
            regions.push_str(" },\n");
            members.push(index.to_string());
            index += 1;
        }
        let _ = writeln!(codes, "    ({code}, &[{}]),", members.join(", "));
    }
    let out = format!(
        "/// Every pattern of the table, concatenated (libphonenumber's metadata via phonenumber\n\
         /// 0.3.10+9.0.33).\n\
         pub(crate) static PATTERNS: &str = {patterns:?};\n\n\
         /// Every region's metadata, in calling-code order and, within a code, with the\n\
         /// code's main country first (`00` for a non-geographic entity).\n\
         pub(crate) static REGIONS: [Region; {index}] = [\n{regions}];\n\n\
         /// Calling code → indices into `REGIONS`, main country first (ascending codes).\n\
         pub(crate) static CODES: &[(u16, &[u16])] = &[\n{codes}];\n",
        patterns = p.0,
    );
    let path =
        std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("phone_metadata.rs");
    std::fs::write(path, out).expect("write phone_metadata.rs");
}
