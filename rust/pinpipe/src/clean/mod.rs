//! The one implementation of RULES.md's cleaning, as DataFusion SQL over raw rows: batch runs it
//! over each run's winners per key (`batch::merge`), the stream over each micro-batch.

pub mod decode;
mod json;
pub mod raw;

use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafusion::common::{DataFusionError, Result as DfResult};
use deltalake::datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};

use crate::model::Table;
use raw::timestamp_type;

/// Values that mean "no value" in a column, beyond the empty (trimmed) string.
pub const SENTINELS: &[(Table, &str, &[&str])] = &[
    (Table::Pin, "title", &["No Title Data Available"]),
    (Table::Pin, "description", &["No description available Story format", "No description available", "Untitled"]),
    (Table::Pin, "poster_name", &["User Info Error"]),
    (Table::Pin, "follower_count", &["User Info Error"]),
    (Table::Pin, "tag_list", &["N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e"]),
    (Table::Pin, "image_src", &["Image src error."]),
];

pub fn sentinels(table: Table, column: &str) -> &'static [&'static str] {
    SENTINELS.iter().find(|(t, c, _)| *t == table && *c == column).map(|(_, _, v)| *v).unwrap_or(&[])
}

/// Whether `c` counts as surrounding whitespace for RULES.md's "trimmed": spaces, tabs and line
/// breaks of every kind (Unicode White_Space, and the separators U+001C–U+001F).
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `text` with surrounding whitespace removed, as RULES.md means "trimmed".
pub fn trim(text: &str) -> &str {
    if visible_ends(text.as_bytes()) {
        return text; // the common case
    }
    text.trim_matches(is_space)
}

/// [`trim`] of UTF-8 bytes (bytes that are not UTF-8 are left as they are).
pub fn trim_bytes(text: &[u8]) -> &[u8] {
    if visible_ends(text) {
        return text;
    }
    std::str::from_utf8(text).map_or(text, |t| trim(t).as_bytes())
}

/// Whether `text` begins and ends with printable ASCII: nothing to trim.
fn visible_ends(text: &[u8]) -> bool {
    let visible = |b: &u8| (b'!'..=b'~').contains(b);
    text.first().is_some_and(visible) && text.last().is_some_and(visible)
}

/// Name of the SQL function that applies [`trim`], registered by [`session`].
pub const TRIM_UDF: &str = "pinpipe_trim";

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `col` with RULES.md's null rule applied: NULL when its trimmed value is empty or a sentinel.
pub fn nulled(table: Table, column: &str) -> String {
    let mut values = vec!["''".to_string()];
    values.extend(sentinels(table, column).iter().map(|s| sql_string(s)));
    format!("CASE WHEN {TRIM_UDF}(\"{column}\") IN ({}) THEN NULL ELSE \"{column}\" END", values.join(", "))
}

/// Name of the follower-count parsing function registered by [`session`].
pub const FOLLOWER_COUNT_UDF: &str = "pinpipe_follower_count";

/// Parses a follower count: digits with an optional decimal part and an optional suffix k/K
/// (×1,000), M (×1,000,000) or B (×1,000,000,000), exactly (no floating point), rounding a
/// fractional result half up. Anything else is `None`.
pub fn parse_follower_count(text: impl AsRef<[u8]>) -> Option<i64> {
    let t = trim_bytes(text.as_ref());
    let (number, multiplier): (&[u8], i128) = match t.last()? {
        b'k' | b'K' => (&t[..t.len() - 1], 1_000),
        b'M' => (&t[..t.len() - 1], 1_000_000),
        b'B' => (&t[..t.len() - 1], 1_000_000_000),
        _ => (t, 1),
    };
    let (int_part, frac_part) = match number.iter().position(|b| *b == b'.') {
        Some(dot) => (&number[..dot], Some(&number[dot + 1..])),
        None => (number, None),
    };
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !digits(int_part) || frac_part.is_some_and(|f| !digits(f)) || int_part.len() > 20 {
        return None;
    }
    let value = |s: &[u8]| s.iter().fold(0i128, |n, d| n * 10 + i128::from(d - b'0'));
    let Some(frac_part) = frac_part else {
        // Whole: at most 20 digits times 10^9 fits an i128.
        return i64::try_from(value(int_part) * multiplier).ok();
    };
    if frac_part.len() > 18 {
        return None;
    }
    let int = value(int_part);
    let scale = 10i128.pow(frac_part.len() as u32);
    let frac = value(frac_part);
    let scaled = (int * scale + frac) * multiplier;
    let value = (scaled * 2 + scale) / (2 * scale);
    i64::try_from(value).ok()
}

/// A UDF's result: a scalar when every argument was one.
fn udf_result(args: &[ColumnarValue], out: ArrayRef) -> DfResult<ColumnarValue> {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        return Ok(ColumnarValue::Scalar(deltalake::datafusion::scalar::ScalarValue::try_from_array(&out, 0)?));
    }
    Ok(ColumnarValue::Array(out))
}

fn follower_count_udf(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let text = cast(&arrays[0], &DataType::Utf8)?;
    let out: Int64Array = text.as_string::<i32>().iter().map(|v| v.and_then(parse_follower_count)).collect();
    udf_result(args, Arc::new(out))
}

fn trim_udf(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let text = cast(&arrays[0], &DataType::Utf8)?;
    let out: deltalake::arrow::array::StringArray = text.as_string::<i32>().iter().map(|v| v.map(trim)).collect();
    udf_result(args, Arc::new(out))
}

/// A DataFusion session set up for the pipeline's SQL: plain (non-view) strings, UTC, and the
/// pipeline's functions registered.
pub fn session() -> SessionContext {
    let config = SessionConfig::new()
        .set_bool("datafusion.execution.parquet.schema_force_view_types", false)
        .set_bool("datafusion.sql_parser.map_string_types_to_utf8view", false)
        .set_str("datafusion.execution.time_zone", "UTC")
        // Keep the join order written in the SQL.
        .set_bool("datafusion.optimizer.join_reordering", false);
    let ctx = SessionContext::new_with_config(config);
    type Udf = fn(&[ColumnarValue]) -> DfResult<ColumnarValue>;
    let udfs: [(&str, DataType, Udf); 2] =
        [(FOLLOWER_COUNT_UDF, DataType::Int64, follower_count_udf), (TRIM_UDF, DataType::Utf8, trim_udf)];
    for (name, returns, udf) in udfs {
        ctx.register_udf(create_udf(name, vec![DataType::Utf8], returns, Volatility::Immutable, Arc::new(udf)));
    }
    ctx
}

/// Schema of a clean table, as RULES.md defines it.
pub fn clean_schema(table: Table) -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let fields = match table {
        Table::Pin => vec![
            Field::new("ind", DataType::Int64, true),
            text("unique_id"),
            text("title"),
            text("description"),
            Field::new("follower_count", DataType::Int64, true),
            text("poster_name"),
            text("tag_list"),
            text("is_image_or_video"),
            text("image_src"),
            text("save_location"),
            text("category"),
        ],
        Table::Geo => vec![
            Field::new("ind", DataType::Int64, true),
            text("country"),
            Field::new("coordinates", DataType::List(Arc::new(Field::new("element", DataType::Float64, true))), true),
            Field::new("timestamp", timestamp_type(), true),
        ],
        Table::User => vec![
            Field::new("ind", DataType::Int64, true),
            text("user_name"),
            Field::new("age", DataType::Int32, true),
            Field::new("date_joined", timestamp_type(), true),
        ],
    };
    Arc::new(Schema::new(fields))
}

/// The cleaned columns of `table`, as SQL expressions over its raw columns, in the clean schema's
/// order: RULES.md's cleaning of one record, with no deduplication (the stream tables keep every
/// record).
pub fn clean_columns(table: Table) -> Vec<String> {
    let n = |c: &str| nulled(table, c);
    match table {
        Table::Pin => vec![
            "\"index\" AS ind".to_string(),
            format!("{} AS unique_id", n("unique_id")),
            format!("{} AS title", n("title")),
            format!("{} AS description", n("description")),
            format!("{FOLLOWER_COUNT_UDF}({}) AS follower_count", n("follower_count")),
            format!("{} AS poster_name", n("poster_name")),
            format!("{} AS tag_list", n("tag_list")),
            format!("{} AS is_image_or_video", n("is_image_or_video")),
            format!("{} AS image_src", n("image_src")),
            {
                let s = n("save_location");
                format!(
                    "CASE WHEN strpos({s}, '/') > 0 THEN substr({s}, strpos({s}, '/')) \
                     ELSE NULLIF({TRIM_UDF}(regexp_replace({s}, '^\\s*Local save in\\s*', '')), '') END AS save_location"
                )
            },
            format!("{} AS category", n("category")),
        ],
        Table::Geo => vec![
            "ind".to_string(),
            format!("{} AS country", n("country")),
            "make_array(latitude, longitude) AS coordinates".to_string(),
            "\"timestamp\"".to_string(),
        ],
        Table::User => vec![
            "ind".to_string(),
            // Blank parts are null (the null rule), and concat_ws skips nulls.
            format!(
                "NULLIF(concat_ws(' ', {TRIM_UDF}({}), {TRIM_UDF}({})), '') AS user_name",
                n("first_name"),
                n("last_name")
            ),
            "age".to_string(),
            "date_joined".to_string(),
        ],
    }
}

/// Casts batches to a schema, column by column (names must match in order).
pub fn conform(batches: &[RecordBatch], schema: &SchemaRef) -> DfResult<Vec<RecordBatch>> {
    batches
        .iter()
        .filter(|b| b.num_rows() > 0)
        .map(|batch| {
            if batch.num_columns() != schema.fields().len() {
                return Err(DataFusionError::Internal(format!(
                    "expected {} columns, got {}",
                    schema.fields().len(),
                    batch.num_columns()
                )));
            }
            let columns = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { cast(c, f.data_type()) })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RecordBatch::try_new(schema.clone(), columns)?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follower_counts_follow_the_rules() {
        let cases = [
            ("136k", Some(136_000)),
            ("1.5k", Some(1_500)),
            ("2M", Some(2_000_000)),
            ("2.3M", Some(2_300_000)),
            ("1B", Some(1_000_000_000)),
            ("437", Some(437)),
            ("12K", Some(12_000)),
            (" 7k ", Some(7_000)),
            ("1.2345k", Some(1_235)),
            ("User Info Error", None),
            ("", None),
            ("k", None),
            ("1.k", None),
            (".5k", None),
            ("5m", None),
            ("-3", None),
            ("1,000", None),
            ("3 k", None),
            // Around the limits of the whole-number shortcut and of 64 bits.
            ("999999999B", Some(999_999_999_000_000_000)),
            ("0000000012k", Some(12_000)),
            ("9223372036854775807", Some(i64::MAX)),
            ("9223372036854775808", None),
            ("9999999999B", None),
            ("9.9999999995B", Some(10_000_000_000)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_follower_count(text), want, "{text:?}");
        }
    }

    #[test]
    fn nulled_values_are_counted_by_column_and_cause() {
        let data =
            br#"{"index": 1, "title": "No Title Data Available", "follower_count": "User Info Error", "category": " "}
{"index": 2, "title": "ok", "follower_count": "12 k", "description": "Untitled"}
{"index": 3, "title": "", "follower_count": "3k", "description": " Untitled "}
"#;
        let decoded = decode::decode_object(Table::Pin, data, 0, 0);
        let mut counts = std::collections::BTreeMap::new();
        decoded.count_nulls(&mut counts);
        let want: Vec<(&str, u64)> = vec![
            ("category: empty", 1),
            ("description: Untitled", 2),
            ("follower_count: User Info Error", 1),
            ("follower_count: unparsable", 1),
            ("title: No Title Data Available", 1),
            ("title: empty", 1),
        ];
        let got: Vec<(&str, u64)> = counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(got, want);
    }
}
