//! The words of texts and emails. No message carries more than a masked number.

use crate::ports::Email;
use crate::types::{Code, PhoneNumber, UnixTime};

/// The verification text.
pub fn code_text(app_name: &str, code: &Code, ttl_secs: u64) -> String {
    let minutes = ttl_secs.div_ceil(60);
    format!(
        "{} is your {app_name} verification code. It expires in {minutes} min. Never share it: we will never ask you for it.",
        code.expose()
    )
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The email confirming that a phone now protects the account.
pub fn enrolled_email(app_name: &str, to: &str, number: &PhoneNumber, at: UnixTime) -> Email {
    let masked = number.masked();
    let when = at.rfc3339();
    let subject = format!("Two-step verification is now on for your {app_name} account");
    let text = format!(
        "Two-step verification is now on for your {app_name} account.\n\n\
         Phone: {masked}\nWhen: {when}\n\n\
         From now on we may ask for a code texted to this phone when you sign in.\n\n\
         If this was not you, reset your password now and contact support: someone may have access to your account."
    );
    let html = format!(
        "<p>Two-step verification is now on for your {app} account.</p>\
         <p>Phone: <strong>{masked}</strong><br>When: {when}</p>\
         <p>From now on we may ask for a code texted to this phone when you sign in.</p>\
         <p>If this was not you, reset your password now and contact support: someone may have access to your account.</p>",
        app = escape_html(app_name),
        masked = escape_html(&masked),
    );
    Email {
        to: to.to_owned(),
        subject,
        text,
        html,
    }
}

/// A security notice: what changed, when, and what to do if it was not the user.
fn notice(
    app_name: &str,
    to: &str,
    subject: String,
    what: &str,
    lines: &[(&str, String)],
    at: UnixTime,
) -> Email {
    let when = at.rfc3339();
    let mut text = format!("{what}\n\n");
    let mut html = format!("<p>{}</p><p>", escape_html(what));
    for (k, v) in lines {
        text.push_str(&format!("{k}: {v}\n"));
        html.push_str(&format!(
            "{}: <strong>{}</strong><br>",
            escape_html(k),
            escape_html(v)
        ));
    }
    text.push_str(&format!("When: {when}\n\n"));
    html.push_str(&format!("When: {when}</p>"));
    let advice = format!(
        "If this was not you, reset your {app_name} password now and contact support: someone may have access to your account."
    );
    text.push_str(&advice);
    html.push_str(&format!("<p>{}</p>", escape_html(&advice)));
    Email {
        to: to.to_owned(),
        subject,
        text,
        html,
    }
}

/// A phone was added from settings.
pub fn phone_added_email(app_name: &str, to: &str, number: &PhoneNumber, at: UnixTime) -> Email {
    notice(
        app_name,
        to,
        format!("A verification phone was added to your {app_name} account"),
        &format!("A phone was added to two-step verification on your {app_name} account."),
        &[("Phone", number.masked())],
        at,
    )
}

/// A phone's number was changed.
pub fn phone_replaced_email(
    app_name: &str,
    to: &str,
    old: &PhoneNumber,
    new: &PhoneNumber,
    at: UnixTime,
) -> Email {
    notice(
        app_name,
        to,
        format!("A verification phone number was changed on your {app_name} account"),
        &format!("A verification phone number was changed on your {app_name} account."),
        &[("Old number", old.masked()), ("New number", new.masked())],
        at,
    )
}

/// A phone was removed (and, if it was the last, two-step verification with it).
pub fn phone_removed_email(
    app_name: &str,
    to: &str,
    number: &PhoneNumber,
    last: bool,
    at: UnixTime,
) -> Email {
    let what = if last {
        format!(
            "Your last verification phone was removed: two-step verification is now off for your {app_name} account."
        )
    } else {
        format!("A phone was removed from two-step verification on your {app_name} account.")
    };
    notice(
        app_name,
        to,
        format!("A verification phone was removed from your {app_name} account"),
        &what,
        &[("Phone", number.masked())],
        at,
    )
}

/// An administrator reset the user's MFA.
pub fn reset_email(
    app_name: &str,
    to: &str,
    removed: &[PhoneNumber],
    app_removed: bool,
    at: UnixTime,
) -> Email {
    let phones = if removed.is_empty() {
        "none".to_owned()
    } else {
        removed
            .iter()
            .map(PhoneNumber::masked)
            .collect::<Vec<_>>()
            .join(", ")
    };
    notice(
        app_name,
        to,
        format!("Two-step verification was reset on your {app_name} account"),
        &format!(
            "An administrator reset two-step verification on your {app_name} account: your verification phones and authenticator app were removed and you can set it up again."
        ),
        &[
            ("Phones removed", phones),
            (
                "Authenticator app removed",
                if app_removed { "yes" } else { "no" }.to_owned(),
            ),
        ],
        at,
    )
}

/// A new set of recovery codes was made (the old set no longer works).
pub fn recovery_codes_created_email(app_name: &str, to: &str, at: UnixTime) -> Email {
    notice(
        app_name,
        to,
        format!("New recovery codes for your {app_name} account"),
        &format!(
            "A new set of recovery codes was created for your {app_name} account; any earlier codes no longer work."
        ),
        &[],
        at,
    )
}

/// A recovery code was used to sign in.
pub fn recovery_code_used_email(app_name: &str, to: &str, remaining: u32, at: UnixTime) -> Email {
    notice(
        app_name,
        to,
        format!("A recovery code was used on your {app_name} account"),
        &format!("A recovery code was used to sign in to your {app_name} account."),
        &[("Codes left", remaining.to_string())],
        at,
    )
}

/// An authenticator app now protects the account: the first factor (`first`), another beside
/// the phones, or a new app in place of the previous one (`replaced`).
pub fn app_added_email(
    app_name: &str,
    to: &str,
    label: Option<&str>,
    first: bool,
    replaced: bool,
    at: UnixTime,
) -> Email {
    let (subject, what) = if first {
        (
            format!("Two-step verification is now on for your {app_name} account"),
            format!(
                "Two-step verification is now on for your {app_name} account: from now on we may ask for a code from your authenticator app when you sign in."
            ),
        )
    } else if replaced {
        (
            format!("Your {app_name} authenticator app was replaced"),
            format!(
                "A new authenticator app replaced the previous one for two-step verification on your {app_name} account: the previous app's codes no longer work."
            ),
        )
    } else {
        (
            format!("An authenticator app was added to your {app_name} account"),
            format!(
                "An authenticator app was added to two-step verification on your {app_name} account."
            ),
        )
    };
    notice(
        app_name,
        to,
        subject,
        &what,
        &[("Authenticator app", label.unwrap_or("(no name)").to_owned())],
        at,
    )
}

/// The authenticator app was removed (`last`: it was the last factor).
pub fn app_removed_email(
    app_name: &str,
    to: &str,
    label: Option<&str>,
    last: bool,
    at: UnixTime,
) -> Email {
    let what = if last {
        format!(
            "Your authenticator app was removed: two-step verification is now off for your {app_name} account."
        )
    } else {
        format!(
            "An authenticator app was removed from two-step verification on your {app_name} account."
        )
    };
    notice(
        app_name,
        to,
        format!("An authenticator app was removed from your {app_name} account"),
        &what,
        &[("Authenticator app", label.unwrap_or("(no name)").to_owned())],
        at,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_carries_the_code_and_its_lifetime() {
        let t = code_text("Acme", &Code::parse("042137").unwrap(), 600);
        assert!(t.starts_with("042137 is your Acme verification code"));
        assert!(t.contains("10 min"));
    }

    #[test]
    fn the_email_masks_the_number_and_escapes_html() {
        let n = PhoneNumber::parse("+14155550123").unwrap();
        let e = enrolled_email("<Acme>", "ada@example.com", &n, UnixTime(0));
        for part in [&e.subject, &e.text, &e.html] {
            assert!(!part.contains("4155550123"));
        }
        assert!(e.text.contains("+1••••••0123"));
        assert!(e.html.contains("&lt;Acme&gt;"));
        assert!(e.text.contains("If this was not you"));
    }

    #[test]
    fn security_notices_say_what_when_and_what_to_do() {
        let old = PhoneNumber::parse("+14155550123").unwrap();
        let new = PhoneNumber::parse("+14155550199").unwrap();
        let e = phone_replaced_email("Acme", "ada@example.com", &old, &new, UnixTime(0));
        assert!(e.text.contains("+1••••••0123") && e.text.contains("+1••••••0199"));
        assert!(e.text.contains("1970-01-01T00:00:00Z"));
        assert!(e.text.contains("If this was not you"));
        for part in [&e.subject, &e.text, &e.html] {
            assert!(!part.contains("4155550123") && !part.contains("4155550199"));
        }
        let r = phone_removed_email("Acme", "ada@example.com", &old, true, UnixTime(0));
        assert!(r.text.contains("now off"));
        let z = reset_email("Acme", "ada@example.com", &[old], false, UnixTime(0));
        assert!(z.text.contains("administrator") && z.text.contains("+1••••••0123"));
    }
}
