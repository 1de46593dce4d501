//! The end-to-end tests of the `trailhound` binary, in one test binary.
//!
//! Each file beside this one is a module: a capability driven through the
//! real binary (`CARGO_BIN_EXE_trailhound`) against real parts on loopback
//! (tansu for Kafka, moto for AWS, Prometheus, DuckDB reading the lake).
//! They are one binary rather than one per file because every test binary
//! links DataFusion, rdkafka and the AWS SDK: eighteen of them took about
//! 5 GB of disk and eighteen links per build. nextest still runs every test
//! in its own process, so a test's failure or hang stays its own.

// Helpers shared by the modules below.
#[path = "../kafka/tests/common/aws.rs"]
mod aws;
#[path = "../bus/tests/common/mod.rs"]
mod broker;
mod cluster;
mod common;

mod backtest;
mod baseline_build;
mod burst;
mod cli;
mod compose;
mod deps;
mod grants;
mod ingest_sources;
mod kafka;
mod lake;
mod metrics;
mod notify;
mod notify_kafka;
mod resilience;
mod respond;
mod rules_cli;
mod secrets;
mod state;
