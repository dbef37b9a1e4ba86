//! The MySQL source: reads one row by offset from each of the three tables, as the original
//! emulator did, and `load-mysql`, which creates and fills the database from the synthetic
//! dataset so a fresh MariaDB stands in for the original RDS instance.

use std::path::Path;

use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, Row, Value as SqlValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::{Event, Rows, Table, DATETIME_FORMAT};
use crate::source::synthetic::SyntheticDataset;

/// Contents of `db_creds.yaml`. The password is never printed: `Debug` hides it and errors
/// never include it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbCreds {
    #[serde(rename = "HOST")]
    pub host: String,
    #[serde(rename = "USER")]
    pub user: String,
    #[serde(rename = "PASSWORD")]
    pub password: String,
    #[serde(rename = "DATABASE")]
    pub database: String,
    #[serde(rename = "PORT", default = "default_port")]
    pub port: u16,
}

fn default_port() -> u16 {
    3306
}

impl std::fmt::Debug for DbCreds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbCreds")
            .field("host", &self.host)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .field("port", &self.port)
            .finish()
    }
}

impl DbCreds {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::ReadFile { path: path.to_path_buf(), source })?;
        // serde_yaml errors can quote the offending value: keep only their position.
        serde_yaml::from_str(&text).map_err(|e| Error::ParseFile {
            path: path.to_path_buf(),
            message: match e.location() {
                Some(l) => format!("not a valid db_creds file (line {}, column {}); expected keys HOST, USER, PASSWORD, DATABASE, PORT", l.line(), l.column()),
                None => "not a valid db_creds file; expected keys HOST, USER, PASSWORD, DATABASE, PORT".into(),
            },
        })
    }

    fn opts(&self, with_database: bool) -> Opts {
        let builder = OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .db_name(with_database.then(|| self.database.clone()));
        Opts::from(builder)
    }

    /// A database error without anything from the credentials but host, port and user.
    fn error(&self, context: &str, e: mysql_async::Error) -> Error {
        let message = e.to_string().replace(&self.password, "<redacted>");
        Error::Database {
            context: format!("{context} ({}@{}:{})", self.user, self.host, self.port),
            message: if self.password.is_empty() { e.to_string() } else { message },
        }
    }
}

/// An open MySQL source.
pub struct MysqlSource {
    pool: Pool,
    creds: DbCreds,
}

impl MysqlSource {
    pub async fn connect(creds: &DbCreds) -> Result<Self> {
        let pool = Pool::new(creds.opts(true));
        let mut conn = pool.get_conn().await.map_err(|e| creds.error("connect", e))?;
        conn.ping().await.map_err(|e| creds.error("ping", e))?;
        Ok(MysqlSource { pool, creds: creds.clone() })
    }

    pub fn database(&self) -> &str {
        &self.creds.database
    }

    /// Row `row` (by offset) of each table, as JSON objects with the columns the database has.
    pub async fn event(&self, row: u64) -> Result<Event> {
        let mut conn = self.pool.get_conn().await.map_err(|e| self.creds.error("connect", e))?;
        let mut out = Vec::with_capacity(3);
        for table in Table::ALL {
            let sql = format!("SELECT * FROM `{}` LIMIT ?, 1", table.mysql_table());
            let found: Option<Row> = conn
                .exec_first(sql, (row,))
                .await
                .map_err(|e| self.creds.error(&format!("select from {}", table.mysql_table()), e))?;
            let found = found.ok_or_else(|| Error::RowNotFound { table: table.mysql_table().into(), row })?;
            out.push(row_to_json(found));
        }
        let user = out.pop().expect("three rows");
        let geo = out.pop().expect("three rows");
        let pin = out.pop().expect("three rows");
        Ok(Event { pin, geo, user })
    }
}

fn row_to_json(row: Row) -> Value {
    let columns = row.columns();
    let values = row.unwrap();
    let mut map = Map::new();
    for (column, value) in columns.iter().zip(values) {
        map.insert(column.name_str().into_owned(), sql_to_json(value));
    }
    Value::Object(map)
}

fn sql_to_json(value: SqlValue) -> Value {
    match value {
        SqlValue::NULL => Value::Null,
        SqlValue::Int(i) => Value::from(i),
        SqlValue::UInt(u) => Value::from(u),
        SqlValue::Float(f) => Value::from(f64::from(f)),
        SqlValue::Double(d) => Value::from(d),
        SqlValue::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        SqlValue::Date(y, mo, d, h, mi, s, _) => Value::String(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")),
        SqlValue::Time(neg, days, h, m, s, _) => {
            let sign = if neg { "-" } else { "" };
            Value::String(format!("{sign}{:02}:{m:02}:{s:02}", days * 24 + u32::from(h)))
        }
    }
}

/// What `load-mysql` did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub database: String,
    pub rows_per_table: u64,
}

const SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS pinterest_data (
        `index` INT NOT NULL PRIMARY KEY, unique_id TEXT, title TEXT, description TEXT,
        poster_name TEXT, follower_count TEXT, tag_list TEXT, is_image_or_video TEXT,
        image_src TEXT, downloaded INT, save_location TEXT, category TEXT)",
    "CREATE TABLE IF NOT EXISTS geolocation_data (
        ind INT NOT NULL PRIMARY KEY, `timestamp` DATETIME, latitude DOUBLE, longitude DOUBLE,
        country TEXT)",
    "CREATE TABLE IF NOT EXISTS user_data (
        ind INT NOT NULL PRIMARY KEY, first_name TEXT, last_name TEXT, age INT,
        date_joined DATETIME)",
];

/// Creates the database and the three tables (if missing) and writes every row of `dataset`
/// (replacing rows with the same key, so a rerun is harmless).
pub async fn load_mysql(creds: &DbCreds, dataset: &SyntheticDataset) -> Result<LoadSummary> {
    if !creds.database.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Error::Config(format!("database name {:?} must be letters, digits and _", creds.database)));
    }
    let pool = Pool::new(creds.opts(false));
    let mut conn = pool.get_conn().await.map_err(|e| creds.error("connect", e))?;
    conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4", creds.database))
        .await
        .map_err(|e| creds.error("create database", e))?;
    conn.query_drop(format!("USE `{}`", creds.database)).await.map_err(|e| creds.error("use database", e))?;
    for ddl in SCHEMA {
        conn.query_drop(ddl).await.map_err(|e| creds.error("create table", e))?;
    }
    const BATCH: u64 = 500;
    let mut start = 0;
    while start < dataset.len() {
        let end = (start + BATCH).min(dataset.len());
        let rows: Vec<Rows> = (start..end).filter_map(|n| dataset.rows(n)).collect();
        insert_batch(&mut conn, &rows).await.map_err(|e| creds.error("insert rows", e))?;
        start = end;
    }
    drop(conn);
    pool.disconnect().await.map_err(|e| creds.error("disconnect", e))?;
    Ok(LoadSummary { database: creds.database.clone(), rows_per_table: dataset.len() })
}

async fn insert_batch(conn: &mut mysql_async::Conn, rows: &[Rows]) -> std::result::Result<(), mysql_async::Error> {
    let placeholders = |cols: usize| {
        let one = format!("({})", vec!["?"; cols].join(","));
        vec![one; rows.len()].join(",")
    };
    let mut params: Vec<SqlValue> = Vec::new();
    for r in rows {
        let p = &r.pin;
        params.extend([
            p.index.into(),
            p.unique_id.clone().into(),
            p.title.clone().into(),
            p.description.clone().into(),
            p.poster_name.clone().into(),
            p.follower_count.clone().into(),
            p.tag_list.clone().into(),
            p.is_image_or_video.clone().into(),
            p.image_src.clone().into(),
            p.downloaded.into(),
            p.save_location.clone().into(),
            p.category.clone().into(),
        ]);
    }
    conn.exec_drop(format!("REPLACE INTO pinterest_data VALUES {}", placeholders(12)), params).await?;
    let mut params: Vec<SqlValue> = Vec::new();
    for r in rows {
        let g = &r.geo;
        params.extend([
            g.ind.into(),
            g.timestamp.format(DATETIME_FORMAT).to_string().into(),
            g.latitude.into(),
            g.longitude.into(),
            g.country.clone().into(),
        ]);
    }
    conn.exec_drop(format!("REPLACE INTO geolocation_data VALUES {}", placeholders(5)), params).await?;
    let mut params: Vec<SqlValue> = Vec::new();
    for r in rows {
        let u = &r.user;
        params.extend([
            u.ind.into(),
            u.first_name.clone().into(),
            u.last_name.clone().into(),
            u.age.into(),
            u.date_joined.format(DATETIME_FORMAT).to_string().into(),
        ]);
    }
    conn.exec_drop(format!("REPLACE INTO user_data VALUES {}", placeholders(5)), params).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creds_debug_hides_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db_creds.yaml");
        std::fs::write(&path, "HOST: db\nUSER: u\nPASSWORD: s3cr3t-pw\nDATABASE: pinterest_data\nPORT: 3306\n")
            .unwrap();
        let creds = DbCreds::load(&path).unwrap();
        assert_eq!(creds.port, 3306);
        assert!(!format!("{creds:?}").contains("s3cr3t-pw"));
        std::fs::write(&path, "HOST: db\nPASSWORD: s3cr3t-pw\nBOGUS: [\n").unwrap();
        let err = DbCreds::load(&path).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t-pw"), "{err}");
    }

    #[test]
    fn sql_values_become_json() {
        assert_eq!(sql_to_json(SqlValue::Date(2021, 4, 19, 17, 37, 3, 0)), Value::from("2021-04-19 17:37:03"));
        assert_eq!(sql_to_json(SqlValue::Int(-3)), Value::from(-3));
        assert_eq!(sql_to_json(SqlValue::Bytes(b"x".to_vec())), Value::from("x"));
        assert_eq!(sql_to_json(SqlValue::NULL), Value::Null);
    }
}
