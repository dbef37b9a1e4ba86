//! One function per subcommand: gather the flags given, call the core's job function, print the
//! summary.

use anyhow::Result;
use pinpipe::batch::BatchSummary;
use pinpipe::config::Layers;
use pinpipe::gateway::GatewayConfig;
use pinpipe::query::QueryTarget;

use crate::{
    print, secs, shutdown_signal, stage, BatchArgs, DemoArgs, EmulateArgs, GatewayArgs, LandingArgs, QueryArgs,
    SinkArgs, StreamArgs, StreamsArgs, StreamsCommand, TopicsCommand,
};

pub async fn demo(mut layers: Layers, args: DemoArgs, json: bool) -> Result<()> {
    args.common.apply(&mut layers);
    layers
        .set("dir", args.dir)
        .set("events", args.events)
        .set("seed", args.seed)
        .set("concurrency", args.concurrency)
        .set("flush_size", args.flush_size)
        .set("batch_concurrency", args.batch_concurrency)
        .flag("progress", !json);
    let summary = pinpipe::jobs::demo(&layers).await?;
    print(json, &summary, |s| {
        format!(
            "pinpipe demo, batch half: synthetic source -> emulator -> gateway -> in-process Kafka -> sink\n\
             events sent      {:>10}  ({:.0} events/s, {} failed)\n\
             records posted   {:>10}\n\
             records landed   {:>10}  in {} objects under {}\n{}\n\n{}",
            s.emulate.events_sent,
            s.emulate.events_per_sec,
            s.emulate.events_failed,
            s.emulate.records_sent,
            s.sink.records_landed,
            s.sink.objects_created,
            s.landing,
            s.sink
                .records_by_topic
                .iter()
                .map(|(t, n)| format!("  {t:<24} {n:>8} records"))
                .collect::<Vec<_>>()
                .join("\n"),
            batch_text(&s.batch)
        ) + &format!(
            "\n\nstreaming half: emulator -> gateway (Kinesis proxy) -> in-process Kinesis stand-in -> stream\n\
             events put       {:>10}  ({:.0} events/s, {} failed)\n\
             rows appended    {:>10}  in {} commits, {} dead letters, under {}\n{}",
            s.emulate_stream.events_sent,
            s.emulate_stream.events_per_sec,
            s.emulate_stream.events_failed,
            s.stream.rows.values().sum::<u64>(),
            s.stream.commits,
            s.stream.dead_letters,
            s.stream.lake,
            s.stream.rows.iter().map(|(t, n)| format!("  {t:<28} {n:>8} rows")).collect::<Vec<_>>().join("\n")
        )
    });
    Ok(())
}

pub async fn gateway(mut layers: Layers, args: GatewayArgs, json: bool) -> Result<()> {
    args.common.apply(&mut layers);
    layers
        .set("listen", args.listen)
        .set("api_key", args.api_key)
        .set("max_body_bytes", args.max_body_bytes)
        .set("produce_timeout", secs(args.produce_timeout, "--produce-timeout")?)
        .set("max_connections", args.max_connections)
        .set("idle_timeout", secs(args.idle_timeout, "--idle-timeout")?)
        .set("body_timeout", secs(args.body_timeout, "--body-timeout")?);
    if !args.allow_topics.is_empty() {
        layers.set("allowed_topics", Some(args.allow_topics));
    }
    if !args.allow_streams.is_empty() {
        layers.set("allowed_streams", Some(args.allow_streams));
    }
    let config: GatewayConfig = layers.resolve()?;
    let kafka = config.kafka()?;
    let gateway = config.build(&kafka).await?;
    eprintln!("gateway listening on http://{}", gateway.local_addr());
    let summary = gateway.serve(shutdown_signal()).await?;
    print(json, &summary, |s| format!("gateway stopped; {} records acknowledged", s.records_acknowledged));
    Ok(())
}

pub async fn emulate(mut layers: Layers, args: EmulateArgs, streaming: bool, json: bool) -> Result<()> {
    args.common.apply(&mut layers);
    layers
        .set("gateway", args.gateway)
        .set("events", args.events)
        .set("seed", args.seed)
        .flag("no_sleep", args.no_sleep)
        .set("concurrency", args.concurrency)
        .set("source", args.source)
        .set("db_creds", args.db_creds)
        .set("api_key", args.api_key)
        .set("retry_for", secs(args.retry_for, "--retry-for")?)
        .flag("progress", !args.quiet && !json);
    let summary = if streaming {
        pinpipe::jobs::emulate_streaming(&layers, shutdown_signal()).await?
    } else {
        pinpipe::jobs::emulate(&layers, shutdown_signal()).await?
    };
    print(json, &summary, |s| {
        let mut text = format!(
            "sent {} events ({} records) in {:.1} s, {:.0} events/s; {} failed, {} retried requests",
            s.events_sent, s.records_sent, s.elapsed_secs, s.events_per_sec, s.events_failed, s.requests_retried
        );
        if let Some(e) = &s.first_error {
            text.push_str(&format!("\nfirst error: {e}"));
        }
        text
    });
    if summary.events_failed > 0 {
        anyhow::bail!("{} events failed", summary.events_failed);
    }
    Ok(())
}

pub async fn topics(mut layers: Layers, cmd: TopicsCommand, json: bool) -> Result<()> {
    match cmd {
        TopicsCommand::Create { common, partitions, replication_factor } => {
            common.apply(&mut layers);
            layers.set("partitions", partitions).set("replication_factor", replication_factor);
            let results = pinpipe::jobs::topics_create(&layers).await?;
            print(json, &results, |r| {
                r.iter().map(|t| format!("{:<24} {}", t.topic, t.message)).collect::<Vec<_>>().join("\n")
            });
        }
        TopicsCommand::List { common } => {
            common.apply(&mut layers);
            let topics = pinpipe::jobs::topics_list(&layers).await?;
            print(json, &topics, |ts| {
                ts.iter()
                    .map(|t| format!("{:<24} {} partitions", t.name, t.partitions.len()))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

impl StreamsArgs {
    fn apply(self, layers: &mut Layers) {
        self.common.apply(layers);
        if !self.streams.is_empty() {
            layers.set("streams", Some(self.streams));
        }
    }
}

fn changes_text(changes: &[pinpipe::kinesis::admin::StreamChange]) -> String {
    changes.iter().map(|c| format!("{:<32} {}", c.stream, c.message)).collect::<Vec<_>>().join("\n")
}

pub async fn streams(mut layers: Layers, cmd: StreamsCommand, json: bool) -> Result<()> {
    match cmd {
        StreamsCommand::Create { args, shards } => {
            args.apply(&mut layers);
            layers.set("shards", shards);
            let changes = pinpipe::jobs::streams_create(&layers).await?;
            print(json, &changes, |c| changes_text(c));
        }
        StreamsCommand::List { common } => {
            common.apply(&mut layers);
            let names = pinpipe::jobs::streams_list(&layers).await?;
            print(json, &names, |n| n.join("\n"));
        }
        StreamsCommand::Describe { args } => {
            args.apply(&mut layers);
            let streams = pinpipe::jobs::streams_describe(&layers).await?;
            print(json, &streams, |streams| {
                let mut out = Vec::new();
                for s in streams {
                    out.push(format!(
                        "{}  {}  {} open shards, retention {} h",
                        s.name, s.status, s.open_shards, s.retention_hours
                    ));
                    for shard in &s.shards {
                        let parents: Vec<&str> = shard.parents().collect();
                        out.push(format!(
                            "  {:<22} {:<6} parents: {:<45} sequence {}..{}",
                            shard.shard_id,
                            if shard.is_open() { "open" } else { "closed" },
                            if parents.is_empty() { "-".to_string() } else { parents.join(", ") },
                            shard.starting_sequence_number,
                            shard.ending_sequence_number.as_deref().unwrap_or("")
                        ));
                    }
                }
                out.join("\n")
            });
        }
        StreamsCommand::Delete { args } => {
            args.apply(&mut layers);
            let changes = pinpipe::jobs::streams_delete(&layers).await?;
            print(json, &changes, |c| changes_text(c));
        }
        StreamsCommand::Read { args, count } => {
            args.apply(&mut layers);
            let summary = pinpipe::jobs::streams_read(&layers, move |stream, shard, r| {
                if !count {
                    let data = match std::str::from_utf8(&r.data) {
                        Ok(text) => serde_json::json!(text),
                        Err(_) => serde_json::json!({"base64": base64_encode(&r.data)}),
                    };
                    let line = serde_json::json!({
                        "stream": stream, "shard_id": shard, "sequence_number": r.sequence_number,
                        "partition_key": r.partition_key, "data": data,
                    });
                    println!("{line}");
                }
            })
            .await?;
            if count || json {
                print(json, &summary, |s| {
                    format!(
                        "{} records ({} bytes) from {} shards in {:.2} s, {:.0} records/s",
                        s.records, s.bytes, s.shards, s.elapsed_secs, s.records_per_sec
                    )
                });
            }
        }
    }
    Ok(())
}

pub async fn sink(mut layers: Layers, args: SinkArgs, json: bool) -> Result<()> {
    args.common.apply(&mut layers);
    layers
        .set("landing", args.landing)
        .set("group_id", args.group_id)
        .set("flush_size", args.flush_size)
        .set("flush_bytes", args.flush_bytes)
        .set("flush_interval", secs(args.flush_interval, "--flush-interval")?)
        .set("retry_deadline", secs(args.retry_deadline, "--retry-deadline")?)
        .flag("until_caught_up", args.until_caught_up);
    let summary = pinpipe::jobs::sink(&layers, shutdown_signal()).await?;
    print(json, &summary, sink_text);
    Ok(())
}

/// Text form of a sink summary.
pub fn sink_text(s: &pinpipe::sink::SinkSummary) -> String {
    format!(
        "landed {} records in {} objects ({} records already landed in {} existing objects) in {:.1} s",
        s.records_landed, s.objects_created, s.records_already_landed, s.objects_found, s.elapsed_secs
    )
}

/// Text form of a batch summary: per-table counts, then every analytics table.
/// Rows of each analytics table a text summary shows (`--json` has them all).
const ANALYTICS_ROWS_SHOWN: usize = 8;

/// The lake as a user would type it: a local path rather than a `file://` URL.
fn lake_arg(lake: &str) -> String {
    lake.strip_prefix("file://").map(|p| p.trim_end_matches('/').to_string()).unwrap_or_else(|| lake.to_string())
}

pub fn batch_text(s: &BatchSummary) -> String {
    let mut out = format!("batch run {} -> {}\n", s.run_id, s.lake);
    out.push_str(&format!(
        "{:<6} {:>8} {:>10} {:>8} {:>8} {:>10}\n",
        "table", "objects", "records", "dead", "dups", "clean rows"
    ));
    for t in &s.tables {
        out.push_str(&format!(
            "{:<6} {:>8} {:>10} {:>8} {:>8} {:>10}\n",
            t.table, t.objects_read, t.records_read, t.dead_lettered, t.deduplicated, t.clean_rows
        ));
    }
    for t in &s.tables {
        if !t.nulled.is_empty() {
            let parts: Vec<String> = t.nulled.iter().map(|(k, n)| format!("{k} {n}")).collect();
            out.push_str(&format!("nulled in {}: {}\n", t.table, parts.join("; ")));
        }
    }
    for a in &s.analytics {
        out.push_str(&format!("\n{} ({})\n", a.name, a.question));
        let shown = a.rows.len().min(ANALYTICS_ROWS_SHOWN);
        out.push_str(&rows_table(&a.rows[..shown]));
        if a.rows.len() > shown {
            out.push_str(&format!(
                "  … {} more rows: pinpipe query {} --lake {}\n",
                a.rows.len() - shown,
                a.name,
                lake_arg(&s.lake)
            ));
        }
    }
    let m = &s.maintenance;
    if m.tables_compacted > 0 || m.files_vacuumed > 0 {
        out.push_str(&format!(
            "\nupkeep: {} tables compacted ({} files into {}), {} old files vacuumed\n",
            m.tables_compacted, m.files_compacted, m.files_written, m.files_vacuumed
        ));
    }
    out.push_str(&format!(
        "\n{:.2} s (decode {:.2} s, clean {:.2} s, analytics {:.2} s, upkeep {:.2} s)",
        s.elapsed_secs, s.decode_secs, s.clean_secs, s.analytics_secs, m.secs
    ));
    out
}

/// A small text table of JSON rows (columns in the rows' order).
fn rows_table(rows: &[serde_json::Map<String, serde_json::Value>]) -> String {
    let Some(first) = rows.first() else { return "  (no rows)\n".into() };
    let columns: Vec<&String> = first.keys().collect();
    let cell = |v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => "".into(),
        Some(v) => v.to_string(),
    };
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| rows.iter().map(|r| cell(r.get(*c)).chars().count()).max().unwrap_or(0).max(c.len()))
        .collect();
    let mut out = String::new();
    let line = |cells: Vec<String>| {
        let mut l = String::from("  ");
        for (c, w) in cells.iter().zip(&widths) {
            l.push_str(&format!("{c:<w$}  ", w = *w));
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(columns.iter().map(|c| c.to_string()).collect()));
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for r in rows {
        out.push_str(&line(columns.iter().map(|c| cell(r.get(*c))).collect()));
    }
    out
}

pub async fn batch(mut layers: Layers, args: BatchArgs, json: bool) -> Result<()> {
    args.common.apply(&mut layers);
    layers
        .set("landing", args.landing)
        .set("lake", args.lake)
        .flag("full_refresh", args.full_refresh)
        .set("only", stage(args.only)?)
        .set("concurrency", args.concurrency)
        .set("retry_deadline", secs(args.retry_deadline, "--retry-deadline")?)
        .set("abandoned_upload_age", secs(args.abandoned_upload_age, "--abandoned-upload-age")?)
        .set("compact", args.no_compact.then_some(false))
        .set("compact_min_files", args.compact_min_files)
        .set("vacuum", args.no_vacuum.then_some(false))
        .set("vacuum_retention", secs(args.vacuum_retention, "--vacuum-retention")?)
        .flag("progress", !args.quiet && !json);
    let summary = pinpipe::jobs::batch(&layers).await?;
    print(json, &summary, batch_text);
    Ok(())
}

pub async fn stream(mut layers: Layers, args: StreamArgs, json: bool) -> Result<()> {
    args.common.apply(&mut layers);
    layers
        .set("lake", args.lake)
        .set("start", args.start)
        .flag("until_caught_up", args.until_caught_up)
        .set("commit_interval", secs(args.commit_interval, "--commit-interval")?)
        .set("max_batch_records", args.max_batch_records)
        .set("poll_interval", secs(args.poll_interval, "--poll-interval")?)
        .set("lease_duration", secs(args.lease_duration, "--lease-duration")?)
        .set("worker_id", args.worker_id)
        .set("retry_deadline", secs(args.retry_deadline, "--retry-deadline")?);
    let summary = pinpipe::jobs::stream(&layers, shutdown_signal()).await?;
    print(json, &summary, |s| {
        let mut lines = vec![format!(
            "stream: {} commits in {:.1} s ({:.0} records/s), {} shards read, {} finished, {} dead letters",
            s.commits, s.elapsed_secs, s.records_per_sec, s.shards_read, s.shards_finished, s.dead_letters
        )];
        for (table, rows) in &s.rows {
            lines.push(format!("  {table:<28} {rows:>10} rows"));
        }
        lines.join("\n")
    });
    Ok(())
}

pub async fn query(mut layers: Layers, args: QueryArgs, json: bool) -> Result<()> {
    args.common.apply(&mut layers);
    if args.list {
        let config: pinpipe::query::QueryConfig = layers.resolve()?;
        let tables = pinpipe::query::lake_tables_of(&config.user_id);
        print(json, &tables, |ts| {
            ts.iter().map(|t| format!("{:<46} {}", t.name, t.path)).collect::<Vec<_>>().join("\n")
        });
        return Ok(());
    }
    layers.set("lake", args.lake);
    let target = match (args.name, args.sql) {
        (_, Some(sql)) => QueryTarget::Sql(sql),
        (Some(name), None) => QueryTarget::Table(name),
        (None, None) => anyhow::bail!("give a table name or --sql"),
    };
    let (_, batches) = pinpipe::jobs::query(&layers, &target).await?;
    if json {
        let rows = pinpipe::batch::rows_as_json(&batches)?;
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{}", pinpipe::query::pretty(&batches)?);
    }
    Ok(())
}

pub async fn emulate_landing(mut layers: Layers, args: LandingArgs, json: bool) -> Result<()> {
    args.common.apply(&mut layers);
    layers
        .set("landing", args.landing)
        .set("events", args.events)
        .set("seed", args.seed)
        .set("flush_size", args.flush_size)
        .set("rows", args.rows)
        .set("start_offset", args.start_offset);
    let (config, summary) = pinpipe::jobs::emulate_landing(&layers).await?;
    print(json, &summary, |s| {
        format!(
            "wrote {} records per topic in {} objects ({} already present), {} bytes, under {}",
            s.records_per_topic, s.objects_written, s.objects_already_present, s.bytes_written, config.landing
        )
    });
    Ok(())
}
