//! Where `--output` writes, and how, so that nothing a user names is destroyed.
//!
//! | what the path is | how it is written |
//! |---|---|
//! | absent, or `-` | standard output |
//! | a path that does not exist yet | a temporary file in the same directory, renamed to the path only once everything was written |
//! | a regular file | the same: replaced atomically on success (keeping its permission bits), untouched on failure |
//! | a character device (`/dev/null`, a terminal) or a FIFO | opened and written in place: the device or pipe stays what it is |
//! | a symbolic link | followed: the rules apply to its final target, so the link stays a link; a link to nothing is refused |
//! | a directory, a block device or a socket | refused, before any work is done |
//!
//! A failed write to a device or FIFO cannot be taken back: what was written stays written (as with
//! a shell's `>`). Only a regular file's replacement is atomic.

use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::exit::Usage;

/// An open `--output`; [`Output::commit`] makes a file's new content visible.
pub struct Output {
    kind: Kind,
}

enum Kind {
    Stdout(io::Stdout),
    /// A new or regular file, written beside it and renamed over it on commit. Dropped without a
    /// commit, the temporary file is removed.
    Replace {
        target: PathBuf,
        temp: io::BufWriter<tempfile::NamedTempFile>,
    },
    /// A character device or FIFO, written where it is.
    InPlace(File),
}

impl Output {
    /// Opens `path` for writing by the rules above; `None` and `-` are standard output.
    pub fn open(path: Option<&Path>) -> Result<Output, Usage> {
        let path = match path {
            None => return Ok(Output { kind: Kind::Stdout(io::stdout()) }),
            Some(p) if p.as_os_str() == "-" => return Ok(Output { kind: Kind::Stdout(io::stdout()) }),
            Some(p) => p,
        };
        let target = resolve(path)?;
        match std::fs::metadata(&target) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => replace(path, &target, None),
            Err(e) => Err(cannot(path, &e)),
            Ok(meta) => {
                let kind = meta.file_type();
                if kind.is_file() {
                    replace(path, &target, Some(meta.permissions()))
                } else if kind.is_char_device() || kind.is_fifo() {
                    // A FIFO's open waits for its reader, as a shell's `>` does.
                    let file = std::fs::OpenOptions::new().write(true).open(&target).map_err(|e| cannot(path, &e))?;
                    Ok(Output { kind: Kind::InPlace(file) })
                } else {
                    Err(refused(path, kind_name(&kind)))
                }
            }
        }
    }

    /// Makes the written content final: flushes, and for a file syncs it and renames it over the
    /// target. Dropping an `Output` instead leaves a replaced file as it was.
    pub fn commit(self) -> io::Result<()> {
        match self.kind {
            Kind::Stdout(mut out) => out.flush(),
            Kind::InPlace(mut file) => file.flush(),
            Kind::Replace { target, temp } => {
                let temp = temp.into_inner().map_err(io::IntoInnerError::into_error)?;
                temp.as_file().sync_all()?;
                temp.persist(&target).map(drop).map_err(|e| e.error)
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.kind {
            Kind::Stdout(out) => out.write(buf),
            Kind::Replace { temp, .. } => temp.write(buf),
            Kind::InPlace(file) => file.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.kind {
            Kind::Stdout(out) => out.write_all(buf),
            Kind::Replace { temp, .. } => temp.write_all(buf),
            Kind::InPlace(file) => file.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.kind {
            Kind::Stdout(out) => out.flush(),
            Kind::Replace { temp, .. } => temp.flush(),
            Kind::InPlace(file) => file.flush(),
        }
    }
}

/// The path the content finally goes to: `path` itself, or the final target of a symbolic link.
fn resolve(path: &Path) -> Result<PathBuf, Usage> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::canonicalize(path).map_err(|e| {
            let to = std::fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_else(|_| "?".into());
            if e.kind() == io::ErrorKind::NotFound {
                Usage::new(
                    format!("--output: {} is a symbolic link to {to}, which does not exist", path.display()),
                    Some("create the link's target first, or name the file to write directly".to_string()),
                )
            } else {
                cannot(path, &e)
            }
        }),
        _ => Ok(path.to_path_buf()),
    }
}

/// A temporary file beside `target`, with the permission bits the result should have.
fn replace(named: &Path, target: &Path, existing: Option<Permissions>) -> Result<Output, Usage> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Usage::new(
            format!("--output: {} is not a directory", dir.display()),
            Some("create the directory first, or write to standard output".to_string()),
        ));
    }
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // A new file gets what File::create would give it (0666 less the umask); a replaced one keeps
    // its own mode.
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| cannot(named, &e))?;
    if let Some(perms) = existing {
        temp.as_file().set_permissions(perms).map_err(|e| cannot(named, &e))?;
    }
    // Buffered: exporters hand over a batch at a time, and a file gains nothing from small writes.
    let temp = io::BufWriter::with_capacity(1 << 20, temp);
    Ok(Output { kind: Kind::Replace { target: target.to_path_buf(), temp } })
}

fn kind_name(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file, character device or FIFO"
    }
}

fn refused(path: &Path, what: &str) -> Usage {
    Usage::new(
        format!(
            "--output: {} is {what}; Sluice writes only to regular files, character devices and FIFOs",
            path.display()
        ),
        Some("name a file to create or replace, or omit --output to write to standard output".to_string()),
    )
}

fn cannot(path: &Path, e: &io::Error) -> Usage {
    Usage::new(format!("--output: cannot write {}: {e}", path.display()), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).expect("read")
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_new_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.csv");
        let mut out = Output::open(Some(&path)).expect("open");
        out.write_all(b"a,b\n").expect("write");
        assert!(!path.exists(), "the final name must not exist before commit");
        out.commit().expect("commit");
        assert_eq!(read(&path), "a,b\n");
        assert_eq!(entries(dir.path()), ["out.csv"]);
    }

    #[test]
    fn a_regular_file_is_left_as_it_was_when_not_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.csv");
        std::fs::write(&path, "old\n").expect("write");
        std::fs::set_permissions(&path, Permissions::from_mode(0o640)).expect("chmod");
        {
            let mut out = Output::open(Some(&path)).expect("open");
            out.write_all(b"half a resu").expect("write");
        }
        assert_eq!(read(&path), "old\n");
        assert_eq!(entries(dir.path()), ["out.csv"], "the temporary file is removed");
        let mut out = Output::open(Some(&path)).expect("open");
        out.write_all(b"new\n").expect("write");
        out.commit().expect("commit");
        assert_eq!(read(&path), "new\n");
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "a replaced file keeps its permission bits");
    }

    #[test]
    fn a_symbolic_link_stays_a_link_and_its_target_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real.csv");
        let link = dir.path().join("link.csv");
        std::fs::write(&real, "old\n").expect("write");
        std::os::unix::fs::symlink("real.csv", &link).expect("symlink");
        let mut out = Output::open(Some(&link)).expect("open");
        out.write_all(b"new\n").expect("write");
        out.commit().expect("commit");
        assert!(std::fs::symlink_metadata(&link).expect("lstat").file_type().is_symlink());
        assert_eq!(read(&real), "new\n");
        assert_eq!(entries(dir.path()), ["link.csv", "real.csv"]);
    }

    #[test]
    fn a_dangling_link_and_a_directory_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("dangling.csv");
        std::os::unix::fs::symlink("nowhere/at/all.csv", &link).expect("symlink");
        let e = Output::open(Some(&link)).err().expect("refused");
        assert!(e.message.contains("symbolic link to nowhere/at/all.csv, which does not exist"), "{}", e.message);
        let e = Output::open(Some(dir.path())).err().expect("refused");
        assert!(e.message.contains("is a directory"), "{}", e.message);
        let e = Output::open(Some(&dir.path().join("missing/out.csv"))).err().expect("refused");
        assert!(e.message.contains("is not a directory"), "{}", e.message);
        assert_eq!(entries(dir.path()), ["dangling.csv"]);
    }
}
