//! A row-limited Arrow stream's encoded batches, held until its schema message can be written.

use std::io::Write;

use super::{SPOOL_IN_MEMORY, SPOOL_PIECE};

/// Encoded IPC messages waiting for their schema message: in memory up to [`SPOOL_IN_MEMORY`]
/// bytes, then in an unnamed temporary file (gone when dropped, also on a crash).
#[derive(Default)]
pub(super) struct Spool {
    mem: Vec<u8>,
    file: Option<std::fs::File>,
    len: u64,
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.file.is_none() && self.mem.len() + buf.len() > SPOOL_IN_MEMORY {
            let mut file = tempfile::tempfile().map_err(|e| {
                std::io::Error::other(format!(
                    "a row-limited Arrow export spools past {} MiB to a temporary file, and none could be \
                     created in {} ({e}); set TMPDIR to a writable directory",
                    SPOOL_IN_MEMORY >> 20,
                    std::env::temp_dir().display()
                ))
            })?;
            file.write_all(&self.mem)?;
            self.mem = Vec::new();
            self.file = Some(file);
        }
        match self.file.as_mut() {
            Some(f) => f.write_all(buf)?,
            None => self.mem.extend_from_slice(buf),
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl Spool {
    /// Gets ready to read back from byte `from`.
    pub(super) fn rewind_to(&mut self, from: u64) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        match self.file.as_mut() {
            Some(f) => {
                f.seek(SeekFrom::Start(from))?;
            }
            None => {
                let from = usize::try_from(from).unwrap_or(usize::MAX).min(self.mem.len());
                self.mem.drain(..from);
            }
        }
        Ok(())
    }

    /// Appends the next piece to `out` (what is in memory is at most [`SPOOL_IN_MEMORY`] and goes
    /// in one piece); false when everything was read.
    pub(super) fn read_piece(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        use std::io::Read;
        match self.file.as_mut() {
            Some(f) => {
                let start = out.len();
                out.resize(start + SPOOL_PIECE, 0);
                let n = f.read(&mut out[start..])?;
                out.truncate(start + n);
                Ok(n > 0)
            }
            None if self.mem.is_empty() => Ok(false),
            None => {
                out.append(&mut self.mem);
                Ok(true)
            }
        }
    }
}
