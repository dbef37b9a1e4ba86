//! The embedded synthetic dataset: the three source tables (`pinterest_data`,
//! `geolocation_data`, `user_data`) generated from a seed, row-aligned and calibrated to the real
//! tables described in RULES.md.
//!
//! Every row is computed on demand from `(seed, row number)`, so any row costs the same to make
//! and the same seed always gives the same rows. The only up-front work is a table of users (how
//! many rows each posts, as cumulative counts) and a pool of posters per pin category.
//!
//! Users: `rows × 5307 / 11154` of them; user `k` (heaviest first) posts `max(1, ⌊H·(k+1)^-s⌋)`
//! rows, with `H` the heaviest user's share of the real data (244 of 11,154 rows) and `s` solved
//! so that the counts add up to the row count. A keyed permutation scatters every user's rows over
//! the row numbers. Each attribute of a user (first name, surname, age, join date, latitude,
//! longitude, country) is drawn independently at a quantile `q ~ Beta(1, c)` of its sorted range,
//! `c` being the user's row count: a one-row user is uniform over the range, heavy users sit near
//! its start. This is the shape of the real tables, where the most active users have
//! early-alphabet names and countries, joined first and are the youngest. Geo timestamps are
//! uniform over the real window, 2017-10-19 .. 2022-10-19.

pub use super::vocab::{
    IMAGE_SRC_ERROR, NO_DESCRIPTION, NO_TAGS, NO_TITLE, STORY_DESCRIPTION, STORY_FORMAT, UNTITLED, USER_INFO_ERROR,
};

use super::vocab::{Draw, PosterPool, CATEGORIES, COUNTRIES, DIRT_DRAWS, FIRST_NAMES, LAST_NAMES};
use crate::model::{GeoRow, Rows, UserRow};
use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use serde::{Deserialize, Serialize};

/// Rows in the original tables (row numbers 0..11153).
pub const DEFAULT_ROWS: u64 = 11_154;

/// Users per row and the heaviest user's rows per row: the real tables' 5,307 users and 244
/// rows over 11,154 rows.
const USERS_PER_ROW: f64 = 5_307.0 / 11_154.0;
const TOP_USER_SHARE: f64 = 244.0 / 11_154.0;
/// Youngest age in `user_data` and the number of ages (20..=60).
const MIN_AGE: i64 = 20;
const AGES: usize = 41;
/// Seconds in the join-date window (two years from 2015-10-21).
const JOIN_SPAN_SECS: f64 = 730.0 * 86_400.0;
/// Rows per poster in a category's pool, and the pool's bounds.
const ROWS_PER_POSTER: u64 = 180;
const POSTERS: (u64, u64) = (4, 20_000);

/// Stream tags that keep the draws for rows, users, posters and the two permutations apart.
const STREAM_ROW: u64 = 1;
const STREAM_USER: u64 = 2;
const STREAM_POSTER: u64 = 3;
const STREAM_PERMUTATION: u64 = 4;
const STREAM_DIRT: u64 = 5;

/// Settings of the synthetic source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticConfig {
    /// Number of rows, numbered `0..rows`. Default 11,154, the size of the original tables.
    pub rows: u64,
    /// Seed of every draw: the same seed gives the same rows. Default 0.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig { rows: DEFAULT_ROWS, seed: 0 }
    }
}

/// The synthetic dataset: makes the rows of any row number on demand.
#[derive(Debug, Clone)]
pub struct SyntheticDataset {
    rows: u64,
    seed: u64,
    /// `user_rows_end[k]`: rows posted by users `0..=k` (cumulative, heaviest user first).
    user_rows_end: Vec<u64>,
    permutation: Permutation,
    /// Deals the dirty-value kinds: row `n` gets kind `dirt.apply(n) % 178`, so every kind
    /// occurs at its exact rate.
    dirt: Permutation,
    /// Cumulative category weights, in `CATEGORIES` order.
    category_ends: Vec<u64>,
    /// Poster pool of each category, in `CATEGORIES` order.
    posters: Vec<PosterPool>,
    geo_start: NaiveDateTime,
    geo_span_secs: u64,
    join_start: NaiveDateTime,
}

impl SyntheticDataset {
    /// Builds the user table and the poster pools for `config`; rows are made on demand.
    pub fn new(config: &SyntheticConfig) -> Self {
        let (rows, seed) = (config.rows, config.seed);
        let user_rows_end = user_row_counts(rows)
            .into_iter()
            .scan(0, |end, c| {
                *end += c;
                Some(*end)
            })
            .collect();
        let category_ends = CATEGORIES
            .iter()
            .scan(0, |end, c| {
                *end += u64::from(c.weight);
                Some(*end)
            })
            .collect();
        let pool_size = (rows / ROWS_PER_POSTER).clamp(POSTERS.0, POSTERS.1) as usize;
        let posters = (CATEGORIES.iter().enumerate())
            .map(|(i, words)| PosterPool::new(words, pool_size, &mut Rng::new(seed, STREAM_POSTER, i as u64)))
            .collect();
        let at = |y, m, d, h, min, s| {
            let date = NaiveDate::from_ymd_opt(y, m, d).expect("valid date");
            date.and_hms_opt(h, min, s).expect("valid time")
        };
        let geo_start = at(2017, 10, 19, 15, 13, 42);
        let geo_end = at(2022, 10, 19, 17, 54, 26);
        SyntheticDataset {
            rows,
            seed,
            user_rows_end,
            permutation: Permutation::new(rows, seed, STREAM_PERMUTATION),
            dirt: Permutation::new(rows, seed, STREAM_DIRT),
            category_ends,
            posters,
            geo_start,
            geo_span_secs: (geo_end - geo_start).num_seconds() as u64,
            join_start: at(2015, 10, 21, 0, 0, 0),
        }
    }

    /// Number of rows (row numbers `0..len`).
    pub fn len(&self) -> u64 {
        self.rows
    }

    /// True when the dataset has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Number of distinct users posting the rows.
    pub fn users(&self) -> u64 {
        self.user_rows_end.len() as u64
    }

    /// The rows of row number `n` (pin `index` = geo `ind` = user `ind` = `n`), or `None` past
    /// the end.
    pub fn rows(&self, n: u64) -> Option<Rows> {
        if n >= self.rows {
            return None;
        }
        let ind = n as i64;
        let mut rng = Rng::new(self.seed, STREAM_ROW, n);
        let pick = rng.below(*self.category_ends.last()?);
        let category = self.category_ends.partition_point(|&end| end <= pick);
        let poster = self.posters[category].pick(rng.unit());
        let dirt = self.dirt.apply(n) % DIRT_DRAWS;
        let pin = CATEGORIES[category].pin(ind, poster, dirt, &mut rng);
        let offset = rng.below(self.geo_span_secs + 1) as i64;

        let slot = self.permutation.apply(n);
        let k = self.user_rows_end.partition_point(|&end| end <= slot);
        let (user, (latitude, longitude, country)) = self.user(k, ind);
        let geo = GeoRow {
            ind,
            timestamp: self.geo_start + TimeDelta::seconds(offset),
            latitude,
            longitude,
            country: country.to_string(),
        };
        Some(Rows { pin, geo, user })
    }

    /// All rows in row-number order.
    pub fn iter(&self) -> impl Iterator<Item = Rows> + '_ {
        (0..self.rows).filter_map(move |n| self.rows(n))
    }

    /// Rows posted by user `k` (heaviest first).
    fn user_rows(&self, k: usize) -> u64 {
        let start = if k == 0 { 0 } else { self.user_rows_end[k - 1] };
        self.user_rows_end[k] - start
    }

    /// User `k`'s row numbered `ind` and location (latitude, longitude, country): the same on
    /// every row the user posts.
    fn user(&self, k: usize, ind: i64) -> (UserRow, (f64, f64, &'static str)) {
        let c = self.user_rows(k);
        let mut rng = Rng::new(self.seed, STREAM_USER, k as u64);
        let mut q = || beta1_quantile(rng.unit(), c);
        let first_name = FIRST_NAMES[index_at(q(), FIRST_NAMES.len())].to_string();
        let last_name = LAST_NAMES[index_at(q(), LAST_NAMES.len())].to_string();
        let age = MIN_AGE + index_at(q(), AGES) as i64;
        let date_joined = self.join_start + TimeDelta::seconds((q() * JOIN_SPAN_SECS) as i64);
        let latitude = round4(q() * 180.0 - 90.0);
        let longitude = round4(q() * 360.0 - 180.0);
        let country = COUNTRIES[index_at(q(), COUNTRIES.len())];
        let user = UserRow { ind, first_name, last_name, age, date_joined };
        (user, (latitude, longitude, country))
    }
}

/// Rows per user, heaviest first: `max(1, ⌊H·k^-s⌋)` for `k = 1..=users`, with `s` the smallest
/// exponent whose counts fit in `rows`; the few rows left over are spread over the users,
/// heaviest first.
fn user_row_counts(rows: u64) -> Vec<u64> {
    if rows == 0 {
        return Vec::new();
    }
    let users = ((rows as f64 * USERS_PER_ROW).round() as u64).clamp(1, rows);
    let top = ((rows as f64 * TOP_USER_SHARE).round() as u64).max(1) as f64;
    let count = |k: u64, s: f64| ((top * (k as f64).powf(-s)).floor() as u64).max(1);
    // Total rows for exponent s; counts only fall with k, so stop at the first one-row user.
    let total = |s: f64| users + (1..=users).map(|k| count(k, s) - 1).take_while(|&x| x > 0).sum::<u64>();
    let (mut lo, mut hi) = (0.0f64, 64.0f64);
    if total(lo) <= rows {
        hi = lo;
    }
    while hi - lo > 1e-12 {
        let mid = (lo + hi) / 2.0;
        if total(mid) > rows {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mut counts: Vec<u64> = (1..=users).map(|k| count(k, hi)).collect();
    let left = rows - counts.iter().sum::<u64>();
    for (i, c) in counts.iter_mut().enumerate() {
        *c += left / users + u64::from((i as u64) < left % users);
    }
    counts
}

/// The quantile of `Beta(1, c)` (the minimum of `c` uniforms) at `u` in `[0, 1)`.
fn beta1_quantile(u: f64, c: u64) -> f64 {
    if c <= 1 {
        u
    } else {
        -((-u).ln_1p() / c as f64).exp_m1()
    }
}

/// The index at quantile `q` of a list of `len` items.
fn index_at(q: f64, len: usize) -> usize {
    ((q * len as f64) as usize).min(len - 1)
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The SplitMix64 output function: a strong 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small SplitMix64 generator keyed by (seed, stream, number): independent, reproducible draws
/// for each row, user and poster pool.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64, number: u64) -> Self {
        Rng(mix(mix(seed ^ stream.rotate_left(56)) ^ number))
    }
}

impl Draw for Rng {
    fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
}

/// A keyed bijection of `0..n` (a four-round Feistel network on the smallest even bit width
/// that covers `n`, cycle-walking back into range): scatters each user's rows over row numbers.
#[derive(Debug, Clone)]
struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Permutation {
    fn new(n: u64, seed: u64, stream: u64) -> Self {
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let mut rng = Rng::new(seed, stream, n);
        let keys = [rng.bits(), rng.bits(), rng.bits(), rng.bits()];
        Permutation { n, half_bits: bits.div_ceil(2).max(1), keys }
    }

    fn apply(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let mut x = x;
        loop {
            let (mut left, mut right) = (x >> self.half_bits, x & mask);
            for key in self.keys {
                (left, right) = (right, left ^ (mix(right ^ key) & mask));
            }
            x = (left << self.half_bits) | right;
            if x < self.n {
                return x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::vocab::FOLLOWER_SHAPES;
    use super::*;
    use crate::model::PinRow;
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    fn rows_of(rows: u64, seed: u64) -> Vec<Rows> {
        SyntheticDataset::new(&SyntheticConfig { rows, seed }).iter().collect()
    }

    fn default_rows() -> Vec<Rows> {
        rows_of(DEFAULT_ROWS, 0)
    }

    #[test]
    fn same_seed_gives_same_rows_and_another_seed_differs() {
        let (a, b, other) = (default_rows(), default_rows(), rows_of(DEFAULT_ROWS, 1));
        assert_eq!((a.len(), &a), (11_154, &b));
        let same = a.iter().zip(&other).filter(|(x, y)| x == y).count();
        assert_eq!(same, 0, "seed 1 repeats {same} rows of seed 0");
    }

    #[test]
    fn rows_are_aligned_and_values_in_range() {
        let ds = SyntheticDataset::new(&SyntheticConfig::default());
        assert!(ds.rows(11_153).is_some() && ds.rows(11_154).is_none());
        let mut ids = BTreeSet::new();
        for (n, r) in ds.iter().enumerate() {
            let (n, p) = (n as i64, &r.pin);
            assert_eq!((p.index, r.geo.ind, r.user.ind), (n, n, n));
            let id = p.unique_id.as_bytes();
            assert!(id.len() == 36 && id[14] == b'4' && b"89ab".contains(&id[19]));
            assert!(ids.insert(p.unique_id.clone()), "duplicate uuid");
            assert!(CATEGORIES.iter().any(|c| c.name == p.category));
            let save = format!("Local save in /data/{}", p.category);
            assert_eq!(p.save_location, save);
            let kind = p.is_image_or_video.as_str();
            assert!(["image", "video", STORY_FORMAT].contains(&kind));
            assert!(p.downloaded == 0 || p.downloaded == 1);
            let ts = r.geo.timestamp.to_string();
            assert!(("2017-10-19 15:13:42"..="2022-10-19 17:54:26").contains(&ts.as_str()));
            let joined = r.user.date_joined.to_string();
            assert!(("2015-10-21".."2017-10-21").contains(&joined.as_str()));
            assert!((20..=60).contains(&r.user.age));
            assert!(COUNTRIES.contains(&r.geo.country.as_str()));
            let (lat, lon) = (r.geo.latitude, r.geo.longitude);
            assert!(lat.abs() <= 90.0 && lon.abs() <= 180.0 && round4(lat) == lat);
        }
    }

    #[test]
    fn sentinels_appear_at_the_observed_rates() {
        let rows = default_rows();
        let pins: Vec<&PinRow> = rows.iter().map(|r| &r.pin).collect();
        type Field = fn(&PinRow) -> &str;
        let checks: [(Field, &str, f64); 9] = [
            (|p| &p.description, STORY_DESCRIPTION, 12.0),
            (|p| &p.description, NO_DESCRIPTION, 2.0),
            (|p| &p.description, UNTITLED, 1.0),
            (|p| &p.image_src, IMAGE_SRC_ERROR, 4.0),
            (|p| &p.poster_name, USER_INFO_ERROR, 3.0),
            (|p| &p.follower_count, USER_INFO_ERROR, 3.0),
            (|p| &p.tag_list, NO_TAGS, 6.0),
            (|p| &p.title, NO_TITLE, 3.0),
            (|p| &p.is_image_or_video, STORY_FORMAT, 12.0),
        ];
        for (field, value, per_178) in checks {
            let seen = pins.iter().filter(|p| field(p) == value).count();
            let expected = per_178 / 178.0 * pins.len() as f64;
            eprintln!("{value:?}: {seen} rows (observed rate gives {expected:.0})");
            // Dealt exactly per 178 rows: off by at most the count in one block of 178.
            let off = (seen as f64 - expected).abs();
            assert!(seen > 0 && off <= per_178, "{value}: {seen}");
        }
        for p in pins.iter().filter(|p| p.title == NO_TITLE) {
            let fields = [&p.description, &p.tag_list, &p.image_src, &p.poster_name];
            let want = [STORY_DESCRIPTION, NO_TAGS, IMAGE_SRC_ERROR, USER_INFO_ERROR];
            assert_eq!(fields, want);
            let story = (p.downloaded, p.is_image_or_video.as_str());
            assert_eq!(story, (0, STORY_FORMAT));
        }
    }

    #[test]
    fn follower_count_shapes_match_the_observed_shares() {
        let rows = default_rows();
        let mut shapes = [0usize; 3];
        for r in rows.iter().filter(|r| r.pin.follower_count != USER_INFO_ERROR) {
            let text = r.pin.follower_count.as_str();
            let (digits, shape) = match text.strip_suffix('k') {
                Some(n) => (n, 0),
                None => text.strip_suffix('M').map_or((text, 1), |n| (n, 2)),
            };
            let number = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            assert!(number, "{text}");
            shapes[shape] += 1;
        }
        let total = shapes.iter().sum::<usize>() as f64;
        let target: f64 = FOLLOWER_SHAPES.iter().sum();
        for (seen, want) in shapes.iter().zip(FOLLOWER_SHAPES) {
            let (seen, want) = (*seen as f64 / total, want / target);
            eprintln!("follower shape share {seen:.3} (observed {want:.3})");
            assert!((seen - want).abs() <= 0.03, "{shapes:?}");
        }
    }

    #[test]
    fn posters_repeat_with_a_fixed_follower_count_and_category() {
        let rows = default_rows();
        let mut posters: HashMap<&str, (&str, &str, usize)> = HashMap::new();
        for p in rows.iter().map(|r| &r.pin) {
            if p.poster_name != USER_INFO_ERROR {
                let seen = (p.follower_count.as_str(), p.category.as_str(), 0);
                let e = posters.entry(&p.poster_name).or_insert(seen);
                assert_eq!((e.0, e.1), (seen.0, seen.1), "{}", p.poster_name);
                e.2 += 1;
            }
        }
        let top = posters.values().map(|e| e.2).max().unwrap_or(0);
        assert!(posters.len() > 100 && top >= 50, "{} posters, top {top}", posters.len());
    }

    #[test]
    fn user_pool_scales_with_rows() {
        for rows in [0u64, 1, 2, 3, 10, 100, 1_000] {
            let ds = SyntheticDataset::new(&SyntheticConfig { rows, seed: 7 });
            assert_eq!(ds.iter().count() as u64, rows);
            assert_eq!(ds.user_rows_end.last().copied().unwrap_or(0), rows);
            let slots: BTreeSet<u64> = (0..rows).map(|n| ds.permutation.apply(n)).collect();
            assert_eq!(slots.len() as u64, rows, "permutation of 0..{rows}");
        }
        let counts = user_row_counts(11_154);
        let summary = (counts.len(), counts[0], counts.iter().sum::<u64>());
        assert_eq!(summary, (5_307, 244, 11_154));
        let ds = SyntheticDataset::new(&SyntheticConfig { rows: 1_000_000, seed: 3 });
        let end = ds.user_rows_end.last().copied();
        assert_eq!((ds.users(), end), (475_793, Some(1_000_000)));
        assert!((21_876..=21_880).contains(&ds.user_rows(0)), "{}", ds.user_rows(0));
        assert!(ds.rows(999_999).is_some() && ds.rows(1_000_000).is_none());
    }

    /// What is compared with the real tables, per row: geo year, join year, age group, country,
    /// user (first, last, age, date_joined) and location (lat, lon, country).
    type Sample = [String; 6];

    /// One row of the compared columns, from the table columns as text.
    fn sample(ts: &str, lat: &str, lon: &str, country: &str, user: [&str; 4]) -> Sample {
        let group = match user[2].parse::<i64>().expect("age") {
            ..=24 => "18-24",
            25..=35 => "25-35",
            36..=50 => "36-50",
            _ => "+50",
        };
        let location = [lat, lon, country].join("|");
        let (year, joined) = (ts[..4].to_string(), user[3][..4].to_string());
        [year, joined, group.into(), country.into(), user.join("|"), location]
    }

    /// Reads a CSV file with a header line; fields may be double-quoted (`""` escapes a quote).
    fn read_csv(path: &str) -> Vec<HashMap<String, String>> {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reference table {path} must exist beside the clone: {e}"));
        let split = |line: &str| {
            let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '"' if quoted && chars.peek() == Some(&'"') => field.extend(chars.next()),
                    '"' => quoted = !quoted,
                    ',' if !quoted => fields.push(std::mem::take(&mut field)),
                    _ => field.push(c),
                }
            }
            fields.push(field);
            fields
        };
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = split(lines.next().expect("header"));
        lines.map(|l| header.iter().cloned().zip(split(l)).collect()).collect()
    }

    fn reference_samples() -> Vec<Sample> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/reference");
        let geo = read_csv(&format!("{dir}/geolocation_data.csv"));
        let user = read_csv(&format!("{dir}/user_data.csv"));
        assert_eq!((geo.len(), user.len()), (11_154, 11_154));
        let row = |(g, u): (&HashMap<String, String>, &HashMap<String, String>)| {
            assert_eq!(g["ind"], u["ind"]);
            let user = ["first_name", "last_name", "age", "date_joined"].map(|k| u[k].as_str());
            sample(&g["timestamp"], &g["latitude"], &g["longitude"], &g["country"], user)
        };
        geo.iter().zip(&user).map(row).collect()
    }

    fn synthetic_samples() -> Vec<Sample> {
        let row = |r: &Rows| {
            let (g, u) = (&r.geo, &r.user);
            let (age, joined) = (u.age.to_string(), u.date_joined.to_string());
            let user = [u.first_name.as_str(), &u.last_name, &age, &joined];
            let (lat, lon) = (g.latitude.to_string(), g.longitude.to_string());
            sample(&g.timestamp.to_string(), &lat, &lon, &g.country, user)
        };
        default_rows().iter().map(row).collect()
    }

    /// Share of rows per value of column `col`.
    fn shares(samples: &[Sample], col: usize) -> BTreeMap<&str, f64> {
        let mut shares = BTreeMap::new();
        for s in samples {
            *shares.entry(s[col].as_str()).or_insert(0.0) += 1.0 / samples.len() as f64;
        }
        shares
    }

    /// The `n` most frequent values with their shares.
    fn top<'a>(shares: &BTreeMap<&'a str, f64>, n: usize) -> Vec<(&'a str, f64)> {
        let mut v: Vec<_> = shares.iter().map(|(k, x)| (*k, *x)).collect();
        v.sort_by(|x, y| y.1.total_cmp(&x.1));
        v.truncate(n);
        v
    }

    #[test]
    fn calibrated_to_the_reference_tables() {
        let (ours, real) = (synthetic_samples(), reference_samples());
        let names = ["geo year", "join year", "age group"];
        for (col, tolerance) in [(0, 0.03), (1, 0.04), (2, 0.04)] {
            let (a, b) = (shares(&ours, col), shares(&real, col));
            assert!(a.keys().eq(b.keys()), "{} values differ", names[col]);
            for ((k, x), y) in a.iter().zip(b.values()) {
                let name = names[col];
                eprintln!("{name} {k}: synthetic {:.1}%, reference {:.1}%", x * 100.0, y * 100.0);
                assert!((x - y).abs() <= tolerance, "{name} {k}: {x:.3} vs {y:.3}");
            }
        }

        let (a, b) = (shares(&ours, 3), shares(&real, 3));
        assert!(a.keys().eq(b.keys()) && a.len() == 243, "country sets differ");
        let tv = a.iter().zip(b.values()).map(|((_, x), y)| (x - y).abs()).sum::<f64>() / 2.0;
        eprintln!("country TV distance {tv:.3}");
        eprintln!("top countries: synthetic {:?}, reference {:?}", top(&a, 5), top(&b, 5));
        assert!(tv <= 0.25, "country distribution: total-variation distance {tv:.3}");

        let (a, b) = (shares(&ours, 4), shares(&real, 4));
        let (heaviest, share) = top(&a, 1)[0];
        let rows = (share * 11_154.0).round() as u64;
        let real_rows = (top(&b, 1)[0].1 * 11_154.0).round();
        eprintln!("distinct users: synthetic {}, reference {}", a.len(), b.len());
        eprintln!("heaviest user: synthetic {rows} rows ({heaviest}), reference {real_rows}");
        assert!((0.9..=1.1).contains(&(a.len() as f64 / b.len() as f64)), "distinct users");
        assert!((150..=350).contains(&rows), "heaviest user rows {rows}");
        // The heaviest user sits at the start of the sorted lists, as in the real tables.
        let first_name = heaviest.split('|').next().unwrap_or_default();
        assert!(FIRST_NAMES[..FIRST_NAMES.len() / 5].contains(&first_name), "{heaviest}");

        let mut location: HashMap<&str, &str> = HashMap::new();
        for s in &ours {
            assert_eq!(*location.entry(&s[4]).or_insert(&s[5]), s[5], "user {}", s[4]);
        }
    }
}
