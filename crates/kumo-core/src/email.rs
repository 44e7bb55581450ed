//! Email addresses as accounts know them: one spelling per address, so
//! `Alice@Example.com ` and `alice@example.com` are one account (the
//! `user.email` column is unique on that spelling).
//!
//! The check is deliberately loose: an address is proven by a link that
//! reaches it, not by a pattern. It refuses only what cannot be an address
//! an email can be sent to, and what would be unsafe in a mail header.

/// The longest address SMTP carries (RFC 5321's path limit, less the `<>`).
pub const MAX_LEN: usize = 254;

/// The address in its one spelling (trimmed, lower case), or why it is not
/// one.
pub fn normalize(input: &str) -> Result<String, &'static str> {
    let email = input.trim().to_lowercase();
    if email.is_empty() {
        return Err("is required");
    }
    if email.len() > MAX_LEN {
        return Err("is longer than 254 characters");
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err("is not an email address (no @)");
    };
    if local.is_empty() || local.len() > 64 {
        return Err("is not an email address (the part before @ is empty or over 64 characters)");
    }
    if email
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"()[]\\".contains(c))
    {
        return Err("is not an email address (it has spaces or characters addresses don't use)");
    }
    if local.contains('@') {
        return Err("is not an email address (more than one @)");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let good_label =
        |l: &&str| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-');
    if labels.len() < 2 || !labels.iter().all(good_label) {
        return Err("is not an email address (the domain after @ is not a domain name)");
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_address() {
        assert_eq!(
            normalize(" Alice@Example.COM\n").as_deref(),
            Ok("alice@example.com")
        );
        assert_eq!(
            normalize("a.b+tag@mail.example.org").as_deref(),
            Ok("a.b+tag@mail.example.org")
        );
        assert_eq!(
            normalize("jürgen@bücher.example").as_deref(),
            Ok("jürgen@bücher.example")
        );
    }

    #[test]
    fn what_cannot_be_mailed_is_refused() {
        for bad in [
            "",
            "   ",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "alice@example..com",
            "alice@-example.com",
            "al ice@example.com",
            "alice@example.com\r\nBcc: eve@example.com",
            "a@b@example.com",
            "<alice@example.com>",
            "\"alice\"@example.com",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
        assert!(normalize(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(normalize(&format!("a@{}.com", "b".repeat(250))).is_err());
    }
}
