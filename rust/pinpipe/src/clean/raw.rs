//! The raw (landed) form of each table: the explicit schema landing records are read with (never
//! inferred), and the coercions from JSON values to it. A value that cannot be coerced makes the
//! whole record a dead letter.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::model::Table;

/// Target type of a raw column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawType {
    /// Text; numbers and booleans become their JSON text.
    Text,
    /// 64-bit integer; integral floats and digit strings are accepted.
    Int64,
    /// 32-bit integer, same coercions, range-checked.
    Int32,
    /// Double; numeric strings are accepted.
    Float64,
    /// UTC timestamp in microseconds, from `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DDTHH:MM:SS` or
    /// `YYYY-MM-DDTHH:MM:SS.fffZ` (offsets other than Z are converted to UTC).
    Timestamp,
}

/// A raw column: name, type, and whether a record without it is a dead letter.
#[derive(Debug, Clone, Copy)]
pub struct RawColumn {
    pub name: &'static str,
    pub ty: RawType,
    pub required: bool,
}

const fn col(name: &'static str, ty: RawType) -> RawColumn {
    RawColumn { name, ty, required: false }
}

const fn key(name: &'static str) -> RawColumn {
    RawColumn { name, ty: RawType::Int64, required: true }
}

const PIN: [RawColumn; 12] = [
    key("index"),
    col("unique_id", RawType::Text),
    col("title", RawType::Text),
    col("description", RawType::Text),
    col("poster_name", RawType::Text),
    col("follower_count", RawType::Text),
    col("tag_list", RawType::Text),
    col("is_image_or_video", RawType::Text),
    col("image_src", RawType::Text),
    col("downloaded", RawType::Int64),
    col("save_location", RawType::Text),
    col("category", RawType::Text),
];

const GEO: [RawColumn; 5] = [
    key("ind"),
    col("timestamp", RawType::Timestamp),
    col("latitude", RawType::Float64),
    col("longitude", RawType::Float64),
    col("country", RawType::Text),
];

const USER: [RawColumn; 5] = [
    key("ind"),
    col("first_name", RawType::Text),
    col("last_name", RawType::Text),
    col("age", RawType::Int32),
    col("date_joined", RawType::Timestamp),
];

/// Columns every raw table carries after the data columns: where the record was landed.
pub const PARTITION_COLUMN: &str = "_partition";
pub const OFFSET_COLUMN: &str = "_offset";

/// The raw columns of a table, in order.
pub fn raw_columns(table: Table) -> &'static [RawColumn] {
    match table {
        Table::Pin => &PIN,
        Table::Geo => &GEO,
        Table::User => &USER,
    }
}

pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn arrow_type(ty: RawType) -> DataType {
    match ty {
        RawType::Text => DataType::Utf8,
        RawType::Int64 => DataType::Int64,
        RawType::Int32 => DataType::Int32,
        RawType::Float64 => DataType::Float64,
        RawType::Timestamp => timestamp_type(),
    }
}

/// Arrow schema of a raw table: the data columns, then `_partition` (int32) and `_offset` (int64).
pub fn raw_schema(table: Table) -> SchemaRef {
    let mut fields: Vec<Field> =
        raw_columns(table).iter().map(|c| Field::new(c.name, arrow_type(c.ty), !c.required)).collect();
    fields.push(Field::new(PARTITION_COLUMN, DataType::Int32, false));
    fields.push(Field::new(OFFSET_COLUMN, DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// Parses one of the accepted datetime shapes to microseconds since the epoch, UTC.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let t = text.trim();
    let (body, zulu) = match t.strip_suffix('Z').or_else(|| t.strip_suffix('z')) {
        Some(b) => (b, true),
        None => (t, false),
    };
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(body, format) {
            return Some(naive.and_utc().timestamp_micros());
        }
    }
    if !zulu {
        if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
            return Some(dt.timestamp_micros());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_datetime_shapes_are_one_instant() {
        let a = parse_timestamp("2021-04-19 17:37:03").unwrap();
        assert_eq!(parse_timestamp("2021-04-19T17:37:03"), Some(a));
        assert_eq!(parse_timestamp("2021-04-19T17:37:03.000Z"), Some(a));
        assert_eq!(parse_timestamp("2021-04-19T19:37:03+02:00"), Some(a));
        assert_eq!(a, 1_618_853_823_000_000);
        assert_eq!(parse_timestamp("19/04/2021"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    #[test]
    fn raw_schemas_end_with_the_landing_position() {
        let s = raw_schema(Table::Pin);
        assert_eq!(s.field(0).name(), "index");
        assert_eq!(s.fields().len(), 14);
        assert_eq!(s.field(13).name(), OFFSET_COLUMN);
    }
}
