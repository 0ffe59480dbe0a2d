//! What `record` leaves out of spans by default, because recordings get
//! pasted into incident channels:
//! * `url.full` credentials (`https://user:pw@host/`) become
//!   `REDACTED:REDACTED@`, as the OpenTelemetry conventions say;
//! * the values of sensitive query parameters, in `url.full` and
//!   `url.query`, become `REDACTED`: the conventions' list (`AWSAccessKeyId`,
//!   `Signature`, `sig`, `X-Goog-Signature`), and every parameter one of
//!   whose name's words (split at `_`, `-`, `.` and lower-to-upper case
//!   changes, compared in any case) is `token`, `password`, `passwd`,
//!   `pwd`, `secret`, `key`, `apikey`, `signature` or `sig`
//!   (`access_token`, `apiKey`, `client_secret`, `X-Amz-Signature`);
//! * `db.query.text` is sanitized: string and number literals become `?`
//!   ([`crate::sql::sanitize`]), unless `--raw-queries`.
//!
//! `attach`'s raw event stream carries what the probes read, as read: it is
//! the input of `record`, not a recording to share.

use std::borrow::Cow;

use crate::span::{AttrValue, Attributes};

pub const REDACTED: &str = "REDACTED";

/// Parameters the OpenTelemetry conventions name as sensitive.
const SENSITIVE_PARAMS: &[&str] = &["AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"];

/// Words of a parameter name that make it sensitive (any case).
const SENSITIVE_WORDS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "key",
    "apikey",
    "signature",
    "sig",
];

/// What to leave in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Keep `db.query.text` as the program sent it.
    pub raw_queries: bool,
}

/// True when a query parameter of this (percent-decoded) name is sensitive.
pub fn sensitive(name: &str) -> bool {
    if SENSITIVE_PARAMS.contains(&name) {
        return true;
    }
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            words.push(std::mem::take(&mut cur));
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    words.push(cur);
    words.iter().any(|w| SENSITIVE_WORDS.contains(&w.as_str()))
}

/// Percent-decoding of a query parameter name (`+` is a space).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query string with the values of sensitive parameters replaced.
pub fn query(q: &str) -> Cow<'_, str> {
    let mut changed = false;
    let parts: Vec<Cow<'_, str>> = q
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !v.is_empty() && sensitive(&decode(k)) => {
                changed = true;
                Cow::Owned(format!("{k}={REDACTED}"))
            }
            _ => Cow::Borrowed(p),
        })
        .collect();
    if changed {
        Cow::Owned(parts.join("&"))
    } else {
        Cow::Borrowed(q)
    }
}

/// A full URL with its credentials and sensitive query values replaced.
pub fn url_full(u: &str) -> Cow<'_, str> {
    let (before_frag, frag) = match u.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (u, None),
    };
    let mut out = Cow::Borrowed(before_frag);
    if let Some((scheme, rest)) = before_frag.split_once("://") {
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            out = Cow::Owned(format!(
                "{scheme}://{REDACTED}:{REDACTED}@{}",
                &rest[at + 1..]
            ));
        }
    }
    if let Some((base, q)) = out.split_once('?')
        && let Cow::Owned(q) = query(q)
    {
        out = Cow::Owned(format!("{base}?{q}"));
    }
    match frag {
        Some(f) => Cow::Owned(format!("{out}#{f}")),
        None => out,
    }
}

/// Apply the policy to a span's attributes.
pub fn scrub(attrs: &mut Attributes, policy: Policy) {
    let mut fix = |key: &str, f: &dyn Fn(&str) -> Option<String>| {
        if let Some(AttrValue::String(s)) = attrs.get_mut(key)
            && let Some(new) = f(s)
        {
            *s = new;
        }
    };
    fix("url.full", &|s| match url_full(s) {
        Cow::Owned(n) => Some(n),
        Cow::Borrowed(_) => None,
    });
    fix("url.query", &|s| match query(s) {
        Cow::Owned(n) => Some(n),
        Cow::Borrowed(_) => None,
    });
    if !policy.raw_queries {
        // MySQL and MariaDB read "x" as a string; the others as a name.
        let mysql = matches!(
            attrs.get("db.system.name"),
            Some(AttrValue::String(s)) if s == "mysql" || s == "mariadb"
        );
        if let Some(AttrValue::String(q)) = attrs.get_mut("db.query.text") {
            *q = crate::sql::sanitize(q, mysql);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_names() {
        for n in [
            "AWSAccessKeyId",
            "Signature",
            "sig",
            "X-Goog-Signature",
            "token",
            "access_token",
            "accessToken",
            "api_key",
            "apiKey",
            "apikey",
            "x-api-key",
            "client_secret",
            "password",
            "PASSWORD",
            "db.passwd",
            "X-Amz-Signature",
        ] {
            assert!(sensitive(n), "{n}");
        }
        for n in [
            "keyword",
            "monkey",
            "q",
            "page",
            "tokens_left",
            "signal",
            "id",
        ] {
            assert!(!sensitive(n), "{n}");
        }
    }

    #[test]
    fn queries_and_urls() {
        assert_eq!(
            query("a=1&token=abc&Signature=x%2By&b="),
            "a=1&token=REDACTED&Signature=REDACTED&b="
        );
        assert!(matches!(query("a=1&b=2"), Cow::Borrowed(_)));
        assert_eq!(query("api%5Fkey=s3cr3t"), "api%5Fkey=REDACTED");
        assert_eq!(
            url_full("https://bob:hunter2@api.example:8443/v1/x?sig=abc&page=2#frag"),
            "https://REDACTED:REDACTED@api.example:8443/v1/x?sig=REDACTED&page=2#frag"
        );
        assert_eq!(url_full("http://h/p?q=1"), "http://h/p?q=1");
        assert_eq!(url_full("http://h/a@b"), "http://h/a@b");
    }

    #[test]
    fn scrub_applies_the_policy() {
        let mut a = Attributes::new();
        a.insert("url.query".into(), "password=x".into());
        a.insert(
            "db.query.text".into(),
            "SELECT * FROM u WHERE pw = 'x'".into(),
        );
        let mut raw = a.clone();
        scrub(&mut a, Policy::default());
        assert_eq!(a["url.query"], AttrValue::from("password=REDACTED"));
        assert_eq!(
            a["db.query.text"],
            AttrValue::from("SELECT * FROM u WHERE pw = ?")
        );
        scrub(&mut raw, Policy { raw_queries: true });
        assert_eq!(
            raw["db.query.text"],
            AttrValue::from("SELECT * FROM u WHERE pw = 'x'")
        );
        assert_eq!(raw["url.query"], AttrValue::from("password=REDACTED"));
    }
}
