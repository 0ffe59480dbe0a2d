//! Output written by a background thread: the converter fills large
//! buffers and hands each over as it fills, so encoding and the write
//! system calls run at the same time (on a second core, writing costs the
//! converter nothing). At most a few buffers are in flight.
//!
//! A failed write (a closed pipe, a full disk) is reported by the next
//! write or flush, and nothing after it is written.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

/// Bytes per hand-over.
const CHUNK: usize = 1 << 18;
/// Full buffers waiting for the thread, beyond the one it is writing.
const QUEUED: usize = 2;

enum Message {
    Data(Vec<u8>),
    Flush,
}

/// A `Write` that writes through a background thread; see the module docs.
pub struct BackgroundWriter {
    buf: Vec<u8>,
    to_thread: Option<SyncSender<Message>>,
    /// Emptied buffers coming back for reuse.
    spare: Receiver<Vec<u8>>,
    /// The first write error, as soon as it happens.
    errors: Receiver<io::Error>,
    /// One answer per flush.
    flushed: Receiver<io::Result<()>>,
    thread: Option<JoinHandle<()>>,
}

/// An `io::Error` that can be handed out more than once.
fn copy(err: &io::Error) -> io::Error {
    io::Error::new(err.kind(), err.to_string())
}

impl BackgroundWriter {
    pub fn new<W: Write + Send + 'static>(mut inner: W) -> BackgroundWriter {
        let (to_thread, incoming) = mpsc::sync_channel::<Message>(QUEUED);
        let (give_back, spare) = mpsc::sync_channel::<Vec<u8>>(QUEUED + 2);
        let (report, errors) = mpsc::channel();
        let (answer, flushed) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut failed: Option<io::Error> = None;
            for message in incoming {
                match message {
                    Message::Data(mut data) => {
                        if failed.is_none()
                            && let Err(err) = inner.write_all(&data)
                        {
                            let _ = report.send(copy(&err));
                            failed = Some(err);
                        }
                        data.clear();
                        let _ = give_back.try_send(data);
                    }
                    Message::Flush => {
                        let result = match &failed {
                            Some(err) => Err(copy(err)),
                            None => inner.flush(),
                        };
                        let _ = answer.send(result);
                    }
                }
            }
        });
        BackgroundWriter {
            buf: Vec::with_capacity(CHUNK),
            to_thread: Some(to_thread),
            spare,
            errors,
            flushed,
            thread: Some(thread),
        }
    }

    fn send(&mut self, message: Message) -> io::Result<()> {
        let gone = || io::Error::other("the output thread stopped");
        self.to_thread
            .as_ref()
            .ok_or_else(gone)?
            .send(message)
            .map_err(|_| gone())
    }

    /// Hand the buffer to the thread, taking an empty one back.
    fn hand_over(&mut self) -> io::Result<()> {
        if let Ok(err) = self.errors.try_recv() {
            return Err(err);
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let full = std::mem::replace(&mut self.buf, next);
        self.send(Message::Data(full))
    }
}

impl Write for BackgroundWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.hand_over()?;
        }
        Ok(data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.write(data).map(|_| ())
    }

    /// Returns once everything written so far is written out (or failed).
    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()?;
        self.send(Message::Flush)?;
        self.flushed
            .recv()
            .map_err(|_| io::Error::other("the output thread stopped"))?
    }
}

impl Drop for BackgroundWriter {
    /// Write what is left, as `BufWriter` does, and wait for the thread.
    fn drop(&mut self) {
        let _ = self.hand_over();
        self.to_thread = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer that keeps what it gets, optionally failing after `limit` bytes.
    #[derive(Clone)]
    struct Keep(Arc<Mutex<Vec<u8>>>, usize);
    impl Write for Keep {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            let mut kept = self.0.lock().map_err(|_| io::Error::other("lock"))?;
            if kept.len() + data.len() > self.1 {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed"));
            }
            kept.extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_everything_in_order() {
        let kept = Keep(Arc::default(), usize::MAX);
        let mut w = BackgroundWriter::new(kept.clone());
        let mut expected = Vec::new();
        for i in 0..100_000u32 {
            let line = format!("line {i}\n");
            w.write_all(line.as_bytes()).expect("write");
            expected.extend_from_slice(line.as_bytes());
        }
        w.flush().expect("flush");
        assert_eq!(*kept.0.lock().expect("lock"), expected);
        w.write_all(b"after flush\n").expect("write");
        drop(w);
        assert!(kept.0.lock().expect("lock").ends_with(b"after flush\n"));
    }

    #[test]
    fn a_failed_write_is_reported_and_ends_the_output() {
        let kept = Keep(Arc::default(), 3 * CHUNK / 2);
        let mut w = BackgroundWriter::new(kept.clone());
        let chunk = vec![b'x'; CHUNK];
        let mut result = Ok(());
        for _ in 0..100 {
            result = w.write_all(&chunk);
            if result.is_err() {
                break;
            }
        }
        let err = result.and_then(|()| w.flush()).expect_err("pipe closed");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(
            w.flush().expect_err("still failed").kind(),
            io::ErrorKind::BrokenPipe
        );
        assert_eq!(kept.0.lock().expect("lock").len(), CHUNK);
    }
}
