//! Field offsets for an attach session: as `goprobe offsets --json` prints
//! them (`--offsets FILE`), or resolved from the binary the way `goprobe
//! offsets` does.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::AttachError;
use crate::catalog;

/// Field offsets by `PKG.Type.field`; unknown fields are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offsets {
    pub fields: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct OffsetLine {
    field: String,
    offset: Option<u64>,
}

impl Offsets {
    /// Parse `goprobe offsets --json` output: one object per line with
    /// `field`, `offset` (null when unknown), `size`, `source`.
    pub fn from_ndjson(text: &str) -> Result<Offsets, AttachError> {
        let mut fields = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed: OffsetLine =
                serde_json::from_str(line).map_err(|e| AttachError::OffsetsSyntax {
                    line: i + 1,
                    msg: e.to_string(),
                })?;
            if let Some(off) = parsed.offset {
                fields.insert(parsed.field, off);
            }
        }
        Ok(Offsets { fields })
    }

    /// Offsets the way `goprobe offsets` resolves them: the binary's DWARF
    /// when it describes the type, else the embedded offsets table for its
    /// exact Go version; unknown fields are left out. Every field the catalog
    /// names is resolved.
    pub fn resolved(bin: &crate::gobin::GoBinary, catalog: &catalog::Catalog) -> Offsets {
        let table = crate::offsets::table::Table::builtin()
            .unwrap_or_else(|e| crate::offsets::table::Table::default_with_warning(&e));
        let resolver = crate::offsets::Resolver::for_binary(bin, &table, None);
        let fields = catalog
            .all_fields()
            .into_iter()
            .filter_map(|f| resolver.resolve(&f).offset.map(|o| (f, o)))
            .collect();
        Offsets { fields }
    }

    /// The required (non-optional) fields `probe` needs for this target that are unknown here.
    pub fn missing(
        &self,
        probe: &catalog::Probe,
        target: &catalog::Target<'_>,
        present: &dyn Fn(&catalog::Hook) -> bool,
    ) -> Vec<String> {
        crate::verdict::needed_fields(probe, target, present)
            .into_iter()
            .filter(|f| !f.optional && !self.fields.contains_key(&f.field))
            .map(|f| f.field.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_and_required_fields() {
        let text = "{\"field\":\"runtime.g.goid\",\"offset\":152,\"size\":8,\"source\":\"dwarf\"}\n\
                    {\"field\":\"net/http.Request.Pattern\",\"offset\":256,\"size\":16,\"source\":\"table\"}\n\
                    {\"field\":\"net/http.Request.Method\",\"offset\":null,\"size\":null,\"source\":\"unknown\"}\n";
        let o = Offsets::from_ndjson(text).expect("parses");
        assert_eq!(o.fields["runtime.g.goid"], 152);
        assert!(!o.fields.contains_key("net/http.Request.Method"));
        let catalog = catalog::Catalog::builtin().expect("catalog");
        let none = |_: &str| None;
        let target = catalog::Target {
            go_version: "go1.22.10",
            module_version: &none,
        };
        let missing = o.missing(
            catalog.probe("http.server").expect("probe"),
            &target,
            &|_| true,
        );
        assert!(missing.iter().any(|f| f == "net/http.Request.Method"));
        assert!(
            !missing.iter().any(|f| f.starts_with("runtime.hmap")),
            "optional fields are not required"
        );
        assert!(matches!(
            Offsets::from_ndjson("{"),
            Err(AttachError::OffsetsSyntax { line: 1, .. })
        ));
    }
}
