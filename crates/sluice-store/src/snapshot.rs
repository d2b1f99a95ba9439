//! A catalog snapshot as it is stored: its JSON zstd-compressed as it is written, and the
//! SHA-256 of its content (what decides whether a discovery changed anything).
//!
//! The JSON of a large catalog (150 MB for 100,000 tables) is never held whole: the writer
//! compresses it as it arrives (about a tenth of its size is kept), and a stored snapshot is read
//! back through a decompressing reader.

use std::io::{Read, Write};

use crate::{Result, StoreError};

/// zstd's default level: about 12× on catalog JSON at a few hundred MB/s.
const LEVEL: i32 = 3;

/// Writes one snapshot: [`SnapshotWriter::parts`] hands out the sink for the JSON and the sink
/// for the content the hash covers; [`SnapshotWriter::finish`] ends both.
pub struct SnapshotWriter {
    json: zstd::stream::write::Encoder<'static, Vec<u8>>,
    content: Hasher,
}

impl SnapshotWriter {
    pub fn new() -> Result<SnapshotWriter> {
        let json = zstd::stream::write::Encoder::new(Vec::new(), LEVEL)
            .map_err(|e| StoreError::backend("compress a snapshot", e))?;
        Ok(SnapshotWriter { json, content: Hasher(ring::digest::Context::new(&ring::digest::SHA256)) })
    }

    /// The sink for the snapshot's JSON, and the one for its content: the bytes two discoveries
    /// of an unchanged database have in common (the JSON without its discovery time), whose
    /// hash decides whether the snapshot is new.
    pub fn parts(&mut self) -> (impl Write + '_, impl Write + '_) {
        (&mut self.json, &mut self.content)
    }

    pub fn finish(self) -> Result<CompressedSnapshot> {
        let zstd = self.json.finish().map_err(|e| StoreError::backend("compress a snapshot", e))?;
        Ok(CompressedSnapshot { hash: crate::auth::hex(self.content.0.finish().as_ref()), zstd })
    }
}

struct Hasher(ring::digest::Context);

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A snapshot's compressed JSON and content hash, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct CompressedSnapshot {
    hash: String,
    zstd: Vec<u8>,
}

impl std::fmt::Debug for CompressedSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompressedSnapshot").field("hash", &self.hash).field("bytes", &self.zstd.len()).finish()
    }
}

impl CompressedSnapshot {
    /// A snapshot whose content is all of `json` (its hash covers every byte).
    pub fn from_json(json: &[u8]) -> Result<CompressedSnapshot> {
        let mut w = SnapshotWriter::new()?;
        {
            let (mut a, mut b) = w.parts();
            a.write_all(json)
                .and_then(|()| b.write_all(json))
                .map_err(|e| StoreError::backend("compress a snapshot", e))?;
        }
        w.finish()
    }

    /// As read from the store: the hash is not known (nor needed) then.
    pub(crate) fn stored(zstd: Vec<u8>) -> CompressedSnapshot {
        CompressedSnapshot { hash: String::new(), zstd }
    }

    /// The SHA-256 of the content, lower-case hex.
    pub fn content_hash(&self) -> &str {
        &self.hash
    }

    pub(crate) fn compressed(&self) -> &[u8] {
        &self.zstd
    }

    /// Compressed size in bytes.
    pub fn compressed_len(&self) -> usize {
        self.zstd.len()
    }

    /// The JSON, decompressed as it is read.
    pub fn reader(&self) -> Result<impl Read + '_> {
        zstd::stream::read::Decoder::new(self.zstd.as_slice())
            .map_err(|e| StoreError::backend("decompress a snapshot", e))
    }

    /// [`CompressedSnapshot::reader`] owning the snapshot (to move onto another thread).
    pub fn into_reader(self) -> Result<impl Read + Send + 'static> {
        zstd::stream::read::Decoder::with_buffer(std::io::Cursor::new(self.zstd))
            .map_err(|e| StoreError::backend("decompress a snapshot", e))
    }

    /// The whole JSON.
    pub fn json(&self) -> Result<Vec<u8>> {
        zstd::stream::decode_all(self.zstd.as_slice()).map_err(|e| StoreError::backend("decompress a snapshot", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_round_trips_and_its_hash_covers_only_its_content() {
        let json = br#"{"database":"shop","discovered_at":"2026-11-30T00:00:00Z","schemas":[]}"#.repeat(1000);
        let mut w = SnapshotWriter::new().expect("writer");
        {
            let (mut j, mut c) = w.parts();
            j.write_all(&json).expect("json");
            c.write_all(b"content").expect("content");
        }
        let snap = w.finish().expect("finish");
        assert!(snap.compressed_len() < json.len() / 10, "{} of {}", snap.compressed_len(), json.len());
        assert_eq!(snap.json().expect("json"), json);
        let mut back = Vec::new();
        snap.reader().expect("reader").read_to_end(&mut back).expect("read");
        assert_eq!(back, json);
        let mut owned = Vec::new();
        snap.clone().into_reader().expect("reader").read_to_end(&mut owned).expect("read");
        assert_eq!(owned, json);
        assert_eq!(snap.content_hash(), crate::auth::hex(&crate::auth::sha256(b"content")));
        let whole = CompressedSnapshot::from_json(&json).expect("from json");
        assert_eq!(whole.content_hash(), crate::auth::hex(&crate::auth::sha256(&json)));
        assert_eq!(whole.json().expect("json"), json);
    }

    #[test]
    fn a_snapshot_stored_in_one_piece_reads_through_the_reader() {
        // Snapshots stored before the writer streamed were compressed whole, one frame with its
        // size in the header; the decompressing reader reads them as it reads the writer's.
        let json = br#"{"database":"shop","discovered_at":"2026-11-30T00:00:00Z","schemas":[]}"#.repeat(500);
        let old = CompressedSnapshot::stored(zstd::bulk::compress(&json, LEVEL).expect("compress"));
        let mut back = Vec::new();
        old.reader().expect("reader").read_to_end(&mut back).expect("read");
        assert_eq!(back, json);
        assert_eq!(old.json().expect("json"), json);
    }

    #[test]
    fn damaged_content_is_an_error_not_a_panic() {
        let snap = CompressedSnapshot::stored(b"not zstd at all".to_vec());
        assert!(snap.json().is_err());
        let mut out = Vec::new();
        assert!(snap
            .reader()
            .and_then(|mut r| r.read_to_end(&mut out).map_err(|e| StoreError::backend("read", e)))
            .is_err());
    }
}
