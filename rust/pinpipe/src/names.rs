//! Resource names, all derived from the 12-hex-digit user id exactly as in the original project.

use crate::error::{Error, Result};
use crate::model::Table;

/// The user id of the original project; every default resource name derives from it.
pub const DEFAULT_USER_ID: &str = "0eaf46a0829f";

/// A validated user id: 12 lowercase hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl TryFrom<String> for UserId {
    type Error = Error;
    fn try_from(id: String) -> Result<Self> {
        UserId::new(&id)
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> String {
        id.0
    }
}

impl Default for UserId {
    fn default() -> Self {
        UserId(DEFAULT_USER_ID.to_string())
    }
}

impl UserId {
    pub fn new(id: &str) -> Result<Self> {
        if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(UserId(id.to_string()))
        } else {
            Err(Error::Config(format!("user id must be 12 lowercase hexadecimal digits, got {id:?}")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Kafka topic of a table: `<uid>.pin`.
    pub fn topic(&self, table: Table) -> String {
        format!("{}.{}", self.0, table.suffix())
    }

    /// The three topics, in table order.
    pub fn topics(&self) -> Vec<String> {
        Table::ALL.iter().map(|t| self.topic(*t)).collect()
    }

    /// The topic subscription pattern of the sink (like the connector's `topics.regex`).
    pub fn topic_regex(&self) -> String {
        format!("^{}\\..*", self.0)
    }

    /// S3 bucket of the landing zone: `user-<uid>-bucket`.
    pub fn bucket(&self) -> String {
        format!("user-{}-bucket", self.0)
    }

    /// The three Kinesis streams, pin, geo, user.
    pub fn streams(&self) -> Vec<String> {
        Table::ALL.iter().map(|t| self.stream(*t)).collect()
    }

    /// The table a stream of this user carries.
    pub fn table_of_stream(&self, stream: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| self.stream(*t) == stream)
    }

    /// Kinesis stream of a table: `streaming-<uid>-pin`.
    pub fn stream(&self, table: Table) -> String {
        format!("streaming-{}-{}", self.0, table.suffix())
    }

    /// Delta table name of a streamed table: `<uid>_pin_table`.
    pub fn stream_table(&self, table: Table) -> String {
        format!("{}_{}_table", self.0, table.suffix())
    }

    /// Airflow DAG id: `<uid>_dag`.
    pub fn dag_id(&self) -> String {
        format!("{}_dag", self.0)
    }

    /// Which table a topic of this user carries, if any.
    pub fn table_of_topic(&self, topic: &str) -> Option<Table> {
        let suffix = topic.strip_prefix(self.0.as_str())?.strip_prefix('.')?;
        Table::ALL.into_iter().find(|t| t.suffix() == suffix)
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_original_project() {
        let uid = UserId::default();
        assert_eq!(uid.topic(Table::Pin), "0eaf46a0829f.pin");
        assert_eq!(uid.bucket(), "user-0eaf46a0829f-bucket");
        assert_eq!(uid.stream(Table::Geo), "streaming-0eaf46a0829f-geo");
        assert_eq!(uid.stream_table(Table::User), "0eaf46a0829f_user_table");
        assert_eq!(uid.dag_id(), "0eaf46a0829f_dag");
        assert_eq!(uid.table_of_topic("0eaf46a0829f.geo"), Some(Table::Geo));
        assert_eq!(uid.table_of_topic("0eaf46a0829f.other"), None);
    }

    #[test]
    fn rejects_malformed_user_ids() {
        for bad in ["", "0eaf46a0829", "0EAF46A0829F", "0eaf46a0829g", "../../etc/pw"] {
            assert!(UserId::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
