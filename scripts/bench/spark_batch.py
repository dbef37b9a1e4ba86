"""The batch job of RULES.md in PySpark: the baseline `scripts/bench_batch.sh` measures pinpipe against.

Reads the three topics of a landing zone (Confluent S3-sink layout) with an explicit schema, cleans
them as RULES.md says (dedup on the key keeping the highest landing position, sentinels to null,
follower_count k/M/B, save_location path, user_name, the three datetime shapes, coordinates),
writes the clean tables as Parquet, reads them back and runs the nine analytics queries (the same
SQL as rust/pinpipe/src/analytics.rs, in Spark's dialect), writing each result as Parquet:

    <out>/batch/{pin,geo,user}   <out>/analytics/<nine tables>

Everything is native Spark SQL (no Python UDF), as a Spark user would write it. Prints one JSON
line on stdout: Spark's own job time (after the session is up), the session start time, and the
row counts.

    spark_batch.py --landing DIR --out DIR [--user-id 0eaf46a0829f] [--master local[2]]
                   [--driver-memory 4g] [--shuffle-partitions 8] [--conf KEY=VALUE ...]
"""

import argparse
import json
import time

T_START = time.monotonic()

from pyspark.sql import SparkSession, Window  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

SENTINELS = {
    "title": ["No Title Data Available"],
    "description": ["No description available Story format", "No description available", "Untitled"],
    "poster_name": ["User Info Error"],
    "follower_count": ["User Info Error"],
    "tag_list": ["N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e"],
    "image_src": ["Image src error."],
}

S, L, I, D = T.StringType(), T.LongType(), T.IntegerType(), T.DoubleType()
# The raw schemas (rust/pinpipe/src/clean/raw.rs). Datetimes come as text in three shapes and are
# parsed below; `_corrupt_record` catches lines that are not JSON or whose types do not coerce.
RAW = {
    "pin": [("index", L), ("unique_id", S), ("title", S), ("description", S), ("poster_name", S),
            ("follower_count", S), ("tag_list", S), ("is_image_or_video", S), ("image_src", S),
            ("downloaded", L), ("save_location", S), ("category", S)],
    "geo": [("ind", L), ("timestamp", S), ("latitude", D), ("longitude", D), ("country", S)],
    "user": [("ind", L), ("first_name", S), ("last_name", S), ("age", I), ("date_joined", S)],
}
KEY = {"pin": "index", "geo": "ind", "user": "ind"}


def schema(table):
    fields = [T.StructField(n, t, True) for n, t in RAW[table]]
    fields.append(T.StructField("_corrupt_record", S, True))
    return T.StructType(fields)


def nulled(column):
    """RULES.md's null rule: NULL when the trimmed value is empty or a sentinel of the column."""
    c = F.col(column)
    return F.when(F.trim(c).isin("", *SENTINELS.get(column, [])), F.lit(None).cast(S)).otherwise(c)


def follower_count(text):
    """Digits, optional decimal part, optional k/K/M/B suffix -> exact integer (half up); else NULL."""
    t = F.trim(text)
    m = r"^([0-9]{1,20})(\.[0-9]{1,18})?([kKMB]?)$"
    number = F.regexp_extract(t, m, 1).try_cast(T.DecimalType(38, 18)) + F.when(
        F.regexp_extract(t, m, 2) != "", F.concat(F.lit("0"), F.regexp_extract(t, m, 2)).try_cast(T.DecimalType(38, 18))
    ).otherwise(F.lit(0).cast(T.DecimalType(38, 18)))
    suffix = F.regexp_extract(t, m, 3)
    mult = (F.when(suffix.isin("k", "K"), 1000).when(suffix == "M", 1000000)
            .when(suffix == "B", 1000000000).otherwise(1))
    value = F.round(number * mult, 0).cast(L)  # Spark's round is HALF_UP
    return F.when(t.rlike(m), value)


def timestamp(text):
    """`2021-04-19 17:37:03`, `2021-04-19T17:37:03`, `2021-04-19T17:37:03.000Z` -> UTC timestamp."""
    return F.try_to_timestamp(F.trim(text))


def read_raw(spark, landing, uid, table):
    """The landed records of a topic, with their landing position: partition and the object's start
    offset from the file name (`<topic>+<p>+<offset>.json`), and the record's place in the object.
    The place is monotonically_increasing_id(): objects (flush size 1000, well under Spark's 4 MB
    openCostInBytes) are never split, so within one object it grows with the line number, and it
    is only compared within one object."""
    path = f"{landing}/topics/{uid}.{table}/partition=*/*.json"
    df = spark.read.schema(schema(table)).option("mode", "PERMISSIVE").json(path)
    name = F.col("_metadata.file_name")
    pattern = r"\+([0-9]+)\+([0-9]+)\.json$"
    return df.select(
        *[F.col(n) for n, _ in RAW[table]], "_corrupt_record",
        F.regexp_extract(name, pattern, 1).cast(I).alias("_partition"),
        F.regexp_extract(name, pattern, 2).cast(L).alias("_start"),
        F.monotonically_increasing_id().alias("_line"),
    )


def clean(raw, table):
    key = KEY[table]
    good = raw.where(F.col("_corrupt_record").isNull() & F.col(key).isNotNull())
    w = Window.partitionBy(key).orderBy(F.col("_partition").desc(), F.col("_start").desc(), F.col("_line").desc())
    d = good.withColumn("_rank", F.row_number().over(w)).where("_rank = 1")
    if table == "pin":
        s = nulled("save_location")
        save = F.when(F.instr(s, "/") > 0, F.expr("substr(save_location, instr(save_location, '/'))")).otherwise(
            F.nullif(F.trim(F.regexp_replace(s, r"^\s*Local save in\s*", "")), F.lit("")))
        return d.select(
            F.col("index").alias("ind"), nulled("unique_id").alias("unique_id"), nulled("title").alias("title"),
            nulled("description").alias("description"),
            follower_count(nulled("follower_count")).alias("follower_count"),
            nulled("poster_name").alias("poster_name"), nulled("tag_list").alias("tag_list"),
            nulled("is_image_or_video").alias("is_image_or_video"), nulled("image_src").alias("image_src"),
            save.alias("save_location"), nulled("category").alias("category"),
        )
    if table == "geo":
        return d.select(
            "ind", nulled("country").alias("country"),
            F.array(F.col("latitude"), F.col("longitude")).alias("coordinates"),
            timestamp(F.col("timestamp")).alias("timestamp"),
        )
    return d.select(
        "ind",
        F.nullif(F.trim(F.concat_ws(" ", F.trim(nulled("first_name")), F.trim(nulled("last_name")))), F.lit(""))
        .alias("user_name"),
        "age", timestamp(F.col("date_joined")).alias("date_joined"),
    )


AGE_GROUP = ("CASE WHEN age BETWEEN 18 AND 24 THEN '18-24' WHEN age BETWEEN 25 AND 35 THEN '25-35' "
             "WHEN age BETWEEN 36 AND 50 THEN '36-50' WHEN age > 50 THEN '+50' END")
AGE_GROUP_ORDER = "CASE age_group WHEN '18-24' THEN 1 WHEN '25-35' THEN 2 WHEN '36-50' THEN 3 ELSE 4 END"
PIN_GEO = "SELECT g.country, p.category, p.poster_name, p.follower_count, g.`timestamp` FROM pin p JOIN geo g ON p.ind = g.ind"
PIN_USER = (f"SELECT p.category, p.follower_count, {AGE_GROUP} AS age_group, "
            "CAST(date_part('year', u.date_joined) AS INT) AS post_year FROM pin p JOIN `user` u ON p.ind = u.ind")


def top(group, name, value, source, order):
    return (f"SELECT {group}, {name}, {value} FROM (SELECT *, row_number() OVER (PARTITION BY {group} "
            f"ORDER BY {value} DESC, {name} ASC) AS _rank FROM ({source})) WHERE _rank = 1 ORDER BY {order}")


def lower_median(groups, source, order):
    # `DIV`: Spark's `/` is a fractional division.
    return (f"SELECT {groups}, v AS median_follower_count FROM (SELECT {groups}, v, "
            f"row_number() OVER (PARTITION BY {groups} ORDER BY v) AS _rank, "
            f"count(*) OVER (PARTITION BY {groups}) AS _n FROM ({source})) "
            f"WHERE _rank = (_n + 1) DIV 2 ORDER BY {order}")


TOP_POSTER = top(
    "country", "poster_name", "follower_count",
    f"SELECT country, poster_name, max(follower_count) AS follower_count FROM ({PIN_GEO}) "
    "WHERE country IS NOT NULL AND poster_name IS NOT NULL AND follower_count IS NOT NULL GROUP BY country, poster_name",
    "country")

QUERIES = {
    "top_category_by_country": top(
        "country", "category", "category_count",
        f"SELECT country, category, count(*) AS category_count FROM ({PIN_GEO}) "
        "WHERE country IS NOT NULL AND category IS NOT NULL GROUP BY country, category", "country"),
    "top_category_by_year": top(
        "post_year", "category", "category_count",
        f"SELECT CAST(date_part('year', `timestamp`) AS INT) AS post_year, category, count(*) AS category_count "
        f"FROM ({PIN_GEO}) WHERE category IS NOT NULL AND `timestamp` IS NOT NULL "
        "AND date_part('year', `timestamp`) BETWEEN 2018 AND 2022 GROUP BY 1, 2", "post_year"),
    "top_poster_by_country": TOP_POSTER,
    "top_country_by_followers": (f"SELECT country, follower_count FROM ({TOP_POSTER}) "
                                 "ORDER BY follower_count DESC, country ASC LIMIT 1"),
    "top_category_by_age_group": top(
        "age_group", "category", "category_count",
        f"SELECT age_group, category, count(*) AS category_count FROM ({PIN_USER}) "
        "WHERE age_group IS NOT NULL AND category IS NOT NULL GROUP BY age_group, category", AGE_GROUP_ORDER),
    "median_followers_by_age_group": lower_median(
        "age_group",
        f"SELECT age_group, follower_count AS v FROM ({PIN_USER}) WHERE age_group IS NOT NULL AND follower_count IS NOT NULL",
        AGE_GROUP_ORDER),
    "users_joined_by_year": (
        "SELECT CAST(date_part('year', date_joined) AS INT) AS post_year, count(*) AS number_users_joined "
        "FROM (SELECT DISTINCT user_name, age, date_joined FROM `user` WHERE date_joined IS NOT NULL) "
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--landing", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--user-id", default="0eaf46a0829f")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="4g")
    ap.add_argument("--shuffle-partitions", type=int, default=8)
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="more Spark settings")
    a = ap.parse_args()

    builder = (
        SparkSession.builder.master(a.master).appName("pinpipe-bench-batch")
        .config("spark.driver.memory", a.driver_memory)
        .config("spark.sql.shuffle.partitions", str(a.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    for kv in a.conf:
        key, _, value = kv.partition("=")
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    t_session = time.monotonic()

    counts = {}
    for table in ("pin", "geo", "user"):
        out = f"{a.out}/batch/{table}"
        clean(read_raw(spark, a.landing, a.user_id, table), table).write.mode("overwrite").parquet(out)
    t_clean = time.monotonic()

    for table in ("pin", "geo", "user"):
        spark.read.parquet(f"{a.out}/batch/{table}").createOrReplaceTempView(table)
    for name, sql in QUERIES.items():
        spark.sql(sql).coalesce(1).write.mode("overwrite").parquet(f"{a.out}/analytics/{name}")
    t_analytics = time.monotonic()
    for table in ("pin", "geo", "user"):
        counts[table] = spark.table(table).count()
    spark.stop()
    print(json.dumps({
        "session_start_secs": t_session - T_START,
        "clean_secs": t_clean - t_session,
        "analytics_secs": t_analytics - t_clean,
        "job_secs": t_analytics - t_session,
        "clean_rows": counts,
    }))


if __name__ == "__main__":
    main()
