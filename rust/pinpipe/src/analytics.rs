//! The nine analytics queries of RULES.md, as DataFusion SQL over the clean tables registered as
//! `pin`, `geo` and `user`. One definition, whatever runs it.

use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafusion::common::Result as DfResult;
use deltalake::datafusion::prelude::SessionContext;

use crate::clean::conform;

/// An analytics table: its name (also its folder under `<lake>/analytics/`), the question it
/// answers, its SQL and its schema.
pub struct Query {
    pub name: &'static str,
    pub question: &'static str,
    sql: String,
    schema: SchemaRef,
}

const AGE_GROUP: &str = "CASE WHEN age BETWEEN 18 AND 24 THEN '18-24' WHEN age BETWEEN 25 AND 35 THEN '25-35' \
     WHEN age BETWEEN 36 AND 50 THEN '36-50' WHEN age > 50 THEN '+50' END";
const AGE_GROUP_ORDER: &str = "CASE age_group WHEN '18-24' THEN 1 WHEN '25-35' THEN 2 WHEN '36-50' THEN 3 ELSE 4 END";

/// The winner per group: highest count, ties by name ascending.
fn top(group: &str, name: &str, value: &str, source: &str, order: &str) -> String {
    format!(
        "SELECT {group}, {name}, {value} FROM (SELECT *, row_number() OVER (PARTITION BY {group} \
         ORDER BY {value} DESC, {name} ASC) AS _rank FROM ({source})) WHERE _rank = 1 ORDER BY {order}"
    )
}

/// Lower median of `v` per group: the smallest value with at least half the values ≤ it.
fn lower_median(groups: &str, source: &str, order: &str) -> String {
    format!(
        "SELECT {groups}, v AS median_follower_count FROM (SELECT {groups}, v, \
         row_number() OVER (PARTITION BY {groups} ORDER BY v) AS _rank, \
         count(*) OVER (PARTITION BY {groups}) AS _n FROM ({source})) \
         WHERE _rank = (_n + 1) / 2 ORDER BY {order}"
    )
}

fn field(name: &str, ty: DataType) -> Field {
    Field::new(name, ty, true)
}

fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

/// All nine queries, in RULES.md's order.
pub fn queries() -> Vec<Query> {
    let pin_geo = "SELECT g.country, p.category, p.poster_name, p.follower_count, g.\"timestamp\" \
                   FROM pin p JOIN geo g ON p.ind = g.ind";
    let pin_user = format!(
        "SELECT p.category, p.follower_count, {AGE_GROUP} AS age_group, \
         CAST(date_part('year', u.date_joined) AS INT) AS post_year \
         FROM pin p JOIN \"user\" u ON p.ind = u.ind"
    );
    let text = || DataType::Utf8;
    let int = || DataType::Int32;
    let long = || DataType::Int64;
    vec![
        Query {
            name: "top_category_by_country",
            question: "most popular category per country",
            sql: top(
                "country",
                "category",
                "category_count",
                &format!("SELECT country, category, count(*) AS category_count FROM ({pin_geo}) \
                          WHERE country IS NOT NULL AND category IS NOT NULL GROUP BY country, category"),
                "country",
            ),
            schema: schema(vec![field("country", text()), field("category", text()), field("category_count", long())]),
        },
        Query {
            name: "top_category_by_year",
            question: "most popular category per year, 2018-2022",
            sql: top(
                "post_year",
                "category",
                "category_count",
                &format!("SELECT CAST(date_part('year', \"timestamp\") AS INT) AS post_year, category, count(*) AS category_count \
                          FROM ({pin_geo}) WHERE category IS NOT NULL AND \"timestamp\" IS NOT NULL \
                          AND date_part('year', \"timestamp\") BETWEEN 2018 AND 2022 GROUP BY 1, 2"),
                "post_year",
            ),
            schema: schema(vec![field("post_year", int()), field("category", text()), field("category_count", long())]),
        },
        Query {
            name: "top_poster_by_country",
            question: "per country, the poster with the most followers",
            sql: top_poster(pin_geo),
            schema: schema(vec![field("country", text()), field("poster_name", text()), field("follower_count", long())]),
        },
        Query {
            name: "top_country_by_followers",
            question: "the country of the poster with the most followers",
            sql: format!(
                "SELECT country, follower_count FROM ({}) ORDER BY follower_count DESC, country ASC LIMIT 1",
                top_poster(pin_geo)
            ),
            schema: schema(vec![field("country", text()), field("follower_count", long())]),
        },
        Query {
            name: "top_category_by_age_group",
            question: "most popular category per age group",
            sql: top(
                "age_group",
                "category",
                "category_count",
                &format!("SELECT age_group, category, count(*) AS category_count FROM ({pin_user}) \
                          WHERE age_group IS NOT NULL AND category IS NOT NULL GROUP BY age_group, category"),
                AGE_GROUP_ORDER,
            ),
            schema: schema(vec![field("age_group", text()), field("category", text()), field("category_count", long())]),
        },
        Query {
            name: "median_followers_by_age_group",
            question: "median follower count per age group",
            sql: lower_median(
                "age_group",
                &format!("SELECT age_group, follower_count AS v FROM ({pin_user}) \
                          WHERE age_group IS NOT NULL AND follower_count IS NOT NULL"),
                AGE_GROUP_ORDER,
            ),
            schema: schema(vec![field("age_group", text()), field("median_follower_count", long())]),
        },
        Query {
            name: "users_joined_by_year",
            question: "users who joined each year, 2015-2020",
            sql: "SELECT CAST(date_part('year', date_joined) AS INT) AS post_year, count(*) AS number_users_joined \
                  FROM (SELECT DISTINCT user_name, age, date_joined FROM \"user\" \
                  WHERE user_name IS NOT NULL AND age IS NOT NULL AND date_joined IS NOT NULL) \
                  WHERE date_part('year', date_joined) BETWEEN 2015 AND 2020 GROUP BY 1 ORDER BY 1"
                .to_string(),
            schema: schema(vec![field("post_year", int()), field("number_users_joined", long())]),
        },
        Query {
            name: "median_followers_by_join_year",
            question: "median follower count by year joined, 2015-2020",
            sql: lower_median(
                "post_year",
                &format!("SELECT post_year, follower_count AS v FROM ({pin_user}) \
                          WHERE post_year BETWEEN 2015 AND 2020 AND follower_count IS NOT NULL"),
                "post_year",
            ),
            schema: schema(vec![field("post_year", int()), field("median_follower_count", long())]),
        },
        Query {
            name: "median_followers_by_age_group_and_join_year",
            question: "median follower count by age group and year joined, 2015-2020",
            sql: lower_median(
                "age_group, post_year",
                &format!("SELECT age_group, post_year, follower_count AS v FROM ({pin_user}) \
                          WHERE age_group IS NOT NULL AND post_year BETWEEN 2015 AND 2020 AND follower_count IS NOT NULL"),
                &format!("{AGE_GROUP_ORDER}, post_year"),
            ),
            schema: schema(vec![field("age_group", text()), field("post_year", int()), field("median_follower_count", long())]),
        },
    ]
}

fn top_poster(pin_geo: &str) -> String {
    top(
        "country",
        "poster_name",
        "follower_count",
        &format!(
            "SELECT country, poster_name, max(follower_count) AS follower_count FROM ({pin_geo}) \
                  WHERE country IS NOT NULL AND poster_name IS NOT NULL AND follower_count IS NOT NULL \
                  GROUP BY country, poster_name"
        ),
        "country",
    )
}

impl Query {
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Runs the query; the result has exactly the table's schema, sorted by the group columns.
    pub async fn run(&self, ctx: &SessionContext) -> DfResult<Vec<RecordBatch>> {
        let batches = ctx.sql(&self.sql).await?.collect().await?;
        conform(&batches, &self.schema)
    }
}

/// Folder of an analytics table under the lake root.
pub fn table_path(name: &str) -> String {
    format!("analytics/{name}")
}
