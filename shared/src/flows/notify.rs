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
}
