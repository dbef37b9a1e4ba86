//! Decoding landed JSON lines into raw Arrow batches with the explicit raw schema, as RULES.md's
//! "Dirty values" decides: a record is a dead letter only when it is not a JSON object or its key
//! is unusable; any other value that cannot be used as its column's type becomes null and is
//! counted as `<column>: unparsable`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BooleanBufferBuilder, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use serde::de::IgnoredAny;

use super::json;
use super::raw::{parse_timestamp, raw_columns, raw_schema, RawColumn, RawType};
use super::trim_bytes;
use crate::model::Table;

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
    // serde_json skips strings without checking their UTF-8: checked first.
    if let Err(e) = std::str::from_utf8(value) {
        return format!("value is not UTF-8 JSON: invalid UTF-8 at column {}", e.valid_up_to() + 1);
    }
    match serde_json::from_slice::<IgnoredAny>(value) {
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
fn integer(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    if digits.is_empty() {
        return None;
    }
    if digits.len() <= 18 {
        // Cannot overflow: the common case, without checks.
        let mut n: i64 = 0;
        for &d in digits {
            let d = d.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            n = n * 10 + i64::from(d);
        }
        return Some(if negative { -n } else { n });
    }
    // Summed negative, so that i64::MIN fits.
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(n)
    } else {
        n.checked_neg()
    }
}

/// A finite number written as JSON number text or as a numeric string (`"7.25"`, `" 33"`).
fn number(text: &[u8]) -> Option<f64> {
    let t = trim_bytes(text);
    if let Some(f) = short_decimal(t) {
        return Some(f);
    }
    // Rust's parser also takes "inf" and "NaN": not numbers here.
    std::str::from_utf8(t).ok()?.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// `-?[0-9]+(\.[0-9]+)?` with at most 15 digits (coordinates, prices), read exactly as Rust
/// reads it, faster: the digits as an integer and the power of ten are both exact doubles, so the
/// one division rounds the true value once, correctly (Clinger's fast path). `None` for any other
/// text, to be read in full.
fn short_decimal(text: &[u8]) -> Option<f64> {
    const POWERS: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
    let (negative, t) = match text {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    if t.is_empty() || t.len() > 16 {
        return None;
    }
    let mut digits: u64 = 0;
    let mut point = None;
    for (i, &b) in t.iter().enumerate() {
        match b {
            b'0'..=b'9' => digits = digits * 10 + u64::from(b - b'0'),
            b'.' if point.is_none() && i > 0 && i + 1 < t.len() => point = Some(i),
            _ => return None,
        }
    }
    let decimals = point.map_or(0, |p| t.len() - 1 - p);
    if t.len() - usize::from(point.is_some()) > 15 {
        return None;
    }
    let value = digits as f64 / POWERS[decimals];
    Some(if negative { -value } else { value })
}

/// A whole number that fits an i64, from a JSON number or a numeric string (`33`, `"33"`,
/// `33.0`); None otherwise.
fn whole_number(text: &[u8]) -> Option<i64> {
    let t = trim_bytes(text);
    if let Some(i) = integer(t.strip_prefix(b"+").unwrap_or(t)) {
        return Some(i);
    }
    let f = number(t)?;
    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}

/// A string value's text, escapes decoded; `None` for a string with half of a surrogate pair
/// escaped (`"\ud800"`: valid JSON, but no text).
fn unescaped(s: &[u8], escaped: bool) -> Option<Cow<'_, [u8]>> {
    if escaped {
        json::unescape(s).map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(s))
    }
}

/// The record's key, or why it is unusable.
fn key_value(column: &RawColumn, value: json::Value) -> Result<i64, String> {
    let name = column.name;
    match value {
        json::Value::Null => Err(format!("column {name} is null")),
        json::Value::Number(t) => integer(t).ok_or_else(|| {
            format!("column {name}: {} is not an integer that fits 64 bits", String::from_utf8_lossy(t))
        }),
        json::Value::Str(s, escaped) => match unescaped(s, escaped) {
            Some(s) => integer(trim_bytes(&s))
                .ok_or_else(|| format!("column {name}: {:?} is not an integer", String::from_utf8_lossy(&s))),
            None => Err(format!("column {name}: a string with a lone surrogate escape is not an integer")),
        },
        json::Value::Bool(b) => Err(format!("column {name}: {b} is not an integer")),
        json::Value::Complex => Err(format!("column {name}: an object or array is not an integer")),
    }
}

/// A value the cleaning sets to null, counted once its record is kept.
#[derive(Clone, Copy)]
enum Null {
    Empty,
    Sentinel(usize),
    Unparsable,
}

/// One raw column's values as decoded: Arrow's buffers as plain vectors, so that the values of a
/// record that turns out to be a dead letter (or a key written twice) can be taken back.
enum Values {
    /// UTF-8 bytes and the offsets around each value (one more offset than values).
    Text(Vec<u8>, Vec<i32>),
    Int64(Vec<i64>),
    Int32(Vec<i32>),
    Float64(Vec<f64>),
    Timestamp(Vec<i64>),
}

struct Column {
    values: Values,
    /// Which values are not null; made at the first null (most columns have none).
    valid: Option<BooleanBufferBuilder>,
}

impl Column {
    fn new(ty: RawType, capacity: usize) -> Self {
        let values = match ty {
            RawType::Text => {
                let mut offsets = Vec::with_capacity(capacity + 1);
                offsets.push(0);
                Values::Text(Vec::with_capacity(capacity * 16), offsets)
            }
            RawType::Int64 => Values::Int64(Vec::with_capacity(capacity)),
            RawType::Int32 => Values::Int32(Vec::with_capacity(capacity)),
            RawType::Float64 => Values::Float64(Vec::with_capacity(capacity)),
            RawType::Timestamp => Values::Timestamp(Vec::with_capacity(capacity)),
        };
        Column { values, valid: None }
    }

    fn push_text(&mut self, text: &[u8]) {
        if let Values::Text(data, offsets) = &mut self.values {
            data.extend_from_slice(text);
            offsets.push(text_offset(data.len()));
            self.valid();
        }
    }

    fn push_int(&mut self, i: i64) {
        match &mut self.values {
            Values::Int64(v) | Values::Timestamp(v) => v.push(i),
            Values::Int32(v) => v.push(i as i32),
            Values::Float64(_) | Values::Text(..) => unreachable!("an integer is pushed to integer columns only"),
        }
        self.valid();
    }

    fn push_float(&mut self, f: f64) {
        if let Values::Float64(v) = &mut self.values {
            v.push(f);
            self.valid();
        }
    }

    /// Notes that the value just pushed is not null.
    fn valid(&mut self) {
        if let Some(valid) = &mut self.valid {
            valid.append(true);
        }
    }

    fn len(&self) -> usize {
        match &self.values {
            Values::Text(_, offsets) => offsets.len() - 1,
            Values::Int64(v) | Values::Timestamp(v) => v.len(),
            Values::Int32(v) => v.len(),
            Values::Float64(v) => v.len(),
        }
    }

    fn push_null(&mut self) {
        let rows = self.len();
        self.valid
            .get_or_insert_with(|| {
                let mut valid = BooleanBufferBuilder::new(rows.max(1024));
                valid.append_n(rows, true);
                valid
            })
            .append(false);
        match &mut self.values {
            Values::Text(data, offsets) => offsets.push(text_offset(data.len())),
            Values::Int64(v) | Values::Timestamp(v) => v.push(0),
            Values::Int32(v) => v.push(0),
            Values::Float64(v) => v.push(0.0),
        }
    }

    /// Takes back every value past the first `rows`.
    fn truncate(&mut self, rows: usize) {
        match &mut self.values {
            Values::Text(data, offsets) => {
                data.truncate(offsets[rows] as usize);
                offsets.truncate(rows + 1);
            }
            Values::Int64(v) | Values::Timestamp(v) => v.truncate(rows),
            Values::Int32(v) => v.truncate(rows),
            Values::Float64(v) => v.truncate(rows),
        }
        if let Some(valid) = &mut self.valid {
            valid.truncate(rows);
        }
    }

    fn finish(self) -> ArrayRef {
        let nulls = self.valid.map(|mut v| NullBuffer::new(v.finish())).filter(|n| n.null_count() > 0);
        match self.values {
            Values::Text(data, offsets) => Arc::new(StringArray::new(
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                Buffer::from_vec(data),
                nulls,
            )),
            Values::Int64(v) => Arc::new(Int64Array::new(ScalarBuffer::from(v), nulls)),
            Values::Int32(v) => Arc::new(Int32Array::new(ScalarBuffer::from(v), nulls)),
            Values::Float64(v) => Arc::new(Float64Array::new(ScalarBuffer::from(v), nulls)),
            Values::Timestamp(v) => {
                Arc::new(TimestampMicrosecondArray::new(ScalarBuffer::from(v), nulls).with_timezone("UTC"))
            }
        }
    }
}

fn text_offset(len: usize) -> i32 {
    i32::try_from(len).expect("the text of one raw column of one batch stays under 2 GiB")
}

/// What a raw column keeps of its values, and how.
struct Wanted {
    column: RawColumn,
    sentinels: &'static [&'static str],
    /// Text that must also read as a follower count (pins' `follower_count`).
    follower_count: bool,
}

impl Wanted {
    /// Appends `value` as the column's type to `out`; a value that cannot be used becomes null,
    /// noted in `nulls` with the text the cleaning sets to null.
    #[inline(always)]
    fn push(&self, i: usize, value: json::Value, out: &mut Column, nulls: &mut Vec<(usize, Null)>) {
        use json::Value as V;
        let pushed = match (self.column.ty, value) {
            (_, V::Null) => {
                out.push_null();
                return;
            }
            (RawType::Text, V::Str(s, escaped)) => match unescaped(s, escaped) {
                Some(s) => {
                    self.push_text(i, &s, out, nulls);
                    true
                }
                None => false,
            },
            (RawType::Text, V::Number(t)) => {
                self.push_text(i, t, out, nulls);
                true
            }
            (RawType::Text, V::Bool(b)) => {
                self.push_text(i, if b { b"true" } else { b"false" }, out, nulls);
                true
            }
            (RawType::Int64 | RawType::Int32, V::Number(t)) => self.push_whole(whole_number(t), out),
            (RawType::Int64 | RawType::Int32, V::Str(s, escaped)) => {
                self.push_whole(unescaped(s, escaped).and_then(|s| whole_number(&s)), out)
            }
            (RawType::Float64, V::Number(t)) => push_float(number(t), out),
            (RawType::Float64, V::Str(s, escaped)) => push_float(unescaped(s, escaped).and_then(|s| number(&s)), out),
            (RawType::Timestamp, V::Str(s, escaped)) => match unescaped(s, escaped).and_then(|s| parse_timestamp(&s)) {
                Some(micros) => {
                    out.push_int(micros);
                    true
                }
                None => false,
            },
            _ => false,
        };
        if !pushed {
            out.push_null();
            nulls.push((i, Null::Unparsable));
        }
    }

    /// Appends text, noting it when the cleaning sets it to null (RULES.md's null rule, counted
    /// here; the cleaning query applies it).
    fn push_text(&self, i: usize, text: &[u8], out: &mut Column, nulls: &mut Vec<(usize, Null)>) {
        out.push_text(text);
        let t = trim_bytes(text);
        if t.is_empty() {
            nulls.push((i, Null::Empty));
        } else if let Some(s) = self.sentinels.iter().position(|s| s.as_bytes() == t) {
            nulls.push((i, Null::Sentinel(s)));
        } else if self.follower_count && super::parse_follower_count(t).is_none() {
            nulls.push((i, Null::Unparsable));
        }
    }

    fn push_whole(&self, i: Option<i64>, out: &mut Column) -> bool {
        match i {
            Some(i) if self.column.ty == RawType::Int64 || i32::try_from(i).is_ok() => {
                out.push_int(i);
                true
            }
            _ => false,
        }
    }
}

fn push_float(f: Option<f64>, out: &mut Column) -> bool {
    f.map(|f| out.push_float(f)).is_some()
}

/// Builds one raw batch from records, counting the values the cleaning will set to null.
struct Decoder {
    table: Table,
    wanted: Vec<Wanted>,
    names: Vec<&'static str>,
    /// The key column's index.
    key: usize,
    columns: Vec<Column>,
    partitions: Vec<i32>,
    offsets: Vec<i64>,
    /// The nulls of the record being decoded, counted once it is kept.
    record_nulls: Vec<(usize, Null)>,
    nulls: NullCounts,
    dead_letters: Vec<DeadLetter>,
}

impl Decoder {
    fn new(table: Table, capacity: usize) -> Self {
        let columns = raw_columns(table);
        assert!(columns.len() < 64, "a record's columns are tracked in 64 bits");
        let required: Vec<usize> = (0..columns.len()).filter(|&i| columns[i].required).collect();
        let [key] = required[..] else { panic!("a raw table has one key column") };
        let wanted: Vec<Wanted> = columns
            .iter()
            .map(|&column| Wanted {
                column,
                sentinels: super::sentinels(table, column.name),
                follower_count: table == Table::Pin && column.name == "follower_count",
            })
            .collect();
        Decoder {
            table,
            columns: columns.iter().map(|c| Column::new(c.ty, capacity)).collect(),
            nulls: NullCounts {
                empty: vec![0; columns.len()],
                sentinel: wanted.iter().map(|w| vec![0; w.sentinels.len()]).collect(),
                unparsable: vec![0; columns.len()],
            },
            wanted,
            names: columns.iter().map(|c| c.name).collect(),
            key,
            partitions: Vec::with_capacity(capacity),
            offsets: Vec::with_capacity(capacity),
            record_nulls: Vec::new(),
            dead_letters: Vec::new(),
        }
    }

    /// Decodes one JSON document into a row, or returns why it is a dead letter (nothing is
    /// appended then). Unusable values become nulls, counted. Text that is not UTF-8 is not
    /// JSON: its error is the reader's, which callers replace with their own.
    fn record(&mut self, text: &[u8], partition: i32, offset: i64) -> Result<(), String> {
        let rows = self.offsets.len();
        let Decoder { wanted, names, key: key_column, columns, record_nulls, .. } = self;
        record_nulls.clear();
        // The columns met so far (bit i: column i) and the key's value, if met.
        let mut seen = 0u64;
        let mut key = None;
        let read = json::object(text, names, |i, value| {
            let w = &wanted[i];
            if w.column.required {
                key = Some(key_value(&w.column, value));
                seen |= 1 << i;
                return;
            }
            if seen & (1 << i) != 0 {
                // The last of repeated keys wins.
                columns[i].truncate(rows);
                record_nulls.retain(|(c, _)| *c != i);
            }
            seen |= 1 << i;
            w.push(i, value, &mut columns[i], record_nulls);
        });
        let key_column = *key_column;
        let kept = read.map_err(|e| format!("not a JSON object: {e}")).and_then(|()| {
            let k = key.unwrap_or_else(|| Err(format!("column {} is missing", wanted[key_column].column.name)))?;
            columns[key_column].push_int(k);
            // Each column the record does not have is null.
            let mut missing = ((1u64 << columns.len()) - 1) & !seen & !(1 << key_column);
            while missing != 0 {
                columns[missing.trailing_zeros() as usize].push_null();
                missing &= missing - 1;
            }
            Ok(())
        });
        if let Err(error) = kept {
            for column in columns.iter_mut() {
                column.truncate(rows);
            }
            return Err(error);
        }
        for &(i, null) in record_nulls.iter() {
            match null {
                Null::Empty => self.nulls.empty[i] += 1,
                Null::Sentinel(s) => self.nulls.sentinel[i][s] += 1,
                Null::Unparsable => self.nulls.unparsable[i] += 1,
            }
        }
        self.partitions.push(partition);
        self.offsets.push(offset);
        Ok(())
    }

    fn finish(self) -> Decoded {
        let mut arrays: Vec<ArrayRef> = self.columns.into_iter().map(Column::finish).collect();
        arrays.push(Arc::new(Int32Array::from(self.partitions)));
        arrays.push(Arc::new(Int64Array::from(self.offsets)));
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
        let decoded = if record.trim_ascii().is_empty() {
            Err(undecodable_error(record))
        } else {
            decoder.record(record, 0, i as i64).map_err(|error| match std::str::from_utf8(record) {
                Err(_) => undecodable_error(record),
                Ok(_) => error,
            })
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
    // Room for lines of about 128 bytes (landed records are longer): the columns grow if not.
    let mut decoder = Decoder::new(table, data.len() / 128 + 1);
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
        // A value the sink landed as undecodable: its first key begins with an underscore.
        let undecodable = trimmed.starts_with(b"{\"_").then(|| crate::landing::parse_undecodable_line(trimmed));
        if let Some(Some(value)) = undecodable {
            let error = undecodable_error(&value);
            decoder.dead_letters.push(DeadLetter::new(number, record, &value, error));
            continue;
        }
        // The reader checks UTF-8 as it reads; only a line it refuses is checked again, to say
        // so when that is why.
        let decoded =
            decoder.record(line, partition, start_offset + record).map_err(|error| match std::str::from_utf8(line) {
                Err(e) => format!("not a JSON object: invalid UTF-8 at column {}", e.valid_up_to() + 1),
                Ok(_) => error,
            });
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
    fn text_in_any_language_is_kept_and_bytes_that_are_not_utf8_are_dead_letters() {
        let mut data = Vec::new();
        data.extend_from_slice("{\"ind\": 1, \"first_name\": \"Zoë\", \"last_name\": \" 李 \"}\n".as_bytes());
        // A byte that is no UTF-8 inside a string value, and inside a key.
        data.extend_from_slice(b"{\"ind\": 2, \"first_name\": \"Zo\xeb\"}\n");
        data.extend_from_slice(b"{\"ind\": 3, \"n\xc3me\": 1}\n");
        // A UTF-8 character outside any string is not JSON, not a UTF-8 error.
        data.extend_from_slice("{\"ind\": 4, \"age\": ５}\n".as_bytes());
        let decoded = decode_object(Table::User, &data, 0, 0);
        let b = &decoded.batch;
        assert_eq!(b.column(0).as_primitive::<Int64Type>().values(), &[1]);
        assert_eq!(b.column(1).as_string::<i32>().value(0), "Zoë");
        assert_eq!(b.column(2).as_string::<i32>().value(0), " 李 ");
        let errors: Vec<&str> = decoded.dead_letters.iter().map(|d| d.error.as_str()).collect();
        assert_eq!(
            errors,
            [
                "not a JSON object: invalid UTF-8 at column 29",
                "not a JSON object: invalid UTF-8 at column 14",
                "not a JSON object: expected a value at column 19",
            ]
        );
        assert_eq!(decoded.dead_letters[0].raw_bytes, b"{\"ind\": 2, \"first_name\": \"Zo\xeb\"}");

        let records: [&[u8]; 3] =
            [b"{\"ind\": 1, \"first_name\": \"\xff\"}", "{\"ind\": 2, \"first_name\": \"ÿ\"}".as_bytes(), b" "];
        let decoded = decode_records(Table::User, records.into_iter());
        assert_eq!(decoded.batch.column(1).as_string::<i32>().value(0), "ÿ");
        let errors: Vec<(i64, &str)> = decoded.dead_letters.iter().map(|d| (d.line, d.error.as_str())).collect();
        assert_eq!(
            errors,
            [(1, "value is not UTF-8 JSON: invalid UTF-8 at column 27"), (3, "value is empty or blank, not JSON")]
        );
    }

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
    fn the_last_of_repeated_keys_wins_and_only_its_nulls_are_counted() {
        let data = concat!(
            r#"{"ind": 1, "first_name": " ", "age": "old", "first_name": "Ann", "age": 30, "ind": "2"}"#,
            "\n",
            r#"{"ind": 3, "last_name": "Lee", "age": 31, "last_name": "", "age": "x", "ind": null}"#,
            "\n",
            r#"{"age": 32, "ind": 4, "age": null, "date_joined": "2016-01-02 03:04:05", "last_name": true}"#,
            "\n",
        );
        let decoded = decode_object(Table::User, data.as_bytes(), 0, 0);
        let b = &decoded.batch;
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.column(0).as_primitive::<Int64Type>().values(), &[2, 4]);
        let first = b.column(1).as_string::<i32>();
        assert_eq!(first.value(0), "Ann");
        assert!(first.is_null(1));
        assert_eq!(b.column(2).as_string::<i32>().value(1), "true");
        let ages = b.column(3).as_primitive::<Int32Type>();
        assert_eq!(ages.value(0), 30);
        assert!(ages.is_null(1));
        assert!(b.column(4).is_null(0) && b.column(4).is_valid(1));
        // The second record's values were taken back with it: none of its nulls is counted.
        let mut counts = BTreeMap::new();
        decoded.count_nulls(&mut counts);
        assert!(counts.is_empty(), "{counts:?}");
        assert_eq!(decoded.dead_letters.len(), 1);
        assert!(decoded.dead_letters[0].error.contains("column ind is null"), "{:?}", decoded.dead_letters[0]);
    }

    #[test]
    fn integers_are_read_like_rust_reads_them() {
        for text in [
            "0",
            "-0",
            "007",
            "-12",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "-9223372036854775809",
            "",
            "-",
            "1a",
            "+1",
            " 1",
            "1.0",
            "00000000000000000000000000042",
            "999999999999999999",
            "-999999999999999999",
            "1000000000000000000",
            "99999999999999999a",
        ] {
            assert_eq!(
                integer(text.as_bytes()),
                text.parse::<i64>().ok().filter(|_| !text.starts_with('+')),
                "{text:?}"
            );
        }
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

    /// The short path of number reading gives Rust's double, bit for bit.
    #[test]
    fn decimals_are_read_as_rust_reads_them() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let mut texts: Vec<String> =
            ["0", "-0", "0.0", "-0.0", "007.50", "999999999999999", "0.000000000000001"].map(String::from).to_vec();
        for _ in 0..200_000 {
            let digits: String = (0..1 + next(17)).map(|_| char::from(b'0' + next(10) as u8)).collect();
            let cut = next(digits.len() as u64 + 1) as usize;
            let sign = if next(2) == 0 { "-" } else { "" };
            texts.push(format!("{sign}{}.{}", &digits[..cut], &digits[cut..]));
            texts.push(format!("{sign}{digits}"));
        }
        for text in &texts {
            let want = text.parse::<f64>().ok();
            let got = number(text.as_bytes());
            assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{text}");
        }
        for text in ["1.", ".5", "1..2", "1.2.3", "-", "-.5", "1e5", "+1", "--1"] {
            assert_eq!(short_decimal(text.as_bytes()), None, "{text}");
        }
    }
}
