"""The batch job of RULES.md in DuckDB: a second baseline for `scripts/bench_batch.sh`, next to PySpark.

Reads the three topics of a landing zone (Confluent S3-sink layout,
`topics/<uid>.<t>/partition=<p>/<uid>.<t>+<p>+<start offset>.json`, one JSON value per line), cleans
them as RULES.md says (dedup on the key keeping the highest landing position, sentinels to null,
follower_count k/K/M/B, save_location path, user_name, the accepted datetime shapes, coordinates),
writes the clean tables as Parquet, reads them back and runs the nine analytics queries (the same
SQL as rust/pinpipe/src/analytics.rs, in DuckDB's dialect), writing each result as Parquet:

    <out>/batch/{pin,geo,user}/data_0.parquet   <out>/analytics/<nine tables>/data_0.parquet

Everything is DuckDB SQL (no Python UDF). Each landing object is read whole with `read_text` and
split into lines, so every record keeps its place in the object: the landing position is
(partition, start offset, line number), which orders records exactly as (partition, offset) does,
since the objects of a partition hold disjoint offset ranges. Blank lines and lines that are not
JSON are skipped; a record whose key is missing or not an integer is dropped (the dead letters of
RULES.md, not written here). Every value is read as JSON text and typed by the rules of "Dirty
values": what cannot be used becomes NULL.

Prints one JSON line on stdout: DuckDB's job time (after the connection is up), the session start
time (importing duckdb and connecting), and the row counts.

    duckdb_batch.py --landing DIR --out DIR [--user-id 0eaf46a0829f] [--threads N] [--memory-limit 4GB]
"""

import argparse
import json
import os
import shutil
import time

T_START = time.monotonic()

import duckdb  # noqa: E402

SENTINELS = {
    "title": ["No Title Data Available"],
    "description": ["No description available Story format", "No description available", "Untitled"],
    "poster_name": ["User Info Error"],
    "follower_count": ["User Info Error"],
    "tag_list": ["N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e"],
    "image_src": ["Image src error."],
}

# The raw columns of each topic (rust/pinpipe/src/clean/raw.rs); all are read as JSON and typed below.
RAW = {
    "pin": ["index", "unique_id", "title", "description", "poster_name", "follower_count", "tag_list",
            "is_image_or_video", "image_src", "downloaded", "save_location", "category"],
    "geo": ["ind", "timestamp", "latitude", "longitude", "country"],
    "user": ["ind", "first_name", "last_name", "age", "date_joined"],
}
KEY = {"pin": "index", "geo": "ind", "user": "ind"}
PIN_TEXT = ["unique_id", "title", "description", "follower_count", "poster_name", "tag_list",
            "is_image_or_video", "image_src", "save_location", "category"]

# RULES.md's "trimmed": Unicode White_Space and the separators U+001C..U+001F.
WHITESPACE = "".join(map(chr, [*range(0x09, 0x0E), *range(0x1C, 0x21), 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                               0x2028, 0x2029, 0x202F, 0x205F, 0x3000]))
SPACE_CLASS = r"[\t-\r\x{85}\p{Z}]"  # White_Space as a regular-expression class
TRIM_CLASS = r"[\t-\r\x1c-\x20\x{85}\p{Z}]"  # the characters of WHITESPACE, as a class
NUMBER = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"
DATETIME = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
            r"([Zz]|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?")
FOLLOWERS = r"[0-9]{1,20}(\.[0-9]{1,18})?[kKMB]?"
OBJECT_NAME = r"partition=([0-9]+)/[^/]*\+([0-9]+)\+([0-9]+)\.json$"


def lit(s):
    return "'" + s.replace("'", "''") + "'"


MACROS = [
    # (`trim` with a character list is slow, so only values that start or end with whitespace go through it.)
    f"CREATE MACRO pp_trim(s) AS CASE WHEN regexp_matches(s, '^{TRIM_CLASS}|{TRIM_CLASS}$') "
    f"THEN trim(s, {lit(WHITESPACE)}) ELSE s END",
    # A JSON value as text: a string as it is, a number or boolean as its JSON text; null, object or array: NULL.
    "CREATE MACRO pp_text(v) AS CASE json_type(v) WHEN 'VARCHAR' THEN v->>'$' "
    "WHEN 'NULL' THEN NULL WHEN 'OBJECT' THEN NULL WHEN 'ARRAY' THEN NULL ELSE CAST(v AS VARCHAR) END",
    # The key: an integer, or a string of ASCII digits with an optional leading minus (surrounding space allowed).
    f"CREATE MACRO pp_key(t) AS TRY_CAST(NULLIF(regexp_extract(t, '^{TRIM_CLASS}*(-?[0-9]+){TRIM_CLASS}*$', 1), '') "
    "AS BIGINT)",
    # A finite number, from a JSON number or a numeric string.
    f"CREATE MACRO pp_number(t) AS CASE WHEN regexp_full_match(pp_trim(t), {lit(NUMBER)}) "
    "THEN nullif(nullif(TRY_CAST(pp_trim(t) AS DOUBLE), 'inf'::DOUBLE), '-inf'::DOUBLE) END",
    "CREATE MACRO pp_int32(n) AS CASE WHEN n = trunc(n) AND n BETWEEN -2147483648 AND 2147483647 "
    "THEN CAST(n AS INTEGER) END",
    # A datetime in the accepted shapes (JSON strings only) as a UTC timestamp; no zone means UTC.
    f"CREATE MACRO pp_timestamp(v) AS CASE WHEN json_type(v) = 'VARCHAR' "
    f"AND regexp_full_match(pp_trim(v->>'$'), {lit(DATETIME)}) "
    "THEN TRY_CAST(upper(pp_trim(v->>'$')) AS TIMESTAMPTZ) END",
    # Digits, optional decimal part, optional k/K/M/B -> exact integer, rounded half up; NULL if it does not fit.
    "CREATE MACRO pp_scaled(n, m) AS CASE WHEN CAST(n AS DOUBLE) * m < 9.3e18 "
    "THEN TRY_CAST(round(n * m) AS BIGINT) END",
    f"CREATE MACRO pp_followers(s) AS CASE WHEN regexp_full_match(pp_trim(s), {lit(FOLLOWERS)}) THEN pp_scaled("
    "CAST(rtrim(pp_trim(s), 'kKMB') AS DECIMAL(38, 18)), "
    "CASE right(pp_trim(s), 1) WHEN 'k' THEN 1000 WHEN 'K' THEN 1000 WHEN 'M' THEN 1000000 "
    "WHEN 'B' THEN 1000000000 ELSE 1 END) END",
]


def nulled(column):
    """RULES.md's null rule: NULL when the trimmed value is empty or a sentinel of the column."""
    values = ", ".join(lit(v) for v in ["", *SENTINELS.get(column, [])])
    return f"CASE WHEN pp_trim({column}) IN ({values}) THEN NULL ELSE {column} END"


def topic_glob(landing, uid, table):
    """The landing objects of a topic, as a glob pattern."""
    return f"{landing}/topics/{uid}.{table}/partition=*/{uid}.{table}+*+*.json"


def latest(landing, uid, table, have_files):
    """The landed records of a topic that have a usable key, one per key: the one with the highest
    landing position. `j` holds the record's values as JSON."""
    files = (f"SELECT filename, content FROM read_text({lit(topic_glob(landing, uid, table))})" if have_files
             else "SELECT NULL::VARCHAR AS filename, NULL::VARCHAR AS content WHERE false")
    struct = "{" + ", ".join(f'"{c}": "JSON"' for c in RAW[table]) + "}"
    return f"""
        WITH objects AS (
            SELECT regexp_extract(filename, {lit(OBJECT_NAME)}, ['dir', 'part', 'start']) AS o,
                   string_split(content, chr(10)) AS lines
            FROM ({files})
        ), lines AS (
            SELECT CAST(o.part AS INTEGER) AS _partition, CAST(o.start AS BIGINT) AS _start,
                   unnest(lines) AS line, generate_subscripts(lines, 1) AS _line
            FROM objects WHERE o.part <> '' AND o.dir = o.part
        ), records AS (
            SELECT _partition, _start, _line, from_json(line, {lit(struct)}) AS j
            FROM lines WHERE json_valid(line)
        ), keyed AS (
            SELECT pp_key(pp_text(j."{KEY[table]}")) AS _key, _partition, _start, _line, j FROM records
        )
        SELECT _key, j FROM keyed WHERE _key IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY _key ORDER BY _partition DESC, _start DESC, _line DESC) = 1
    """


def clean(source, table):
    if table == "pin":
        texts = ", ".join(f'pp_text(j."{c}") AS {c}' for c in PIN_TEXT)
        s = nulled("save_location")
        save = (f"CASE WHEN strpos({s}, '/') > 0 THEN substr({s}, strpos({s}, '/')) ELSE "
                f"NULLIF(pp_trim(regexp_replace({s}, '^{SPACE_CLASS}*Local save in{SPACE_CLASS}*', '')), '') END")
        cols = [f"{nulled(c)} AS {c}" for c in PIN_TEXT]
        cols[PIN_TEXT.index("follower_count")] = f"pp_followers({nulled('follower_count')}) AS follower_count"
        cols[PIN_TEXT.index("save_location")] = f"{save} AS save_location"
        return f"SELECT _key AS ind, {', '.join(cols)} FROM (SELECT _key, {texts} FROM ({source}))"
    if table == "geo":
        return (f"SELECT _key AS ind, {nulled('country')} AS country, "
                "[pp_number(pp_text(j.latitude)), pp_number(pp_text(j.longitude))]::DOUBLE[] AS coordinates, "
                'pp_timestamp(j."timestamp") AS "timestamp" '
                f"FROM (SELECT _key, j, pp_text(j.country) AS country FROM ({source}))")
    return (f"SELECT _key AS ind, NULLIF(concat_ws(' ', pp_trim({nulled('first_name')}), "
            f"pp_trim({nulled('last_name')})), '') AS user_name, "
            "pp_int32(pp_number(pp_text(j.age))) AS age, pp_timestamp(j.date_joined) AS date_joined "
            f"FROM (SELECT _key, j, pp_text(j.first_name) AS first_name, pp_text(j.last_name) AS last_name "
            f"FROM ({source}))")


AGE_GROUP = ("CASE WHEN age BETWEEN 18 AND 24 THEN '18-24' WHEN age BETWEEN 25 AND 35 THEN '25-35' "
             "WHEN age BETWEEN 36 AND 50 THEN '36-50' WHEN age > 50 THEN '+50' END")
AGE_GROUP_ORDER = "CASE age_group WHEN '18-24' THEN 1 WHEN '25-35' THEN 2 WHEN '36-50' THEN 3 ELSE 4 END"
PIN_GEO = ('SELECT g.country, p.category, p.poster_name, p.follower_count, g."timestamp" '
           "FROM pin p JOIN geo g ON p.ind = g.ind")
PIN_USER = (f"SELECT p.category, p.follower_count, {AGE_GROUP} AS age_group, "
            "CAST(date_part('year', u.date_joined) AS INT) AS post_year FROM pin p JOIN \"user\" u ON p.ind = u.ind")


def top(group, name, value, source, order):
    return (f"SELECT {group}, {name}, {value} FROM (SELECT *, row_number() OVER (PARTITION BY {group} "
            f"ORDER BY {value} DESC, {name} ASC) AS _rank FROM ({source})) WHERE _rank = 1 ORDER BY {order}")


def lower_median(groups, source, order):
    # `//`: DuckDB's `/` is a fractional division.
    return (f"SELECT {groups}, v AS median_follower_count FROM (SELECT {groups}, v, "
            f"row_number() OVER (PARTITION BY {groups} ORDER BY v) AS _rank, "
            f"count(*) OVER (PARTITION BY {groups}) AS _n FROM ({source})) "
            f"WHERE _rank = (_n + 1) // 2 ORDER BY {order}")


TOP_POSTER = top(
    "country", "poster_name", "follower_count",
    f"SELECT country, poster_name, max(follower_count) AS follower_count FROM ({PIN_GEO}) "
    "WHERE country IS NOT NULL AND poster_name IS NOT NULL AND follower_count IS NOT NULL "
    "GROUP BY country, poster_name",
    "country")

QUERIES = {
    "top_category_by_country": top(
        "country", "category", "category_count",
        f"SELECT country, category, count(*) AS category_count FROM ({PIN_GEO}) "
        "WHERE country IS NOT NULL AND category IS NOT NULL GROUP BY country, category", "country"),
    "top_category_by_year": top(
        "post_year", "category", "category_count",
        "SELECT CAST(date_part('year', \"timestamp\") AS INT) AS post_year, category, count(*) AS category_count "
        f"FROM ({PIN_GEO}) WHERE category IS NOT NULL AND \"timestamp\" IS NOT NULL "
        "AND date_part('year', \"timestamp\") BETWEEN 2018 AND 2022 GROUP BY 1, 2", "post_year"),
    "top_poster_by_country": TOP_POSTER,
    "top_country_by_followers": (f"SELECT country, follower_count FROM ({TOP_POSTER}) "
                                 "ORDER BY follower_count DESC, country ASC LIMIT 1"),
    "top_category_by_age_group": top(
        "age_group", "category", "category_count",
        f"SELECT age_group, category, count(*) AS category_count FROM ({PIN_USER}) "
        "WHERE age_group IS NOT NULL AND category IS NOT NULL GROUP BY age_group, category", AGE_GROUP_ORDER),
    "median_followers_by_age_group": lower_median(
        "age_group",
        f"SELECT age_group, follower_count AS v FROM ({PIN_USER}) "
        "WHERE age_group IS NOT NULL AND follower_count IS NOT NULL",
        AGE_GROUP_ORDER),
    "users_joined_by_year": (
        "SELECT CAST(date_part('year', date_joined) AS INT) AS post_year, count(*) AS number_users_joined "
        "FROM (SELECT DISTINCT user_name, age, date_joined FROM \"user\" "
        "WHERE user_name IS NOT NULL AND age IS NOT NULL AND date_joined IS NOT NULL) "
        "WHERE date_part('year', date_joined) BETWEEN 2015 AND 2020 GROUP BY 1 ORDER BY 1"),
    "median_followers_by_join_year": lower_median(
        "post_year",
        f"SELECT post_year, follower_count AS v FROM ({PIN_USER}) "
        "WHERE post_year BETWEEN 2015 AND 2020 AND follower_count IS NOT NULL", "post_year"),
    "median_followers_by_age_group_and_join_year": lower_median(
        "age_group, post_year",
        f"SELECT age_group, post_year, follower_count AS v FROM ({PIN_USER}) "
        "WHERE age_group IS NOT NULL AND post_year BETWEEN 2015 AND 2020 AND follower_count IS NOT NULL",
        f"{AGE_GROUP_ORDER}, post_year"),
}


def write(con, sql, folder):
    """Writes a query's result as `<folder>/data_0.parquet`, replacing what the folder held."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    con.execute(f"COPY ({sql}) TO {lit(folder + '/data_0.parquet')} (FORMAT parquet)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--landing", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--user-id", default="0eaf46a0829f")
    ap.add_argument("--threads", type=int, help="DuckDB worker threads (default: DuckDB's)")
    ap.add_argument("--memory-limit", help="DuckDB memory limit, e.g. 4GB (default: DuckDB's)")
    a = ap.parse_args()

    config = {}
    if a.threads:
        config["threads"] = a.threads
    if a.memory_limit:
        config["memory_limit"] = a.memory_limit
    con = duckdb.connect(config=config)
    try:  # TIMESTAMPTZ parsing and date_part follow the session's zone (icu); without icu they are UTC
        con.execute("SET TimeZone = 'UTC'")
    except duckdb.Error:
        pass
    t_session = time.monotonic()

    landing = os.path.abspath(a.landing).rstrip("/")
    out = os.path.abspath(a.out)
    for macro in MACROS:
        con.execute(macro)
    for table in ("pin", "geo", "user"):
        pattern = lit(topic_glob(landing, a.user_id, table))
        have_files = con.execute(f"SELECT count(*) FROM glob({pattern})").fetchone()[0] > 0
        write(con, clean(latest(landing, a.user_id, table, have_files), table), f"{out}/batch/{table}")
    t_clean = time.monotonic()

    for table in ("pin", "geo", "user"):
        con.execute(f"CREATE VIEW \"{table}\" AS SELECT * FROM read_parquet({lit(f'{out}/batch/{table}/*.parquet')})")
    for name, sql in QUERIES.items():
        write(con, sql, f"{out}/analytics/{name}")
    t_analytics = time.monotonic()
    counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in ("pin", "geo", "user")}
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    con.close()
    print(json.dumps({
        "session_start_secs": t_session - T_START,
        "clean_secs": t_clean - t_session,
        "analytics_secs": t_analytics - t_clean,
        "job_secs": t_analytics - t_session,
        "clean_rows": counts,
        "threads": threads,
        "duckdb_version": duckdb.__version__,
    }))


if __name__ == "__main__":
    main()
