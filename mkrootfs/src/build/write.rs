//! Writing an assembled tree as an image file, streamed: entries go in
//! archive order through the cpio writer into the compressor and a temporary
//! file next to the output, which is synced and renamed into place at the
//! end (a failed build never leaves a partial image behind).
//!
//! The archive's length is known before the first byte is written (every
//! header and file size is in the plan), so the compressor is told the input
//! size up front, exactly as when it compressed the archive in one piece.
//! File data is read from disk while the image is written: small files by a
//! few reader threads ahead of the writer, within a fixed budget of bytes in
//! flight; big files in pieces by the writer itself. Peak memory is thus the
//! budget plus the compressor's own buffers, whatever the size of the tree.

use super::BuildError;
use crate::compress::{Compression, Encoder};
use crate::cpio::{self, Entry};
use crate::tree::{Data, Tree, TreeError};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Bytes of file data read ahead of the writer, at most.
const READ_AHEAD_BYTES: u64 = 32 << 20;
/// Files larger than this are not read ahead but streamed in pieces.
const READ_AHEAD_MAX_FILE: u64 = 4 << 20;
/// The piece size for streamed files and the output buffer.
const CHUNK: usize = 1 << 20;
/// Reader threads, at most (reading from the page cache is a copy; more
/// threads only help a cold disk).
const MAX_READERS: usize = 4;

/// What was written.
#[derive(Debug)]
pub(crate) struct Written {
    pub entries: usize,
    pub uncompressed: u64,
    pub compressed: u64,
    /// The most file data read ahead and not yet written at any moment.
    pub read_ahead_peak: u64,
}

/// Writes `tree` as one archive compressed with `c` at `level` to `path`.
pub(super) fn write_image(
    tree: &Tree,
    mtime: u32,
    c: Compression,
    level: Option<u32>,
    path: &Path,
) -> Result<Written, BuildError> {
    let mut tmp = TempFile::create(path)?;
    let file = tmp.file()?;
    let (out, written) = write_stream(
        tree,
        mtime,
        c,
        level,
        BufWriter::with_capacity(CHUNK, file),
        &tmp.path,
    )?;
    let file = out
        .into_inner()
        .map_err(|e| tmp.write_err("write", e.into_error()))?;
    tmp.commit(file, path)?;
    Ok(written)
}

/// Writes `tree` as one archive compressed with `c` at `level` to `out`,
/// which errors name as `out_name`; returns `out` once everything is in it.
pub(crate) fn write_stream<W: Write>(
    tree: &Tree,
    mtime: u32,
    c: Compression,
    level: Option<u32>,
    out: W,
    out_name: &Path,
) -> Result<(W, Written), BuildError> {
    let out_err = |op: &'static str| {
        move |source| WriteError {
            op,
            path: out_name.to_path_buf(),
            source,
        }
    };
    let plan = tree.plan(mtime);
    let uncompressed = plan
        .iter()
        .map(|(e, d)| cpio::entry_len(&e.name, d.map_or(e.data.len() as u64, Data::len)))
        .sum::<u64>()
        + cpio::trailer_len();
    let enc = Encoder::new(
        Counting {
            inner: out,
            count: 0,
        },
        c,
        level,
        uncompressed,
    )
    .map_err(out_err("compress"))?;
    // Headers and small files reach the compressor in CHUNK-sized writes:
    // one zstd call per piece of a few bytes costs more than the copy.
    let mut writer = cpio::Writer::new(BufWriter::with_capacity(CHUNK, enc));

    let ahead: Vec<(&Path, u64)> = plan
        .iter()
        .filter_map(|(_, d)| match d {
            Some(Data::Host { path, len }) if *len <= READ_AHEAD_MAX_FILE => {
                Some((path.as_path(), *len))
            }
            _ => None,
        })
        .collect();
    let readers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_READERS)
        .min(ahead.len());
    let prefetch = Prefetch::new(ahead);
    let result = std::thread::scope(|s| {
        for _ in 0..readers {
            s.spawn(|| prefetch.reader());
        }
        let r = write_entries(&plan, &mut writer, &prefetch, out_name);
        // On an error the readers must not wait for a writer that is gone.
        prefetch.stop();
        r
    });
    result?;
    let read_ahead_peak = prefetch.lock().peak;
    let (buffered, _) = writer.finish().map_err(out_err("write"))?;
    let enc = buffered
        .into_inner()
        .map_err(|e| out_err("compress")(e.into_error()))?;
    let mut out = enc.finish().map_err(out_err("compress"))?;
    out.flush().map_err(out_err("write"))?;
    Ok((
        out.inner,
        Written {
            entries: plan.len(),
            uncompressed,
            compressed: out.count,
            read_ahead_peak,
        },
    ))
}

/// Counts the bytes written through it (the compressed size).
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_entries<W: Write>(
    plan: &[(Entry, Option<&Data>)],
    writer: &mut cpio::Writer<W>,
    prefetch: &Prefetch<'_>,
    out_name: &Path,
) -> Result<(), BuildError> {
    let out_err = |source| WriteError {
        op: "write",
        path: out_name.to_path_buf(),
        source,
    };
    let mut next_ahead = 0;
    let mut buf = Vec::new();
    for (entry, data) in plan {
        crate::progress::advance(1, data.map_or(0, |d| d.len()));
        match data {
            None => writer.entry(entry).map_err(out_err)?,
            Some(Data::Bytes(bytes)) => {
                writer.header(entry, bytes.len() as u64).map_err(out_err)?;
                writer.data(bytes).map_err(out_err)?;
                writer.end_data().map_err(out_err)?;
            }
            Some(Data::Host { path, len }) if *len <= READ_AHEAD_MAX_FILE => {
                let bytes = prefetch.take(next_ahead);
                next_ahead += 1;
                let bytes = bytes.map_err(|e| read_err(path, e))?;
                if bytes.len() as u64 != *len {
                    return Err(changed(path, *len, bytes.len() as u64));
                }
                writer.header(entry, *len).map_err(out_err)?;
                writer.data(&bytes).map_err(out_err)?;
                writer.end_data().map_err(out_err)?;
                drop(bytes);
                prefetch.release(*len);
            }
            Some(Data::Host { path, len }) => {
                writer.header(entry, *len).map_err(out_err)?;
                let mut f = fs::File::open(path).map_err(|e| read_err(path, e))?;
                buf.resize(CHUNK, 0);
                let mut done = 0u64;
                loop {
                    let n = match f.read(&mut buf) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(read_err(path, e)),
                    };
                    if n == 0 {
                        break;
                    }
                    done += n as u64;
                    if done > *len {
                        return Err(changed(path, *len, done));
                    }
                    writer.data(&buf[..n]).map_err(out_err)?;
                }
                if done != *len {
                    return Err(changed(path, *len, done));
                }
                writer.end_data().map_err(out_err)?;
            }
        }
    }
    Ok(())
}

fn read_err(path: &Path, source: io::Error) -> BuildError {
    BuildError::Tree(TreeError::Read {
        path: path.to_path_buf(),
        origin: "the image".to_string(),
        source,
    })
}

fn changed(path: &Path, was: u64, now: u64) -> BuildError {
    BuildError::Tree(TreeError::Changed {
        path: path.to_path_buf(),
        was,
        now,
    })
}

/// Small files read ahead of the writer by reader threads, in archive order,
/// with at most [`READ_AHEAD_BYTES`] read but not yet written.
///
/// A reader claims the next file and its bytes of the budget together, in
/// order, so the budget is only ever held by files the writer will reach
/// before any file still waiting for budget: no deadlock.
struct Prefetch<'a> {
    files: Vec<(&'a Path, u64)>,
    state: Mutex<PrefetchState>,
    changed: Condvar,
}

#[derive(Default)]
struct PrefetchState {
    /// The next file to claim.
    next: usize,
    /// Bytes claimed and not yet released by the writer.
    in_flight: u64,
    /// The largest `in_flight` seen.
    peak: u64,
    /// Read files not yet taken by the writer.
    done: BTreeMap<usize, io::Result<Vec<u8>>>,
    stop: bool,
}

impl<'a> Prefetch<'a> {
    fn new(files: Vec<(&'a Path, u64)>) -> Self {
        Prefetch {
            files,
            state: Mutex::new(PrefetchState::default()),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PrefetchState> {
        // Nothing panics while holding the lock; a poisoned state is intact.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'g>(&self, g: MutexGuard<'g, PrefetchState>) -> MutexGuard<'g, PrefetchState> {
        self.changed.wait(g).unwrap_or_else(|e| e.into_inner())
    }

    /// A reader thread: claims and reads files until all are claimed.
    fn reader(&self) {
        let mut st = self.lock();
        loop {
            if st.stop || st.next >= self.files.len() {
                return;
            }
            let (path, len) = self.files[st.next];
            // A file always fits when nothing is in flight.
            if st.in_flight > 0 && st.in_flight + len > READ_AHEAD_BYTES {
                st = self.wait(st);
                continue;
            }
            let i = st.next;
            st.next += 1;
            st.in_flight += len;
            st.peak = st.peak.max(st.in_flight);
            drop(st);
            let read = read_file(path, len);
            st = self.lock();
            st.done.insert(i, read);
            self.changed.notify_all();
        }
    }

    /// The contents of the `i`th file, waiting for its reader.
    fn take(&self, i: usize) -> io::Result<Vec<u8>> {
        let mut st = self.lock();
        loop {
            if let Some(r) = st.done.remove(&i) {
                return r;
            }
            st = self.wait(st);
        }
    }

    /// Gives back the budget of a file that has been written.
    fn release(&self, len: u64) {
        let mut st = self.lock();
        st.in_flight = st.in_flight.saturating_sub(len);
        self.changed.notify_all();
    }

    fn stop(&self) {
        self.lock().stop = true;
        self.changed.notify_all();
    }
}

/// Reads a whole file expected to be `len` bytes (one byte more is read to
/// notice a file that grew).
fn read_file(path: &Path, len: u64) -> io::Result<Vec<u8>> {
    let f = fs::File::open(path)?;
    let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(len + 1).read_to_end(&mut data)?;
    Ok(data)
}

/// A step of writing an output file that failed, and the file.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}")]
pub struct WriteError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// `.NAME.tmpPID` next to the output, removed unless committed.
struct TempFile {
    path: PathBuf,
    file: Option<fs::File>,
    committed: bool,
}

impl TempFile {
    fn create(out: &Path) -> Result<TempFile, WriteError> {
        let dir = match out.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(|source| WriteError {
            op: "create directory",
            path: dir.clone(),
            source,
        })?;
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = dir.join(format!(".{name}.tmp{}", std::process::id()));
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|source| WriteError {
                op: "create",
                path: path.clone(),
                source,
            })?;
        Ok(TempFile {
            path,
            file: Some(file),
            committed: false,
        })
    }

    /// The open file (once).
    fn file(&mut self) -> Result<fs::File, WriteError> {
        self.file.take().ok_or_else(|| WriteError {
            op: "reopen",
            path: self.path.clone(),
            source: io::Error::other("temporary file already taken"),
        })
    }

    fn write_err(&self, op: &'static str, source: io::Error) -> WriteError {
        WriteError {
            op,
            path: self.path.clone(),
            source,
        }
    }

    /// Syncs `file` (this temporary file) and renames it over `out`.
    fn commit(mut self, file: fs::File, out: &Path) -> Result<(), WriteError> {
        file.sync_all().map_err(|e| self.write_err("sync", e))?;
        drop(file);
        fs::rename(&self.path, out).map_err(|source| WriteError {
            op: "rename into place",
            path: out.to_path_buf(),
            source,
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `data` to a temporary file next to `path`, syncs it and renames it
/// over `path`, so a failed write never leaves a partial file behind.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<(), WriteError> {
    let mut tmp = TempFile::create(path)?;
    let mut file = tmp.file()?;
    file.write_all(data)
        .map_err(|e| tmp.write_err("write", e))?;
    tmp.commit(file, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Meta, Node};

    /// A tree of host files: many small ones (read ahead), one bigger than
    /// the read-ahead limit (streamed in pieces), a hard-linked pair and
    /// in-memory data.
    fn sample_tree(dir: &Path) -> Tree {
        let mut t = Tree::new("/");
        for i in 0..200u32 {
            let p = dir.join(format!("f{i:03}"));
            fs::write(&p, format!("file {i}\n").repeat(i as usize)).unwrap();
            t.add_host_file(&p, &format!("/d/f{i:03}"), None, 0, 0, "t")
                .unwrap();
        }
        let big: Vec<u8> = (0..READ_AHEAD_MAX_FILE + 3 * CHUNK as u64 + 5)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        fs::write(dir.join("big"), &big).unwrap();
        t.add_host_file(&dir.join("big"), "/big", Some(0o600), 0, 0, "t")
            .unwrap();
        t.add_hardlink("/z-link", "/d/f007", "t").unwrap();
        t.add(
            "/mem",
            Node::File(b"in memory".to_vec().into()),
            Meta::root(0o644),
            "t",
        )
        .unwrap();
        t
    }

    #[test]
    fn streamed_image_equals_the_archive_compressed_in_one_piece() {
        let dir = tempfile::tempdir().unwrap();
        let t = sample_tree(dir.path());
        let mut archive = Vec::new();
        cpio::write_archive(&mut archive, &t.to_entries(7).unwrap()).unwrap();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let out = dir.path().join(format!("img.{c}"));
            let w = write_image(&t, 7, c, Some(1), &out).unwrap();
            let want = crate::compress::compress(&archive, c, Some(1)).unwrap();
            assert!(fs::read(&out).unwrap() == want, "{c}: bytes differ");
            assert_eq!(w.uncompressed, archive.len() as u64);
            assert_eq!(w.compressed, want.len() as u64);
            assert_eq!(w.entries, t.len());
        }
    }

    // Bounded memory: however many files there are, the data read ahead
    // and not yet written never passes the budget.
    #[test]
    fn read_ahead_stays_within_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tree::new("/");
        let n = (READ_AHEAD_BYTES / READ_AHEAD_MAX_FILE) * 3;
        for i in 0..n {
            let p = dir.path().join(format!("f{i:03}"));
            fs::write(&p, vec![i as u8; READ_AHEAD_MAX_FILE as usize]).unwrap();
            t.add_host_file(&p, &format!("/f{i:03}"), None, 0, 0, "t")
                .unwrap();
        }
        let out = dir.path().join("img");
        let w = write_image(&t, 0, Compression::None, None, &out).unwrap();
        assert!(
            w.read_ahead_peak <= READ_AHEAD_BYTES,
            "{}",
            w.read_ahead_peak
        );
        assert!(
            w.read_ahead_peak >= READ_AHEAD_MAX_FILE,
            "nothing read ahead"
        );
        assert_eq!(fs::metadata(&out).unwrap().len(), w.uncompressed);
        assert!(w.uncompressed > n * READ_AHEAD_MAX_FILE);
    }

    #[test]
    fn a_file_that_changed_size_is_named_and_no_image_is_left() {
        let dir = tempfile::tempdir().unwrap();
        for (name, len) in [
            ("small", 10usize),
            ("big", READ_AHEAD_MAX_FILE as usize + 1),
        ] {
            let p = dir.path().join(name);
            fs::write(&p, vec![b'x'; len]).unwrap();
            let mut t = Tree::new("/");
            t.add_host_file(&p, "/f", None, 0, 0, "t").unwrap();
            fs::write(&p, vec![b'x'; len + 1]).unwrap();
            let out = dir.path().join("img");
            let e = write_image(&t, 0, Compression::Zstd, None, &out).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "{} changed size while the image was built (was {len} bytes, now {})",
                    p.display(),
                    len + 1
                )
            );
            assert!(!out.exists());
            let left: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect();
            assert!(left.is_empty(), "temporary files left: {left:?}");
        }
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gone");
        fs::write(&p, b"x").unwrap();
        let mut t = Tree::new("/");
        t.add_host_file(&p, "/f", None, 0, 0, "t").unwrap();
        fs::remove_file(&p).unwrap();
        let e = write_image(&t, 0, Compression::None, None, &dir.path().join("img")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("read {} (for the image)", p.display())
        );
    }
}
