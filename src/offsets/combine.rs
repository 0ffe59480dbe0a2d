//! Combining the sources' answers for one field. Each source gives one of
//! three answers: known (offset and sizes), absent (the source describes the
//! type and it has no such field: authoritative for that version) or
//! unavailable (the source cannot say). The first known answer wins only
//! when every other known answer is the same; a known answer against another
//! source's "absent", or two different values, is a conflict, refused with
//! both values named.

use super::{Resolved, Source, TableProvenance};

/// One source's answer.
#[derive(Debug, Clone)]
pub(super) enum Answer {
    Known {
        offset: u64,
        size: Option<u64>,
        type_size: Option<u64>,
        table: Option<TableProvenance>,
    },
    /// The source has the type and says the field does not exist.
    Absent(String),
    Unavailable(String),
}

/// A field nobody can answer (or that is refused), with why.
pub(super) fn unknown(field: &str, source: Source, reason: String) -> Resolved {
    Resolved {
        field: field.to_string(),
        offset: None,
        size: None,
        type_size: None,
        source,
        checked: Vec::new(),
        table: None,
        reason: Some(reason),
        optional: false,
    }
}

/// Combine the sources' answers (in order of preference): the first known
/// answer, provided every other known answer agrees and no source that has
/// the type says the field does not exist. `strict`: the binary's Go version,
/// when a table answer for a release the table was not generated from must
/// be refused.
pub(super) fn combine(field: &str, answers: &[(Source, Answer)], strict: Option<&str>) -> Resolved {
    // The first known answer, checked against every other.
    let Some((
        source,
        Answer::Known {
            offset,
            size,
            type_size,
            table,
        },
    )) = answers
        .iter()
        .find(|(_, a)| matches!(a, Answer::Known { .. }))
        .cloned()
    else {
        // Nothing known: an authoritative "no such field" first, else every reason.
        if let Some((_, Answer::Absent(why))) =
            answers.iter().find(|(_, a)| matches!(a, Answer::Absent(_)))
        {
            return unknown(field, Source::Unknown, why.clone());
        }
        let reasons: Vec<&str> = answers
            .iter()
            .filter_map(|(_, a)| match a {
                Answer::Unavailable(why) => Some(why.as_str()),
                _ => None,
            })
            .collect();
        return unknown(field, Source::Unknown, reasons.join(", "));
    };
    let mut checked = Vec::new();
    let mut table_prov = table;
    let mut conflicts = Vec::new();
    let shown = |o: u64, s: Option<u64>, ts: Option<u64>| {
        let mut t = format!("offset {o}");
        if let Some(s) = s {
            t.push_str(&format!(" size {s}"));
        }
        if let Some(ts) = ts {
            t.push_str(&format!(" (struct {ts})"));
        }
        t
    };
    for (other, a) in answers {
        if *other == source {
            continue;
        }
        match a {
            Answer::Known {
                offset: o,
                size: s,
                type_size: ts,
                table: tp,
            } => {
                let same_size = size.is_none() || s.is_none() || size == *s;
                let same_ts = type_size.is_none() || ts.is_none() || type_size == *ts;
                if *o == offset && same_size && same_ts {
                    checked.push(*other);
                    if table_prov.is_none() {
                        table_prov = tp.clone();
                    }
                } else {
                    conflicts.push(format!(
                        "{source} says {}, {other} says {}",
                        shown(offset, size, type_size),
                        shown(*o, *s, *ts)
                    ));
                }
            }
            Answer::Absent(why) => conflicts.push(format!(
                "{source} says {}, {other} says {why}",
                shown(offset, size, type_size)
            )),
            Answer::Unavailable(_) => {}
        }
    }
    if !conflicts.is_empty() {
        return unknown(
            field,
            Source::Conflict,
            format!("sources disagree: {}", conflicts.join("; ")),
        );
    }
    if let Some(go) = strict
        && source == Source::Table
        && let Some(tp) = table_prov.as_ref().filter(|t| !t.exact)
    {
        return unknown(
            field,
            Source::Unknown,
            format!(
                "only the offsets table knows it, from {} releases {} but not {} (--strict-offsets)",
                tp.key,
                tp.verified.join(" "),
                go
            ),
        );
    }
    Resolved {
        field: field.to_string(),
        offset: Some(offset),
        size,
        type_size,
        source,
        checked,
        table: table_prov,
        reason: None,
        optional: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(offset: u64, size: u64) -> Answer {
        Answer::Known {
            offset,
            size: Some(size),
            type_size: Some(248),
            table: None,
        }
    }

    #[test]
    fn sources_are_cross_checked() {
        let f = "net/http.Request.ctx";
        let un = || Answer::Unavailable("stripped (no DWARF)".into());
        // Agreement: the first source answers, the others are listed as checks.
        let r = combine(
            f,
            &[
                (Source::Dwarf, known(232, 16)),
                (Source::Rtype, known(232, 16)),
                (Source::Table, un()),
            ],
            None,
        );
        assert_eq!((r.offset, r.source), (Some(232), Source::Dwarf));
        assert_eq!(r.checked, [Source::Rtype]);
        // Disagreement: an error naming both values, no offset.
        let r = combine(
            f,
            &[
                (Source::Dwarf, un()),
                (Source::Rtype, known(232, 16)),
                (Source::Table, known(240, 16)),
            ],
            None,
        );
        assert_eq!((r.offset, r.source), (None, Source::Conflict));
        assert_eq!(
            r.reason.as_deref(),
            Some(
                "sources disagree: rtype says offset 232 size 16 (struct 248), table says offset 240 size 16 (struct 248)"
            )
        );
        // A source that has the type but not the field contradicts one that has it.
        let r = combine(
            f,
            &[
                (
                    Source::Dwarf,
                    Answer::Absent("DWARF: type T has no field ctx".into()),
                ),
                (Source::Rtype, known(232, 16)),
                (Source::Table, un()),
            ],
            None,
        );
        assert_eq!(r.source, Source::Conflict);
        assert!(
            r.reason
                .unwrap()
                .contains("dwarf says DWARF: type T has no field ctx")
        );
        // Nothing known: every reason, or the authoritative absence alone.
        let r = combine(f, &[(Source::Dwarf, un()), (Source::Table, un())], None);
        assert_eq!(
            r.reason.as_deref(),
            Some("stripped (no DWARF), stripped (no DWARF)")
        );
        let r = combine(
            f,
            &[
                (Source::Dwarf, un()),
                (Source::Rtype, Answer::Absent("no field".into())),
            ],
            None,
        );
        assert_eq!(
            (r.source, r.reason.as_deref()),
            (Source::Unknown, Some("no field"))
        );
        // A size one source does not know is no disagreement.
        let r = combine(
            f,
            &[
                (
                    Source::Dwarf,
                    Answer::Known {
                        offset: 232,
                        size: None,
                        type_size: None,
                        table: None,
                    },
                ),
                (Source::Rtype, known(232, 16)),
            ],
            None,
        );
        assert_eq!(
            (r.source, r.checked.as_slice()),
            (Source::Dwarf, &[Source::Rtype][..])
        );
    }
}
