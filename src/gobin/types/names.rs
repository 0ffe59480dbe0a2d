//! The import path of a named type's package from method names in the
//! function table, for when a descriptor records none.

use super::super::GoBinary;

/// The package import path of a named type given only its type string
/// (`*pq.Driver`, `pq.Error`, `[]pq.Error`), from the method names in the
/// function table (`github.com/lib/pq.(*Driver).Open`). `None` when no
/// method names the type or when packages of different paths match.
pub fn package_path_from_functions(bin: &GoBinary, type_string: &str) -> Option<String> {
    let fns = bin.function_table().ok()?;
    package_path_in(fns.iter().map(|f| f.name.as_str()), type_string)
}

/// [`package_path_from_functions`] over function names.
fn package_path_in<'n>(names: impl Iterator<Item = &'n str>, type_string: &str) -> Option<String> {
    let base = type_string.trim_start_matches(['*', '[', ']']);
    let (pkg, ty) = base.rsplit_once('.')?;
    if pkg.is_empty() || ty.is_empty() || pkg.contains(['/', ' ', '(', '[']) {
        return None;
    }
    let ptr_recv = format!(".(*{ty}).");
    let val_recv = format!(".{ty}.");
    let mut found: Option<&str> = None;
    for name in names {
        // Names keep a `vendor/` prefix: it is part of the import path of
        // the standard library's vendored packages, as reflect reports it.
        let Some(path) = name
            .find(&ptr_recv)
            .or_else(|| name.find(&val_recv))
            .map(|i| &name[..i])
        else {
            continue;
        };
        if !package_name_matches(path, pkg) {
            continue;
        }
        match found {
            None => found = Some(path),
            Some(p) if p == path => {}
            Some(_) => return None,
        }
    }
    found.map(str::to_string)
}

/// Whether a package at import `path` is conventionally named `name`: its
/// last element, without a `/vN` major-version element or a `.vN` suffix
/// (`gopkg.in/yaml.v3` is `yaml`).
fn package_name_matches(path: &str, name: &str) -> bool {
    let mut elems = path.rsplit('/');
    let Some(mut last) = elems.next() else {
        return false;
    };
    let is_major = |s: &str| {
        s.strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    if is_major(last) {
        match elems.next() {
            Some(prev) => last = prev,
            None => return false,
        }
    }
    if let Some((stem, v)) = last.rsplit_once('.')
        && is_major(v)
    {
        last = stem;
    }
    last == name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_paths_from_method_names() {
        let names = [
            "github.com/lib/pq.(*Driver).Open",
            "github.com/lib/pq.Error.Error",
            "github.com/lib/pq.(*conn).query",
            "example.com/other/pq.(*Thing).Do",
            "example.com/fork/pq.(*Thing).Do",
            "gopkg.in/yaml.v3.(*Node).Decode",
            "main.main",
        ];
        let p = |t: &str| package_path_in(names.iter().copied(), t);
        assert_eq!(p("*pq.Driver").as_deref(), Some("github.com/lib/pq"));
        assert_eq!(p("pq.Error").as_deref(), Some("github.com/lib/pq"));
        assert_eq!(p("[]*pq.Error").as_deref(), Some("github.com/lib/pq"));
        assert_eq!(p("*yaml.Node").as_deref(), Some("gopkg.in/yaml.v3"));
        // Two packages named pq have a Thing: ambiguous.
        assert_eq!(p("*pq.Thing"), None);
        // No method names the type; not a named type.
        assert_eq!(p("*pq.Listener"), None);
        assert_eq!(p("string"), None);
        assert_eq!(p("map[string]pq.Error"), None);
    }

    #[test]
    fn package_names() {
        assert!(package_name_matches("github.com/lib/pq", "pq"));
        assert!(package_name_matches("gopkg.in/yaml.v3", "yaml"));
        assert!(package_name_matches("github.com/jackc/pgx/v5", "pgx"));
        assert!(package_name_matches("errors", "errors"));
        assert!(!package_name_matches("github.com/lib/pqx", "pq"));
        assert!(!package_name_matches("v2", "v2"));
    }
}
