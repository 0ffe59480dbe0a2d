//! Rendering captured Go values as text: the message Go prints for a panic
//! value, from its resolved type and the bytes an eBPF probe read, only where
//! the message follows exactly from those bytes. Anything else is `None`:
//! unknown means unknown, never a guess.
//!
//! What the probe captures for an `any` (eface) value: `data`, the eface data
//! pointer; `words`, the 32 bytes at `data` as four little-endian 64-bit
//! words; `text`, up to 128 bytes read at `words[0]` (meaningful only when
//! the value starts with a Go string, whose length is then `words[1]`).
//!
//! Rendered (message as `fmt.Sprint` and the runtime's panic print give it):
//! * `string`: the string (data points at the string header);
//! * `runtime.errorString` ("runtime error: " + s), `runtime.plainError` (s),
//!   `runtime.errorAddressString` ("runtime error: " + msg);
//! * `*errors.errorString`, `*fmt.wrapError`, `*fmt.wrapErrors`: their `msg`
//!   (the first field, a string);
//! * `runtime.boundsError`: the formats of the Go release's runtime/error.go.
//!
//! Only 64-bit targets (amd64, arm64): the word layout assumes 8-byte words.

use super::types::{GoRelease, GoType, Kind};

/// What the probe read for one value.
#[derive(Debug, Clone, Copy)]
pub struct Captured<'a> {
    /// The eface data pointer (runtime address).
    pub data: u64,
    /// 32 bytes at `data`, as little-endian words.
    pub words: [u64; 4],
    /// Bytes read at `words[0]`, at most the string's real length `words[1]`.
    pub text: &'a [u8],
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    /// The captured string was shorter than the real one: `text` is a prefix
    /// of the message Go prints.
    pub truncated: bool,
}

/// The message Go prints for a panic with value of type `ty` captured as
/// `cap`, or `None` when it does not follow exactly from the capture.
pub fn panic_message(ty: &GoType, cap: &Captured<'_>) -> Option<Message> {
    if ty.ptr_size != 8 {
        return None;
    }
    // Types are matched by package path as well as name, so a user package
    // that happens to be called `errors` or `fmt` is not mistaken for the
    // standard library's.
    let pkg = ty.pkg_path.as_deref().unwrap_or("");
    let prefixed = |prefix: &str| {
        let (s, truncated) = string_at(cap)?;
        Some(Message {
            text: format!("{prefix}{s}"),
            truncated,
        })
    };
    match (ty.kind, ty.name.as_str(), pkg) {
        (Kind::String, "string", "") => prefixed(""),
        (Kind::String, "runtime.errorString", "runtime") => prefixed("runtime error: "),
        (Kind::String, "runtime.plainError", "runtime") => prefixed(""),
        (Kind::Struct, "runtime.errorAddressString", "runtime") => prefixed("runtime error: "),
        (Kind::Pointer, "*errors.errorString", "errors")
        | (Kind::Pointer, "*fmt.wrapError", "fmt")
        | (Kind::Pointer, "*fmt.wrapErrors", "fmt") => prefixed(""),
        (Kind::Struct, "runtime.boundsError", "runtime") => Some(Message {
            text: bounds_error(ty.release, cap.words)?,
            truncated: false,
        }),
        _ => None,
    }
}

/// The message of an `error` value of type `ty` captured as `cap` (what
/// its `Error()` returns), or `None` when it does not follow exactly from
/// the capture: the string-carrying errors panic values know, and errors
/// of net/http's round trip and of package context.
pub fn error_message(ty: &GoType, cap: &Captured<'_>) -> Option<Message> {
    if ty.ptr_size != 8 {
        return None;
    }
    let fixed = |text: &str| {
        Some(Message {
            text: text.to_owned(),
            truncated: false,
        })
    };
    let pkg = ty.pkg_path.as_deref().unwrap_or("");
    match (ty.kind, ty.name.as_str(), pkg) {
        // net/http: type httpError struct { err string; timeout bool }, Error() = err.
        (Kind::Pointer, "*http.httpError", "net/http") => {
            let (s, truncated) = string_at(cap)?;
            Some(Message { text: s, truncated })
        }
        (Kind::Struct, "context.deadlineExceededError", "context") => {
            fixed("context deadline exceeded")
        }
        (Kind::Struct, "http.tlsHandshakeTimeoutError", "net/http") => {
            fixed("net/http: TLS handshake timeout")
        }
        (Kind::Pointer, "*errors.errorString", "errors")
        | (Kind::Pointer, "*fmt.wrapError", "fmt")
        | (Kind::Pointer, "*fmt.wrapErrors", "fmt") => panic_message(ty, cap),
        _ => None,
    }
}

/// The string whose header is `words[0..2]`, from the captured text; and
/// whether the capture was cut short.
fn string_at(cap: &Captured<'_>) -> Option<(String, bool)> {
    let len = cap.words[1];
    let got = cap.text.len() as u64;
    // A string longer than the address space, or text longer than the
    // string, is not a string header.
    if len > i64::MAX as u64 || got > len || (len > 0 && cap.words[0] == 0) {
        return None;
    }
    let truncated = got < len;
    match std::str::from_utf8(cap.text) {
        Ok(s) => Some((s.to_string(), truncated)),
        // The cut may split a UTF-8 sequence: keep the whole characters.
        Err(e) if truncated && e.error_len().is_none() => {
            let s = std::str::from_utf8(&cap.text[..e.valid_up_to()]).ok()?;
            Some((s.to_string(), true))
        }
        // Bytes that are not UTF-8 have no exact `String` form.
        Err(_) => None,
    }
}

/// `boundsError.Error()` for `runtime.boundsError{x int64; y int; signed
/// bool; code uint8}` laid out in `words` (x, y, then signed and code bytes).
fn bounds_error(release: GoRelease, words: [u64; 4]) -> Option<String> {
    let x = words[0] as i64;
    let y = words[1] as i64;
    let signed = match words[2] & 0xff {
        0 => false,
        1 => true,
        _ => return None,
    };
    let code = (words[2] >> 8) & 0xff;
    let convert = if release.major == 1 && release.minor < 20 {
        // Go 1.20 added slice-to-array conversion and reworded this.
        "cannot convert slice with length %y to pointer to array with length %x"
    } else {
        "cannot convert slice with length %y to array or pointer to array with length %x"
    };
    let formats = [
        "index out of range [%x] with length %y",
        "slice bounds out of range [:%x] with length %y",
        "slice bounds out of range [:%x] with capacity %y",
        "slice bounds out of range [%x:%y]",
        "slice bounds out of range [::%x] with length %y",
        "slice bounds out of range [::%x] with capacity %y",
        "slice bounds out of range [:%x:%y]",
        "slice bounds out of range [%x:%y:]",
        convert,
    ];
    let negative = [
        "index out of range [%x]",
        "slice bounds out of range [:%x]",
        "slice bounds out of range [:%x]",
        "slice bounds out of range [%x:]",
        "slice bounds out of range [::%x]",
        "slice bounds out of range [::%x]",
        "slice bounds out of range [:%x:]",
        "slice bounds out of range [%x::]",
    ];
    let code = usize::try_from(code).ok()?;
    let mut fmt = *formats.get(code)?;
    if signed && x < 0 {
        // The runtime indexes past the end of this table for a negative
        // conversion length; the compiler never produces one.
        fmt = negative.get(code)?;
    }
    let int = |v: i64, signed: bool| {
        if signed && v < 0 {
            format!("-{}", v.unsigned_abs())
        } else {
            (v as u64).to_string()
        }
    };
    let body = fmt
        .replace("%x", &int(x, signed))
        .replace("%y", &int(y, true));
    Some(format!("runtime error: {body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(name: &str, kind: Kind, pkg: Option<&str>, minor: u32) -> GoType {
        GoType {
            addr: 0x1000,
            name: name.into(),
            kind,
            named: true,
            pkg_path: pkg.map(Into::into),
            ptr_size: 8,
            release: GoRelease { major: 1, minor },
        }
    }

    fn msg(text: &str, truncated: bool) -> Option<Message> {
        Some(Message {
            text: text.into(),
            truncated,
        })
    }

    #[test]
    fn strings_and_errors() {
        let s = Captured {
            data: 0x10,
            words: [0x5000, 4, 0, 0],
            text: b"boom",
        };
        assert_eq!(
            panic_message(&ty("string", Kind::String, None, 22), &s),
            msg("boom", false)
        );
        assert_eq!(
            panic_message(
                &ty("runtime.errorString", Kind::String, Some("runtime"), 22),
                &s
            ),
            msg("runtime error: boom", false)
        );
        assert_eq!(
            panic_message(
                &ty("*errors.errorString", Kind::Pointer, Some("errors"), 22),
                &s
            ),
            msg("boom", false)
        );
        // Same name, another package: unknown.
        assert_eq!(
            panic_message(
                &ty(
                    "*errors.errorString",
                    Kind::Pointer,
                    Some("example.com/errors"),
                    22
                ),
                &s
            ),
            None
        );
        // A named string type with its own methods: unknown.
        assert_eq!(
            panic_message(&ty("main.strErr", Kind::String, Some("main"), 22), &s),
            None
        );
        assert_eq!(panic_message(&ty("int", Kind::Int, None, 22), &s), None);
        // 32-bit targets are not handled.
        let mut t32 = ty("string", Kind::String, None, 22);
        t32.ptr_size = 4;
        assert_eq!(panic_message(&t32, &s), None);
    }

    #[test]
    fn truncated_text() {
        let t = ty("string", Kind::String, None, 22);
        let cap = |len: u64, text: &'static [u8]| Captured {
            data: 0x10,
            words: [0x5000, len, 0, 0],
            text,
        };
        assert_eq!(panic_message(&t, &cap(200, b"abc")), msg("abc", true));
        // Cut inside a two-byte character: the partial character is dropped.
        assert_eq!(
            panic_message(&t, &cap(10, "ab\u{e9}".as_bytes().split_at(3).0)),
            msg("ab", true)
        );
        // More text than the string holds, a null pointer, invalid UTF-8: unknown.
        assert_eq!(panic_message(&t, &cap(2, b"abc")), None);
        assert_eq!(
            panic_message(
                &t,
                &Captured {
                    data: 0x10,
                    words: [0, 3, 0, 0],
                    text: b"abc"
                }
            ),
            None
        );
        assert_eq!(panic_message(&t, &cap(2, b"\xff\xfe")), None);
        assert_eq!(panic_message(&t, &cap(0, b"")), msg("", false));
    }

    #[test]
    fn bounds_errors() {
        let t = |minor| ty("runtime.boundsError", Kind::Struct, Some("runtime"), minor);
        let b = |x: i64, y: u64, signed: u64, code: u64, minor| {
            panic_message(
                &t(minor),
                &Captured {
                    data: 0x10,
                    words: [x as u64, y, signed | code << 8, 0],
                    text: b"",
                },
            )
            .map(|m| m.text)
        };
        assert_eq!(
            b(5, 3, 1, 0, 22).as_deref(),
            Some("runtime error: index out of range [5] with length 3")
        );
        assert_eq!(
            b(-1, 3, 1, 0, 22).as_deref(),
            Some("runtime error: index out of range [-1]")
        );
        // Unsigned: the same bits print as a huge index.
        assert_eq!(
            b(-1, 3, 0, 0, 22).as_deref(),
            Some("runtime error: index out of range [18446744073709551615] with length 3")
        );
        assert_eq!(
            b(i64::MIN, 0, 1, 3, 22).as_deref(),
            Some("runtime error: slice bounds out of range [-9223372036854775808:]")
        );
        assert_eq!(
            b(2, 1, 1, 7, 22).as_deref(),
            Some("runtime error: slice bounds out of range [2:1:]")
        );
        assert_eq!(
            b(4, 3, 0, 8, 19).as_deref(),
            Some(
                "runtime error: cannot convert slice with length 3 to pointer to array with length 4"
            )
        );
        assert_eq!(
            b(4, 3, 0, 8, 20).as_deref(),
            Some(
                "runtime error: cannot convert slice with length 3 to array or pointer to array with length 4"
            )
        );
        // Unknown code, a bool that is not 0 or 1: unknown.
        assert_eq!(b(1, 1, 1, 9, 22), None);
        assert_eq!(b(1, 1, 2, 0, 22), None);
    }
}
