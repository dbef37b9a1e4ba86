//! The raw (landed) form of each table: the explicit schema landing records are read with (never
//! inferred), and the datetime shapes RULES.md accepts. A value that cannot be coerced becomes
//! null (counted); only an unusable key makes the record a dead letter.

use std::sync::Arc;

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
pub fn parse_timestamp(text: impl AsRef<[u8]>) -> Option<i64> {
    let t = super::trim_bytes(text.as_ref());
    let head: &[u8; 19] = t.get(..19)?.try_into().expect("19 bytes");
    if !(head[4] == b'-'
        && head[7] == b'-'
        && matches!(head[10], b' ' | b'T' | b't')
        && head[13] == b':'
        && head[16] == b':')
    {
        return None;
    }
    let digit = |i: usize| {
        let d = head[i].wrapping_sub(b'0');
        (d < 10).then_some(i64::from(d))
    };
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let (year, month, day) = (two(0)? * 100 + two(2)?, two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
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
    let seconds = days_since_epoch(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some((seconds - offset_secs) * 1_000_000 + micros)
}

/// Days in `month` (1–12) of `year`, in the proleptic Gregorian calendar.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a valid date of the proleptic Gregorian calendar from year 0 on:
/// whole 400-year cycles of 146,097 days, then years counted from March, so that a leap day ends
/// its year. Counted from a cycle before year 0, so that every quotient is of positive numbers.
#[inline]
fn days_since_epoch(year: i64, month: i64, day: i64) -> i64 {
    let year = year + 400 - i64::from(month <= 2);
    let (cycles, year_of_cycle) = (year / 400, year % 400);
    let month_from_march = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_cycle = year_of_cycle * 365 + year_of_cycle / 4 - year_of_cycle / 100 + day_of_year;
    (cycles - 1) * 146_097 + day_of_cycle - 719_468
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

    /// Every day of years around the edges of the calendar's rules, and a second of each, read
    /// as chrono reads them.
    #[test]
    fn dates_are_counted_as_chrono_counts_them() {
        use chrono::NaiveDate;
        for year in [0, 1, 4, 99, 100, 400, 1600, 1899, 1900, 1969, 1970, 1971, 2000, 2023, 2024, 2100, 9999] {
            for month in 1..=12 {
                for day in 1..=31 {
                    let text = format!("{year:04}-{month:02}-{day:02} 23:59:58");
                    let want = NaiveDate::from_ymd_opt(year, month, day)
                        .map(|d| d.and_hms_opt(23, 59, 58).expect("a time").and_utc().timestamp_micros());
                    assert_eq!(parse_timestamp(&text), want, "{text}");
                }
            }
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
