//! An SQS queue of S3 notifications, and the objects they name: long polls,
//! bounded concurrent reads with a size limit, deletes, and visibility
//! changes (extension while a large object is read, backoff after a
//! failure so a failing message never spins in a hot loop and, after the
//! queue's `maxReceiveCount`, goes to its redrive queue).

use aws_sdk_sqs::types::MessageSystemAttributeName;

use crate::config::{self, AwsSettings};
use crate::error::AwsError;
use crate::notice::{Notice, NoticeError, ObjectRef, parse_notice};

/// How the queue is read.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// The queue's URL.
    pub queue_url: String,
    /// Long-poll wait, 0 to 20 s (default 20).
    pub wait_seconds: i32,
    /// Messages per receive, 1 to 10 (default 10).
    pub max_messages: i32,
    /// Visibility timeout asked for on receive, in seconds (default 300).
    pub visibility_seconds: i32,
    /// Largest object read (compressed), in bytes; a larger one is a dead letter.
    pub max_object_bytes: u64,
    /// Objects read at once (default 4).
    pub concurrency: usize,
}

impl QueueSettings {
    /// The defaults for `queue_url`.
    pub fn new(queue_url: impl Into<String>) -> Self {
        Self {
            queue_url: queue_url.into(),
            wait_seconds: 20,
            max_messages: 10,
            visibility_seconds: 300,
            max_object_bytes: 1024 * 1024 * 1024,
            concurrency: 4,
        }
    }
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message id.
    pub message_id: String,
    receipt: String,
    /// How many times the queue has handed it out (1 the first time).
    pub receive_count: u32,
    /// What it says.
    pub notice: Result<Notice, NoticeError>,
}

/// An object read, or why not.
#[derive(Debug)]
pub enum Fetched {
    /// Its bytes, as stored (gzip or not).
    Bytes(Vec<u8>),
    /// Over [`QueueSettings::max_object_bytes`]: a dead letter, not a retry.
    TooLarge {
        /// Its size, or how far it was read.
        size: u64,
    },
    /// Gone (deleted before it was read): a dead letter, not a retry.
    Missing(String),
    /// Could not be read now (network, throttling past the retries,
    /// permissions): the message is retried later.
    Failed(AwsError),
}

/// The queue and the bucket clients, on a runtime of their own.
pub struct S3Queue {
    runtime: tokio::runtime::Runtime,
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    settings: QueueSettings,
}

impl S3Queue {
    /// Clients from the standard configuration and `aws`.
    pub fn new(aws: &AwsSettings, settings: QueueSettings) -> Result<Self, AwsError> {
        let runtime = runtime()?;
        let sdk = runtime.block_on(config::load(aws));
        let s3 = aws_sdk_s3::config::Builder::from(&sdk)
            // Emulators and private endpoints serve buckets on the path.
            .force_path_style(aws.endpoint_url.is_some())
            .build();
        Ok(Self {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(s3),
            runtime,
            settings,
        })
    }

    /// From ready clients (tests, embedders).
    pub fn from_clients(
        sqs: aws_sdk_sqs::Client,
        s3: aws_sdk_s3::Client,
        settings: QueueSettings,
    ) -> Result<Self, AwsError> {
        Ok(Self {
            runtime: runtime()?,
            sqs,
            s3,
            settings,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// One long poll: up to `max_messages` messages, or none after the wait.
    pub fn receive(&self) -> Result<Vec<Delivery>, AwsError> {
        let s = &self.settings;
        let out = self
            .runtime
            .block_on(
                self.sqs
                    .receive_message()
                    .queue_url(&s.queue_url)
                    .max_number_of_messages(s.max_messages.clamp(1, 10))
                    .wait_time_seconds(s.wait_seconds.clamp(0, 20))
                    .visibility_timeout(s.visibility_seconds.max(1))
                    .message_system_attribute_names(
                        MessageSystemAttributeName::ApproximateReceiveCount,
                    )
                    .send(),
            )
            .map_err(|e| AwsError::from_sdk("sqs:ReceiveMessage", e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                let receipt = m.receipt_handle()?.to_string();
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                Some(Delivery {
                    message_id: m.message_id().unwrap_or_default().to_string(),
                    receipt,
                    receive_count,
                    notice: parse_notice(m.body().unwrap_or_default()),
                })
            })
            .collect())
    }

    /// Reads `objects`, at most [`QueueSettings::concurrency`] at a time,
    /// in the order given.
    pub fn fetch_all(&self, objects: &[ObjectRef]) -> Vec<Fetched> {
        let limit = self.settings.max_object_bytes;
        let at_once = self.settings.concurrency.max(1);
        let mut out = Vec::with_capacity(objects.len());
        for group in objects.chunks(at_once) {
            let reads = group.iter().map(|o| fetch(&self.s3, o, limit));
            out.extend(self.runtime.block_on(join_all(reads)));
        }
        out
    }

    /// Deletes a message whose objects were all delivered downstream.
    pub fn delete(&self, d: &Delivery) -> Result<(), AwsError> {
        self.runtime
            .block_on(
                self.sqs
                    .delete_message()
                    .queue_url(&self.settings.queue_url)
                    .receipt_handle(&d.receipt)
                    .send(),
            )
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("sqs:DeleteMessage", e))
    }

    /// Keeps a message invisible `seconds` more from now: to extend it
    /// while it is being worked on, or to retry it later.
    pub fn set_visibility(&self, d: &Delivery, seconds: i32) -> Result<(), AwsError> {
        self.runtime
            .block_on(
                self.sqs
                    .change_message_visibility()
                    .queue_url(&self.settings.queue_url)
                    .receipt_handle(&d.receipt)
                    .visibility_timeout(seconds.clamp(0, 43_200))
                    .send(),
            )
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("sqs:ChangeMessageVisibility", e))
    }
}

/// The wait before a failed message is handed out again: 30 s doubling
/// with each receive, at most 15 minutes.
pub fn backoff_seconds(receive_count: u32) -> i32 {
    let doublings = receive_count.saturating_sub(1).min(5);
    (30i32 << doublings).min(900)
}

pub(crate) async fn join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    // Few at a time: spawn-free concurrency on the current-thread runtime.
    let futures: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut pending: Vec<_> = futures.into_iter().enumerate().collect();
    std::future::poll_fn(|cx| {
        pending.retain_mut(|(i, f)| match f.as_mut().poll(cx) {
            std::task::Poll::Ready(v) => {
                if let Some(slot) = out.get_mut(*i) {
                    *slot = Some(v);
                }
                false
            }
            std::task::Poll::Pending => true,
        });
        if pending.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

pub(crate) async fn fetch(s3: &aws_sdk_s3::Client, o: &ObjectRef, limit: u64) -> Fetched {
    if let Some(size) = o.size
        && size > limit
    {
        return Fetched::TooLarge { size };
    }
    let got = match s3.get_object().bucket(&o.bucket).key(&o.key).send().await {
        Ok(g) => g,
        Err(e) => {
            let e = AwsError::from_sdk("s3:GetObject", e);
            if matches!(e.code.as_deref(), Some("NoSuchKey" | "NoSuchBucket")) {
                return Fetched::Missing(e.to_string());
            }
            return Fetched::Failed(e);
        }
    };
    let declared = got.content_length().and_then(|n| u64::try_from(n).ok());
    if let Some(size) = declared
        && size > limit
    {
        return Fetched::TooLarge { size };
    }
    let mut body = got.body;
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    loop {
        match body.try_next().await {
            Ok(Some(chunk)) => {
                if (bytes.len() + chunk.len()) as u64 > limit {
                    return Fetched::TooLarge {
                        size: (bytes.len() + chunk.len()) as u64,
                    };
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Fetched::Failed(AwsError {
                    operation: "s3:GetObject",
                    code: None,
                    message: format!("reading {}: {e}", o.url()),
                });
            }
        }
    }
    Fetched::Bytes(bytes)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, AwsError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AwsError {
            operation: "runtime",
            code: None,
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_from_30_seconds_to_15_minutes() {
        let waits: Vec<i32> = (1..=8).map(super::backoff_seconds).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 900, 900, 900]);
    }
}
