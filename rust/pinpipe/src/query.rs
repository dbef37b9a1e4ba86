//! `query`: every lake table registered by name in one SQL session.

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use serde::{Deserialize, Serialize};

use crate::config::AwsConfig;

use crate::analytics;
use crate::batch::{clean_path, raw_path, DEAD_LETTERS_PATH, QUALITY_PATH};
use crate::clean;
use crate::delta::Lake;
use crate::error::{Error, Result};
use crate::model::Table;
use crate::names::UserId;

/// Settings of `query`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Lake root: a local directory or `s3://bucket/prefix`. Default `lake`.
    pub lake: String,
    /// Whose stream tables (`<uid>_pin_table`, ...) are registered.
    pub user_id: UserId,
    /// AWS access for an S3 lake.
    pub aws: AwsConfig,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig { lake: "lake".into(), user_id: UserId::default(), aws: AwsConfig::default() }
    }
}

/// A table name users can query and where it lives under the lake root.
#[derive(Debug, Clone, Serialize)]
pub struct LakeTable {
    pub name: String,
    pub path: String,
}

/// Every table the pipeline writes for the default user, by the name `query` knows it by.
pub fn lake_tables() -> Vec<LakeTable> {
    lake_tables_of(&UserId::default())
}

/// Every table the pipeline writes for `user`, by the name `query` knows it by.
pub fn lake_tables_of(user: &UserId) -> Vec<LakeTable> {
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
        out.push(LakeTable { name: format!("_keys_{}", t.suffix()), path: crate::batch::keys_path(t) });
    }
    for t in Table::ALL {
        out.push(LakeTable { name: user.stream_table(t), path: crate::stream::table_path(user, t) });
    }
    out.push(LakeTable { name: "_stream_dead_letters".into(), path: crate::stream::DEAD_LETTERS_PATH.into() });
    out
}

/// Runs SQL with every existing lake table registered by name.
pub async fn run_sql(lake_root: &str, sql: &str) -> Result<Vec<RecordBatch>> {
    sql_on(&Lake::new(lake_root).await?, sql).await
}

/// `query` with its settings: a named table or SQL. The schema comes along, so an empty result
/// still has its columns.
pub async fn query(config: &QueryConfig, target: &QueryTarget) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let lake = Lake::new_with(&config.lake, &config.aws).await?;
    let tables = lake_tables_of(&config.user_id);
    let sql = match target {
        QueryTarget::Table(name) => table_sql(&lake, &tables, name).await?,
        QueryTarget::Sql(sql) => sql.clone(),
    };
    let df = plan(&lake, &tables, &sql).await?;
    let schema: SchemaRef = df.schema().inner().clone();
    let batches = df.collect().await.map_err(Error::datafusion("run query"))?;
    plain_types(schema, batches)
}

/// The tables' declared types: the Delta scan reads text as Arrow's view types (`Utf8View`),
/// which a reader of the table (Spark, the `deltalake` package) sees as plain `string`.
fn plain_types(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    use deltalake::arrow::compute::cast;
    use deltalake::arrow::datatypes::{DataType, Field, Schema};
    let plain = |t: &DataType| match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        other => other.clone(),
    };
    if !schema.fields().iter().any(|f| plain(f.data_type()) != *f.data_type()) {
        return Ok((schema, batches));
    }
    let fields: Vec<Field> =
        schema.fields().iter().map(|f| f.as_ref().clone().with_data_type(plain(f.data_type()))).collect();
    let target = std::sync::Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let convert = |e: deltalake::arrow::error::ArrowError| Error::datafusion("convert result")(e.into());
    let batches = batches
        .into_iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(target.fields())
                .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { cast(c, f.data_type()) })
                .collect::<Result<Vec<_>, _>>()
                .map_err(convert)?;
            RecordBatch::try_new(target.clone(), columns).map_err(convert)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((target, batches))
}

/// What `query` reads.
#[derive(Debug, Clone)]
pub enum QueryTarget {
    /// A table by name (`pin`, `top_category_by_country`, `_dead_letters`, ...).
    Table(String),
    /// SQL over every lake table.
    Sql(String),
}

async fn sql_on(lake: &Lake, sql: &str) -> Result<Vec<RecordBatch>> {
    plan(lake, &lake_tables(), sql).await?.collect().await.map_err(Error::datafusion("run query"))
}

async fn plan(lake: &Lake, tables: &[LakeTable], sql: &str) -> Result<deltalake::datafusion::dataframe::DataFrame> {
    let ctx = clean::session();
    for t in tables {
        lake.register(&ctx, &t.name, &t.path).await?;
    }
    ctx.sql(sql).await.map_err(Error::datafusion("plan query"))
}

/// The SQL that reads one named table (sorted by its group columns for analytics tables).
async fn table_sql(lake: &Lake, tables: &[LakeTable], name: &str) -> Result<String> {
    let Some(table) = tables.iter().find(|t| t.name == name) else {
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        return Err(Error::Config(format!("no table named {name:?}; known tables: {}", names.join(", "))));
    };
    if lake.existing(&table.path).await?.is_none() {
        return Err(Error::Config(format!(
            "table {name} does not exist yet under {} (run `pinpipe batch` or `pinpipe stream` first)",
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
    Ok(sql)
}

/// Renders batches as a text table.
pub fn pretty(batches: &[RecordBatch]) -> Result<String> {
    deltalake::arrow::util::pretty::pretty_format_batches(batches)
        .map(|t| t.to_string())
        .map_err(|e| Error::datafusion("format")(e.into()))
}
