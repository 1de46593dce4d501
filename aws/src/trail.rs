//! Trail discovery and reading a trail's bucket directly.
//!
//! [`TrailBucket::discover`] asks DescribeTrails for a trail by name (or the
//! only one there is) and learns its bucket, key prefix and whether it is an
//! organisation trail; nothing else needs configuring. [`TrailBucket::pending`]
//! lists, for every account and region under `[prefix/]AWSLogs/`, the day
//! folders of yesterday and today (a file of the last hours of yesterday can
//! land after midnight) and returns the log files a [`TrailCursor`] has not
//! marked done, digest files left out. The caller marks a file done only
//! after its events were acknowledged downstream, and saves the cursor.
//!
//! Listing costs one request per account, region and day folder per poll:
//! right for a few accounts; an organisation of hundreds is better read
//! through S3 notifications on SQS (`crate::queue`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::{self, AwsSettings};
use crate::error::AwsError;
use crate::notice::{KeyKind, ObjectRef, classify_key};
use crate::queue::{Fetched, fetch, join_all};

/// What DescribeTrails says of a trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailInfo {
    /// Its name.
    pub name: String,
    /// The bucket it delivers to.
    pub bucket: String,
    /// The key prefix before `AWSLogs/`, when it has one.
    pub prefix: Option<String>,
    /// An organisation trail (`AWSLogs/o-.../ACCOUNT/...`).
    pub organization: bool,
    /// A multi-region trail.
    pub multi_region: bool,
    /// Where the trail lives.
    pub home_region: Option<String>,
}

impl TrailInfo {
    /// `[prefix/]AWSLogs/`.
    pub fn logs_prefix(&self) -> String {
        match self.prefix.as_deref().map(|p| p.trim_matches('/')) {
            Some(p) if !p.is_empty() => format!("{p}/AWSLogs/"),
            _ => "AWSLogs/".to_string(),
        }
    }
}

/// Log files done, by day folder (`.../CloudTrail/REGION/YYYY/MM/DD/`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailCursor {
    /// File names done, by day folder.
    pub done: BTreeMap<String, BTreeSet<String>>,
}

impl TrailCursor {
    /// Records `key` as delivered.
    pub fn mark(&mut self, key: &str) {
        let (folder, name) = key.rsplit_once('/').unwrap_or(("", key));
        self.done
            .entry(format!("{folder}/"))
            .or_default()
            .insert(name.to_string());
    }

    /// Whether `key` was delivered.
    pub fn is_done(&self, key: &str) -> bool {
        let (folder, name) = key.rsplit_once('/').unwrap_or(("", key));
        self.done
            .get(&format!("{folder}/"))
            .is_some_and(|s| s.contains(name))
    }

    /// Forgets day folders older than `oldest` (`YYYY/MM/DD`), which are
    /// no longer listed.
    pub fn forget_before(&mut self, oldest: &str) {
        self.done.retain(|folder, _| {
            let day = folder.trim_end_matches('/');
            let day = day.get(day.len().saturating_sub(10)..).unwrap_or("");
            day >= oldest
        });
    }
}

/// A trail's bucket and the clients to read it.
pub struct TrailBucket {
    runtime: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
    info: TrailInfo,
    /// Largest object read (compressed); a larger one is a dead letter.
    pub max_object_bytes: u64,
    /// Objects read at once.
    pub concurrency: usize,
}

impl TrailBucket {
    /// Finds the trail `name` (or the only trail) with DescribeTrails and
    /// readies a client for its bucket.
    pub fn discover(aws: &AwsSettings, name: Option<&str>) -> Result<Self, AwsError> {
        let runtime = crate::queue::runtime()?;
        let sdk = runtime.block_on(config::load(aws));
        let cloudtrail = aws_sdk_cloudtrail::Client::new(&sdk);
        let info = runtime.block_on(describe(&cloudtrail, name))?;
        let s3 = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(aws.endpoint_url.is_some())
            .build();
        Ok(Self::ready(
            runtime,
            aws_sdk_s3::Client::from_conf(s3),
            info,
        ))
    }

    /// From ready clients (tests, embedders): DescribeTrails through
    /// `cloudtrail`, the bucket through `s3`.
    pub fn from_clients(
        s3: aws_sdk_s3::Client,
        cloudtrail: &aws_sdk_cloudtrail::Client,
        name: Option<&str>,
    ) -> Result<Self, AwsError> {
        let runtime = crate::queue::runtime()?;
        let info = runtime.block_on(describe(cloudtrail, name))?;
        Ok(Self::ready(runtime, s3, info))
    }

    fn ready(runtime: tokio::runtime::Runtime, s3: aws_sdk_s3::Client, info: TrailInfo) -> Self {
        Self {
            runtime,
            s3,
            info,
            max_object_bytes: 1024 * 1024 * 1024,
            concurrency: 4,
        }
    }

    /// What DescribeTrails said.
    pub fn info(&self) -> &TrailInfo {
        &self.info
    }

    /// Log files of yesterday and today (UTC, from `now` in microseconds)
    /// that `cursor` has not marked done, in key order.
    pub fn pending(&self, cursor: &TrailCursor, now: i64) -> Result<Vec<ObjectRef>, AwsError> {
        let days = [day_folder(now - DAY_MICROS), day_folder(now)];
        let mut out = Vec::new();
        for region_folder in self.runtime.block_on(self.region_folders())? {
            for day in &days {
                let prefix = format!("{region_folder}{day}/");
                for (key, size) in self.runtime.block_on(self.list(&prefix))? {
                    if classify_key(&key) == KeyKind::Digest || cursor.is_done(&key) {
                        continue;
                    }
                    out.push(ObjectRef {
                        bucket: self.info.bucket.clone(),
                        key,
                        size,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Reads `objects`, [`TrailBucket::concurrency`] at a time, in order.
    pub fn fetch_all(&self, objects: &[ObjectRef]) -> Vec<Fetched> {
        let mut out = Vec::with_capacity(objects.len());
        for group in objects.chunks(self.concurrency.max(1)) {
            let reads = group
                .iter()
                .map(|o| fetch(&self.s3, o, self.max_object_bytes));
            out.extend(self.runtime.block_on(join_all(reads)));
        }
        out
    }

    /// `.../ACCOUNT/CloudTrail/REGION/` for every account and region.
    async fn region_folders(&self) -> Result<Vec<String>, AwsError> {
        let root = self.info.logs_prefix();
        let mut accounts = Vec::new();
        for folder in self.folders(&root).await? {
            let name = folder[root.len()..].trim_end_matches('/');
            if name.starts_with("o-") {
                accounts.extend(self.folders(&folder).await?);
            } else {
                accounts.push(folder);
            }
        }
        let mut regions = Vec::new();
        for account in accounts {
            regions.extend(self.folders(&format!("{account}CloudTrail/")).await?);
        }
        Ok(regions)
    }

    /// The sub-folders of `prefix`.
    async fn folders(&self, prefix: &str) -> Result<Vec<String>, AwsError> {
        Ok(self.listing(prefix, Some("/")).await?.0)
    }

    /// The objects under `prefix`, with their sizes.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Option<u64>)>, AwsError> {
        Ok(self.listing(prefix, None).await?.1)
    }

    /// Every page of ListObjectsV2 under `prefix`: the common prefixes
    /// (with a delimiter) and the objects with their sizes.
    async fn listing(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<(Vec<String>, Vec<(String, Option<u64>)>), AwsError> {
        let (mut folders, mut objects) = (Vec::new(), Vec::new());
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.info.bucket)
                .prefix(prefix)
                .set_delimiter(delimiter.map(str::to_string))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("s3:ListObjectsV2", e))?;
            folders.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_string)),
            );
            objects.extend(page.contents().iter().filter_map(|o| {
                let size = o.size().and_then(|s| u64::try_from(s).ok());
                o.key().map(|k| (k.to_string(), size))
            }));
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return Ok((folders, objects));
            }
        }
    }
}

async fn describe(
    client: &aws_sdk_cloudtrail::Client,
    name: Option<&str>,
) -> Result<TrailInfo, AwsError> {
    let mut request = client.describe_trails().include_shadow_trails(true);
    if let Some(n) = name {
        request = request.trail_name_list(n);
    }
    let out = request
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("cloudtrail:DescribeTrails", e))?;
    let trails = out.trail_list();
    let not_found = |message: String| AwsError {
        operation: "cloudtrail:DescribeTrails",
        code: Some("TrailNotFound".into()),
        message,
    };
    let trail = match (name, trails) {
        (_, [one]) => one,
        (Some(n), many) => many
            .iter()
            .find(|t| t.name() == Some(n) || t.trail_arn() == Some(n))
            .ok_or_else(|| not_found(format!("no trail named {n}")))?,
        (None, []) => return Err(not_found("this account has no trail".into())),
        (None, many) => {
            let names: Vec<&str> = many.iter().filter_map(|t| t.name()).collect();
            return Err(not_found(format!(
                "several trails ({}): name one with --trail",
                names.join(", ")
            )));
        }
    };
    let bucket = trail
        .s3_bucket_name()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| {
            not_found(format!(
                "trail {} delivers to no S3 bucket",
                trail.name().unwrap_or("?")
            ))
        })?;
    Ok(TrailInfo {
        name: trail.name().unwrap_or_default().to_string(),
        bucket: bucket.to_string(),
        prefix: trail
            .s3_key_prefix()
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        organization: trail.is_organization_trail().unwrap_or(false),
        multi_region: trail.is_multi_region_trail().unwrap_or(false),
        home_region: trail.home_region().map(str::to_string),
    })
}

const DAY_MICROS: i64 = 86_400_000_000;

/// `YYYY/MM/DD` of `micros` (UTC).
pub fn day_folder(micros: i64) -> String {
    let (y, m, d) = civil(micros.div_euclid(DAY_MICROS));
    format!("{y:04}/{m:02}/{d:02}")
}

/// The calendar date of a day number since 1970-01-01.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_folders_are_utc_dates() {
        assert_eq!(day_folder(0), "1970/01/01");
        assert_eq!(day_folder(1_796_299_200_000_000), "2026/12/03");
        assert_eq!(day_folder(951_782_400_000_000), "2000/02/29");
    }

    #[test]
    fn the_cursor_marks_files_by_day_and_forgets_old_days() {
        let mut c = TrailCursor::default();
        let old = "AWSLogs/1/CloudTrail/us-east-1/2026/12/01/a.json.gz";
        let new = "AWSLogs/1/CloudTrail/us-east-1/2026/12/03/b.json.gz";
        c.mark(old);
        c.mark(new);
        assert!(c.is_done(old) && c.is_done(new));
        c.forget_before("2026/12/02");
        assert!(!c.is_done(old) && c.is_done(new));
    }
}
