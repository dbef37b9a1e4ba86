//! `query`: every lake table registered by name in one SQL session.

use deltalake::arrow::array::RecordBatch;
use serde::Serialize;

use crate::analytics;
use crate::batch::{clean_path, raw_path, DEAD_LETTERS_PATH, QUALITY_PATH};
use crate::clean;
use crate::delta::Lake;
use crate::error::{Error, Result};
use crate::model::Table;

/// A table name users can query and where it lives under the lake root.
#[derive(Debug, Clone, Serialize)]
pub struct LakeTable {
    pub name: String,
    pub path: String,
}

/// Every table the pipeline writes, by the name `query` knows it by.
pub fn lake_tables() -> Vec<LakeTable> {
    let mut out = Vec::new();
    for t in Table::ALL {
        out.push(LakeTable { name: t.suffix().into(), path: clean_path(t) });
    }
    for q in analytics::queries() {
        out.push(LakeTable { name: q.name.into(), path: analytics::table_path(q.name) });
    }
    out.push(LakeTable { name: "_dead_letters".into(), path: DEAD_LETTERS_PATH.into() });
    out.push(LakeTable { name: "_quality".into(), path: QUALITY_PATH.into() });
    for t in Table::ALL {
        out.push(LakeTable { name: format!("_raw_{}", t.suffix()), path: raw_path(t) });
    }
    out
}

/// Runs SQL with every existing lake table registered by name.
pub async fn run_sql(lake_root: &str, sql: &str) -> Result<Vec<RecordBatch>> {
    let lake = Lake::new(lake_root)?;
    let ctx = clean::session();
    for t in lake_tables() {
        lake.register(&ctx, &t.name, &t.path).await?;
    }
    let df = ctx.sql(sql).await.map_err(Error::datafusion("plan query"))?;
    df.collect().await.map_err(Error::datafusion("run query"))
}

/// All rows of one named table (sorted by its first columns for analytics tables).
pub async fn read_table(lake_root: &str, name: &str) -> Result<Vec<RecordBatch>> {
    let Some(table) = lake_tables().into_iter().find(|t| t.name == name) else {
        let names: Vec<String> = lake_tables().into_iter().map(|t| t.name).collect();
        return Err(Error::Config(format!("no table named {name:?}; known tables: {}", names.join(", "))));
    };
    let lake = Lake::new(lake_root)?;
    if lake.existing(&table.path).await?.is_none() {
        return Err(Error::Config(format!(
            "table {name} does not exist yet under {} (run `pinpipe batch` first)",
            lake.root()
        )));
    }
    let sql = match analytics::queries().iter().find(|q| q.name == name) {
        Some(q) => {
            let order: Vec<String> = q
                .schema()
                .fields()
                .iter()
                .take(q.schema().fields().len() - 1)
                .map(|f| format!("\"{}\"", f.name()))
                .collect();
            format!("SELECT * FROM \"{name}\" ORDER BY {}", order.join(", "))
        }
        None => format!("SELECT * FROM \"{name}\""),
    };
    run_sql(lake_root, &sql).await
}

/// Renders batches as a text table.
pub fn pretty(batches: &[RecordBatch]) -> Result<String> {
    deltalake::arrow::util::pretty::pretty_format_batches(batches)
        .map(|t| t.to_string())
        .map_err(|e| Error::datafusion("format")(e.into()))
}
