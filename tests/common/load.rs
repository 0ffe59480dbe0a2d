//! Load for fault and volume tests: keep-alive HTTP/1.1 requests on
//! loopback from several connections at once, every response kept in a
//! normalised form (status line, headers but `Date`, body) so that two runs
//! can be compared byte for byte.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// What a load run saw.
#[derive(Debug, Default)]
pub struct Load {
    /// Requests sent and answered.
    pub answered: u64,
    /// Distinct normalised responses per path, with how often each came.
    pub responses: BTreeMap<String, BTreeMap<Vec<u8>, u64>>,
    pub elapsed: Duration,
}

impl Load {
    /// The one response each path got, when every answer to it was the same.
    pub fn uniform(&self) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let mut out = BTreeMap::new();
        for (path, seen) in &self.responses {
            if seen.len() != 1 {
                return Err(format!(
                    "{path}: {} different responses: {seen:?}",
                    seen.len()
                ));
            }
            out.insert(
                path.clone(),
                seen.keys().next().cloned().unwrap_or_default(),
            );
        }
        Ok(out)
    }
}

/// Send `n` GETs, cycling through `paths`, over `conns` keep-alive
/// connections at once. Panics on a connection error or a response it
/// cannot read (the server must answer every request).
pub fn run(addr: &str, paths: &[&str], n: u64, conns: u64) -> Load {
    let started = Instant::now();
    let per = n.div_ceil(conns);
    let handles: Vec<_> = (0..conns)
        .map(|c| {
            let addr = addr.to_owned();
            let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
            let count = per.min(n.saturating_sub(c * per));
            std::thread::spawn(move || one_connection(&addr, &paths, c, count))
        })
        .collect();
    let mut load = Load::default();
    for h in handles {
        let part = h.join().expect("load thread");
        load.answered += part.answered;
        for (path, seen) in part.responses {
            let mine = load.responses.entry(path).or_default();
            for (resp, k) in seen {
                *mine.entry(resp).or_default() += k;
            }
        }
    }
    load.elapsed = started.elapsed();
    load
}

fn one_connection(addr: &str, paths: &[String], offset: u64, count: u64) -> Load {
    let mut load = Load::default();
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    for i in 0..count {
        let path = &paths[((offset + i) % paths.len() as u64) as usize];
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("send");
        let resp = read_response(&mut reader).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        *load
            .responses
            .entry(path.clone())
            .or_default()
            .entry(resp)
            .or_default() += 1;
        load.answered += 1;
    }
    load
}

/// One HTTP/1.1 response with a Content-Length body, normalised: the
/// `Date` header (the clock, not the server's behaviour) is left out.
fn read_response(r: &mut impl BufRead) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut length = None;
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if !lower.starts_with("date:") {
            out.extend_from_slice(line.as_bytes());
        }
        if line == "\r\n" {
            break;
        }
    }
    let len = length.ok_or("no Content-Length")?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(|e| e.to_string())?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Peak resident memory (VmHWM) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
