//! Output that waits: bytes written to an unnamed temporary file (memory
//! where the file system refuses one) and copied on once it is known they
//! are wanted (the span profile `--to pprof` writes until the input shows
//! it has CPU samples).

use std::io::Write;

/// Where the span profile's samples wait until the input shows it has no
/// CPU samples (which would make it a CPU profile instead): an unnamed
/// temporary file, so memory stays bounded; memory where the file system
/// refuses one.
pub enum Spill {
    File(std::io::BufWriter<std::fs::File>),
    Memory(Vec<u8>),
}

impl Spill {
    pub fn new() -> Spill {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .open(std::env::temp_dir())
            .map_or_else(
                |_| Spill::Memory(Vec::new()),
                |f| Spill::File(std::io::BufWriter::new(f)),
            )
    }

    /// Everything written, into `out`.
    pub fn copy_to<W: Write>(self, out: &mut W) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        match self {
            Spill::Memory(v) => out.write_all(&v),
            Spill::File(w) => {
                let mut f = w.into_inner().map_err(|e| e.into_error())?;
                f.seek(SeekFrom::Start(0))?;
                std::io::copy(&mut f, out).map(|_| ())
            }
        }
    }
}

impl Write for Spill {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Spill::File(w) => w.write(buf),
            Spill::Memory(v) => v.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Spill::File(w) => w.flush(),
            Spill::Memory(_) => Ok(()),
        }
    }
}

impl Default for Spill {
    fn default() -> Self {
        Spill::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_on_what_was_written() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for mut spill in [Spill::new(), Spill::Memory(Vec::new())] {
            spill.write_all(&data[..1000]).expect("write");
            spill.write_all(&data[1000..]).expect("write");
            let mut out = Vec::new();
            spill.copy_to(&mut out).expect("copy");
            assert!(out == data);
        }
    }
}
