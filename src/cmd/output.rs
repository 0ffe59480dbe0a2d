//! Output files that never lose data: `record -o FILE` creates or truncates
//! FILE only when the recording really starts (or appends with
//! `--append`), and writes whole lines; `convert -o FILE` writes a
//! temporary file beside FILE and renames it over FILE only when the
//! conversion succeeded. Either way, a failure before (a dead pid, missing
//! privileges, unreadable input) leaves an existing FILE as it was.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Standard output as an unbuffered file (a duplicate of fd 1): whole
/// writes, not split at line boundaries as `io::stdout()` would.
pub fn stdout_file() -> anyhow::Result<File> {
    let fd = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .context("standard output")?;
    Ok(File::from(fd))
}

/// Fail now, touching nothing, when `path` could not be opened for
/// writing later: a directory, a missing directory, no permission.
pub fn check_writable(path: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => bail!("{} is a directory", path.display()),
        Ok(_) => {
            // Opened for writing without O_TRUNC: nothing changes.
            OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = parent(path);
            let meta = std::fs::metadata(&dir)
                .with_context(|| format!("cannot create {}: {}", path.display(), dir.display()))?;
            if !meta.is_dir() {
                bail!(
                    "cannot create {}: {} is not a directory",
                    path.display(),
                    dir.display()
                );
            }
            let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
                .context("path with a NUL byte")?;
            // SAFETY: c is a valid NUL-terminated path.
            if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
                return Err(io::Error::last_os_error())
                    .with_context(|| format!("cannot create {}", path.display()));
            }
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// `record -o FILE`: opened when the recording starts; every write is
/// whole lines, straight to the file (no buffer to lose on a kill).
pub struct RecordFile {
    path: PathBuf,
    append: bool,
    file: Option<File>,
}

impl RecordFile {
    /// Checks that `path` can be written; touches nothing yet.
    pub fn new(path: &Path, append: bool) -> anyhow::Result<RecordFile> {
        check_writable(path)?;
        Ok(RecordFile {
            path: path.to_owned(),
            append,
            file: None,
        })
    }

    /// With `--append`: a note when the file ends in a cut-off line (a
    /// recording killed mid-write by a power cut); the new lines will
    /// start on a line of their own.
    pub fn cut_off_note(&self) -> Option<String> {
        if !self.append {
            return None;
        }
        let mut f = File::open(&self.path).ok()?;
        ends_cut_off(&mut f).ok()?.then(|| {
            format!(
                "{} ends in a cut-off line; appending after it on a new line",
                self.path.display()
            )
        })
    }
}

/// True when a regular, non-empty file does not end with a newline.
fn ends_cut_off(file: &mut File) -> io::Result<bool> {
    let m = file.metadata()?;
    if !m.is_file() || m.len() == 0 {
        return Ok(false);
    }
    let mut last = [0u8];
    file.seek(SeekFrom::End(-1))?;
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

impl crate::record::Output for RecordFile {
    fn start(&mut self) -> io::Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let mut opts = OpenOptions::new();
        opts.create(true);
        if self.append {
            opts.read(true).append(true);
        } else {
            opts.write(true).truncate(true);
        }
        let mut file = opts.open(&self.path).map_err(|e| {
            io::Error::new(e.kind(), format!("opening {}: {e}", self.path.display()))
        })?;
        // A file whose last line was cut off: the new lines start on a
        // line of their own.
        if self.append && ends_cut_off(&mut file)? {
            file.write_all(b"\n")?;
        }
        self.file = Some(file);
        Ok(())
    }

    fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.write_all(lines),
            None => Err(io::Error::other(
                "output written before the recording started",
            )),
        }
    }
}

/// `convert -o FILE`: a temporary file beside FILE, renamed over it by
/// [`ReplaceFile::commit`]; removed when dropped uncommitted. A FILE that
/// is not a regular file (`/dev/null`, a FIFO) is written directly.
pub struct ReplaceFile {
    path: PathBuf,
    temp: Option<PathBuf>,
}

impl ReplaceFile {
    /// The file to write into, and the guard that puts it in place.
    pub fn create(path: &Path) -> anyhow::Result<(File, ReplaceFile)> {
        check_writable(path)?;
        let existing = std::fs::metadata(path).ok();
        if existing.as_ref().is_some_and(|m| !m.is_file()) {
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            let guard = ReplaceFile {
                path: path.to_owned(),
                temp: None,
            };
            return Ok((f, guard));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let temp = parent(path).join(format!(
            ".{}.goprobe-{}.tmp",
            name.unwrap_or_else(|| "output".into()),
            std::process::id()
        ));
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .with_context(|| format!("creating {}", temp.display()))?;
        if let Some(m) = existing {
            // The new file keeps the old one's permissions.
            let _ = f.set_permissions(std::fs::Permissions::from_mode(m.permissions().mode()));
        }
        let guard = ReplaceFile {
            path: path.to_owned(),
            temp: Some(temp),
        };
        Ok((f, guard))
    }

    /// The output is complete: put it in place of FILE.
    pub fn commit(mut self) -> anyhow::Result<()> {
        if let Some(temp) = self.temp.take() {
            std::fs::rename(&temp, &self.path).with_context(|| {
                let _ = std::fs::remove_file(&temp);
                format!("renaming {} to {}", temp.display(), self.path.display())
            })?;
        }
        Ok(())
    }
}

impl Drop for ReplaceFile {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}
