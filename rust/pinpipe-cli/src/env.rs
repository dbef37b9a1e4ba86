//! Environment variables shown in `--help`. Each is `PINPIPE_<KEY>` of a configuration key
//! (`pinpipe::config::env_name`), which the core's configuration layer reads for every front; clap
//! reads them here too only so that `--help` names them.

pub use pinpipe::config::env::{CONFIG, LOG};
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
pub const ENVIRONMENT: &str = "PINPIPE_ENVIRONMENT";
pub use pinpipe::config::AWS_PROFILE_ENV as AWS_PROFILE;

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_the_cores() {
        for (name, key) in [
            (super::USER_ID, "user_id"),
            (super::BOOTSTRAP_SERVERS, "bootstrap_servers"),
            (super::GATEWAY, "gateway"),
            (super::LISTEN, "listen"),
            (super::API_KEY, "api_key"),
            (super::LANDING, "landing"),
            (super::LAKE, "lake"),
            (super::EVENTS, "events"),
            (super::SEED, "seed"),
            (super::CONCURRENCY, "concurrency"),
            (super::NO_SLEEP, "no_sleep"),
            (super::FLUSH_SIZE, "flush_size"),
            (super::SOURCE, "source"),
            (super::DB_CREDS, "db_creds"),
            (super::ENVIRONMENT, "environment"),
        ] {
            assert_eq!(name, pinpipe::config::env_name(key));
            assert!(pinpipe::config::file_keys().contains(key), "{key}");
        }
    }
}
