//! Spans parsed and encoded on worker threads, handed on in input order:
//! for the converters whose work on one span does not depend on the spans
//! before it (the OTLP encodings), which spend most of their time parsing
//! span JSON.
//!
//! The calling thread reads the input in blocks of whole lines and numbers
//! their lines; a worker parses each line of a block (with the reader's own
//! [`parse_line`], so the same records, errors and losses) and encodes its
//! span into the block's output buffer; the calling thread takes the blocks
//! back in the order it read them and hands each span's encoding on, and
//! counts passed and bad lines as [`SpanReader::for_each_view`] does. At
//! most [`IN_FLIGHT`] blocks are out at once, so memory stays bounded
//! whatever the input's length, and an error stops the conversion at the
//! line it names: nothing after it is handed on.

use std::collections::VecDeque;
use std::io::{self, BufRead};
use std::ops::Range;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Mutex, PoisonError};
use std::thread;

use super::reader::{Line, ReadError, RecordView, SpanReader, parse_line};
use super::view::SpanView;
use crate::loss::Losses;
use crate::sample::CpuSample;

/// Bytes of input per block (a few hundred spans); a longer line makes
/// its block longer.
const BLOCK: usize = 1 << 18;
/// Blocks read ahead of the one being handed on.
const IN_FLIGHT: usize = 6;
/// Worker threads at most.
const MAX_WORKERS: usize = 4;

/// The per-span work a worker does; one encoder per worker thread, so it
/// may keep state (caches) across spans.
pub trait Encode: Send {
    /// What the calling thread gets beside the encoded bytes.
    type Out: Send;
    /// Encode `span`, appending its bytes to `out`.
    fn encode(&mut self, span: &SpanView<'_>, out: &mut Vec<u8>) -> Self::Out;
    /// A new block starts: its spans are handed on after those of a block
    /// another worker may have had, so nothing may refer to the spans
    /// before it.
    fn start_block(&mut self) {}
}

/// A record handed to the calling thread, in input order.
pub enum Handed<'a, T> {
    /// What the encoder returned for a span, and the bytes it wrote.
    Span(T, &'a [u8]),
    Sample(CpuSample),
}

/// What one line of a block came to.
enum Item<T> {
    /// A span and the range of the block's output its encoding took.
    Span(T, Range<usize>),
    Sample(CpuSample),
    /// A record of a type this goprobe does not know.
    Passed,
    /// With its line number and whether it was the input's last, cut off.
    Bad(ReadError, u64, bool),
}

/// A block going to a worker and coming back worked on.
struct Job<T> {
    /// The block is `input[..len]`; the rest is room to read into, kept
    /// initialized from one block to the next.
    input: Vec<u8>,
    len: usize,
    first_line: u64,
    out: Vec<u8>,
    items: Vec<Item<T>>,
    losses: Losses,
    reply: Option<SyncSender<Job<T>>>,
}

impl<T> Default for Job<T> {
    fn default() -> Self {
        Job {
            input: Vec::new(),
            len: 0,
            first_line: 0,
            out: Vec::new(),
            items: Vec::new(),
            losses: Losses::default(),
            reply: None,
        }
    }
}

/// Worker threads for this machine: the calling thread keeps one core
/// busy with reading and writing, and the parsing is spread over the rest.
pub fn workers() -> usize {
    thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS)
}

/// Parse and encode every span of `reader` on `workers` threads (each with
/// an encoder from `new_encoder`), calling `consume` on each span's result
/// and bytes in input order on this thread. Records other than spans are
/// passed by and bad lines counted (or returned) as
/// [`SpanReader::for_each_view`] does.
pub fn for_each_encoded<R, E, F>(
    reader: &mut SpanReader<R>,
    workers: usize,
    new_encoder: impl Fn() -> E + Sync,
    mut consume: impl FnMut(E::Out, &[u8]) -> Result<(), F>,
) -> Result<(), F>
where
    R: BufRead,
    E: Encode,
    F: From<ReadError>,
{
    for_each_handed(reader, workers, new_encoder, false, |handed| match handed {
        Handed::Span(out, bytes) => consume(out, bytes),
        // Passed by before they get here.
        Handed::Sample(_) => Ok(()),
    })
}

/// [`for_each_encoded`], CPU samples handed on too (when `samples`; else
/// passed by) as [`SpanReader::for_each_record`] does.
pub fn for_each_handed<R, E, F>(
    reader: &mut SpanReader<R>,
    workers: usize,
    new_encoder: impl Fn() -> E + Sync,
    samples: bool,
    mut consume: impl FnMut(Handed<'_, E::Out>) -> Result<(), F>,
) -> Result<(), F>
where
    R: BufRead,
    E: Encode,
    F: From<ReadError>,
{
    let (jobs, queue) = mpsc::sync_channel::<Job<E::Out>>(IN_FLIGHT);
    let queue = Mutex::new(queue);
    thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                let mut encoder = new_encoder();
                loop {
                    // The lock is only held while waiting for the next job.
                    let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(mut job) = next else { return };
                    work(&mut job, &mut encoder);
                    if let Some(reply) = job.reply.take() {
                        // The calling thread stopped early: nobody waits.
                        let _ = reply.send(job);
                    }
                }
            });
        }
        let result = hand_on(reader, &jobs, samples, &mut consume);
        // Closing the queue ends the workers, which the scope waits for.
        drop(jobs);
        result
    })
}

/// The calling thread's side: read blocks, send them out, take them back
/// in order.
fn hand_on<R: BufRead, T, F: From<ReadError>>(
    reader: &mut SpanReader<R>,
    jobs: &SyncSender<Job<T>>,
    samples: bool,
    consume: &mut impl FnMut(Handed<'_, T>) -> Result<(), F>,
) -> Result<(), F> {
    let stopped = || ReadError::Io(io::Error::other("a span-reading thread stopped"));
    let mut pending: VecDeque<Receiver<Job<T>>> = VecDeque::with_capacity(IN_FLIGHT);
    let mut spare: Vec<Job<T>> = Vec::new();
    let mut carry = Vec::new();
    let mut lines = reader.line_number();
    let mut at_end = false;
    // A read error comes after the lines read before it.
    let mut read_error = None;
    loop {
        while !at_end && pending.len() < IN_FLIGHT {
            let mut job = spare.pop().unwrap_or_default();
            match read_block(reader.input_mut(), &mut carry, &mut job.input) {
                Ok((len, end)) => (job.len, at_end) = (len, end),
                Err(err) => {
                    read_error = Some(err);
                    (job.len, at_end) = (0, true);
                }
            }
            if job.len == 0 {
                spare.push(job);
                break;
            }
            job.first_line = lines + 1;
            lines += count_lines(&job.input[..job.len]);
            let (reply, back) = mpsc::sync_channel(1);
            job.reply = Some(reply);
            jobs.send(job).map_err(|_| stopped())?;
            pending.push_back(back);
        }
        let Some(back) = pending.pop_front() else {
            break;
        };
        let mut job = back.recv().map_err(|_| stopped())?;
        for item in job.items.drain(..) {
            match item {
                Item::Span(out, range) => consume(Handed::Span(out, &job.out[range]))?,
                Item::Sample(s) if samples => consume(Handed::Sample(s))?,
                Item::Sample(_) | Item::Passed => reader.pass(),
                Item::Bad(err, line, cut) => reader.skip_at(err, line, cut)?,
            }
        }
        reader.losses_mut().merge(&job.losses);
        job.losses = Losses::default();
        if job.input.len() > 4 * BLOCK {
            // Grown for a long line: not kept.
            job.input = Vec::new();
        }
        job.out.clear();
        spare.push(job);
    }
    reader.set_line_number(lines);
    match read_error {
        Some(err) => Err(ReadError::Io(err).into()),
        None => Ok(()),
    }
}

/// A worker's side: every line of the block.
fn work<E: Encode>(job: &mut Job<E::Out>, encoder: &mut E) {
    encoder.start_block();
    let mut line = job.first_line;
    let mut rest = &job.input[..job.len];
    while !rest.is_empty() {
        let (text, next) = match memchr::memchr(b'\n', rest) {
            Some(end) => rest.split_at(end + 1),
            None => (rest, &[][..]),
        };
        // Only the input's last line can lack its newline.
        let cut = text.last() != Some(&b'\n');
        match parse_line(text, line, &mut job.losses) {
            Line::Blank => {}
            Line::Record(RecordView::Span(view)) => {
                let start = job.out.len();
                let out = encoder.encode(&view, &mut job.out);
                job.items.push(Item::Span(out, start..job.out.len()));
            }
            Line::Record(RecordView::Sample(s)) => job.items.push(Item::Sample(s)),
            Line::Other => job.items.push(Item::Passed),
            Line::Bad(err) => job.items.push(Item::Bad(err, line, cut)),
        }
        line += 1;
        rest = next;
    }
}

/// Lines in a block: its newlines, and a last line without one.
fn count_lines(block: &[u8]) -> u64 {
    let newlines = memchr::memchr_iter(b'\n', block).count() as u64;
    newlines + u64::from(block.last().is_some_and(|&b| b != b'\n'))
}

/// Read a block into `block`: `carry` (the start of a line the last
/// block cut), then input until [`BLOCK`] bytes are there, ended after the
/// last newline; what follows it is the next `carry`. Input is read
/// straight into the block (a `BufReader` passes large reads through).
/// Returns the block's length, and true when the input ended: the block
/// then holds the rest of it.
fn read_block<R: BufRead>(
    input: &mut R,
    carry: &mut Vec<u8>,
    block: &mut Vec<u8>,
) -> io::Result<(usize, bool)> {
    if block.len() < BLOCK.max(carry.len()) {
        block.resize(BLOCK.max(carry.len()), 0);
    }
    let mut len = carry.len();
    block[..len].copy_from_slice(carry);
    carry.clear();
    // Where the search for the last newline starts: a line longer than
    // the block has none before it.
    let mut scanned = 0;
    loop {
        if len == block.len() {
            if let Some(at) = memchr::memrchr(b'\n', &block[scanned..len]) {
                let end = scanned + at + 1;
                carry.extend_from_slice(&block[end..len]);
                return Ok((end, false));
            }
            scanned = len;
            block.resize(len + BLOCK, 0);
        }
        let n = match input.read(&mut block[len..]) {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if n == 0 {
            return Ok((len, true));
        }
        len += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::reader::tests::line;

    /// Span names, to check order and content.
    struct Names;
    impl Encode for Names {
        type Out = ();
        fn encode(&mut self, span: &SpanView<'_>, out: &mut Vec<u8>) {
            out.extend_from_slice(span.name.as_bytes());
        }
    }

    fn names(input: &[u8], capacity: usize, skip: bool) -> (Result<Vec<String>, ReadError>, u64) {
        let buffered = io::BufReader::with_capacity(capacity, input);
        let mut r = SpanReader::new(buffered, skip);
        let mut names = Vec::new();
        let result = for_each_encoded(
            &mut r,
            2,
            || Names,
            |(), bytes| {
                names.push(String::from_utf8_lossy(bytes).into_owned());
                Ok::<(), ReadError>(())
            },
        );
        (result.map(|()| names), r.skipped())
    }

    #[test]
    fn hands_spans_on_in_order_across_blocks() {
        // Enough lines for several blocks, one of them longer than a block.
        let long = "x".repeat(BLOCK + 100);
        let mut input = String::new();
        let mut expected = Vec::new();
        for i in 0..3000u32 {
            let name = if i == 1234 {
                long.clone()
            } else {
                format!("n{i}")
            };
            input.push_str(&line(1, (i % 250 + 1) as u8, None, &name, 1, 2));
            input.push('\n');
            if i % 100 == 0 {
                input
                    .push_str("{\"type\":\"cpu_sample\",\"time_unix_nano\":1,\"cpu_nanos\":2}\n\n");
            }
            expected.push(name);
        }
        for capacity in [7, 1 << 16] {
            let (got, skipped) = names(input.as_bytes(), capacity, false);
            assert_eq!(got.expect("read"), expected, "buffer of {capacity}");
            assert_eq!(skipped, 0);
        }
    }

    #[test]
    fn stops_at_the_first_bad_line_with_its_number() {
        let good: String = (0..2000)
            .map(|i| format!("{}\n", line(1, 1, None, &format!("n{i}"), 1, 2)))
            .collect();
        let input = format!("{good}garbage\n{good}");
        let (got, _) = names(input.as_bytes(), 1 << 16, false);
        let err = got.expect_err("bad line").to_string();
        assert!(err.starts_with("line 2001: invalid span JSON"), "{err}");
        let (got, skipped) = names(input.as_bytes(), 1 << 16, true);
        assert_eq!(got.expect("skips").len(), 4000);
        assert_eq!(skipped, 1);
        // A last line cut off mid-write is skipped either way.
        let cut = &input.as_bytes()[..good.len() - 10];
        let (got, skipped) = names(cut, 1 << 16, false);
        assert_eq!((got.expect("cut").len(), skipped), (1999, 1));
    }

    #[test]
    fn empty_input_is_no_spans() {
        let (got, skipped) = names(b"", 64, false);
        assert_eq!((got.expect("empty").len(), skipped), (0, 0));
    }
}
