//! Decoding landed JSON lines into raw Arrow batches with the explicit raw schema, as RULES.md's
//! "Dirty values" decides: a record is a dead letter only when it is not a JSON object or its key
//! is unusable; any other value that cannot be used as its column's type becomes null and is
//! counted as `<column>: unparsable`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use serde::de::IgnoredAny;

use super::json;
use super::raw::{parse_timestamp, raw_columns, raw_schema, RawColumn, RawType};
use super::trim;
use crate::model::Table;

/// A JSON value of a wanted column as read, before coercion. Numbers keep their text: text
/// columns take it as written, and no number is too large to read.
#[derive(Debug, Clone, PartialEq)]
enum Json<'a> {
    Missing,
    Null,
    Bool(bool),
    Number(&'a str),
    Str(Cow<'a, str>),
    Complex,
    /// A string with half of a surrogate pair escaped (`"\ud800"`): valid JSON, but no text.
    LoneSurrogate,
}

impl<'a> Json<'a> {
    fn of(value: json::Value<'a>) -> Self {
        match value {
            json::Value::Null => Json::Null,
            json::Value::Bool(b) => Json::Bool(b),
            json::Value::Number(t) => Json::Number(t),
            json::Value::Str(s, false) => Json::Str(Cow::Borrowed(s)),
            json::Value::Str(s, true) => json::unescape(s).map_or(Json::LoneSurrogate, |s| Json::Str(Cow::Owned(s))),
            json::Value::Complex => Json::Complex,
        }
    }
}

/// A value coerced to its column's type.
enum Typed<'a> {
    Null,
    Text(Cow<'a, str>),
    Int(i64),
    Float(f64),
}

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// 1-based line number in the object.
    pub line: i64,
    /// 0-based index of the record in the object (blank lines are not records): its offset is
    /// the object's start offset plus this.
    pub index: i64,
    /// The record as text (invalid UTF-8 replaced, for reading).
    pub raw: String,
    /// The record's exact bytes.
    pub raw_bytes: Vec<u8>,
    pub error: String,
}

impl DeadLetter {
    /// A dead letter of `line` (1-based), whose record is the landed line `text` — or, for a
    /// value the sink landed as undecodable, the value's original bytes.
    fn new(line: i64, index: i64, text: &[u8], error: String) -> Self {
        DeadLetter { line, index, raw: String::from_utf8_lossy(text).into_owned(), raw_bytes: text.to_vec(), error }
    }
}

/// Why a value the sink could not land as JSON is not JSON.
fn undecodable_error(value: &[u8]) -> String {
    if value.trim_ascii().is_empty() {
        return "value is empty or blank, not JSON".to_string();
    }
    match serde_json::from_slice::<IgnoredAny>(value) {
        Err(e) if std::str::from_utf8(value).is_err() => format!("value is not UTF-8 JSON: {e}"),
        Err(e) => format!("value is not JSON: {e}"),
        Ok(_) => "value is not JSON".to_string(),
    }
}

/// The decoded records of one landing object.
pub struct Decoded {
    pub batch: RecordBatch,
    pub dead_letters: Vec<DeadLetter>,
    nulls: NullCounts,
    table: Table,
}

/// Values the cleaning turns to null, per raw column (in the order of [`raw_columns`]).
#[derive(Debug, Clone)]
struct NullCounts {
    /// Text that is empty once trimmed.
    empty: Vec<u64>,
    /// Text that is one of the column's sentinels (per sentinel, in [`super::sentinels`] order).
    sentinel: Vec<Vec<u64>>,
    /// Values that cannot be used as the column's type (a follower count that is no count too).
    unparsable: Vec<u64>,
}

impl Decoded {
    /// Adds the values the cleaning sets to null to `counts`, as `<column>: <cause>` (cause
    /// `empty`, the sentinel, or `unparsable`). The dropped `downloaded` column reaches no table
    /// and is not counted.
    pub fn count_nulls(&self, counts: &mut BTreeMap<String, u64>) {
        let mut add = |column: &str, cause: &str, n: u64| {
            if n > 0 {
                *counts.entry(format!("{column}: {cause}")).or_default() += n;
            }
        };
        for (i, column) in raw_columns(self.table).iter().enumerate() {
            if column.name == "downloaded" {
                continue;
            }
            add(column.name, "empty", self.nulls.empty[i]);
            for (sentinel, n) in super::sentinels(self.table, column.name).iter().zip(&self.nulls.sentinel[i]) {
                add(column.name, sentinel, *n);
            }
            add(column.name, "unparsable", self.nulls.unparsable[i]);
        }
    }
}

/// `-?[0-9]+` as an i64 (None when it is not one, or does not fit).
fn integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A finite number written as JSON number text or as a numeric string (`"7.25"`, `" 33"`).
fn number(text: &str) -> Option<f64> {
    let t = trim(text);
    // Rust's parser also takes "inf" and "NaN": not numbers here.
    t.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// A whole number that fits an i64, from a JSON number or a numeric string (`33`, `"33"`,
/// `33.0`); None otherwise.
fn whole_number(text: &str) -> Option<i64> {
    let t = trim(text);
    if let Some(i) = integer(t.strip_prefix('+').unwrap_or(t)) {
        return Some(i);
    }
    let f = number(t)?;
    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}

/// Why a record's key is unusable, or its value.
fn key_value(column: &RawColumn, value: &Json) -> Result<i64, String> {
    let name = column.name;
    match value {
        Json::Missing => Err(format!("column {name} is missing")),
        Json::Null => Err(format!("column {name} is null")),
        Json::Number(t) => integer(t).ok_or_else(|| format!("column {name}: {t} is not an integer that fits 64 bits")),
        Json::Str(s) => integer(trim(s)).ok_or_else(|| format!("column {name}: {s:?} is not an integer")),
        Json::Bool(b) => Err(format!("column {name}: {b} is not an integer")),
        Json::Complex => Err(format!("column {name}: an object or array is not an integer")),
        Json::LoneSurrogate => Err(format!("column {name}: a string with a lone surrogate escape is not an integer")),
    }
}

/// A value as its column's type; None when it cannot be used (it becomes null, counted).
fn coerce<'a>(column: &RawColumn, value: Json<'a>) -> Option<Typed<'a>> {
    if matches!(value, Json::Missing | Json::Null) {
        return Some(Typed::Null);
    }
    match column.ty {
        RawType::Text => match value {
            Json::Str(s) => Some(Typed::Text(s)),
            Json::Number(t) => Some(Typed::Text(Cow::Borrowed(t))),
            Json::Bool(b) => Some(Typed::Text(Cow::Borrowed(if b { "true" } else { "false" }))),
            _ => None,
        },
        RawType::Int64 | RawType::Int32 => {
            let i = match value {
                Json::Number(t) => whole_number(t),
                Json::Str(s) => whole_number(&s),
                _ => None,
            }?;
            (column.ty == RawType::Int64 || i32::try_from(i).is_ok()).then_some(Typed::Int(i))
        }
        RawType::Float64 => match value {
            Json::Number(t) => number(t).map(Typed::Float),
            Json::Str(s) => number(&s).map(Typed::Float),
            _ => None,
        },
        RawType::Timestamp => match value {
            Json::Str(s) => parse_timestamp(&s).map(Typed::Int),
            _ => None,
        },
    }
}

enum Builder {
    Text(StringBuilder),
    Int64(Int64Builder),
    Int32(Int32Builder),
    Float64(Float64Builder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl Builder {
    fn new(ty: RawType, capacity: usize) -> Self {
        match ty {
            RawType::Text => Builder::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
            RawType::Int64 => Builder::Int64(Int64Builder::with_capacity(capacity)),
            RawType::Int32 => Builder::Int32(Int32Builder::with_capacity(capacity)),
            RawType::Float64 => Builder::Float64(Float64Builder::with_capacity(capacity)),
            RawType::Timestamp => {
                Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"))
            }
        }
    }

    fn append(&mut self, value: Typed) {
        match (self, value) {
            (Builder::Text(b), Typed::Text(s)) => b.append_value(s),
            (Builder::Text(b), _) => b.append_null(),
            (Builder::Int64(b), Typed::Int(i)) => b.append_value(i),
            (Builder::Int64(b), _) => b.append_null(),
            (Builder::Int32(b), Typed::Int(i)) => b.append_value(i as i32),
            (Builder::Int32(b), _) => b.append_null(),
            (Builder::Float64(b), Typed::Float(f)) => b.append_value(f),
            (Builder::Float64(b), _) => b.append_null(),
            (Builder::Timestamp(b), Typed::Int(i)) => b.append_value(i),
            (Builder::Timestamp(b), _) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Text(mut b) => Arc::new(b.finish()),
            Builder::Int64(mut b) => Arc::new(b.finish()),
            Builder::Int32(mut b) => Arc::new(b.finish()),
            Builder::Float64(mut b) => Arc::new(b.finish()),
            Builder::Timestamp(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Builds one raw batch from records, counting the values the cleaning will set to null.
struct Decoder<'a> {
    table: Table,
    columns: &'static [RawColumn],
    sentinels: Vec<&'static [&'static str]>,
    builders: Vec<Builder>,
    partitions: Int32Builder,
    offsets: Int64Builder,
    /// The values of the record being decoded (reused).
    values: Vec<Json<'a>>,
    nulls: NullCounts,
    dead_letters: Vec<DeadLetter>,
}

impl<'a> Decoder<'a> {
    fn new(table: Table, capacity: usize) -> Self {
        let columns = raw_columns(table);
        let sentinels: Vec<_> = columns.iter().map(|c| super::sentinels(table, c.name)).collect();
        let n = columns.len();
        Decoder {
            table,
            columns,
            builders: columns.iter().map(|c| Builder::new(c.ty, capacity)).collect(),
            nulls: NullCounts {
                empty: vec![0; n],
                sentinel: sentinels.iter().map(|s| vec![0; s.len()]).collect(),
                unparsable: vec![0; n],
            },
            sentinels,
            partitions: Int32Builder::with_capacity(capacity),
            offsets: Int64Builder::with_capacity(capacity),
            values: Vec::with_capacity(n),
            dead_letters: Vec::new(),
        }
    }

    /// Decodes one JSON document into a row, or returns why it is a dead letter (nothing is
    /// appended then). Unusable values become nulls, counted.
    fn record(&mut self, text: &'a str, partition: i32, offset: i64) -> Result<(), String> {
        self.values.clear();
        self.values.resize(self.columns.len(), Json::Missing);
        let (columns, values) = (self.columns, &mut self.values);
        // Keys mostly come in the columns' order: the one after the last match is tried first.
        let mut next = 0;
        json::object(text, |key, value| {
            let found = match columns.get(next) {
                Some(c) if c.name == key => Some(next),
                _ => columns.iter().position(|c| c.name == key),
            };
            // The last of repeated keys wins.
            if let Some(i) = found {
                values[i] = Json::of(value);
                next = i + 1;
            }
        })
        .map_err(|e| format!("not a JSON object: {e}"))?;
        let mut key = 0;
        for (column, value) in self.columns.iter().zip(&self.values) {
            if column.required {
                key = key_value(column, value)?;
            }
        }
        for (i, (column, value)) in self.columns.iter().zip(self.values.drain(..)).enumerate() {
            let typed = if column.required {
                Typed::Int(key)
            } else {
                coerce(column, value).unwrap_or_else(|| {
                    self.nulls.unparsable[i] += 1;
                    Typed::Null
                })
            };
            if let Typed::Text(text) = &typed {
                // RULES.md's null rule, counted here; the cleaning query applies it.
                let t = trim(text);
                if t.is_empty() {
                    self.nulls.empty[i] += 1;
                } else if let Some(s) = self.sentinels[i].iter().position(|s| *s == t) {
                    self.nulls.sentinel[i][s] += 1;
                } else if self.table == Table::Pin
                    && column.name == "follower_count"
                    && super::parse_follower_count(t).is_none()
                {
                    self.nulls.unparsable[i] += 1;
                }
            }
            self.builders[i].append(typed);
        }
        self.partitions.append_value(partition);
        self.offsets.append_value(offset);
        Ok(())
    }

    fn finish(self) -> Decoded {
        let mut arrays: Vec<ArrayRef> = self.builders.into_iter().map(Builder::finish).collect();
        arrays.push(Arc::new({ self.partitions }.finish()));
        arrays.push(Arc::new({ self.offsets }.finish()));
        let batch = RecordBatch::try_new(raw_schema(self.table), arrays).expect("decoded arrays match the raw schema");
        Decoded { batch, dead_letters: self.dead_letters, nulls: self.nulls, table: self.table }
    }
}

/// Decodes records that are one JSON document each (Kinesis records: line breaks inside a
/// document are fine). Record i (0-based) gets `_partition` 0 and `_offset` i; a dead letter's
/// `line` is i + 1.
pub fn decode_records<'a>(table: Table, records: impl ExactSizeIterator<Item = &'a [u8]>) -> Decoded {
    let mut decoder = Decoder::new(table, records.len());
    for (i, record) in records.enumerate() {
        let decoded = match std::str::from_utf8(record) {
            Ok(text) if !record.trim_ascii().is_empty() => decoder.record(text, 0, i as i64),
            _ => Err(undecodable_error(record)),
        };
        if let Err(error) = decoded {
            decoder.dead_letters.push(DeadLetter::new(i as i64 + 1, i as i64, record, error));
        }
    }
    decoder.finish()
}

/// Decodes the lines of one landing object. Lines end with LF or CRLF; blank lines are skipped
/// and not counted. `start_offset` is the Kafka offset of the first record: record i (0-based)
/// gets offset `start_offset + i`.
pub fn decode_object(table: Table, data: &[u8], partition: i32, start_offset: i64) -> Decoded {
    // Room for lines of about 128 bytes (landed records are longer): the builders grow if not.
    let mut decoder = Decoder::new(table, data.len() / 128 + 1);
    // One UTF-8 check of the whole object, and of a line only when the object fails it: a line
    // of valid text is valid text, as it is cut at ASCII bytes.
    let text = std::str::from_utf8(data).ok();
    let mut index = 0i64;
    let mut begin = 0;
    let mut number = 0i64;
    while begin <= data.len() {
        let end = memchr::memchr(b'\n', &data[begin..]).map_or(data.len(), |i| begin + i);
        let start = begin;
        let line = &data[start..end];
        begin = end + 1;
        number += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue; // the final line break, or a blank line
        }
        let record = index;
        index += 1;
        if let Some(value) = crate::landing::parse_undecodable_line(trimmed) {
            let error = undecodable_error(&value);
            decoder.dead_letters.push(DeadLetter::new(number, record, &value, error));
            continue;
        }
        let line_text = match text {
            Some(text) => Ok(&text[start..start + line.len()]),
            None => std::str::from_utf8(line)
                .map_err(|e| format!("not a JSON object: invalid UTF-8 at column {}", e.valid_up_to() + 1)),
        };
        let decoded = line_text.and_then(|text| decoder.record(text, partition, start_offset + record));
        if let Err(error) = decoded {
            decoder.dead_letters.push(DeadLetter::new(number, record, line, error));
        }
    }
    decoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{Array, AsArray};
    use deltalake::arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};

    #[test]
    fn keeps_every_object_with_a_usable_key_and_nulls_what_cannot_be_used() {
        let data = concat!(
            r#"{"ind": 1, "first_name": "Ann", "last_name": "Lee", "age": "35", "date_joined": "2016-01-02T03:04:05.000Z", "extra": [1e400]}"#,
            "\r\n",
            r#"{"ind": " 2 ", "first_name": 7.50, "last_name": true, "age": 40.0, "date_joined": "2016-01-02 03:04:05"}"#,
            "\n   \t\r\n",
            "not json\n",
            r#"{"ind": 3, "age": "old", "first_name": {"a": 1}, "date_joined": "2021-02-30 00:00:00"}"#,
            "\n",
            r#"{"first_name": "no key"}"#,
            "\n",
            r#"{"ind": 4.0}"#,
            "\n",
            r#"{"ind": "+5"}"#,
            "\n",
            r#"{"ind": 99999999999999999999}"#,
            "\n",
            r#"{"ind": null, "age": 1}"#,
            "\n",
            "[1, 2]\n",
            r#"{"_pinpipe_undecodable_value_base64":"/wo="}"#,
            "\n",
            r#"{"ind": -6, "age": 2147483648, "date_joined": 20160102}"#,
            "\n",
            r#"{"ind": 7, "age": 33.5, "last_name": "Ng"}"#,
        );
        let decoded = decode_object(Table::User, data.as_bytes(), 2, 100);
        let b = &decoded.batch;
        assert_eq!(b.column(0).as_primitive::<Int64Type>().values(), &[1, 2, 3, -6, 7]);
        let names = b.column(1).as_string::<i32>();
        assert_eq!(names.value(1), "7.50", "a number in a text column is its JSON text");
        assert!(names.is_null(2), "an object in a text column is null");
        assert_eq!(b.column(2).as_string::<i32>().value(1), "true");
        let ages = b.column(3).as_primitive::<Int32Type>();
        assert_eq!((ages.value(0), ages.value(1)), (35, 40));
        assert!(ages.is_null(2) && ages.is_null(3) && ages.is_null(4), "\"old\", 2^31 and 33.5 are not ages");
        let ts = b.column(4).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), ts.value(1));
        assert!(ts.is_null(2) && ts.is_null(3), "an impossible date and a number are not datetimes");
        assert_eq!(b.column(5).as_primitive::<Int32Type>().value(0), 2);
        // Offsets count records, not the blank line.
        assert_eq!(b.column(6).as_primitive::<Int64Type>().values(), &[100, 101, 103, 111, 112]);
        let mut counts = BTreeMap::new();
        decoded.count_nulls(&mut counts);
        let counts: Vec<(&str, u64)> = counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(counts, [("age: unparsable", 3), ("date_joined: unparsable", 2), ("first_name: unparsable", 1)]);

        let lines: Vec<(i64, i64)> = decoded.dead_letters.iter().map(|d| (d.line, d.index)).collect();
        assert_eq!(lines, vec![(4, 2), (6, 4), (7, 5), (8, 6), (9, 7), (10, 8), (11, 9), (12, 10)]);
        assert_eq!(decoded.dead_letters[0].raw, "not json");
        assert_eq!(decoded.dead_letters[0].raw_bytes, b"not json");
        for (d, what) in
            decoded.dead_letters[1..6].iter().zip(["missing", "4.0", "\"+5\"", "99999999999999999999", "null"])
        {
            assert!(d.error.contains("column ind") && d.error.contains(what), "{d:?}");
        }
        assert!(decoded.dead_letters[6].error.contains("not a JSON object"), "{:?}", decoded.dead_letters[6]);
        // Values the sink could not land as JSON come back with their exact bytes.
        assert_eq!(decoded.dead_letters[7].raw_bytes, vec![0xff, b'\n']);
        assert!(decoded.dead_letters[7].error.contains("UTF-8"), "{:?}", decoded.dead_letters[7]);
    }

    #[test]
    fn numbers_are_read_from_their_text() {
        let data =
            br#"{"ind": 1, "latitude": "7.25", "longitude": -0.0, "timestamp": "2020-01-01 00:00:00", "country": 1E5}
{"ind": 2, "latitude": 1e400, "longitude": "north", "country": false}
{"ind": 3, "latitude": " 41.25 ", "longitude": "NaN", "country": "  kept as it came "}
"#;
        let decoded = decode_object(Table::Geo, data, 0, 0);
        let b = &decoded.batch;
        let lat = b.column(2).as_primitive::<Float64Type>();
        assert_eq!((lat.value(0), lat.value(2)), (7.25, 41.25));
        assert!(lat.is_null(1));
        let lon = b.column(3).as_primitive::<Float64Type>();
        assert!(lon.is_valid(0) && lon.is_null(1) && lon.is_null(2));
        let country = b.column(4).as_string::<i32>();
        assert_eq!((country.value(0), country.value(1), country.value(2)), ("1E5", "false", "  kept as it came "));
        let mut counts = BTreeMap::new();
        decoded.count_nulls(&mut counts);
        assert_eq!(counts.get("latitude: unparsable"), Some(&1));
        assert_eq!(counts.get("longitude: unparsable"), Some(&2));
        assert!(decoded.dead_letters.is_empty());
    }
}
