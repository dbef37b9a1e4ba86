//! The batch job against RULES.md: a hand-written landing zone in the Confluent S3-sink layout,
//! one run (and, for exactly-once, several), then every table read back through `query` and
//! compared row for row with values worked out by hand from RULES.md.
//!
//! The fixture (ind → what it exercises; "p0@9" = partition 0, object starting at offset 9):
//!
//! | ind | pin (category, poster, follower_count raw → clean) | geo (country, timestamp) | user (name, age, joined) |
//! |-----|-----------------------------------------------------|--------------------------|--------------------------|
//! | 0   | beauty, Zed, "2k" → 2000                            | Albania, 2019            | Ann Lee, 24, 2015        |
//! | 1   | art, Amy, "2000" → 2000 (ties Zed in Albania)       | Albania, 2019            | Bea Moss, 25, 2016 (dup: 99 earlier) |
//! | 2   | beauty, Ben, "abc" → null                           | Albania, 2017 (excluded) | Cy Ng, "35", 2016        |
//! | 3   | art, Hal, "1.5k" → 1500                             | Albania, 2018            | Dee Fox, 36, 2015        |
//! | 4   | travel, Dora, "1000M" → 1e9                         | Cote d'Ivoire, 2020      | Ed (no last), 50, 2017   |
//! | 5   | travel, Eli, "999" (dup in same object: "5")         | Cote d'Ivoire, 2020      | Gray (no first), 51, 2016 |
//! | 6   | quotes, Ivy, 100 (JSON number)                      | Cote d'Ivoire, 2020      | Flo Hart, 16, 2017       |
//! | 7   | vehicles, Finn, "1B" (dup: finance, "3k" earlier)    | Zambia, 2022 (dup: 2023) | Gil Ives, 20, 2014       |
//! | 8   | tattoos, Gus, "437"                                 | Antarctica, 2018         | Hana Ito, 30, 2015       |
//! | 9   | tattoos, Gus, "12K" (p1@0 beats p0 offset 12: "5k")  | Antarctica, 2021         | Ian Jay, 60, 2021        |
//! | 10  | art, story row: every sentinel                      | Antarctica, 2021         | = user of ind 3 (other datetime shape) |
//! | 11  | vehicles, Kai, "136k"                               | Zambia, 2023 (excluded)  | Ann Lee, 24, 2016        |
//! | 12  | beauty, "   " → null, "7k"                          | —                        | Jo (no last), 33, 2016   |
//! | 13  | education, Lou, "2.5M"                              | —                        | Lou Moe, age "old" → null, 2016 |
//! | 14  | empty/whitespace everywhere, "1,000" → null         | —                        | —                        |
//! | 15  | —                                                   | Albania, lat "north" → null | —                     |
//! | 16  | —                                                   | Albania, null timestamp  | —                        |
//! | 17  | —                                                   | —                        | Kim Lam, null age, 2018  |
//! | 18-21 | p2@0, RULES.md's dirty values (see [`DIRTY_PIN`]) | —                        | —                        |
//! | 30-33 | —                                                 | p2@0 ([`DIRTY_GEO`])     | p2@0 ([`DIRTY_USER`])    |
//!
//! plus one line of the pin topic that is not JSON and one whose key is not an integer.

use std::path::Path;

use deltalake::arrow::datatypes::{DataType, TimeUnit};
use pinpipe::batch::{rows_as_json, run_batch, BatchConfig, BatchSummary, TableSummary};
use pinpipe::landing::object_key;
use pinpipe::model::Table;
use pinpipe::names::UserId;
use serde_json::{json, Value};

const ANTARCTICA: &str = "Antarctica (the territory South of 60 deg S)";

fn uid() -> UserId {
    UserId::new("0123456789ab").unwrap()
}

fn topic(table: Table) -> String {
    uid().topic(table)
}

/// Writes one landing object (one line per element, newline-terminated) and returns its key.
fn write_object(landing: &Path, table: Table, partition: i32, start: i64, lines: &[String]) -> String {
    let key = object_key(&topic(table), partition, start);
    let path = landing.join(&key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut body = lines.join("\n");
    body.push('\n');
    std::fs::write(&path, body).unwrap();
    key
}

fn line(v: Value) -> String {
    v.to_string()
}

/// A regular pin record (the fields the fixture does not play with get plain values).
#[allow(clippy::too_many_arguments)]
fn pin(
    index: i64,
    title: &str,
    description: &str,
    poster: &str,
    follower: &str,
    tags: &str,
    kind: &str,
    category: &str,
) -> String {
    line(json!({
        "index": index,
        "unique_id": format!("u{index}"),
        "title": title,
        "description": description,
        "poster_name": poster,
        "follower_count": follower,
        "tag_list": tags,
        "is_image_or_video": kind,
        "image_src": format!("https://img/{index}.jpg"),
        "downloaded": 1,
        "save_location": format!("Local save in /data/{category}"),
        "category": category,
    }))
}

fn geo(ind: i64, timestamp: &str, lat: f64, lon: f64, country: &str) -> String {
    line(json!({"ind": ind, "timestamp": timestamp, "latitude": lat, "longitude": lon, "country": country}))
}

fn user(ind: i64, first: &str, last: &str, age: i64, joined: &str) -> String {
    line(json!({"ind": ind, "first_name": first, "last_name": last, "age": age, "date_joined": joined}))
}

/// A line that must become a dead letter.
const PIN_NOT_JSON: &str = "not json at all {";

/// A latitude that is not a number: null, the record kept.
fn geo_north() -> String {
    line(
        json!({"ind": 15, "timestamp": "2020-01-01 00:00:00", "latitude": "north", "longitude": 1.5, "country": "Albania"}),
    )
}

/// An age that is not a number: null, the record kept.
fn user_old() -> String {
    line(
        json!({"ind": 13, "first_name": "Lou", "last_name": "Moe", "age": "old", "date_joined": "2016-01-01 00:00:00"}),
    )
}

/// Pin records of RULES.md's "Dirty values", as raw text: CRLF line ends, a blank line (not a
/// record: the next line's offset is 2), and no line break at the end.
const DIRTY_PIN: &str = concat!(
    r#"{"index": 18, "unique_id": "u18", "title": "\tT18\t", "description": "\t\n", "follower_count": "1.2345k", "poster_name": "Pat", "tag_list": "\t", "is_image_or_video": "image", "image_src": {"url": "x"}, "downloaded": "yes", "save_location": "Local save in /data/art", "category": "art"}"#,
    "\r\n\r\n",
    r#"{"index": " 19 ", "title": 12.50, "follower_count": 2500, "poster_name": true, "category": ["art"]}"#,
    "\r\n",
    r#"{"index": 20.0, "title": "a key that is not an integer"}"#,
    "\r\n",
    r#"{"index": 21, "follower_count": "0.5"}"#,
);
const PIN_BAD_KEY: &str = r#"{"index": 20.0, "title": "a key that is not an integer"}"#;

/// Geo records of "Dirty values": UTC offsets, lowercase t/z, an impossible date, numbers in
/// strings, numbers too large for a double, an object and a number where text belongs.
const DIRTY_GEO: &str = concat!(
    r#"{"ind": 30, "timestamp": "2019-01-01T00:30:00.123+01", "latitude": "7.25", "longitude": " -5.5 ", "country": "\tAlbania"}"#,
    "\n",
    r#"{"ind": 31, "timestamp": "2019-06-15t08:30:00z", "latitude": 1e400, "longitude": {"x": 1}, "country": "  "}"#,
    "\n",
    r#"{"ind": 32, "timestamp": "2021-02-30 00:00:00", "latitude": 1, "longitude": 2, "country": 7}"#,
    "\n",
    r#"{"ind": 33, "timestamp": " 2020-07-04 09:15:30-0130 ", "latitude": null}"#,
    "\n",
);

/// User records of "Dirty values": names with tabs and line breaks, ages as strings, as whole
/// floats and too large for int32, a key as a string, a datetime that is a number.
const DIRTY_USER: &str = concat!(
    r#"{"ind": 30, "first_name": "\tZoe\t", "last_name": " \n", "age": "33", "date_joined": "2014-05-05T05:05:05+00:00"}"#,
    "\n",
    r#"{"ind": 31, "first_name": " ", "last_name": null, "age": 33.0, "date_joined": "2014-01-01 00:00:00"}"#,
    "\n",
    r#"{"ind": 32, "first_name": "Al", "last_name": "Bo", "age": 2147483648, "date_joined": "2016-01-01 00:00:00"}"#,
    "\n",
    r#"{"ind": "33", "first_name": "Cy", "last_name": "Do", "age": 30, "date_joined": 2016}"#,
    "\n",
);

/// Writes one landing object with exactly `body` and returns its key.
fn write_raw_object(landing: &Path, table: Table, partition: i32, start: i64, body: &str) -> String {
    let key = object_key(&topic(table), partition, start);
    let path = landing.join(&key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, body).unwrap();
    key
}

/// Keys of the landing objects written by [`write_fixture`].
struct Keys {
    pin_p0_0: String,
    pin_p2_0: String,
}

fn write_fixture(landing: &Path) -> Keys {
    // ---- pin: partition 0, objects at offsets 0 and 9; partition 1, object at offset 0.
    let pin_p0_0 = write_object(
        landing,
        Table::Pin,
        0,
        0,
        &[
            /* 0 */ pin(0, "T0", "D0", "Zed", "2k", "a,b", "image", "beauty"),
            /* 1 */ pin(1, "T1", "D1", "Amy", "2000", "a,b", "video", "art"),
            /* 2 */ pin(2, "T2", "No description available", "Ben", "abc", "c", "image", "beauty"),
            /* 3 */ pin(5, "T5 old", "D5", "Eli", "5", "x", "image", "travel"),
            /* 4 */ pin(3, "   ", "", "Hal", "1.5k", "d,e", "image", "art"),
            /* 5 */ pin(5, "T5", " Untitled ", "Eli", "999", "x", "image", "travel"),
            /* 6 */ pin(7, "T7 old", "D7", "Finn", "3k", "f", "image", "finance"),
            /* 7 */ PIN_NOT_JSON.to_string(),
            /* 8 */ pin(4, "T4", "D4", "Dora", "1000M", "g", "image", "travel"),
        ],
    );
    write_object(
        landing,
        Table::Pin,
        0,
        9,
        &[
            /* 9 */
            line(json!({
                "index": 6, "unique_id": "u6", "title": "T6", "description": "D6", "poster_name": "Ivy",
                "follower_count": 100, "tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e",
                "is_image_or_video": "image", "image_src": "Image src error.", "downloaded": 1,
                "save_location": "Local save in /data/quotes", "category": "quotes"
            })),
            /* 10 */ pin(7, "T7", "D7", "Finn", "1B", "f", "video", "vehicles"),
            /* 11 */
            line(json!({
                "index": 8, "unique_id": "u8", "title": null, "description": "D8", "poster_name": "Gus",
                "follower_count": "437", "tag_list": "h", "is_image_or_video": "image", "downloaded": 1,
                "save_location": "Local save in /data/tattoos", "category": "tattoos"
            })),
            /* 12 */ pin(9, "T9 p0", "D9", "Gus", "5k", "h", "image", "tattoos"),
            /* 13 */
            line(json!({
                "index": 10, "unique_id": "u10", "title": "No Title Data Available",
                "description": "No description available Story format", "poster_name": "User Info Error",
                "follower_count": "User Info Error", "tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e",
                "is_image_or_video": "multi-video(story page format)", "image_src": "Image src error.",
                "downloaded": 0, "save_location": "Local save in /data/art", "category": "art"
            })),
            /* 14 */ pin(11, "T11", "D11", "Kai", "136k", "i", "image", "vehicles"),
            /* 15 */ pin(12, "T12", "D12", "   ", "7k", "j", "image", "beauty"),
            /* 16 */ pin(13, "T13", "D13", "Lou", "2.5M", "k", "image", "education"),
            /* 17 */
            line(json!({
                "index": 14, "unique_id": "", "title": "T14", "description": "Untitled", "poster_name": "Mo",
                "follower_count": "1,000", "tag_list": " ", "is_image_or_video": "", "image_src": "",
                "downloaded": 1, "save_location": "", "category": ""
            })),
        ],
    );
    write_object(landing, Table::Pin, 1, 0, &[/* 0 */ pin(9, "T9", "D9", "Gus", "12K", "h", "image", "tattoos")]);

    // ---- geo: partition 0, objects at offsets 0 and 8.
    let (al, ci, za, an) = ((41.25, 19.75), (7.5, -5.5), (-13.5, 27.75), (-75.25, 0.5));
    write_object(
        landing,
        Table::Geo,
        0,
        0,
        &[
            /* 0 */ geo(0, "2019-03-01 10:00:00", al.0, al.1, "Albania"),
            /* 1 */ geo(1, "2019-06-15T08:30:00", al.0, al.1, "Albania"),
            /* 2 */ geo(2, "2017-12-31T23:59:59.000Z", al.0, al.1, "Albania"),
            /* 3 */
            line(
                json!({"ind": 3, "timestamp": "2018-01-01 00:00:00", "latitude": "41.25", "longitude": 19.75, "country": "Albania"}),
            ),
            /* 4 */ geo(4, "2020-02-29T12:00:00.000Z", ci.0, ci.1, "Cote d'Ivoire"),
            /* 5 */ geo(5, "2020-07-04 09:15:30", ci.0, ci.1, "Cote d'Ivoire"),
            /* 6 */ geo(7, "2023-01-01 00:00:00", -10.5, 30.25, "Zambia"),
            /* 7 */ geo_north(),
        ],
    );
    write_object(
        landing,
        Table::Geo,
        0,
        8,
        &[
            /* 8 */ geo(6, "2020-11-11T11:11:11", ci.0, ci.1, "Cote d'Ivoire"),
            /* 9 */ geo(7, "2022-12-31T23:59:59", za.0, za.1, "Zambia"),
            /* 10 */ geo(8, "2018-05-05T05:05:05.000Z", an.0, an.1, ANTARCTICA),
            /* 11 */ geo(9, "2021-04-19 17:37:03", an.0, an.1, ANTARCTICA),
            /* 12 */ geo(10, "2021-04-19T17:37:03", an.0, an.1, ANTARCTICA),
            /* 13 */ geo(11, "2023-03-03T03:03:03.000Z", za.0, za.1, "Zambia"),
            /* 14 */
            line(json!({"ind": 16, "timestamp": null, "latitude": 41.25, "longitude": 19.75, "country": "Albania"})),
        ],
    );

    // ---- user: partition 0, objects at offsets 0 and 8.
    write_object(
        landing,
        Table::User,
        0,
        0,
        &[
            /* 0 */ user(0, "Ann", "Lee", 24, "2015-03-01 10:00:00"),
            /* 1 */ user(1, "Bea", "Moss", 99, "2016-01-01 00:00:00"),
            /* 2 */
            line(
                json!({"ind": 2, "first_name": "Cy", "last_name": "Ng", "age": "35", "date_joined": "2016-12-31T23:59:59.000Z"}),
            ),
            /* 3 */ user(3, "Dee", "Fox", 36, "2015-07-07 07:07:07"),
            /* 4 */
            line(
                json!({"ind": 4, "first_name": "Ed", "last_name": null, "age": 50, "date_joined": "2017-01-01T00:00:00"}),
            ),
            /* 5 */ user(5, "", "Gray", 51, "2016-05-05 05:05:05"),
            /* 6 */ user(6, "Flo", "Hart", 16, "2017-06-06T06:06:06.000Z"),
            /* 7 */ user(7, "Gil", "Ives", 20, "2014-12-31 23:59:59"),
        ],
    );
    write_object(
        landing,
        Table::User,
        0,
        8,
        &[
            /* 8 */ user(8, "  Hana", "Ito ", 30, "2015-08-08T08:08:08"),
            /* 9 */ user(1, "Bea", "Moss", 25, "2016-02-02T02:02:02"),
            /* 10 */ user(9, "Ian", "Jay", 60, "2021-01-01 00:00:00"),
            /* 11 */ user(10, "Dee", "Fox", 36, "2015-07-07T07:07:07.000Z"),
            /* 12 */ user(11, "Ann", "Lee", 24, "2016-09-09 09:09:09"),
            /* 13 */
            line(json!({"ind": 12, "first_name": "Jo", "age": 33, "date_joined": "2016-10-10T10:10:10"})),
            /* 14 */ user_old(),
            /* 15 */
            line(
                json!({"ind": 17, "first_name": "Kim", "last_name": "Lam", "age": null, "date_joined": "2018-04-04 04:04:04"}),
            ),
        ],
    );
    let pin_p2_0 = write_raw_object(landing, Table::Pin, 2, 0, DIRTY_PIN);
    write_raw_object(landing, Table::Geo, 2, 0, DIRTY_GEO);
    write_raw_object(landing, Table::User, 2, 0, DIRTY_USER);
    Keys { pin_p0_0, pin_p2_0 }
}

fn config(landing: &Path, lake: &Path) -> BatchConfig {
    BatchConfig {
        user_id: uid(),
        landing: landing.to_str().unwrap().to_string(),
        lake: lake.to_str().unwrap().to_string(),
        ..Default::default()
    }
}

/// Rows of a query as JSON objects, with explicit nulls for every column of the result.
async fn rows(lake: &Path, sql: &str) -> Vec<Value> {
    let batches = pinpipe::query::run_sql(lake.to_str().unwrap(), sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let columns: Vec<String> =
        batches.first().map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect()).unwrap_or_default();
    rows_as_json(&batches)
        .unwrap()
        .into_iter()
        .map(|mut row| {
            for c in &columns {
                row.entry(c.clone()).or_insert(Value::Null);
            }
            Value::Object(row)
        })
        .collect()
}

/// Column names and Arrow types of a table as read back from the lake.
async fn columns(lake: &Path, table: &str) -> Vec<(String, DataType)> {
    let batches = pinpipe::query::run_sql(lake.to_str().unwrap(), &format!("SELECT * FROM \"{table}\"")).await.unwrap();
    let schema = batches.first().expect("table has rows").schema();
    schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect()
}

#[track_caller]
fn assert_rows(what: &str, actual: &[Value], expected: &[Value]) {
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a, e, "{what}: row {i} differs\n actual:   {a}\n expected: {e}");
    }
    assert_eq!(
        actual.len(),
        expected.len(),
        "{what}: {} rows, expected {}\n actual: {}",
        actual.len(),
        expected.len(),
        serde_json::to_string_pretty(actual).unwrap()
    );
}

async fn assert_table(lake: &Path, what: &str, sql: &str, expected: &[Value]) {
    assert_rows(what, &rows(lake, sql).await, expected);
}

fn summary_of<'a>(summary: &'a BatchSummary, table: &str) -> &'a TableSummary {
    summary.tables.iter().find(|t| t.table == table).unwrap_or_else(|| panic!("no summary for {table}: {summary:?}"))
}

/// (objects_read, records_read, dead_lettered, deduplicated, clean_rows)
fn counts(summary: &BatchSummary, table: &str) -> (u64, u64, u64, u64, u64) {
    let t = summary_of(summary, table);
    (t.objects_read, t.records_read, t.dead_lettered, t.deduplicated, t.clean_rows)
}

const PIN_SQL: &str = "SELECT * FROM pin ORDER BY ind";
const GEO_SQL: &str = "SELECT * FROM geo ORDER BY ind";
const USER_SQL: &str = "SELECT * FROM \"user\" ORDER BY ind";
const DEAD_SQL: &str =
    "SELECT topic, \"partition\", \"object\", \"line\", \"offset\", raw FROM _dead_letters ORDER BY topic, \"partition\", \"offset\"";

/// The clean pin table, by hand from RULES.md.
fn expected_pin() -> Vec<Value> {
    let p = |ind: i64,
             unique_id: Value,
             title: Value,
             description: Value,
             follower_count: Value,
             poster_name: Value,
             tag_list: Value,
             kind: Value,
             image_src: Value,
             save_location: Value,
             category: Value| {
        json!({
            "ind": ind, "unique_id": unique_id, "title": title, "description": description,
            "follower_count": follower_count, "poster_name": poster_name, "tag_list": tag_list,
            "is_image_or_video": kind, "image_src": image_src, "save_location": save_location, "category": category,
        })
    };
    let n = Value::Null;
    let s = |v: &str| json!(v);
    vec![
        p(
            0,
            s("u0"),
            s("T0"),
            s("D0"),
            json!(2000),
            s("Zed"),
            s("a,b"),
            s("image"),
            s("https://img/0.jpg"),
            s("/data/beauty"),
            s("beauty"),
        ),
        p(
            1,
            s("u1"),
            s("T1"),
            s("D1"),
            json!(2000),
            s("Amy"),
            s("a,b"),
            s("video"),
            s("https://img/1.jpg"),
            s("/data/art"),
            s("art"),
        ),
        // description sentinel; follower "abc" is not a count
        p(
            2,
            s("u2"),
            s("T2"),
            n.clone(),
            n.clone(),
            s("Ben"),
            s("c"),
            s("image"),
            s("https://img/2.jpg"),
            s("/data/beauty"),
            s("beauty"),
        ),
        // whitespace-only title, empty description, "1.5k"
        p(
            3,
            s("u3"),
            n.clone(),
            n.clone(),
            json!(1500),
            s("Hal"),
            s("d,e"),
            s("image"),
            s("https://img/3.jpg"),
            s("/data/art"),
            s("art"),
        ),
        // "1000M"
        p(
            4,
            s("u4"),
            s("T4"),
            s("D4"),
            json!(1_000_000_000),
            s("Dora"),
            s("g"),
            s("image"),
            s("https://img/4.jpg"),
            s("/data/travel"),
            s("travel"),
        ),
        // the later line of the same object wins; " Untitled " is a sentinel once trimmed
        p(
            5,
            s("u5"),
            s("T5"),
            n.clone(),
            json!(999),
            s("Eli"),
            s("x"),
            s("image"),
            s("https://img/5.jpg"),
            s("/data/travel"),
            s("travel"),
        ),
        // tag_list and image_src sentinels; a JSON number follower count
        p(
            6,
            s("u6"),
            s("T6"),
            s("D6"),
            json!(100),
            s("Ivy"),
            n.clone(),
            s("image"),
            n.clone(),
            s("/data/quotes"),
            s("quotes"),
        ),
        // the record of the later object wins
        p(
            7,
            s("u7"),
            s("T7"),
            s("D7"),
            json!(1_000_000_000),
            s("Finn"),
            s("f"),
            s("video"),
            s("https://img/7.jpg"),
            s("/data/vehicles"),
            s("vehicles"),
        ),
        // JSON null title, missing image_src
        p(
            8,
            s("u8"),
            n.clone(),
            s("D8"),
            json!(437),
            s("Gus"),
            s("h"),
            s("image"),
            n.clone(),
            s("/data/tattoos"),
            s("tattoos"),
        ),
        // partition 1 offset 0 beats partition 0 offset 12; "12K"
        p(
            9,
            s("u9"),
            s("T9"),
            s("D9"),
            json!(12000),
            s("Gus"),
            s("h"),
            s("image"),
            s("https://img/9.jpg"),
            s("/data/tattoos"),
            s("tattoos"),
        ),
        // the story row: every sentinel
        p(
            10,
            s("u10"),
            n.clone(),
            n.clone(),
            n.clone(),
            n.clone(),
            n.clone(),
            s("multi-video(story page format)"),
            n.clone(),
            s("/data/art"),
            s("art"),
        ),
        p(
            11,
            s("u11"),
            s("T11"),
            s("D11"),
            json!(136000),
            s("Kai"),
            s("i"),
            s("image"),
            s("https://img/11.jpg"),
            s("/data/vehicles"),
            s("vehicles"),
        ),
        // whitespace-only poster
        p(
            12,
            s("u12"),
            s("T12"),
            s("D12"),
            json!(7000),
            n.clone(),
            s("j"),
            s("image"),
            s("https://img/12.jpg"),
            s("/data/beauty"),
            s("beauty"),
        ),
        // "2.5M"
        p(
            13,
            s("u13"),
            s("T13"),
            s("D13"),
            json!(2_500_000),
            s("Lou"),
            s("k"),
            s("image"),
            s("https://img/13.jpg"),
            s("/data/education"),
            s("education"),
        ),
        // empty / whitespace values, "Untitled", "1,000" is not a count
        p(
            14,
            n.clone(),
            s("T14"),
            n.clone(),
            n.clone(),
            s("Mo"),
            n.clone(),
            n.clone(),
            n.clone(),
            n.clone(),
            n.clone(),
        ),
    ]
    .into_iter()
    .chain(expected_dirty_pin())
    .collect()
}

/// The pin rows of [`DIRTY_PIN`]: kept text is stored as it came; an object where text belongs
/// is null; numbers and booleans in text columns are their JSON text; "1.2345k" and "0.5" round
/// half up.
fn expected_dirty_pin() -> Vec<Value> {
    let row = |ind: i64, fields: Value| {
        let mut r = json!({
            "ind": ind, "unique_id": null, "title": null, "description": null, "follower_count": null,
            "poster_name": null, "tag_list": null, "is_image_or_video": null, "image_src": null,
            "save_location": null, "category": null,
        });
        for (k, v) in fields.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    vec![
        row(
            18,
            json!({"unique_id": "u18", "title": "\tT18\t", "follower_count": 1235, "poster_name": "Pat",
                   "is_image_or_video": "image", "save_location": "/data/art", "category": "art"}),
        ),
        row(19, json!({"title": "12.50", "follower_count": 2500, "poster_name": "true"})),
        row(21, json!({"follower_count": 1})),
    ]
}

fn ts(text: &str) -> Value {
    json!(text)
}

/// The clean geo table, by hand.
fn expected_geo() -> Vec<Value> {
    let g = |ind: i64, country: &str, lat: f64, lon: f64, timestamp: Value| json!({"ind": ind, "country": country, "coordinates": [lat, lon], "timestamp": timestamp});
    vec![
        g(0, "Albania", 41.25, 19.75, ts("2019-03-01T10:00:00Z")),
        g(1, "Albania", 41.25, 19.75, ts("2019-06-15T08:30:00Z")),
        g(2, "Albania", 41.25, 19.75, ts("2017-12-31T23:59:59Z")),
        g(3, "Albania", 41.25, 19.75, ts("2018-01-01T00:00:00Z")),
        g(4, "Cote d'Ivoire", 7.5, -5.5, ts("2020-02-29T12:00:00Z")),
        g(5, "Cote d'Ivoire", 7.5, -5.5, ts("2020-07-04T09:15:30Z")),
        g(6, "Cote d'Ivoire", 7.5, -5.5, ts("2020-11-11T11:11:11Z")),
        // the later record (2022, other coordinates) wins over the 2023 one
        g(7, "Zambia", -13.5, 27.75, ts("2022-12-31T23:59:59Z")),
        g(8, ANTARCTICA, -75.25, 0.5, ts("2018-05-05T05:05:05Z")),
        g(9, ANTARCTICA, -75.25, 0.5, ts("2021-04-19T17:37:03Z")),
        g(10, ANTARCTICA, -75.25, 0.5, ts("2021-04-19T17:37:03Z")),
        g(11, "Zambia", -13.5, 27.75, ts("2023-03-03T03:03:03Z")),
        json!({"ind": 15, "country": "Albania", "coordinates": [null, 1.5], "timestamp": ts("2020-01-01T00:00:00Z")}),
        g(16, "Albania", 41.25, 19.75, Value::Null),
        // DIRTY_GEO: offsets and lowercase t/z; an impossible date; unusable coordinates.
        json!({"ind": 30, "country": "\tAlbania", "coordinates": [7.25, -5.5], "timestamp": ts("2018-12-31T23:30:00.123Z")}),
        json!({"ind": 31, "country": null, "coordinates": [null, null], "timestamp": ts("2019-06-15T08:30:00Z")}),
        json!({"ind": 32, "country": "7", "coordinates": [1.0, 2.0], "timestamp": null}),
        json!({"ind": 33, "country": null, "coordinates": [null, null], "timestamp": ts("2020-07-04T10:45:30Z")}),
    ]
}

/// The clean user table, by hand.
fn expected_user() -> Vec<Value> {
    let u = |ind: i64, name: &str, age: Value, joined: &str| json!({"ind": ind, "user_name": name, "age": age, "date_joined": ts(joined)});
    vec![
        u(0, "Ann Lee", json!(24), "2015-03-01T10:00:00Z"),
        u(1, "Bea Moss", json!(25), "2016-02-02T02:02:02Z"),
        u(2, "Cy Ng", json!(35), "2016-12-31T23:59:59Z"),
        u(3, "Dee Fox", json!(36), "2015-07-07T07:07:07Z"),
        u(4, "Ed", json!(50), "2017-01-01T00:00:00Z"),
        u(5, "Gray", json!(51), "2016-05-05T05:05:05Z"),
        u(6, "Flo Hart", json!(16), "2017-06-06T06:06:06Z"),
        u(7, "Gil Ives", json!(20), "2014-12-31T23:59:59Z"),
        u(8, "Hana Ito", json!(30), "2015-08-08T08:08:08Z"),
        u(9, "Ian Jay", json!(60), "2021-01-01T00:00:00Z"),
        u(10, "Dee Fox", json!(36), "2015-07-07T07:07:07Z"),
        u(11, "Ann Lee", json!(24), "2016-09-09T09:09:09Z"),
        u(12, "Jo", json!(33), "2016-10-10T10:10:10Z"),
        u(13, "Lou Moe", Value::Null, "2016-01-01T00:00:00Z"),
        u(17, "Kim Lam", Value::Null, "2018-04-04T04:04:04Z"),
        // DIRTY_USER
        u(30, "Zoe", json!(33), "2014-05-05T05:05:05Z"),
        json!({"ind": 31, "user_name": null, "age": 33, "date_joined": ts("2014-01-01T00:00:00Z")}),
        u(32, "Al Bo", Value::Null, "2016-01-01T00:00:00Z"),
        json!({"ind": 33, "user_name": "Cy Do", "age": 30, "date_joined": null}),
    ]
}

fn expected_dead_letters(keys: &Keys) -> Vec<Value> {
    vec![
        json!({"topic": topic(Table::Pin), "partition": 0, "object": keys.pin_p0_0, "line": 8, "offset": 7, "raw": PIN_NOT_JSON}),
        // Line 4 is the third record: the blank line is not one.
        json!({"topic": topic(Table::Pin), "partition": 2, "object": keys.pin_p2_0, "line": 4, "offset": 2, "raw": PIN_BAD_KEY}),
    ]
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_cleans_and_computes_the_analytics_of_rules_md() {
    let dir = tempfile::tempdir().unwrap();
    let (landing, lake) = (dir.path().join("landing"), dir.path().join("lake"));
    let keys = write_fixture(&landing);

    let summary = run_batch(config(&landing, &lake)).await.unwrap();

    // ---- summary: (objects_read, records_read, dead_lettered, deduplicated, clean_rows)
    // pin: 9 + 9 + 1 + 4 records (the blank line is none), one not JSON and one with a key that
    // is not an integer; 21 records of 18 inds (5 twice in one object, 7 across objects, 9
    // across partitions).
    assert_eq!(counts(&summary, "pin"), (4, 23, 2, 3, 18), "{summary:?}");
    // geo: 8 + 7 + 4 records; 19 records of 18 inds (7 twice).
    assert_eq!(counts(&summary, "geo"), (3, 19, 0, 1, 18), "{summary:?}");
    // user: 8 + 8 + 4 records; 20 records of 19 inds (1 twice).
    assert_eq!(counts(&summary, "user"), (3, 20, 0, 1, 19), "{summary:?}");
    assert_eq!(summary.records_read(), 62);
    // Values that could not be used, counted by column (and in `_quality`).
    let unparsable = |table: &str| -> Vec<(String, u64)> {
        summary_of(&summary, table)
            .nulled
            .iter()
            .filter(|(k, _)| k.ends_with(": unparsable"))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    let owned = |v: &[(&str, u64)]| -> Vec<(String, u64)> { v.iter().map(|(k, n)| (k.to_string(), *n)).collect() };
    assert_eq!(
        unparsable("pin"),
        owned(&[("category: unparsable", 1), ("follower_count: unparsable", 2), ("image_src: unparsable", 1)])
    );
    assert_eq!(
        unparsable("geo"),
        owned(&[("latitude: unparsable", 2), ("longitude: unparsable", 1), ("timestamp: unparsable", 1)])
    );
    assert_eq!(unparsable("user"), owned(&[("age: unparsable", 2), ("date_joined: unparsable", 1)]));
    let quality = rows(
        &lake,
        "SELECT \"table\", column_name, \"count\" FROM _quality WHERE metric = 'nulled' AND cause = 'unparsable' \
         ORDER BY \"table\", column_name",
    )
    .await;
    assert_eq!(quality.len(), 8, "{quality:?}");
    assert_eq!(quality[0], json!({"table": "geo", "column_name": "latitude", "count": 2}));

    // ---- clean tables: columns and types
    let pin_cols = columns(&lake, "pin").await;
    let names: Vec<&str> = pin_cols.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "ind",
            "unique_id",
            "title",
            "description",
            "follower_count",
            "poster_name",
            "tag_list",
            "is_image_or_video",
            "image_src",
            "save_location",
            "category"
        ]
    );
    for (name, ty) in &pin_cols {
        match name.as_str() {
            "ind" | "follower_count" => assert_eq!(ty, &DataType::Int64, "pin.{name}"),
            _ => assert!(is_text(ty), "pin.{name} is {ty:?}"),
        }
    }
    let utc_micros = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let geo_cols = columns(&lake, "geo").await;
    let names: Vec<&str> = geo_cols.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ind", "country", "coordinates", "timestamp"]);
    assert_eq!(geo_cols[0].1, DataType::Int64);
    assert!(is_text(&geo_cols[1].1), "geo.country is {:?}", geo_cols[1].1);
    match &geo_cols[2].1 {
        DataType::List(item) => assert_eq!(item.data_type(), &DataType::Float64, "geo.coordinates items"),
        other => panic!("geo.coordinates is {other:?}, expected List<Float64>"),
    }
    assert_eq!(geo_cols[3].1, utc_micros, "geo.timestamp");
    let user_cols = columns(&lake, "user").await;
    let names: Vec<&str> = user_cols.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ind", "user_name", "age", "date_joined"]);
    assert_eq!(user_cols[0].1, DataType::Int64);
    assert!(is_text(&user_cols[1].1), "user.user_name is {:?}", user_cols[1].1);
    assert_eq!(user_cols[2].1, DataType::Int32, "user.age");
    assert_eq!(user_cols[3].1, utc_micros, "user.date_joined");

    // ---- clean tables: rows
    assert_table(&lake, "pin", PIN_SQL, &expected_pin()).await;
    assert_table(&lake, "geo", GEO_SQL, &expected_geo()).await;
    assert_table(&lake, "user", USER_SQL, &expected_user()).await;

    // ---- dead letters
    assert_table(&lake, "_dead_letters", DEAD_SQL, &expected_dead_letters(&keys)).await;
    let meta = rows(&lake, "SELECT run_id, topic, error FROM _dead_letters ORDER BY topic").await;
    for row in &meta {
        assert_eq!(row["run_id"], json!(summary.run_id), "{row}");
        assert!(!row["error"].as_str().unwrap().is_empty(), "{row}");
    }
    assert!(meta.iter().any(|m| m["error"].as_str().unwrap().contains("column index")), "{meta:?}");

    // ---- analytics
    // pin ⋈ geo (inds 0-11): Albania 0 beauty, 1 art, 2 beauty, 3 art → tie 2-2, art wins;
    // Antarctica 8, 9 tattoos, 10 art; Cote d'Ivoire 4, 5 travel, 6 quotes; Zambia 7, 11 vehicles.
    assert_table(
        &lake,
        "top_category_by_country",
        "SELECT country, category, category_count FROM top_category_by_country ORDER BY country",
        &[
            json!({"country": "Albania", "category": "art", "category_count": 2}),
            json!({"country": ANTARCTICA, "category": "tattoos", "category_count": 2}),
            json!({"country": "Cote d'Ivoire", "category": "travel", "category_count": 2}),
            json!({"country": "Zambia", "category": "vehicles", "category_count": 2}),
        ],
    )
    .await;
    // 2017 (ind 2) and 2023 (ind 11; the losing record of ind 7) are outside 2018-2022.
    // 2018: 3 art, 8 tattoos; 2019: 0 beauty, 1 art; 2020: 4, 5 travel, 6 quotes;
    // 2021: 9 tattoos, 10 art; 2022: 7 vehicles.
    assert_table(
        &lake,
        "top_category_by_year",
        "SELECT post_year, category, category_count FROM top_category_by_year ORDER BY post_year",
        &[
            json!({"post_year": 2018, "category": "art", "category_count": 1}),
            json!({"post_year": 2019, "category": "art", "category_count": 1}),
            json!({"post_year": 2020, "category": "travel", "category_count": 2}),
            json!({"post_year": 2021, "category": "art", "category_count": 1}),
            json!({"post_year": 2022, "category": "vehicles", "category_count": 1}),
        ],
    )
    .await;
    // Albania: Zed 2000 and Amy 2000 tie → Amy; Ben has no count, Hal 1500.
    // Antarctica: Gus 437 and 12000 (the partition-1 record); the story row has no poster.
    // Cote d'Ivoire: Dora 1000M, Eli 999, Ivy 100. Zambia: Finn 1B, Kai 136k.
    assert_table(
        &lake,
        "top_poster_by_country",
        "SELECT country, poster_name, follower_count FROM top_poster_by_country ORDER BY country",
        &[
            json!({"country": "Albania", "poster_name": "Amy", "follower_count": 2000}),
            json!({"country": ANTARCTICA, "poster_name": "Gus", "follower_count": 12000}),
            json!({"country": "Cote d'Ivoire", "poster_name": "Dora", "follower_count": 1_000_000_000}),
            json!({"country": "Zambia", "poster_name": "Finn", "follower_count": 1_000_000_000}),
        ],
    )
    .await;
    // "1000M" (Cote d'Ivoire) ties "1B" (Zambia): country ascending.
    assert_table(
        &lake,
        "top_country_by_followers",
        "SELECT country, follower_count FROM top_country_by_followers",
        &[json!({"country": "Cote d'Ivoire", "follower_count": 1_000_000_000})],
    )
    .await;
    // pin ⋈ user: 18-24 = 0 (24), 7 (20), 11 (24); 25-35 = 1 (25), 2 (35), 8 (30), 12 (33);
    // 36-50 = 3 (36), 4 (50), 10 (36); +50 = 5 (51), 9 (60); 6 (16) is in no group; 13 was
    // dead-lettered.
    assert_table(
        &lake,
        "top_category_by_age_group",
        "SELECT age_group, category, category_count FROM top_category_by_age_group ORDER BY age_group",
        &[
            // 5 travel, 9 tattoos: tie
            json!({"age_group": "+50", "category": "tattoos", "category_count": 1}),
            // 0 beauty, 7 vehicles, 11 vehicles
            json!({"age_group": "18-24", "category": "vehicles", "category_count": 2}),
            // 1 art, 2 beauty, 8 tattoos, 12 beauty
            json!({"age_group": "25-35", "category": "beauty", "category_count": 2}),
            // 3 art, 4 travel, 10 art
            json!({"age_group": "36-50", "category": "art", "category_count": 2}),
        ],
    )
    .await;
    assert_table(
        &lake,
        "median_followers_by_age_group",
        "SELECT age_group, median_follower_count FROM median_followers_by_age_group ORDER BY age_group",
        &[
            // [999, 12000] → 999
            json!({"age_group": "+50", "median_follower_count": 999}),
            // [2000, 136000, 1e9] → 136000
            json!({"age_group": "18-24", "median_follower_count": 136000}),
            // [437, 2000, 7000] (2 has no count) → 2000
            json!({"age_group": "25-35", "median_follower_count": 2000}),
            // [1500, 1e9] (10 has no count) → 1500
            json!({"age_group": "36-50", "median_follower_count": 1500}),
        ],
    )
    .await;
    // Distinct (user_name, age, date_joined): 2014 (7) and 2021 (9) are outside 2015-2020.
    // 2015: Ann Lee 24, Dee Fox 36 (inds 3 and 10, two datetime shapes), Hana Ito 30 → 3;
    // 2016: Bea Moss, Cy Ng, Gray, Ann Lee (joined 2016), Jo → 5 (Lou Moe and Al Bo have no age,
    // Cy Do no date); 2017: Ed, Flo Hart → 2; 2018: Kim Lam has no age, so no year 2018.
    assert_table(
        &lake,
        "users_joined_by_year",
        "SELECT post_year, number_users_joined FROM users_joined_by_year ORDER BY post_year",
        &[
            json!({"post_year": 2015, "number_users_joined": 3}),
            json!({"post_year": 2016, "number_users_joined": 5}),
            json!({"post_year": 2017, "number_users_joined": 2}),
        ],
    )
    .await;
    // Over posts, any age: 2015: 0 2000, 3 1500, 8 437, (10 none) → [437, 1500, 2000] → 1500;
    // 2016: 1 2000, (2 none), 5 999, 11 136000, 12 7000, 13 2.5M (no age, still a post) →
    // [999, 2000, 7000, 136000, 2500000] → 7000;
    // 2017: 4 1e9, 6 100 → [100, 1e9] → 100; 2018: no post.
    assert_table(
        &lake,
        "median_followers_by_join_year",
        "SELECT post_year, median_follower_count FROM median_followers_by_join_year ORDER BY post_year",
        &[
            json!({"post_year": 2015, "median_follower_count": 1500}),
            json!({"post_year": 2016, "median_follower_count": 7000}),
            json!({"post_year": 2017, "median_follower_count": 100}),
        ],
    )
    .await;
    assert_table(
        &lake,
        "median_followers_by_age_group_and_join_year",
        "SELECT age_group, post_year, median_follower_count FROM median_followers_by_age_group_and_join_year \
         ORDER BY age_group, post_year",
        &[
            json!({"age_group": "+50", "post_year": 2016, "median_follower_count": 999}),
            json!({"age_group": "18-24", "post_year": 2015, "median_follower_count": 2000}),
            json!({"age_group": "18-24", "post_year": 2016, "median_follower_count": 136000}),
            json!({"age_group": "25-35", "post_year": 2015, "median_follower_count": 437}),
            // [2000, 7000] → 2000
            json!({"age_group": "25-35", "post_year": 2016, "median_follower_count": 2000}),
            json!({"age_group": "36-50", "post_year": 2015, "median_follower_count": 1500}),
            json!({"age_group": "36-50", "post_year": 2017, "median_follower_count": 1_000_000_000}),
        ],
    )
    .await;

    // The summary carries the same nine tables.
    let names: Vec<&str> = summary.analytics.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "top_category_by_country",
            "top_category_by_year",
            "top_poster_by_country",
            "top_country_by_followers",
            "top_category_by_age_group",
            "median_followers_by_age_group",
            "users_joined_by_year",
            "median_followers_by_join_year",
            "median_followers_by_age_group_and_join_year",
        ]
    );
}

/// Everything a run leaves in the clean tables and dead letters (without run ids).
async fn snapshot(lake: &Path) -> Vec<Vec<Value>> {
    vec![rows(lake, PIN_SQL).await, rows(lake, GEO_SQL).await, rows(lake, USER_SQL).await, rows(lake, DEAD_SQL).await]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_reads_each_landing_object_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (landing, lake) = (dir.path().join("landing"), dir.path().join("lake"));
    let keys = write_fixture(&landing);

    let first = run_batch(config(&landing, &lake)).await.unwrap();
    assert_eq!(counts(&first, "pin"), (4, 23, 2, 3, 18), "{first:?}");

    // A new object after the last one of pin partition 0 (it ended at offset 17): a newer
    // version of ind 3 and a new ind 20.
    write_object(
        &landing,
        Table::Pin,
        0,
        18,
        &[
            /* 18 */ pin(3, "T3 new", "D3 new", "Hal", "4k", "d,e", "image", "art"),
            /* 19 */ pin(20, "T20", "D20", "Nia", "1.5K", "l", "image", "diy-and-crafts"),
        ],
    );
    let second = run_batch(config(&landing, &lake)).await.unwrap();
    assert_eq!(counts(&second, "pin"), (1, 2, 0, 1, 19), "{second:?}");
    assert_eq!(counts(&second, "geo"), (0, 0, 0, 0, 18), "{second:?}");
    assert_eq!(counts(&second, "user"), (0, 0, 0, 0, 19), "{second:?}");

    let mut pin = expected_pin();
    pin[3] = json!({
        "ind": 3, "unique_id": "u3", "title": "T3 new", "description": "D3 new", "follower_count": 4000,
        "poster_name": "Hal", "tag_list": "d,e", "is_image_or_video": "image", "image_src": "https://img/3.jpg",
        "save_location": "/data/art", "category": "art",
    });
    pin.insert(
        17,
        json!({
            "ind": 20, "unique_id": "u20", "title": "T20", "description": "D20", "follower_count": 1500,
            "poster_name": "Nia", "tag_list": "l", "is_image_or_video": "image", "image_src": "https://img/20.jpg",
            "save_location": "/data/diy-and-crafts", "category": "diy-and-crafts",
        }),
    );
    assert_table(&lake, "pin after the second run", PIN_SQL, &pin).await;
    assert_table(
        &lake,
        "pin keys",
        "SELECT count(*) AS n, count(DISTINCT ind) AS inds FROM pin",
        &[json!({"n": 19, "inds": 19})],
    )
    .await;
    assert_table(&lake, "geo after the second run", GEO_SQL, &expected_geo()).await;
    assert_table(&lake, "user after the second run", USER_SQL, &expected_user()).await;
    assert_table(&lake, "dead letters after the second run", DEAD_SQL, &expected_dead_letters(&keys)).await;
    // The analytics follow: Hal (4000) now tops Albania.
    assert_table(
        &lake,
        "top_poster_by_country after the second run",
        "SELECT country, poster_name, follower_count FROM top_poster_by_country WHERE country = 'Albania'",
        &[json!({"country": "Albania", "poster_name": "Hal", "follower_count": 4000})],
    )
    .await;
    let after_second = snapshot(&lake).await;
    let dead_runs = rows(&lake, "SELECT DISTINCT run_id FROM _dead_letters").await;
    assert_eq!(dead_runs, [json!({"run_id": first.run_id})]);

    // Nothing new: nothing read, nothing changed.
    let third = run_batch(config(&landing, &lake)).await.unwrap();
    for table in ["pin", "geo", "user"] {
        let (objects, records, dead, dedup, _) = counts(&third, table);
        assert_eq!((objects, records, dead, dedup), (0, 0, 0, 0), "{table}: {third:?}");
    }
    assert_eq!(counts(&third, "pin").4, 19);
    assert_eq!(snapshot(&lake).await, after_second);
    assert_eq!(rows(&lake, "SELECT DISTINCT run_id FROM _dead_letters").await, dead_runs);

    // A full refresh reads everything again and ends with the same tables.
    let refresh = run_batch(BatchConfig { full_refresh: true, ..config(&landing, &lake) }).await.unwrap();
    assert_eq!(counts(&refresh, "pin"), (5, 25, 2, 4, 19), "{refresh:?}");
    assert_eq!(counts(&refresh, "geo"), (3, 19, 0, 1, 18), "{refresh:?}");
    assert_eq!(counts(&refresh, "user"), (3, 20, 0, 1, 19), "{refresh:?}");
    assert_eq!(snapshot(&lake).await, after_second);
}

/// Only objects past the recorded positions are read: landing objects are immutable, so a run
/// that fetched and decoded an already consumed object again could only be seen through its
/// cost, or, as here, by altering consumed objects between runs (a not-JSON line appended) and
/// watching for dead letters from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumed_landing_objects_are_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let (landing, lake) = (dir.path().join("landing"), dir.path().join("lake"));
    let keys = write_fixture(&landing);
    run_batch(config(&landing, &lake)).await.unwrap();

    // Pin partition 1 had no dead letter; pin partition 0's new object has none either.
    let new_key =
        write_object(&landing, Table::Pin, 0, 18, &[pin(20, "T20", "D20", "Nia", "1.5K", "l", "image", "art")]);
    let second = run_batch(config(&landing, &lake)).await.unwrap();
    assert_eq!(counts(&second, "pin"), (1, 1, 0, 0, 19), "{second:?}");

    for key in [object_key(&topic(Table::Pin), 1, 0), new_key, keys.pin_p0_0.clone()] {
        let path = landing.join(&key);
        let mut body = std::fs::read_to_string(&path).unwrap();
        body.push_str("consumed already\n");
        std::fs::write(&path, body).unwrap();
    }
    let third = run_batch(config(&landing, &lake)).await.unwrap();
    for table in ["pin", "geo", "user"] {
        let (objects, records, dead, _, _) = counts(&third, table);
        assert_eq!((objects, records, dead), (0, 0, 0), "{table}: {third:?}");
    }
    assert_table(&lake, "dead letters", DEAD_SQL, &expected_dead_letters(&keys)).await;
}
