//! Running the discovery batch and assembling its rows into a [`Catalog`].
//!
//! Rows are consumed as they stream in (nothing holds a whole result set); what is kept is the
//! catalog itself plus the key arrays needed to name constraint and index columns at the end.
//!
//! Text in a `SQL_ASCII` database arrives escaped (`sql::txt`): the client turns it back into the
//! stored bytes, keeps them when they are UTF-8 (as they often are there), and otherwise replaces
//! each invalid sequence with U+FFFD and flags the object (`lossy_text`). One such byte in a
//! comment never fails a discovery. Every other server encoding is converted to UTF8 by the
//! server, as for any client.

use std::cell::Cell;

use futures_util::StreamExt;
use sluice_connect::tokio_postgres::{Client, SimpleQueryMessage};
use sluice_connect::{Isolation, ReadOnlySession, TransactionOptions};

use crate::model::Catalog;
use crate::sql::{self, Features, Statement};
use crate::CatalogError;

mod assemble;
mod fold;

use fold::{Builder, Cells};

/// What to discover.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// Only these schemas (exact names); empty means every non-system schema.
    pub schemas: Vec<String>,
}

/// Discovers everything `session`'s user can see, in one read-only `REPEATABLE READ`
/// transaction: begun and confirmed read-only (one round trip), then a fixed number of catalog
/// queries sent as one message (one round trip whatever the catalog's size), then committed.
///
/// On error the transaction is rolled back and the session stays usable. If the future is
/// dropped midway, the session is left inside the transaction: hand it back to its pool, whose
/// reset ends it, or drop it (the next transaction on the session also ends it first).
pub async fn discover(session: &mut ReadOnlySession, opts: &DiscoverOptions) -> Result<Catalog, CatalogError> {
    let info = session.info().clone();
    if info.server_version_num < 100_000 {
        return Err(CatalogError::UnsupportedVersion { version: info.server_version.clone() });
    }
    let (sql, order) = sql::batch(Features::for_version(info.server_version_num), session.settings(), &opts.schemas)?;
    let options = TransactionOptions { isolation: Isolation::RepeatableRead, ..Default::default() };
    let tx = session.read_only_transaction_with(&options).await.map_err(connect_err)?;
    let mut builder = Builder::default();
    if let Err(e) = run(tx.client(), &sql, &order, &mut builder).await {
        // Best effort: the batch stopped inside the transaction.
        let _ = tx.rollback().await;
        return Err(e);
    }
    tx.commit().await.map_err(connect_err)?;
    let started = std::time::Instant::now();
    let catalog = builder.finish(&info, opts);
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "catalog assembled");
    catalog
}

fn connect_err(e: sluice_connect::ConnectError) -> CatalogError {
    CatalogError::Connection { reason: e.to_string() }
}

async fn run(client: &Client, sql: &str, order: &[Statement], builder: &mut Builder) -> Result<(), CatalogError> {
    let stream = client.simple_query_raw(sql).await.map_err(CatalogError::from_driver)?;
    let mut stream = std::pin::pin!(stream);
    let mut done = 0usize;
    let started = std::time::Instant::now();
    while let Some(message) = stream.next().await {
        match message.map_err(CatalogError::from_driver)? {
            SimpleQueryMessage::Row(row) => {
                let statement = order.get(done).copied().ok_or(CatalogError::Protocol {
                    statement: "batch",
                    detail: "more result sets than statements".into(),
                })?;
                let escaped = builder.escaped;
                builder.row(Cells { row: &row, statement, escaped, lossy: Cell::new(false) })?;
            }
            SimpleQueryMessage::CommandComplete(rows) => {
                if let Some(&statement) = order.get(done) {
                    builder.statement_done(statement);
                }
                tracing::debug!(
                    statement = order.get(done).map_or("?", |s| s.name()),
                    rows,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "catalog statement done"
                );
                done += 1;
            }
            _ => {}
        }
    }
    if done != order.len() {
        return Err(CatalogError::Protocol {
            statement: "batch",
            detail: format!("{done} of {} statements completed", order.len()),
        });
    }
    Ok(())
}
