//! The raw (landed) form of each table: the explicit schema landing records are read with (never
//! inferred), and the datetime shapes RULES.md accepts. A value that cannot be coerced becomes
//! null (counted); only an unusable key makes the record a dead letter.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::model::Table;

/// Target type of a raw column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawType {
    /// Text; numbers and booleans become their JSON text.
    Text,
    /// 64-bit integer; whole numbers written as JSON numbers or numeric strings are accepted.
    Int64,
    /// 32-bit integer, same coercions, range-checked.
    Int32,
    /// Double; numeric strings are accepted.
    Float64,
    /// UTC timestamp in microseconds, from the datetime shapes of [`parse_timestamp`].
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

/// Parses a datetime in one of RULES.md's accepted shapes to microseconds since the epoch, UTC:
/// after trimming, `YYYY-MM-DD`, a space or `T` (either case), `HH:MM:SS`, an optional fraction
/// of 1 to 9 digits (truncated to microseconds), and an optional zone — `Z` (either case), `±HH`,
/// `±HHMM` or `±HH:MM`; no zone means UTC. Impossible dates and times (`2021-02-30`, `24:00:00`)
/// are `None`.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let t = super::trim(text).as_bytes();
    let digits = |from: usize, len: usize| -> Option<u32> {
        let part = t.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let at = |i: usize, allowed: &[u8]| t.get(i).is_some_and(|b| allowed.contains(b));
    if !(at(4, b"-") && at(7, b"-") && at(10, b" Tt") && at(13, b":") && at(16, b":")) {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(digits(0, 4)? as i32, digits(5, 2)?, digits(8, 2)?)?;
    let time = NaiveTime::from_hms_opt(digits(11, 2)?, digits(14, 2)?, digits(17, 2)?)?;
    let mut rest = &t[19..];
    let mut micros: i64 = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return None;
        }
        for i in 0..6 {
            micros = micros * 10 + fraction.get(i).filter(|_| i < n).map_or(0, |d| i64::from(d - b'0'));
        }
        rest = &fraction[n..];
    }
    let offset_secs: i64 = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), zone @ ..] => {
            let two = |z: &[u8]| -> Option<i64> {
                (z.len() == 2 && z.iter().all(u8::is_ascii_digit))
                    .then(|| i64::from((z[0] - b'0') * 10 + (z[1] - b'0')))
            };
            let (hours, minutes) = match zone.len() {
                2 => (two(zone)?, 0),
                4 => (two(&zone[..2])?, two(&zone[2..])?),
                5 if zone[2] == b':' => (two(&zone[..2])?, two(&zone[3..])?),
                _ => return None,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = hours * 3600 + minutes * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    Some(date.and_time(time).and_utc().timestamp_micros() + micros - offset_secs * 1_000_000)
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
    fn utc_offsets_fractions_and_either_case_are_accepted() {
        let at = |s: &str| parse_timestamp(s);
        let base = at("2018-12-31 23:30:00.123").unwrap();
        for shape in [
            "2019-01-01T00:30:00.123+01",
            "2019-01-01T00:30:00.123+0100",
            "2019-01-01t00:30:00.123+01:00",
            " 2018-12-31T23:30:00.123z\n",
            "2018-12-31 22:00:00.123-01:30",
            "2018-12-31T23:30:00.123000999",
        ] {
            assert_eq!(at(shape), Some(base), "{shape:?}");
        }
        assert_eq!(at("2021-04-19T17:37:03.5"), Some(at("2021-04-19T17:37:03").unwrap() + 500_000));
        for bad in [
            "2021-02-30 00:00:00",
            "2021-13-01 00:00:00",
            "2021-01-01 24:00:00",
            "2021-01-01 00:00:60",
            "2021-01-01",
            "2021-01-01 00:00",
            "2021-1-01 00:00:00",
            "2021-01-01X00:00:00",
            "2021-01-01 00:00:00.",
            "2021-01-01 00:00:00.1234567890",
            "2021-01-01 00:00:00+1",
            "2021-01-01 00:00:00+01:3",
            "2021-01-01 00:00:00+24",
            "2021-01-01 00:00:00 +01",
            "2021-01-01 00:00:00ZZ",
            "+2021-01-01 00:00:00",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn raw_schemas_end_with_the_landing_position() {
        let s = raw_schema(Table::Pin);
        assert_eq!(s.field(0).name(), "index");
        assert_eq!(s.fields().len(), 14);
        assert_eq!(s.field(13).name(), OFFSET_COLUMN);
    }
}
