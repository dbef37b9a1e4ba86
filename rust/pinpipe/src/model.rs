//! The three source tables: typed rows (what the synthetic generator makes and the MySQL loader
//! writes) and the JSON shape they travel in (what the emulator posts and the sink lands).

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

/// Text form of datetimes on the wire: what Python's `str(datetime)` gives, as the original
/// emulator sent them (`json.dumps(..., default=str)`).
pub const DATETIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// One of the three source tables; each has its own topic, stream and tables downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    Pin,
    Geo,
    User,
}

impl Table {
    pub const ALL: [Table; 3] = [Table::Pin, Table::Geo, Table::User];

    /// Suffix used in topic, stream and table names: `pin`, `geo`, `user`.
    pub fn suffix(self) -> &'static str {
        match self {
            Table::Pin => "pin",
            Table::Geo => "geo",
            Table::User => "user",
        }
    }

    /// Name of the table in the MySQL `pinterest_data` database.
    pub fn mysql_table(self) -> &'static str {
        match self {
            Table::Pin => "pinterest_data",
            Table::Geo => "geolocation_data",
            Table::User => "user_data",
        }
    }

    /// Name of the row-number column: `index` for pins, `ind` for the others.
    pub fn key_column(self) -> &'static str {
        match self {
            Table::Pin => "index",
            _ => "ind",
        }
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.suffix())
    }
}

mod datetime_text {
    use super::DATETIME_FORMAT;
    use chrono::NaiveDateTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&v.format(DATETIME_FORMAT))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
        let text = String::deserialize(d)?;
        NaiveDateTime::parse_from_str(&text, DATETIME_FORMAT).map_err(serde::de::Error::custom)
    }
}

/// A row of `pinterest_data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PinRow {
    pub index: i64,
    pub unique_id: String,
    pub title: String,
    pub description: String,
    pub poster_name: String,
    pub follower_count: String,
    pub tag_list: String,
    pub is_image_or_video: String,
    pub image_src: String,
    pub downloaded: i64,
    pub save_location: String,
    pub category: String,
}

/// A row of `geolocation_data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoRow {
    pub ind: i64,
    #[serde(with = "datetime_text")]
    pub timestamp: NaiveDateTime,
    pub latitude: f64,
    pub longitude: f64,
    pub country: String,
}

/// A row of `user_data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRow {
    pub ind: i64,
    pub first_name: String,
    pub last_name: String,
    pub age: i64,
    #[serde(with = "datetime_text")]
    pub date_joined: NaiveDateTime,
}

/// The typed rows of one row number: one post event.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    pub pin: PinRow,
    pub geo: GeoRow,
    pub user: UserRow,
}

impl Rows {
    /// The JSON form the emulator posts.
    pub fn to_event(&self) -> Event {
        Event {
            pin: serde_json::to_value(&self.pin).expect("pin row serializes"),
            geo: serde_json::to_value(&self.geo).expect("geo row serializes"),
            user: serde_json::to_value(&self.user).expect("user row serializes"),
        }
    }
}

/// One post event as JSON objects, one per table: what a source yields and the emulator posts.
/// Rows from MySQL pass through as the database returned them (all columns, datetimes as text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub pin: serde_json::Value,
    pub geo: serde_json::Value,
    pub user: serde_json::Value,
}

impl Event {
    pub fn get(&self, table: Table) -> &serde_json::Value {
        match table {
            Table::Pin => &self.pin,
            Table::Geo => &self.geo,
            Table::User => &self.user,
        }
    }
}
