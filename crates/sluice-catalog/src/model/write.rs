//! The snapshot's `schemas` array as JSON, on two threads for a large catalog.
//!
//! A catalog of 100,000 tables is 147 MB of JSON, and serializing it took a tenth of a
//! discovery's time on one core once the server's work was done. Here the relations are cut into
//! runs of [`RUN`]; a helper thread serializes every other run into a buffer while the calling
//! thread serializes the others straight into the writer and copies the helper's buffers in
//! between, in order. At most [`AHEAD`] buffers wait, so a few runs' worth of text is held,
//! never the snapshot. The bytes are exactly `serde_json`'s for the derived `Serialize` (the
//! tests compare them).

use std::io::{self, Write};
use std::ops::Range;
use std::sync::mpsc;

use super::{Relation, Schema};

/// Relations per run: about 350 KB of JSON in the benchmark's catalog.
const RUN: usize = 256;

/// Below this many relations one thread is done before a second would have started.
const PARALLEL_FROM: usize = 4 * RUN;

/// Runs the helper may have serialized ahead of the writer.
const AHEAD: usize = 2;

/// Writes `schemas` as `serde_json::to_writer` would.
pub(super) fn write_schemas<W: Write>(schemas: &[Schema], out: &mut W) -> io::Result<()> {
    write_schemas_in(schemas, out, PARALLEL_FROM, RUN)
}

fn write_schemas_in<W: Write>(schemas: &[Schema], out: &mut W, parallel_from: usize, run: usize) -> io::Result<()> {
    let total: usize = schemas.iter().map(|s| s.relations.len()).sum();
    if total < parallel_from || run == 0 {
        return serde_json::to_writer(out, schemas).map_err(io::Error::from);
    }
    // Every schema has at least one run, an empty one when it has no relations, so that its
    // own members are written in turn.
    let runs: Vec<(usize, Range<usize>)> = schemas
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            let n = s.relations.len();
            let starts = (0..n.max(1)).step_by(run);
            starts.map(move |start| (i, start..(start + run).min(n)))
        })
        .collect();
    let relations = |(schema, range): &(usize, Range<usize>)| {
        schemas.get(*schema).and_then(|s| s.relations.get(range.clone())).unwrap_or_default()
    };
    std::thread::scope(|scope| {
        // Declared in the closure: dropped as it returns (an error included), which ends the
        // helper's `send` before the scope waits for it.
        let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(AHEAD);
        let helper_runs = &runs;
        scope.spawn(move || {
            for r in helper_runs.iter().skip(1).step_by(2) {
                let mut buf = Vec::new();
                let done = write_relations(&mut buf, relations(r)).map(|()| buf);
                if tx.send(done).is_err() {
                    return;
                }
            }
        });
        out.write_all(b"[")?;
        for (i, r @ (schema_index, range)) in runs.iter().enumerate() {
            let Some(schema) = schemas.get(*schema_index) else { continue };
            if range.start == 0 {
                if *schema_index > 0 {
                    out.write_all(b",")?;
                }
                write_schema_head(out, schema)?;
            } else {
                out.write_all(b",")?;
            }
            if i % 2 == 0 {
                write_relations(out, relations(r))?;
            } else {
                let buf =
                    rx.recv().map_err(|_| io::Error::other("the thread serializing the catalog stopped early"))??;
                out.write_all(&buf)?;
            }
            if range.end == schema.relations.len() {
                write_schema_tail(out, schema)?;
            }
        }
        out.write_all(b"]")
    })
}

/// `{"name":…,"owner":…,"comment":…,"usable":…,"relations":[`, as the derived `Serialize`
/// orders the members.
fn write_schema_head<W: Write>(out: &mut W, s: &Schema) -> io::Result<()> {
    out.write_all(b"{\"name\":")?;
    serde_json::to_writer(&mut *out, &s.name)?;
    out.write_all(b",\"owner\":")?;
    serde_json::to_writer(&mut *out, &s.owner)?;
    out.write_all(b",\"comment\":")?;
    serde_json::to_writer(&mut *out, &s.comment)?;
    out.write_all(if s.usable { b",\"usable\":true" } else { b",\"usable\":false" })?;
    out.write_all(b",\"relations\":[")
}

fn write_schema_tail<W: Write>(out: &mut W, s: &Schema) -> io::Result<()> {
    out.write_all(b"]")?;
    if s.lossy_text {
        out.write_all(b",\"lossy_text\":true")?;
    }
    out.write_all(b"}")
}

fn write_relations<W: Write>(out: &mut W, relations: &[Relation]) -> io::Result<()> {
    for (i, r) in relations.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, RelationKind};

    fn schema(name: &str, relations: usize, usable: bool, lossy: bool) -> Schema {
        Schema {
            name: name.into(),
            owner: "o\"wner".into(),
            comment: (relations % 2 == 1).then(|| "a \\ comment\n".into()),
            usable,
            relations: (0..relations)
                .map(|i| {
                    let mut r = Relation::new(format!("t{i:03}"), RelationKind::Table, "app");
                    r.columns.push(Column {
                        name: "id".into(),
                        type_name: "bigint".into(),
                        nullable: i % 3 == 0,
                        default: None,
                        comment: None,
                        identity: None,
                        generated: None,
                        lossy_text: false,
                    });
                    r
                })
                .collect(),
            lossy_text: lossy,
        }
    }

    #[test]
    fn the_two_threads_write_exactly_what_serde_writes() {
        let catalogs = [
            vec![],
            vec![schema("empty", 0, false, false)],
            vec![schema("a", 7, true, false), schema("b", 0, false, true), schema("c", 1, true, true)],
            vec![schema("a", 5, true, true), schema("b", 9, true, false)],
            vec![schema("x", 0, true, false), schema("y", 0, false, false), schema("z", 3, true, false)],
        ];
        for schemas in &catalogs {
            let want = serde_json::to_vec(schemas).expect("serde");
            for run in 1..=4 {
                let mut got = Vec::new();
                write_schemas_in(schemas, &mut got, 0, run).expect("write");
                assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want), "run of {run}");
            }
            let mut small = Vec::new();
            write_schemas(schemas, &mut small).expect("write");
            assert_eq!(small, want, "below the threshold, one thread");
        }
        let large = vec![schema("big", 3 * RUN + 5, true, false), schema("next", RUN, true, true)];
        let mut got = Vec::new();
        write_schemas(&large, &mut got).expect("write");
        assert_eq!(got, serde_json::to_vec(&large).expect("serde"), "above the threshold");
    }

    /// Accepts `left` bytes, then fails.
    struct Failing {
        left: usize,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = buf.len().min(self.left);
            self.left -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_writer_ends_both_threads_with_its_error() {
        let schemas = vec![schema("a", 40, true, false), schema("b", 40, true, false)];
        let whole = serde_json::to_vec(&schemas).expect("serde").len();
        for left in [0, 1, 100, whole / 2, whole - 1] {
            let err = write_schemas_in(&schemas, &mut Failing { left }, 0, 3).expect_err("fails");
            assert_eq!(err.to_string(), "disk full", "after {left} bytes");
        }
        write_schemas_in(&schemas, &mut Failing { left: whole }, 0, 3).expect("exactly enough room");
    }
}
