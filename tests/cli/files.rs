//! Output files never lose data: `record -o` and `convert -o` leave an
//! existing file alone unless the work really starts (or succeeds);
//! `--append`; `lost` lines in-band; what recordings leave out (secrets).
//! Offline: `record` reads `goprobe attach` lines on stdin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use goprobe::span::AttrValue;

use crate::spans;

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("goprobe-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch dir");
        Scratch(d)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }
    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run goprobe with `stdin`; (exit code, stdout, stderr).
fn goprobe(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn goprobe");
    let mut input = child.stdin.take().expect("stdin");
    // The command may stop reading early (a bad first line).
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const OLD: &str = "yesterday's recording\n";

/// `goprobe attach` output: a target, a clock, and `events` (JSON objects
/// for the `fields` of http.server events, one request each) and a loss.
fn attach_stream(events: &[&str], lost: Option<(&str, u64)>) -> String {
    let mut s = String::from(
        "{\"type\":\"target\",\"path\":\"/srv/app\",\"pid\":7,\"go_version\":\"go1.26.6\",\"service_name\":\"app\"}\n\
         {\"type\":\"clock\",\"realtime_minus_monotonic_ns\":1700000000000000000,\"uncertainty_ns\":10}\n",
    );
    for (i, f) in events.iter().enumerate() {
        s.push_str(&format!(
            "{{\"type\":\"event\",\"probe\":\"http.server\",\"pid\":7,\"tid\":7,\"goroutine\":{g},\"start_ns\":{a},\"end_ns\":{b},\"fields\":{f}}}\n",
            g = 10 + i,
            a = 1000 * (i + 1),
            b = 1000 * (i + 1) + 500,
        ));
    }
    if let Some((reason, n)) = lost {
        s.push_str(&format!(
            "{{\"type\":\"lost\",\"reason\":\"{reason}\",\"count\":{n},\"at_ns\":9000}}\n"
        ));
    }
    s
}

const HELLO: &str =
    r#"{"method":"GET","path":"/hello","proto":"HTTP/1.1","tls":false,"status":200}"#;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).expect("read")
}

/// A recording that never starts leaves the existing file as it was.
#[test]
fn record_leaves_the_file_alone_when_the_recording_does_not_start() {
    let d = Scratch::new("norecord");
    let f = d.file("spans.ndjson", OLD);
    let path = f.to_str().expect("utf-8");
    // A dead pid (the mistyped-pid case of the issue).
    let (code, _, err) = goprobe(&["record", "--pid", "999999", "-o", path], "");
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("goprobe: "), "{err}");
    assert_eq!(read(&f), OLD);
    // Input that is not attach's.
    let (code, _, err) = goprobe(&["record", "-o", path], "not json\n");
    assert_eq!(code, 2, "{err}");
    assert_eq!(read(&f), OLD);
    assert_eq!(d.entries(), ["spans.ndjson"]);
    // A directory that does not exist: said before anything is attached.
    let (code, _, err) = goprobe(&["record", "--pid", "1", "-o", "/nonexistent/dir/x"], "");
    assert_eq!(code, 2);
    assert!(err.contains("cannot create /nonexistent/dir/x"), "{err}");
}

/// Once it starts, the file is replaced; with --append, added to (after a
/// cut-off last line, on a line of its own).
#[test]
fn record_replaces_once_started_and_appends() {
    let d = Scratch::new("append");
    let f = d.file("spans.ndjson", OLD);
    let path = f.to_str().expect("utf-8");
    let input = attach_stream(&[HELLO, HELLO], None);
    let (code, _, err) = goprobe(&["record", "-o", path], &input);
    assert_eq!(code, 0, "{err}");
    assert_eq!(spans(&read(&f)).len(), 2);
    let (code, _, err) = goprobe(&["record", "-o", path, "--append"], &input);
    assert_eq!(code, 0, "{err}");
    assert_eq!(spans(&read(&f)).len(), 4);
    // A recording killed mid-line by a power cut: appending starts anew.
    let cut = d.file("cut.ndjson", "{\"trace_id\":\"0af7");
    let (code, _, err) = goprobe(
        &["record", "-o", cut.to_str().expect("utf-8"), "--append"],
        &input,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("ends in a cut-off line"), "{err}");
    let text = read(&cut);
    assert!(text.starts_with("{\"trace_id\":\"0af7\n"), "{text}");
    assert_eq!(
        spans(&text.lines().skip(1).collect::<Vec<_>>().join("\n")).len(),
        2
    );
    let (code, _, err) = goprobe(&["record", "--append"], &input);
    assert_eq!(code, 2);
    assert!(err.contains("--output"), "{err}");
}

/// `convert -o FILE` replaces FILE only with a complete conversion, keeps
/// its permissions, and leaves no temporary file behind.
#[test]
fn convert_replaces_only_on_success() {
    use std::os::unix::fs::PermissionsExt;
    let d = Scratch::new("convert");
    let out = d.file("out.json", OLD);
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let o = out.to_str().expect("utf-8");
    let bad = d.file("bad.ndjson", "garbage\n");
    let (code, _, err) = goprobe(
        &[
            "convert",
            "--to",
            "otlp-json",
            "-o",
            o,
            bad.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 2, "{err}");
    assert_eq!(read(&out), OLD);
    let (code, _, _) = goprobe(
        &["convert", "--to", "chrome", "-o", o, "/nonexistent.ndjson"],
        "",
    );
    assert_eq!(code, 2);
    assert_eq!(read(&out), OLD);
    assert_eq!(d.entries(), ["bad.ndjson", "out.json"]);
    // A recording, then a good conversion.
    let rec = d.0.join("rec.ndjson");
    let (code, _, err) = goprobe(
        &["record", "-o", rec.to_str().unwrap()],
        &attach_stream(&[HELLO], Some(("ringbuf_full", 3))),
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = goprobe(
        &[
            "convert",
            "--to",
            "otlp-json",
            "-o",
            o,
            rec.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(read(&out).starts_with("{\"resourceSpans\""));
    let mode = std::fs::metadata(&out).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert_eq!(d.entries(), ["bad.ndjson", "out.json", "rec.ndjson"]);
    // The recording's losses are said by convert too.
    assert!(
        err.contains("the recording says: lost 3 (ringbuf_full 3"),
        "{err}"
    );
}

/// Losses are lines of their own in the recording, and in the summary with
/// what each reason means; a cut-off last line is skipped, not fatal.
#[test]
fn losses_are_in_band_and_summed_up() {
    let input = attach_stream(&[HELLO], Some(("ringbuf_full", 2)))
        + "{\"type\":\"lost\",\"reason\":\"unpaired_return\",\"count\":1}\n";
    let (code, out, err) = goprobe(&["record"], &input);
    assert_eq!(code, 0, "{err}");
    let lost: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with("{\"type\":\"lost\""))
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lost.len(), 2, "{out}");
    assert_eq!(lost[0]["reason"], "ringbuf_full");
    assert_eq!(lost[0]["effect"], "span_lost");
    assert_eq!(lost[0]["count"], 2);
    // The clock line turns the monotonic stamp into wall time.
    assert_eq!(lost[0]["time_unix_nano"], 1_700_000_000_000_009_000u64);
    assert_eq!(lost[1]["effect"], "not_lost");
    assert!(err.contains("2 events lost"), "{err}");
    assert!(
        err.contains("lost 2 (ringbuf_full 2, inflight_map_full 0, prog_run_missed 0); incomplete 0 (read_failed 0, lineage_lost 0); not lost: unpaired_return 1"),
        "{err}"
    );
    // convert: a cut-off last line is reported and skipped.
    let cut = format!("{out}{{\"trace_id\":\"0af");
    let (code, _, err) = goprobe(&["convert", "--to", "text"], &cut);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("cut off"), "{err}");
}

/// No secrets in recordings by default: sensitive query parameters and
/// credentials are redacted, SQL literals become `?` unless --raw-queries.
#[test]
fn recordings_leave_secrets_out() {
    let server = r#"{"method":"GET","path":"/api","query":"page=2&access_token=abc123&X-Goog-Signature=f00","proto":"HTTP/1.1","tls":true,"status":503}"#;
    let input = attach_stream(&[server], None)
        + "{\"type\":\"event\",\"probe\":\"db.sql\",\"pid\":7,\"tid\":7,\"goroutine\":99,\"start_ns\":1,\"end_ns\":2,\"fields\":{\"function\":\"database/sql.(*DB).queryDC\",\"query\":\"SELECT id FROM users WHERE email = 'bob@example.com' AND pin = 1234\",\"db_system\":\"postgresql\"}}\n"
        + "{\"type\":\"event\",\"probe\":\"http.client\",\"pid\":7,\"tid\":7,\"goroutine\":98,\"start_ns\":1,\"end_ns\":2,\"fields\":{\"method\":\"GET\",\"scheme\":\"https\",\"host\":\"api.example\",\"path\":\"/v1\",\"query\":\"key=s3cr3t&q=go\",\"userinfo\":true,\"status\":404}}\n";
    let (code, out, err) = goprobe(&["record"], &input);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("abc123") && !out.contains("f00") && !out.contains("s3cr3t"),
        "{out}"
    );
    assert!(
        !out.contains("bob@example.com") && !out.contains("1234"),
        "{out}"
    );
    let all = spans(&out);
    let by = |n: &str| {
        all.iter()
            .find(|s| s.name == n)
            .unwrap_or_else(|| panic!("{n}: {out}"))
    };
    let srv = by("GET");
    assert_eq!(
        srv.attributes["url.query"],
        AttrValue::from("page=2&access_token=REDACTED&X-Goog-Signature=REDACTED")
    );
    assert_eq!(srv.attributes["url.scheme"], AttrValue::from("https"));
    assert_eq!(srv.attributes["error.type"], AttrValue::from("503"));
    let db = by("SELECT users");
    assert_eq!(
        db.attributes["db.query.text"],
        AttrValue::from("SELECT id FROM users WHERE email = ? AND pin = ?")
    );
    let client = all
        .iter()
        .find(|s| s.attributes.contains_key("url.full"))
        .expect("client span");
    assert_eq!(
        client.attributes["url.full"],
        AttrValue::from("https://REDACTED:REDACTED@api.example/v1?key=REDACTED&q=go")
    );
    assert_eq!(client.attributes["error.type"], AttrValue::from("404"));
    // --raw-queries keeps the query text, nothing else.
    let (code, out, err) = goprobe(&["record", "--raw-queries"], &input);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("bob@example.com"));
    assert!(!out.contains("abc123") && !out.contains("s3cr3t"));
}
