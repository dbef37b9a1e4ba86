//! One function per subcommand: build the core config, run it, print the summary.

use std::sync::Arc;

use anyhow::Result;
use pinpipe::demo::{run_demo, DemoConfig};
use pinpipe::emulate::{emulate_batch, EmulateConfig};
use pinpipe::gateway::GatewayConfig;
use pinpipe::sink::{run_sink, SinkConfig};
use pinpipe::source::SourceConfig;

use crate::{
    print, secs, shutdown_signal, BatchArgs, DemoArgs, EmulateArgs, GatewayArgs, LandingArgs, QueryArgs, Settings,
    SinkArgs, TopicsCommand,
};
use pinpipe::batch::{run_batch, BatchConfig, BatchSummary};

pub async fn demo(settings: &Settings, args: DemoArgs, json: bool) -> Result<()> {
    let f = &settings.file;
    let defaults = DemoConfig::default();
    let config = DemoConfig {
        user_id: settings.user_id(&args.common)?,
        dir: args.dir,
        events: args.events.or(f.events).unwrap_or(defaults.events),
        seed: args.seed.or(f.seed).unwrap_or(defaults.seed),
        concurrency: args.concurrency.or(f.concurrency).unwrap_or(defaults.concurrency),
        flush_size: args.flush_size.or(f.flush_size).unwrap_or(defaults.flush_size),
        progress: !json,
        batch_concurrency: args.batch_concurrency,
        ..defaults
    };
    let summary = run_demo(config).await?;
    print(json, &summary, |s| {
        format!(
            "pinpipe demo: synthetic source -> emulator -> gateway -> in-process Kafka -> sink\n\
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
        )
    });
    Ok(())
}

pub async fn gateway(settings: &Settings, args: GatewayArgs, json: bool) -> Result<()> {
    let f = &settings.file;
    let defaults = GatewayConfig::default();
    let listen = match args.listen {
        Some(l) => l,
        None => match &f.listen {
            Some(l) => l.parse().map_err(|e| anyhow::anyhow!("listen {l:?} in the config file: {e}"))?,
            None => defaults.listen,
        },
    };
    let config = GatewayConfig {
        listen,
        user_id: settings.user_id(&args.common)?,
        allowed_topics: args.allow_topics,
        api_key: args.api_key.or(f.api_key.clone()),
        max_body_bytes: args.max_body_bytes.unwrap_or(defaults.max_body_bytes),
        produce_timeout: match args.produce_timeout {
            Some(s) => secs(s, "--produce-timeout")?,
            None => defaults.produce_timeout,
        },
        ..defaults
    };
    let kafka = settings.kafka(&args.common)?;
    let gateway = config.build(&kafka).await?;
    eprintln!("gateway listening on http://{}", gateway.local_addr());
    let summary = gateway.serve(shutdown_signal()).await?;
    print(json, &summary, |s| format!("gateway stopped; {} records acknowledged", s.records_acknowledged));
    Ok(())
}

pub async fn emulate(settings: &Settings, args: EmulateArgs, json: bool) -> Result<()> {
    let f = &settings.file;
    let defaults = EmulateConfig::default();
    let events = args.events.or(f.events).or(defaults.events);
    let source_name = args.source.or(f.source.clone()).unwrap_or_else(|| "synthetic".into());
    let source = SourceConfig::from_name(&source_name, args.db_creds.or(f.db_creds.clone()))?;
    let config = EmulateConfig {
        gateway: args.gateway.or(f.gateway.clone()).unwrap_or(defaults.gateway.clone()),
        user_id: settings.user_id(&args.common)?,
        events: events.filter(|n| *n > 0),
        seed: args.seed.or(f.seed).unwrap_or(defaults.seed),
        no_sleep: args.no_sleep || f.no_sleep.unwrap_or(false),
        concurrency: args.concurrency.or(f.concurrency).unwrap_or(defaults.concurrency),
        api_key: args.api_key.or(f.api_key.clone()),
        retry_for: match args.retry_for {
            Some(s) => secs(s, "--retry-for")?,
            None => defaults.retry_for,
        },
        progress: !args.quiet && !json,
        ..defaults
    };
    let source = Arc::new(source.build().await?);
    tracing::info!(source = %source.describe(), gateway = %config.gateway, "emulating");
    let summary = emulate_batch(config, source, shutdown_signal()).await?;
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

pub async fn topics(settings: &Settings, cmd: TopicsCommand, json: bool) -> Result<()> {
    match cmd {
        TopicsCommand::Create { common, partitions, replication_factor } => {
            let uid = settings.user_id(&common)?;
            let kafka = settings.kafka(&common)?;
            let results = pinpipe::kafka::create_topics(&kafka, &uid.topics(), partitions, replication_factor).await?;
            print(json, &results, |r| {
                r.iter().map(|t| format!("{:<24} {}", t.topic, t.message)).collect::<Vec<_>>().join("\n")
            });
        }
        TopicsCommand::List { common } => {
            let kafka = settings.kafka(&common)?;
            let topics = tokio::task::spawn_blocking(move || pinpipe::kafka::fetch_topics(&kafka, None)).await??;
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

pub async fn sink(settings: &Settings, args: SinkArgs, json: bool) -> Result<()> {
    let f = &settings.file;
    let defaults = SinkConfig::default();
    let config = SinkConfig {
        user_id: settings.user_id(&args.common)?,
        landing: args.landing.or(f.landing.clone()).unwrap_or(defaults.landing.clone()),
        group_id: args.group_id,
        flush_size: args.flush_size.or(f.flush_size).unwrap_or(defaults.flush_size),
        flush_bytes: args.flush_bytes.unwrap_or(defaults.flush_bytes),
        flush_interval: match args.flush_interval {
            Some(s) => secs(s, "--flush-interval")?,
            None => defaults.flush_interval,
        },
        until_caught_up: args.until_caught_up,
    };
    let kafka = settings.kafka(&args.common)?;
    let summary = run_sink(config, &kafka, shutdown_signal()).await?;
    print(json, &summary, |s| {
        format!(
            "landed {} records in {} objects ({} records already landed in {} existing objects) in {:.1} s",
            s.records_landed, s.objects_created, s.records_already_landed, s.objects_found, s.elapsed_secs
        )
    });
    Ok(())
}

/// Text form of a batch summary: per-table counts, then every analytics table.
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
        out.push_str(&rows_table(&a.rows));
    }
    out.push_str(&format!(
        "\n{:.2} s (decode {:.2} s, clean {:.2} s, analytics {:.2} s)",
        s.elapsed_secs, s.decode_secs, s.clean_secs, s.analytics_secs
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

pub async fn batch(settings: &Settings, args: BatchArgs, json: bool) -> Result<()> {
    let f = &settings.file;
    let defaults = BatchConfig::default();
    let config = BatchConfig {
        user_id: settings.user_id(&args.common)?,
        landing: args.landing.or(f.landing.clone()).unwrap_or(defaults.landing.clone()),
        lake: args.lake.or(f.lake.clone()).unwrap_or(defaults.lake.clone()),
        full_refresh: args.full_refresh,
        concurrency: args.concurrency.or(f.concurrency).unwrap_or(defaults.concurrency),
        progress: !args.quiet && !json,
    };
    let summary = run_batch(config).await?;
    print(json, &summary, batch_text);
    Ok(())
}

pub async fn query(settings: &Settings, args: QueryArgs, json: bool) -> Result<()> {
    if args.list {
        let tables = pinpipe::query::lake_tables();
        print(json, &tables, |ts| {
            ts.iter().map(|t| format!("{:<46} {}", t.name, t.path)).collect::<Vec<_>>().join("\n")
        });
        return Ok(());
    }
    let lake = args.lake.or(settings.file.lake.clone()).unwrap_or_else(|| BatchConfig::default().lake);
    let batches = match (&args.name, &args.sql) {
        (_, Some(sql)) => pinpipe::query::run_sql(&lake, sql).await?,
        (Some(name), None) => pinpipe::query::read_table(&lake, name).await?,
        (None, None) => anyhow::bail!("give a table name or --sql"),
    };
    if json {
        let rows = pinpipe::batch::rows_as_json(&batches)?;
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{}", pinpipe::query::pretty(&batches)?);
    }
    Ok(())
}

pub async fn emulate_landing(settings: &Settings, args: LandingArgs, json: bool) -> Result<()> {
    let f = &settings.file;
    let config = pinpipe::emulate::LandingWriteConfig {
        user_id: settings.user_id(&args.common)?,
        landing: args.landing.or(f.landing.clone()).unwrap_or_else(|| "landing".into()),
        events: args.events.or(f.events).unwrap_or(1000),
        seed: args.seed.or(f.seed).unwrap_or(100),
        max_row: 11_000.min(args.rows.saturating_sub(1)),
        flush_size: args.flush_size.or(f.flush_size).unwrap_or(1000),
    };
    let source = SourceConfig::Synthetic { rows: args.rows, seed: 0 }.build().await?;
    let summary = pinpipe::emulate::write_landing(&config, &source).await?;
    print(json, &summary, |s| {
        format!(
            "wrote {} records per topic in {} objects ({} already present), {} bytes, under {}",
            s.records_per_topic, s.objects_written, s.objects_already_present, s.bytes_written, config.landing
        )
    });
    Ok(())
}
