//! What goprobe could not record, and what each reason means for a
//! recording: so that "did I miss anything?" has an exact answer.
//!
//! Reasons (the `reason` of the stream's `lost` lines, and of the `lost`
//! lines `record` writes in-band among its spans):
//! * `ringbuf_full`: a finished call was dropped, its family's ring buffer
//!   was full (the reader fell behind): a span is missing;
//! * `inflight_map_full`: a call's entry could not be stored: its span is missing;
//! * `prog_run_missed`: the kernel skipped one of goprobe's programs
//!   (`bpf_prog_info.recursion_misses`): a span may be missing;
//! * `read_failed`: a read of the target's memory failed: a span was written
//!   with some of its fields missing;
//! * `lineage_lost`: a goroutine creation goprobe tracks to nest spans was
//!   dropped (its ring buffer or map full, or its program skipped): no span
//!   is missing, but a call made on that goroutine may be written as a root
//!   instead of under the span that started it;
//! * `unpaired_return`: a return whose entry was never seen. Right after
//!   attaching these are calls that were already running: the recording did
//!   not cover their start, and no call that started while recording is lost.
//!
//! The kernel keeps no missed count for uprobes themselves (its
//! `bpf_link_info` has one for kprobes only): a uprobe always runs its
//! program, so the program counters are the whole story.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const RINGBUF_FULL: &str = "ringbuf_full";
pub const INFLIGHT_MAP_FULL: &str = "inflight_map_full";
pub const PROG_RUN_MISSED: &str = "prog_run_missed";
pub const READ_FAILED: &str = "read_failed";
pub const LINEAGE_LOST: &str = "lineage_lost";
pub const UNPAIRED_RETURN: &str = "unpaired_return";

/// What a reason means for the spans of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// A call happened and has no span.
    SpanLost,
    /// A span was written, with some fields missing.
    SpanIncomplete,
    /// Nothing that happened while recording is missing (a call already
    /// running when the probes attached returned).
    NotLost,
}

impl Effect {
    /// The name `lost` lines and metrics give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::SpanLost => "span_lost",
            Effect::SpanIncomplete => "span_incomplete",
            Effect::NotLost => "not_lost",
        }
    }
}

/// The effect of `reason`; a reason this goprobe does not know (a newer
/// one's) counts as lost spans, the safe reading.
pub fn effect(reason: &str) -> Effect {
    match reason {
        READ_FAILED | LINEAGE_LOST => Effect::SpanIncomplete,
        UNPAIRED_RETURN => Effect::NotLost,
        _ => Effect::SpanLost,
    }
}

/// One line of a recording that is not a span:
/// `{"type":"lost","reason":"ringbuf_full","effect":"span_lost","count":3,"time_unix_nano":N}`,
/// written when the count grew (`count` is the growth since the previous
/// line for that reason; `time_unix_nano` when goprobe noticed it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LostLine {
    #[serde(rename = "type")]
    pub ty: LostTag,
    pub reason: String,
    pub effect: Effect,
    pub count: u64,
    pub time_unix_nano: u64,
}

/// The `type` of a [`LostLine`]: always `lost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LostTag {
    Lost,
}

impl LostLine {
    pub fn new(reason: &str, count: u64, time_unix_nano: u64) -> LostLine {
        LostLine {
            ty: LostTag::Lost,
            reason: reason.to_owned(),
            effect: effect(reason),
            count,
            time_unix_nano,
        }
    }

    /// A line of a recording as a `lost` line; `None` when it is not one
    /// (a span). Cheap for spans: they never start with `{"type"`.
    pub fn parse(line: &[u8]) -> Option<Result<LostLine, serde_json::Error>> {
        let start = line.iter().position(|b| !b.is_ascii_whitespace())?;
        let rest = &line[start..];
        let tagged = rest.starts_with(b"{\"type\"");
        tagged.then(|| serde_json::from_slice(rest))
    }
}

/// Totals by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Losses(BTreeMap<String, u64>);

impl Losses {
    pub fn add(&mut self, reason: &str, count: u64) {
        *self.0.entry(reason.to_owned()).or_default() += count;
    }

    /// Add every count of `other`.
    pub fn merge(&mut self, other: &Losses) {
        for (reason, count) in &other.0 {
            *self.0.entry(reason.clone()).or_default() += count;
        }
    }

    /// The total of the reasons with this effect.
    pub fn total(&self, effect_: Effect) -> u64 {
        self.0
            .iter()
            .filter(|(r, _)| effect(r) == effect_)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn get(&self, reason: &str) -> u64 {
        self.0.get(reason).copied().unwrap_or(0)
    }

    /// Every reason seen, with its total.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(r, n)| (r.as_str(), *n))
    }

    /// The accounting for a summary: every reason goprobe counts, zeros
    /// included, grouped by what it means:
    /// `lost 0 (ringbuf_full 0, inflight_map_full 0, prog_run_missed 0);
    /// incomplete 0 (read_failed 0, lineage_lost 0); not lost: 0 unpaired_return (...)`.
    pub fn accounting(&self) -> String {
        let mut groups: BTreeMap<Effect, Vec<String>> = BTreeMap::new();
        let known = [
            RINGBUF_FULL,
            INFLIGHT_MAP_FULL,
            PROG_RUN_MISSED,
            READ_FAILED,
            LINEAGE_LOST,
            UNPAIRED_RETURN,
        ];
        for r in known.iter().copied().chain(
            self.0
                .keys()
                .map(String::as_str)
                .filter(|r| !known.contains(r)),
        ) {
            groups
                .entry(effect(r))
                .or_default()
                .push(format!("{r} {}", self.get(r)));
        }
        let list = |e: Effect| groups.get(&e).map(|v| v.join(", ")).unwrap_or_default();
        format!(
            "lost {} ({}); incomplete {} ({}); not lost: {} (returns of calls already running when the probes attached)",
            self.total(Effect::SpanLost),
            list(Effect::SpanLost),
            self.total(Effect::SpanIncomplete),
            list(Effect::SpanIncomplete),
            list(Effect::NotLost),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effects_and_accounting() {
        assert_eq!(effect(RINGBUF_FULL), Effect::SpanLost);
        assert_eq!(effect("newer_reason"), Effect::SpanLost);
        assert_eq!(effect(READ_FAILED), Effect::SpanIncomplete);
        assert_eq!(effect(LINEAGE_LOST), Effect::SpanIncomplete);
        assert_eq!(effect(UNPAIRED_RETURN), Effect::NotLost);
        let mut l = Losses::default();
        l.add(RINGBUF_FULL, 3);
        l.add(RINGBUF_FULL, 2);
        l.add(UNPAIRED_RETURN, 1);
        l.add("newer_reason", 4);
        assert_eq!(l.total(Effect::SpanLost), 9);
        assert_eq!(
            l.accounting(),
            "lost 9 (ringbuf_full 5, inflight_map_full 0, prog_run_missed 0, newer_reason 4); \
             incomplete 0 (read_failed 0, lineage_lost 0); not lost: unpaired_return 1 \
             (returns of calls already running when the probes attached)"
        );
    }

    #[test]
    fn lost_lines_round_trip_and_are_told_from_spans() {
        let l = LostLine::new(RINGBUF_FULL, 3, 17);
        let text = serde_json::to_string(&l).unwrap();
        assert_eq!(
            text,
            r#"{"type":"lost","reason":"ringbuf_full","effect":"span_lost","count":3,"time_unix_nano":17}"#
        );
        assert_eq!(LostLine::parse(text.as_bytes()).unwrap().unwrap(), l);
        assert!(LostLine::parse(br#"{"trace_id":"00"}"#).is_none());
        assert!(LostLine::parse(b"  ").is_none());
        assert!(LostLine::parse(br#"{"type":"other"}"#).unwrap().is_err());
    }
}
