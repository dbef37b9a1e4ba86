//! Environment variables the CLI reads. Each one mirrors a long flag.

pub const CONFIG: &str = "PINPIPE_CONFIG";
pub const LOG: &str = "PINPIPE_LOG";
pub const USER_ID: &str = "PINPIPE_USER_ID";
pub const BOOTSTRAP_SERVERS: &str = "PINPIPE_BOOTSTRAP_SERVERS";
pub const GATEWAY: &str = "PINPIPE_GATEWAY";
pub const LISTEN: &str = "PINPIPE_LISTEN";
pub const API_KEY: &str = "PINPIPE_API_KEY";
pub const LANDING: &str = "PINPIPE_LANDING";
pub const LAKE: &str = "PINPIPE_LAKE";
pub const EVENTS: &str = "PINPIPE_EVENTS";
pub const SEED: &str = "PINPIPE_SEED";
pub const CONCURRENCY: &str = "PINPIPE_CONCURRENCY";
pub const NO_SLEEP: &str = "PINPIPE_NO_SLEEP";
pub const FLUSH_SIZE: &str = "PINPIPE_FLUSH_SIZE";
pub const SOURCE: &str = "PINPIPE_SOURCE";
pub const DB_CREDS: &str = "PINPIPE_DB_CREDS";
