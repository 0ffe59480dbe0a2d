//! What `inspect --require`, `record` and `attach` say about verdicts: one
//! short line per refused probe naming the remedy, and notes on offsets
//! taken from the table for a patch release it was not generated from.

use super::assess_binary_with;
use crate::gobin::GoBinary;

/// What to do about a reason, for the one-line refusal.
pub fn remedy(reason: &str) -> &'static str {
    if reason.starts_with("offset of ") && reason.contains(" refused: ") {
        "this is a goprobe bug worth reporting; pass offsets you trust with 'record --offsets FILE'"
    } else if reason.starts_with("offset of ") {
        "run 'goprobe offsets --json' on an unstripped build of the same source and pass it with 'record --offsets FILE', or force a release's layout with 'goprobe offsets --go-version V --json' (risky)"
    } else if reason.starts_with("Go version") && reason.contains("--go-version") {
        "write offsets with 'goprobe offsets --go-version V --json' and pass them with 'record --offsets FILE'"
    } else if reason.contains("in the binary") {
        "the program does not use what the probe hooks; nothing to trace there"
    } else {
        "see 'goprobe inspect' for every reason"
    }
}

/// One short line saying why `probe` is not instrumentable in `path`: the
/// first reason, how many more there are, and what to do.
pub fn refusal_line(path: &std::path::Path, probe: &str, reasons: &[String]) -> String {
    let Some(first) = reasons.first() else {
        return format!("{}: {probe}: no verdict", path.display());
    };
    let more = match reasons.len() {
        1 => String::new(),
        n => format!(" (and {} more: 'goprobe inspect' lists them)", n - 1),
    };
    format!(
        "{}: {probe}: {first}{more}: {}",
        path.display(),
        remedy(first)
    )
}

/// What `record`/`attach` say before attaching to `bin` with `probes`: a
/// note for each probe whose offsets include table answers for a Go patch
/// release the table was not generated from (never silent), and, when
/// `strict`, a refusal line for each probe that is instrumentable only
/// thanks to them (`--strict-offsets`).
pub fn table_provenance(
    bin: &GoBinary,
    probes: &[String],
    strict: bool,
) -> (Vec<String>, Vec<String>) {
    let lax = assess_binary_with(bin, false);
    let strict_verdicts = strict.then(|| assess_binary_with(bin, true));
    let (mut notes, mut refusals) = (Vec::new(), Vec::new());
    for v in lax
        .iter()
        .filter(|v| probes.contains(&v.probe) && v.instrumentable)
    {
        if let Some(n) = v
            .notes
            .iter()
            .find(|n| n.contains("--strict-offsets refuses this"))
        {
            notes.push(format!("{}: {n}", v.probe));
        }
        if let Some(sv) = strict_verdicts
            .as_ref()
            .and_then(|all| all.iter().find(|s| s.probe == v.probe))
            .filter(|s| !s.instrumentable)
        {
            refusals.push(refusal_line(bin.path(), &v.probe, &sv.reasons));
        }
    }
    (notes, refusals)
}

/// `inspect --require`: for each required probe that is not instrumentable
/// in `bin`, one short line saying why and what to do (none when all are).
/// `strict`: see [`assess_binary_with`].
pub fn required_failures(bin: &GoBinary, required: &[String], strict: bool) -> Vec<String> {
    let verdicts = assess_binary_with(bin, strict);
    let mut out = Vec::new();
    for name in required {
        match verdicts.iter().find(|v| &v.probe == name) {
            Some(v) if v.instrumentable => {}
            Some(v) => out.push(refusal_line(bin.path(), name, &v.reasons)),
            None => out.push(format!(
                "{}: probe {name} has no verdict",
                bin.path().display()
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_one_short_line_with_a_remedy() {
        let reasons = vec![
            "offset of database/sql.Stmt.query unknown for go1.28.0/amd64 (stripped (no DWARF), no type descriptor for database/sql.Stmt, go1.28/amd64 not in the offsets table)".to_string(),
            "offset of database/sql.Tx.db unknown for go1.28.0/amd64 (...)".to_string(),
        ];
        let line = refusal_line(std::path::Path::new("/srv/app"), "db.sql", &reasons);
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with("/srv/app: db.sql: offset of database/sql.Stmt.query unknown"),
            "{line}"
        );
        assert!(
            line.contains("(and 1 more: 'goprobe inspect' lists them)"),
            "{line}"
        );
        assert!(line.contains("'record --offsets FILE'"), "{line}");
        assert!(line.len() < 500, "{} chars: {line}", line.len());
    }
}
