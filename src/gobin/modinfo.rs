//! The module-info text recorded by the Go toolchain (`runtime/debug`
//! `BuildInfo` in its string form): `path`, `mod`, `dep`, `=>` (replace) and
//! `build KEY=VALUE` lines, tab separated, with Go-quoted keys and values
//! where they contain spaces, tabs, newlines, quotes or backquotes.
//!
//! The rules mirror what `go version -m` accepts: a line it would reject is
//! an error here too, so goprobe never shows a half-read module list.

use super::Module;

/// The parsed module info (everything of [`super::BuildInfo`] but the Go version).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ModInfo {
    pub path: Option<String>,
    pub main: Option<Module>,
    pub deps: Vec<Module>,
    pub settings: Vec<(String, String)>,
}

/// Strip the 16-byte sentinels the toolchain wraps module info in. Returns an
/// empty text when the framing is absent (as Go does: such a binary has no
/// module info, e.g. one built outside module mode).
pub(crate) fn unframe(raw: &[u8]) -> &[u8] {
    const SENTINEL: usize = 16;
    if raw.len() > 2 * SENTINEL && raw.get(raw.len() - SENTINEL - 1) == Some(&b'\n') {
        &raw[SENTINEL..raw.len() - SENTINEL]
    } else {
        &[]
    }
}

/// Parse unframed module info text.
pub(crate) fn parse(text: &str) -> Result<ModInfo, String> {
    // Which module a following `=>` line replaces.
    enum Last {
        None,
        Main,
        Dep(usize),
    }
    let mut info = ModInfo::default();
    let mut last = Last::None;
    for (lineno, line) in text.split('\n').enumerate() {
        let err = |msg: &str| format!("module info line {}: {msg}", lineno + 1);
        if let Some(rest) = line.strip_prefix("path\t") {
            info.path = Some(rest.to_string());
            last = Last::None;
        } else if let Some(rest) = line.strip_prefix("mod\t") {
            info.main = Some(module_line(rest).map_err(|e| err(&e))?);
            last = Last::Main;
        } else if let Some(rest) = line.strip_prefix("dep\t") {
            info.deps.push(module_line(rest).map_err(|e| err(&e))?);
            last = Last::Dep(info.deps.len() - 1);
        } else if let Some(rest) = line.strip_prefix("=>\t") {
            let replaced = match last {
                Last::None => return Err(err("replacement with no module on the previous line")),
                Last::Main => info.main.as_mut(),
                Last::Dep(i) => info.deps.get_mut(i),
            };
            let replaced = replaced.ok_or_else(|| err("replacement of a missing module"))?;
            replaced.replace = Some(Box::new(module_line(rest).map_err(|e| err(&e))?));
            last = Last::None;
        } else if let Some(rest) = line.strip_prefix("build\t") {
            info.settings.push(build_line(rest).map_err(|e| err(&e))?);
            last = Last::None;
        }
        // Other lines (`go\t...`, blank separators, lines a future toolchain
        // adds) carry nothing goprobe reports; Go ignores them too.
    }
    Ok(info)
}

/// `PATH\tVERSION[\tSUM]`.
fn module_line(rest: &str) -> Result<Module, String> {
    let cols: Vec<&str> = rest.split('\t').collect();
    match cols.as_slice() {
        [path, version] => Ok(Module::new(path, version, "")),
        [path, version, sum] => Ok(Module::new(path, version, sum)),
        _ => Err(format!(
            "expected 2 or 3 tab-separated columns, got {}",
            cols.len()
        )),
    }
}

/// `KEY=VALUE`, either side possibly Go-quoted.
fn build_line(kv: &str) -> Result<(String, String), String> {
    let (key, raw_value) = match kv.as_bytes().first() {
        None => return Err("build line missing '='".into()),
        Some(b'=') => return Err("build line with missing key".into()),
        Some(b'"' | b'`') => {
            let n = quoted_prefix_len(kv).ok_or("invalid quoted key in build line")?;
            let key = unquote(&kv[..n]).ok_or("invalid quoted key in build line")?;
            let rest = kv[n..]
                .strip_prefix('=')
                .ok_or("build line missing '=' after quoted key")?;
            (key, rest)
        }
        Some(_) => {
            let (key, rest) = kv
                .split_once('=')
                .ok_or("build line missing '=' after key")?;
            if needs_quoting_key(key) {
                return Err(format!("unquoted key {key:?} must be quoted"));
            }
            (key.to_string(), rest)
        }
    };
    let value = match raw_value.as_bytes().first() {
        None => String::new(),
        Some(b'"' | b'`') => unquote(raw_value).ok_or("invalid quoted value in build line")?,
        Some(_) => {
            if needs_quoting_value(raw_value) {
                return Err(format!("unquoted value {raw_value:?} must be quoted"));
            }
            raw_value.to_string()
        }
    };
    Ok((key, value))
}

fn needs_quoting_key(key: &str) -> bool {
    key.is_empty() || key.contains(['=', ' ', '\t', '\r', '\n', '"', '`'])
}

fn needs_quoting_value(value: &str) -> bool {
    value.contains([' ', '\t', '\r', '\n', '"', '`'])
}

/// Length in bytes of the Go string literal (`"..."` or `` `...` ``) that `s`
/// starts with, without checking its escapes.
fn quoted_prefix_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let quote = *b.first()?;
    let mut i = 1;
    while let Some(&c) = b.get(i) {
        if c == quote {
            return Some(i + 1);
        }
        if quote == b'"' {
            if c == b'\n' {
                return None;
            }
            if c == b'\\' {
                i += 1;
            }
        }
        i += 1;
    }
    None
}

/// Decode a whole Go string literal, as Go's `strconv.Unquote` does for the
/// double-quoted and raw forms. `None` when it is not exactly one valid literal.
/// Escapes that produce bytes which are not UTF-8 (`\xff`) are kept as U+FFFD.
pub(crate) fn unquote(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 2 {
        return None;
    }
    let (first, last) = (b[0], b[b.len() - 1]);
    // Only once both ends are ASCII quotes are 1 and len-1 char boundaries.
    let inner = || &s[1..s.len() - 1];
    match (first, last) {
        (b'`', b'`') => {
            let inner = inner();
            if inner.contains('`') {
                return None;
            }
            // Go drops carriage returns from raw literals.
            Some(inner.replace('\r', ""))
        }
        (b'"', b'"') => unquote_interpreted(inner()),
        _ => None,
    }
}

fn unquote_interpreted(inner: &str) -> Option<String> {
    let mut out: Vec<u8> = Vec::with_capacity(inner.len());
    let mut chars = inner.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '"' | '\n' => return None,
            '\\' => {
                let (_, e) = chars.next()?;
                let mut hex = |n: usize| -> Option<u32> {
                    let mut v = 0u32;
                    for _ in 0..n {
                        let (_, d) = chars.next()?;
                        v = v * 16 + d.to_digit(16)?;
                    }
                    Some(v)
                };
                match e {
                    'a' => out.push(0x07),
                    'b' => out.push(0x08),
                    'f' => out.push(0x0c),
                    'n' => out.push(b'\n'),
                    'r' => out.push(b'\r'),
                    't' => out.push(b'\t'),
                    'v' => out.push(0x0b),
                    '\\' => out.push(b'\\'),
                    '"' => out.push(b'"'),
                    'x' => out.push(u8::try_from(hex(2)?).ok()?),
                    'u' | 'U' => {
                        let r = char::from_u32(hex(if e == 'u' { 4 } else { 8 })?)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(r.encode_utf8(&mut buf).as_bytes());
                    }
                    '0'..='7' => {
                        let mut v = e.to_digit(8)?;
                        for _ in 0..2 {
                            let (_, d) = chars.next()?;
                            v = v * 8 + d.to_digit(8)?;
                        }
                        out.push(u8::try_from(v).ok()?);
                    }
                    _ => return None,
                }
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "path\texample.com/hello\n\
mod\texample.com/hello\tv0.0.0-20240506070809-74084f96b2ba+dirty\t\n\
dep\texample.com/greet\tv1.2.0\n\
=>\texample.com/greet\tv1.3.0\th1:XmpyaP7G54Yeg9eV98m8g09+gvkQO1QgGZ0+H1j2OBU=\n\
\n\
dep\texample.com/local\tv0.0.0\n\
=>\t./local\t(devel)\t\n\
\n\
dep\texample.com/util\tv0.0.0-20240102030405-abcdef123456\th1:Jb7qBOSrHjimxm62x1uf1SqOzdlCEdWgNRZ8mUKt9gU=\n\
build\t-buildmode=exe\n\
build\t-ldflags=\"-s -w\"\n\
build\tCGO_CFLAGS=\n\
build\tvcs.modified=true\n";

    #[test]
    fn parses_modules_replacements_and_settings() {
        let info = parse(HELLO).unwrap();
        assert_eq!(info.path.as_deref(), Some("example.com/hello"));
        let main = info.main.unwrap();
        assert_eq!(main.path, "example.com/hello");
        assert_eq!(main.version, "v0.0.0-20240506070809-74084f96b2ba+dirty");
        assert_eq!(main.sum, "");
        assert_eq!(info.deps.len(), 3);
        let greet = &info.deps[0];
        assert_eq!(
            (
                greet.path.as_str(),
                greet.version.as_str(),
                greet.sum.as_str()
            ),
            ("example.com/greet", "v1.2.0", "")
        );
        let r = greet.replace.as_deref().unwrap();
        assert_eq!(r.version, "v1.3.0");
        assert_eq!(r.sum, "h1:XmpyaP7G54Yeg9eV98m8g09+gvkQO1QgGZ0+H1j2OBU=");
        let local = info.deps[1].replace.as_deref().unwrap();
        assert_eq!(
            (
                local.path.as_str(),
                local.version.as_str(),
                local.sum.as_str()
            ),
            ("./local", "(devel)", "")
        );
        assert!(info.deps[2].replace.is_none());
        assert_eq!(info.deps[2].version, "v0.0.0-20240102030405-abcdef123456");
        assert_eq!(
            info.settings,
            vec![
                ("-buildmode".into(), "exe".into()),
                ("-ldflags".into(), "-s -w".into()),
                ("CGO_CFLAGS".into(), "".into()),
                ("vcs.modified".into(), "true".into()),
            ]
        );
    }

    #[test]
    fn old_style_directory_replace_without_version() {
        let info = parse("mod\tm\t(devel)\t\ndep\tx\tv1.0.0\th1:a=\n=>\t../x\t\t\n").unwrap();
        let r = info.deps[0].replace.as_deref().unwrap();
        assert_eq!((r.path.as_str(), r.version.as_str()), ("../x", ""));
        assert_eq!(info.main.unwrap().version, "(devel)");
    }

    #[test]
    fn quoted_keys_and_values() {
        let info =
            parse("build\t\"a key\"=\"tab\\there\\x41\\u00e9\\101\"\nbuild\tK=`raw \"q\"`\n")
                .unwrap();
        assert_eq!(
            info.settings[0],
            ("a key".into(), "tab\there\u{41}\u{e9}A".into())
        );
        assert_eq!(info.settings[1], ("K".into(), "raw \"q\"".into()));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "=>\tx\tv1\n",
            "dep\tonlypath\n",
            "dep\ta\tb\tc\td\n",
            "build\t\n",
            "build\t=v\n",
            "build\tnoequals\n",
            "build\tK=has space\n",
            "build\t\"K\"v\n",
            "build\tK=\"unterminated\n",
            "build\tK=\"bad\\q\"\n",
            "build\tK=\"\\xZZ\"\n",
            "build\tK=\"\\400\"\n",
            "build\tK=\"\\ud800\"\n",
            "build\t\"K\n",
            // Ends in a multi-byte character (found by fuzzing: must not panic).
            "build\tK=\"abc\u{20ac}\n",
            "build\tK=`abc\u{20ac}\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn unquote_forms() {
        assert_eq!(unquote("\"\"").as_deref(), Some(""));
        assert_eq!(unquote("`a\rb`").as_deref(), Some("ab"));
        assert_eq!(
            unquote("\"\\a\\b\\f\\n\\r\\t\\v\\\\\\\"\"").as_deref(),
            Some("\x07\x08\x0c\n\r\t\x0b\\\"")
        );
        assert_eq!(unquote("\"\\U0001F600\"").as_deref(), Some("\u{1F600}"));
        assert_eq!(unquote("\"").as_deref(), None);
        assert_eq!(unquote("\"a\"b\"").as_deref(), None);
        assert_eq!(unquote("`a`b`").as_deref(), None);
        assert_eq!(unquote("'a'").as_deref(), None);
        // Multi-byte characters at either end (found by fuzzing).
        assert_eq!(unquote("\u{fffd} x").as_deref(), None);
        assert_eq!(unquote("x \u{fffd}").as_deref(), None);
    }

    #[test]
    fn framing() {
        let mut raw = vec![b'x'; 16];
        raw.extend_from_slice(b"path\tp\n");
        raw.extend_from_slice(&[b'y'; 16]);
        assert_eq!(unframe(&raw), b"path\tp\n");
        assert_eq!(unframe(b"short"), b"");
        let no_newline = [b'z'; 40];
        assert_eq!(unframe(&no_newline), b"");
    }
}
