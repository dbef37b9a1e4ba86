//! Decoding landed JSON lines into raw Arrow batches with the explicit raw schema. Lines that are
//! not JSON objects, lack the key, or hold values that cannot be coerced become dead letters.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::raw::{parse_timestamp, raw_columns, raw_schema, RawColumn, RawType};
use crate::model::Table;

/// A JSON scalar as read, before coercion.
#[derive(Debug, Clone, PartialEq)]
enum Scalar<'a> {
    Missing,
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(Cow<'a, str>),
    Complex,
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
    /// The record as text (invalid UTF-8 replaced, for reading).
    pub raw: String,
    /// The record's exact bytes.
    pub raw_bytes: Vec<u8>,
    pub error: String,
}

impl DeadLetter {
    /// A dead letter of `line` (1-based), whose record is the landed line `text` — or, for a
    /// value the sink landed as undecodable, the value's original bytes.
    fn new(line: i64, text: &[u8], error: String) -> Self {
        DeadLetter { line, raw: String::from_utf8_lossy(text).into_owned(), raw_bytes: text.to_vec(), error }
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
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Complex)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Complex)
    }
}

struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// A map key, borrowed when the text has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_string()))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Reads one JSON object into the slots of the wanted columns.
struct RowSeed<'c> {
    columns: &'c [RawColumn],
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Vec<Scalar<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Vec<Scalar<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut values = vec![Scalar::Missing; self.columns.len()];
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match self.columns.iter().position(|c| c.name == key) {
                Some(i) => values[i] = map.next_value_seed(ScalarSeed)?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(values)
    }
}

fn coerce<'a>(column: &RawColumn, value: Scalar<'a>) -> Result<Typed<'a>, String> {
    let bad = |what: &str| Err(format!("column {}: cannot use {what} as {:?}", column.name, column.ty));
    match value {
        Scalar::Missing | Scalar::Null if column.required => Err(format!("column {} is missing or null", column.name)),
        Scalar::Missing | Scalar::Null => Ok(Typed::Null),
        Scalar::Complex => bad("an object or array"),
        value => match column.ty {
            RawType::Text => Ok(Typed::Text(match value {
                Scalar::Str(s) => s,
                Scalar::Bool(b) => Cow::Owned(b.to_string()),
                Scalar::I64(i) => Cow::Owned(i.to_string()),
                Scalar::U64(u) => Cow::Owned(u.to_string()),
                Scalar::F64(f) => {
                    Cow::Owned(serde_json::Number::from_f64(f).map(|n| n.to_string()).unwrap_or_default())
                }
                _ => unreachable!("handled above"),
            })),
            RawType::Int64 | RawType::Int32 => {
                let int = match &value {
                    Scalar::I64(i) => Some(*i),
                    Scalar::U64(u) => i64::try_from(*u).ok(),
                    Scalar::F64(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
                    Scalar::Str(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                };
                match int {
                    Some(i) if column.ty == RawType::Int32 && i32::try_from(i).is_err() => {
                        bad(&format!("{i} (out of range)"))
                    }
                    Some(i) => Ok(Typed::Int(i)),
                    None => bad(&describe(&value)),
                }
            }
            RawType::Float64 => match &value {
                Scalar::I64(i) => Ok(Typed::Float(*i as f64)),
                Scalar::U64(u) => Ok(Typed::Float(*u as f64)),
                Scalar::F64(f) => Ok(Typed::Float(*f)),
                Scalar::Str(s) => match s.trim().parse::<f64>() {
                    Ok(f) if f.is_finite() => Ok(Typed::Float(f)),
                    _ => bad(&describe(&value)),
                },
                _ => bad(&describe(&value)),
            },
            RawType::Timestamp => match &value {
                Scalar::Str(s) => parse_timestamp(s).map(Typed::Int).ok_or_else(|| {
                    format!("column {}: {:?} is not a datetime (YYYY-MM-DD HH:MM:SS, ISO 8601)", column.name, s)
                }),
                _ => bad(&describe(&value)),
            },
        },
    }
}

fn describe(value: &Scalar) -> String {
    match value {
        Scalar::Str(s) => format!("{s:?}"),
        Scalar::Bool(b) => b.to_string(),
        Scalar::I64(i) => i.to_string(),
        Scalar::U64(u) => u.to_string(),
        Scalar::F64(f) => f.to_string(),
        other => format!("{other:?}"),
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

/// The columns of a raw batch being built: the data columns, `_partition` and `_offset`.
struct RawRows {
    builders: Vec<Builder>,
    partitions: Int32Builder,
    offsets: Int64Builder,
}

impl RawRows {
    fn new(table: Table, capacity: usize) -> Self {
        RawRows {
            builders: raw_columns(table).iter().map(|c| Builder::new(c.ty, capacity)).collect(),
            partitions: Int32Builder::with_capacity(capacity),
            offsets: Int64Builder::with_capacity(capacity),
        }
    }

    fn push(&mut self, values: Vec<Typed<'_>>, partition: i32, offset: i64) {
        for (builder, value) in self.builders.iter_mut().zip(values) {
            builder.append(value);
        }
        self.partitions.append_value(partition);
        self.offsets.append_value(offset);
    }

    fn finish(mut self, table: Table) -> RecordBatch {
        let mut arrays: Vec<ArrayRef> = self.builders.into_iter().map(Builder::finish).collect();
        arrays.push(Arc::new(self.partitions.finish()));
        arrays.push(Arc::new(self.offsets.finish()));
        RecordBatch::try_new(raw_schema(table), arrays).expect("decoded arrays match the raw schema")
    }
}

/// One JSON document as the raw columns' values, or why it cannot be.
fn decode_row<'a>(columns: &'static [RawColumn], text: &'a [u8]) -> Result<Vec<Typed<'a>>, String> {
    let mut de = serde_json::Deserializer::from_slice(text);
    RowSeed { columns }
        .deserialize(&mut de)
        .and_then(|row| de.end().map(|_| row))
        .map_err(|e| format!("not a JSON object: {e}"))
        .and_then(|row| row.into_iter().zip(columns).map(|(value, column)| coerce(column, value)).collect())
}

/// Decodes records that are one JSON document each (Kinesis records: line breaks inside a
/// document are fine). Record i (0-based) gets `_partition` 0 and `_offset` i; a dead letter's
/// `line` is i + 1.
pub fn decode_records<'a>(table: Table, records: impl ExactSizeIterator<Item = &'a [u8]>) -> Decoded {
    let columns = raw_columns(table);
    let mut rows = RawRows::new(table, records.len());
    let mut dead_letters = Vec::new();
    for (i, record) in records.enumerate() {
        let decoded = if record.trim_ascii().is_empty() || std::str::from_utf8(record).is_err() {
            Err(undecodable_error(record))
        } else {
            decode_row(columns, record)
        };
        match decoded {
            Ok(values) => rows.push(values, 0, i as i64),
            Err(error) => dead_letters.push(DeadLetter::new(i as i64 + 1, record, error)),
        }
    }
    Decoded { batch: rows.finish(table), dead_letters }
}

/// Decodes the lines of one landing object. `start_offset` is the Kafka offset of its first
/// line; line i (0-based) gets offset `start_offset + i`.
pub fn decode_object(table: Table, data: &[u8], partition: i32, start_offset: i64) -> Decoded {
    let columns = raw_columns(table);
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let mut rows = RawRows::new(table, lines.len());
    let mut dead_letters = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue; // the final newline, or a blank line
        }
        if let Some(value) = crate::landing::parse_undecodable_line(trimmed) {
            let error = undecodable_error(&value);
            dead_letters.push(DeadLetter::new(i as i64 + 1, &value, error));
            continue;
        }
        match decode_row(columns, trimmed) {
            Ok(values) => rows.push(values, partition, start_offset + i as i64),
            Err(error) => dead_letters.push(DeadLetter::new(i as i64 + 1, line, error)),
        }
    }
    Decoded { batch: rows.finish(table), dead_letters }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{Array, AsArray};
    use deltalake::arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};

    #[test]
    fn coerces_loose_json_and_dead_letters_the_rest() {
        let data = br#"{"ind": 1, "first_name": "Ann", "last_name": "Lee", "age": "35", "date_joined": "2016-01-02T03:04:05.000Z", "extra": [1]}
{"ind": "2", "first_name": 7, "age": 40.0, "date_joined": "2016-01-02 03:04:05"}
not json
{"ind": 3, "age": "old"}
{"first_name": "no key"}
{"ind": 4, "first_name": {"a": 1}}
{"ind": 5, "date_joined": "yesterday"}
[1, 2]
{"_pinpipe_undecodable_value_base64":"/wo="}
{"_pinpipe_undecodable_value_base64":""}
"#;
        let decoded = decode_object(Table::User, data, 2, 100);
        let b = &decoded.batch;
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.column(0).as_primitive::<Int64Type>().values(), &[1, 2]);
        assert_eq!(b.column(1).as_string::<i32>().value(1), "7");
        assert!(b.column(2).is_null(1));
        assert_eq!(b.column(3).as_primitive::<Int32Type>().values(), &[35, 40]);
        let ts = b.column(4).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), ts.value(1));
        assert_eq!(b.column(5).as_primitive::<Int32Type>().value(0), 2);
        assert_eq!(b.column(6).as_primitive::<Int64Type>().values(), &[100, 101]);
        let lines: Vec<i64> = decoded.dead_letters.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(decoded.dead_letters[0].raw, "not json");
        assert_eq!(decoded.dead_letters[0].raw_bytes, b"not json");
        // Values the sink could not land as JSON come back with their exact bytes.
        assert_eq!(decoded.dead_letters[6].raw_bytes, vec![0xff, b'\n']);
        assert!(decoded.dead_letters[6].error.contains("UTF-8"), "{:?}", decoded.dead_letters[6]);
        assert_eq!(decoded.dead_letters[7].raw_bytes, b"");
        assert!(decoded.dead_letters[7].error.contains("empty"));
        assert!(decoded.dead_letters[1].error.contains("age"), "{:?}", decoded.dead_letters[1]);
        assert!(decoded.dead_letters[2].error.contains("ind"));
    }
}
