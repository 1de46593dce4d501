//! `trailhound ingest PATHS --kafka BROKERS` and
//! `trailhound detect --kafka BROKERS --group NAME`: wiring only, the work is
//! in `trailhound-kafka`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, bail};
use trailhound_bus::BusConfig;
use trailhound_kafka::detect::{DetectIo, DetectOptions};
use trailhound_kafka::ingest::{IngestInput, IngestOptions};
use trailhound_kafka::state::StateStore;
use trailhound_sinks::{AlertSink, LakeHook};

use crate::cli::{DetectArgs, IngestArgs};

/// The bus settings: the `kafka:` section of the config file, then
/// `TRAILHOUND_KAFKA_*`, then `--kafka` for the brokers.
fn bus_config(brokers: &str, config: Option<&Path>) -> anyhow::Result<BusConfig> {
    let mut bus = match config {
        Some(path) => match crate::config::Config::load(path)?.kafka {
            Some(section) => serde_yaml::from_value::<BusConfig>(section)
                .with_context(|| format!("config file {}: kafka", path.display()))?,
            None => BusConfig::default(),
        },
        None => BusConfig::default(),
    };
    bus.apply_env()?;
    if !brokers.trim().is_empty() {
        bus.brokers = brokers.trim().to_string();
    }
    bus.validate()?;
    Ok(bus)
}

/// SIGINT or SIGTERM set the flag (a second SIGINT exits at once).
/// How `--trail` and `--lookup` poll: every `--poll-secs`, `--polls`
/// times, with the cursor in `--state`, until stopped.
fn poll_options(args: &IngestArgs) -> anyhow::Result<trailhound_kafka::PollOptions> {
    Ok(trailhound_kafka::PollOptions {
        state: args.state.clone(),
        every: Duration::from_secs(args.poll_secs.unwrap_or(60).max(1)),
        polls: args.polls,
        stop: Some(stop_flag()?),
        ..Default::default()
    })
}

fn print_dead_letters(by_reason: &std::collections::BTreeMap<String, u64>) {
    for (reason, n) in by_reason {
        eprintln!("  dead letters {reason}: {n}");
    }
}

fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    super::stop_on_signals(&stop)?;
    Ok(stop)
}

pub fn ingest(args: &IngestArgs) -> anyhow::Result<ExitCode> {
    let bus = bus_config(&args.kafka, args.config.as_deref())?;
    if let Some(url) = &args.sqs {
        return ingest_queue(args, &bus, url);
    }
    if let Some(addr) = args.listen {
        return receive(args, &bus, addr);
    }
    if args.lookup {
        return ingest_lookup(args, &bus);
    }
    if let Some(name) = &args.trail {
        return ingest_trail(args, &bus, name);
    }
    if args.follow {
        return ingest_follow(args, &bus);
    }
    let inputs = super::expand_inputs(&args.paths, || IngestInput::Stdin, IngestInput::Path)?;
    let endpoint =
        super::detect::serve_metrics(args.metrics, args.metrics_allow_remote, args.quiet)?;
    let options = IngestOptions {
        state: args.state.clone(),
        dead_letter_path: Some(args.dead_letters.clone()),
        stop: Some(stop_flag()?),
        metrics: endpoint.as_ref().map(|(m, _)| m.clone()),
        ..IngestOptions::default()
    };
    let summary = trailhound_kafka::ingest::ingest(inputs, &bus, &options)?;
    if !args.quiet {
        eprintln!(
            "ingest: {} events from {} inputs acknowledged by {} ({:.0} events/s){}",
            summary.events,
            summary.inputs_sent,
            bus.brokers,
            summary.events_per_second(),
            if summary.inputs_already_sent > 0 {
                format!(
                    "; {} inputs sent before, skipped",
                    summary.inputs_already_sent
                )
            } else {
                String::new()
            }
        );
        print_dead_letters(&summary.dead_letters_by_reason);
        for e in &summary.input_errors {
            eprintln!("  input error: {e}");
        }
        if summary.outages > 0 {
            eprintln!(
                "  broker outages ridden out: {} (inputs sent again after each)",
                summary.outages
            );
        }
        if summary.stopped {
            eprintln!("  stopped before the end: run again to send the rest");
        }
    }
    Ok(if summary.input_errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `ingest --follow LOG...`: the logs followed until stopped.
fn ingest_follow(args: &IngestArgs, bus: &BusConfig) -> anyhow::Result<ExitCode> {
    let logs: Vec<std::path::PathBuf> = args.paths.iter().map(Into::into).collect();
    let mut poll = poll_options(args)?;
    poll.every = Duration::from_secs(args.poll_secs.unwrap_or(1).max(1));
    let options = trailhound_kafka::FollowOptions {
        poll,
        idle_passes: args.idle_polls,
        dead_letter_path: Some(args.dead_letters.clone()),
    };
    if !args.quiet {
        eprintln!(
            "ingest: following {} log(s), sending to {}",
            logs.len(),
            bus.brokers
        );
    }
    let s = trailhound_kafka::ingest_follow(&logs, bus, &options)?;
    if !args.quiet {
        eprintln!(
            "ingest: {} events from {} lines acknowledged by {} over {} passes; {} rotation(s), {} truncation(s), {} read error(s)",
            s.events, s.lines, bus.brokers, s.passes, s.rotations, s.truncations, s.read_errors
        );
        print_dead_letters(&s.dead_letters_by_reason);
    }
    Ok(ExitCode::SUCCESS)
}

/// The AWS settings: the `aws:` section of the config file, then the flags.
fn aws_settings(args: &IngestArgs) -> anyhow::Result<trailhound_aws::AwsSettings> {
    let mut aws = match args.config.as_deref() {
        Some(path) => crate::config::Config::load(path)?.aws.unwrap_or_default(),
        None => trailhound_aws::AwsSettings::default(),
    };
    let a = &args.aws;
    for (flag, field) in [
        (&a.region, &mut aws.region),
        (&a.profile, &mut aws.profile),
        (&a.endpoint_url, &mut aws.endpoint_url),
        (&a.assume_role, &mut aws.assume_role),
        (&a.external_id, &mut aws.external_id),
    ] {
        if flag.is_some() {
            field.clone_from(flag);
        }
    }
    Ok(aws)
}

fn ingest_queue(args: &IngestArgs, bus: &BusConfig, url: &str) -> anyhow::Result<ExitCode> {
    let aws = aws_settings(args)?;
    let mut settings = trailhound_aws::QueueSettings::new(url);
    settings.concurrency = args.concurrency.max(1);
    settings.wait_seconds = args.wait_secs;
    let queue = trailhound_aws::S3Queue::new(&aws, settings)?;
    let options = trailhound_kafka::QueueOptions {
        dead_letter_path: Some(args.dead_letters.clone()),
        stop: Some(stop_flag()?),
        idle_polls: args.idle_polls,
        ..Default::default()
    };
    let s = trailhound_kafka::ingest_queue(&queue, bus, &options)?;
    if !args.quiet {
        eprintln!(
            "ingest: {} events from {} objects of {} messages acknowledged by {}; {} left for retry, {} test event(s), {} digest file(s) skipped",
            s.events,
            s.objects,
            s.messages_done,
            bus.brokers,
            s.messages_retried,
            s.test_events,
            s.digests_skipped
        );
        print_dead_letters(&s.dead_letters_by_reason);
    }
    Ok(ExitCode::SUCCESS)
}

/// `ingest --listen ADDR`: the gateway receiver until SIGINT or SIGTERM.
fn receive(
    args: &IngestArgs,
    bus: &BusConfig,
    addr: std::net::SocketAddr,
) -> anyhow::Result<ExitCode> {
    let mut settings = match args.config.as_deref() {
        Some(path) => crate::config::Config::load(path)?
            .receiver
            .unwrap_or_default(),
        None => trailhound_receive::ReceiverSettings::default(),
    };
    settings.listen = addr;
    settings.apply_env();
    settings.validate()?;
    trailhound_bus::ensure_topics(bus, Duration::from_secs(30))?;
    let downstream = trailhound_receive::BusDownstream::new(bus)?;
    let stop = stop_flag()?;
    let receiver = trailhound_receive::Receiver::start(settings, Arc::new(downstream), None)?;
    if !args.quiet {
        eprintln!(
            "ingest: gateway receiver on http://{}/v1/sessions, sending to {}",
            receiver.local_addr(),
            bus.brokers
        );
    }
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let s = receiver.stop()?;
    if !args.quiet {
        eprintln!(
            "ingest: receiver stopped; {} requests accepted, {} unauthorised, {} too large, {} unreadable, {} answered 503",
            s.accepted, s.unauthorised, s.too_large, s.unreadable, s.unavailable
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `ingest --trail [NAME]`: a trail's bucket, found by DescribeTrails.
fn ingest_trail(args: &IngestArgs, bus: &BusConfig, name: &str) -> anyhow::Result<ExitCode> {
    let aws = aws_settings(args)?;
    let name = Some(name.trim()).filter(|n| !n.is_empty());
    let mut trail = trailhound_aws::trail::TrailBucket::discover(&aws, name)?;
    trail.concurrency = args.concurrency.max(1);
    if !args.quiet {
        let i = trail.info();
        eprintln!(
            "ingest: trail {} delivers to s3://{}/{}{}",
            i.name,
            i.bucket,
            i.logs_prefix(),
            if i.organization {
                " (organisation trail)"
            } else {
                ""
            }
        );
    }
    let options = poll_options(args)?;
    let s = trailhound_kafka::ingest_trail(&trail, bus, &options)?;
    if !args.quiet {
        eprintln!(
            "ingest: {} events from {} log files in {} polls acknowledged by {}; {} left for the next poll",
            s.events, s.files, s.polls, bus.brokers, s.files_retried
        );
        print_dead_letters(&s.dead_letters_by_reason);
    }
    Ok(ExitCode::SUCCESS)
}

/// `ingest --lookup`: CloudTrail's LookupEvents, polled per region.
fn ingest_lookup(args: &IngestArgs, bus: &BusConfig) -> anyhow::Result<ExitCode> {
    let aws = aws_settings(args)?;
    let settings = trailhound_aws::lookup::LookupSettings {
        regions: args.lookup_regions.clone(),
        ..Default::default()
    };
    let mut reader = trailhound_aws::lookup::LookupReader::new(&aws, settings)?;
    let options = poll_options(args)?;
    let s = trailhound_kafka::ingest_lookup(&mut reader, bus, &options)?;
    if !args.quiet {
        eprintln!(
            "ingest: {} events from {} LookupEvents polls ({} requests, {} repeats of the overlap dropped) acknowledged by {}",
            s.events, s.polls, s.requests, s.duplicates, bus.brokers
        );
        print_dead_letters(&s.dead_letters_by_reason);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn detect(args: &DetectArgs) -> anyhow::Result<ExitCode> {
    let brokers = args.kafka.as_deref().unwrap_or_default();
    let bus = bus_config(brokers, args.config.as_deref())?;
    let Some(group) = args.group.clone() else {
        bail!("--kafka needs --group NAME: the consumer group whose members share the partitions");
    };
    let rules = super::load_rules(&args.rules)?;
    let suppress = super::detect::load_suppress(args)?;
    let lateness = super::lateness_micros(&args.lateness)?;
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![super::detect::stdout_sink(args.format)];
    let notify = crate::config::load_notify(args.config.as_deref())?;
    let mut notify_stats = Vec::new();
    if let Some(n) = notify {
        if n.replaces_stdout {
            sinks.clear();
        }
        notify_stats = n.stats;
        sinks.extend(n.sinks);
    }
    let mut lake = super::detect::open_lake(args)?;
    let endpoint = super::detect::start_metrics(args)?;
    if let Some((m, _)) = &endpoint {
        m.watch_sinks(notify_stats.iter().cloned());
    }
    // --state is a folder or an object store URL (s3://bucket/prefix) that
    // detectors on several machines share.
    let state = match &args.state {
        Some(p) => Some(StateStore::parse(&p.to_string_lossy())?),
        None => None,
    };
    let local_state = match &state {
        Some(StateStore::Local(dir)) => Some(dir.as_path()),
        _ => None,
    };
    let mut responder =
        super::respond::start_worker(args.config.as_deref(), &rules, local_state, args.quiet)?;
    let options = DetectOptions {
        state,
        checkpoint_every: Duration::from_secs(args.checkpoint_secs.max(1)),
        exit_when_idle: args.exit_when_idle.map(Duration::from_secs),
        poll_rows: args.poll_records.max(1),
        lateness_micros: lateness,
        dead_letter_path: Some(args.dead_letters.clone()),
        ..DetectOptions::new(group)
    };
    let io = DetectIo {
        sinks: &mut sinks,
        lake: lake.as_mut().map(|l| l as &mut dyn LakeHook),
        metrics: endpoint.as_ref().map(|(m, _)| m.clone()),
        stop: stop_flag()?,
        respond: Some(&mut responder),
    };
    let summary = trailhound_kafka::detect::run(&bus, &rules, suppress, &options, io)?;
    drop(responder);
    drop(sinks);
    if !args.quiet {
        eprintln!(
            "detect: {} events from {} in {:.1} s; {} alerts; {} rules per partition, {} through the rekeyed topic ({} rows forwarded, {} applied, {} duplicates skipped)",
            summary.events,
            bus.brokers,
            summary.elapsed.as_secs_f64(),
            summary.alerts(),
            summary.rules_principal,
            summary.rules_rekeyed,
            summary.forwarded,
            summary.rekeyed_applied,
            summary.rekeyed_duplicates,
        );
        eprintln!(
            "  partitions restored from checkpoints: {}; checkpoints written: {}; records skipped as already in restored state: {}; rebalances: {}",
            summary.partitions_restored,
            summary.checkpoints,
            summary.skipped_restored,
            summary.rebalances,
        );
        if summary.member_restarts > 0 {
            eprintln!(
                "  rejoined the group {} time(s) after the broker failed (resumed from the checkpoints)",
                summary.member_restarts
            );
        }
        for (rule, n) in &summary.alerts_by_rule {
            eprintln!("  alerts {rule}: {n}");
        }
        print_dead_letters(&summary.dead_letters_by_reason);
        if summary.rule_errors > 0 {
            eprintln!("  rule errors: {}", summary.rule_errors);
        }
    }
    Ok(if summary.rule_errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
