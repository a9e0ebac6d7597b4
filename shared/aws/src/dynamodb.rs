//! `InstanceStore` on one DynamoDB table (single-table design).
//!
//! * `PK=INSTANCE#<code>`, `SK=META`: the instance's fields, plus `status` and
//!   `wave_code` (`Wave::sort_key`) for the [`STATUS_WAVE_INDEX`] GSI.
//! * `PK=INSTANCE#<code>`, `SK=EVENT#<StepEvent::sort_key>`: one item per step event.
//!
//! Listing always queries the index: with a status, that status's partition; without one,
//! each status's partition in turn (status, then wave, then code), so a listing reads only
//! instances, never the events a scan would wade through. Index reads are eventually
//! consistent on AWS: a save shows in listings a moment later.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use a2a_core::{
    Instance, InstanceStore, ListFilter, Page, PortError, SchoolCode, Status, StepEvent,
    UploadLedger, UploadRecord,
};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, IndexStatus,
    KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType, TableStatus,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

use crate::error::{Call, classify};

/// The GSI that lists instances by status, ordered by wave then code.
pub const STATUS_WAVE_INDEX: &str = "status-wave";

const SERVICE: &str = "DynamoDB";
const META: &str = "META";
const EVENT_PREFIX: &str = "EVENT#";
/// Conditional puts in flight at once in `register_all`.
const REGISTER_CONCURRENCY: usize = 16;
/// How long `create_table` waits for the table and its index to become active.
const CREATE_WAIT: Duration = Duration::from_secs(300);

/// The [`InstanceStore`] on DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
}

impl DynamoDbStore {
    /// One item by key, read consistently.
    async fn get_item(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, PortError> {
        let resource = self.resource();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(pk))
            .key("SK", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e, self.call("GetItem", &resource)))?;
        Ok(out.item)
    }

    /// A store on `table`, through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A store on `table`, with a client made from `conf` (see [`crate::config::sdk_config`]).
    pub fn from_conf(conf: &SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(conf), table)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table with its GSI, on-demand billing, and waits until both are active.
    /// Idempotent: a table that already exists is waited for, not changed. For tests and
    /// setup; production tables come from the SAM template.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), PortError> {
        let resource = format!("table {table:?}");
        let s = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let built = (|| -> Result<_, aws_sdk_dynamodb::error::BuildError> {
            let attrs = vec![s("PK")?, s("SK")?, s("status")?, s("wave_code")?];
            let keys = vec![key("PK", KeyType::Hash)?, key("SK", KeyType::Range)?];
            let gsi = GlobalSecondaryIndex::builder()
                .index_name(STATUS_WAVE_INDEX)
                .key_schema(key("status", KeyType::Hash)?)
                .key_schema(key("wave_code", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?;
            Ok((attrs, keys, gsi))
        })();
        let (attrs, keys, gsi) = built
            .map_err(|e| PortError::Invalid(format!("DynamoDB CreateTable on {resource}: {e}")))?;
        let created = client
            .create_table()
            .table_name(table)
            .set_attribute_definitions(Some(attrs))
            .set_key_schema(Some(keys))
            .global_secondary_indexes(gsi)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        if let Err(e) = created {
            // An existing table is what we want; anything else is an error.
            let exists = e
                .as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception());
            if !exists {
                return Err(classify(&e, Call::new(SERVICE, "CreateTable", &resource)));
            }
        }

        let deadline = Instant::now() + CREATE_WAIT;
        let mut pause = Duration::from_millis(100);
        loop {
            let described = client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| classify(&e, Call::new(SERVICE, "DescribeTable", &resource)))?;
            let ready = described.table().is_some_and(|t| {
                t.table_status() == Some(&TableStatus::Active)
                    && t.global_secondary_indexes()
                        .iter()
                        .all(|g| g.index_status() == Some(&IndexStatus::Active))
            });
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(PortError::Unavailable(format!(
                    "DynamoDB {resource} is not active after {} s",
                    CREATE_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    fn resource(&self) -> String {
        format!("table {:?}", self.table)
    }

    fn call<'a>(&self, operation: &'static str, resource: &'a str) -> Call<'a> {
        Call::new(SERVICE, operation, resource)
    }
}

fn pk(code: &SchoolCode) -> String {
    format!("INSTANCE#{code}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A value as a DynamoDB attribute: numbers as `N` (so conditions can compare them), maps
/// as `M`, `None` as `NULL`.
fn to_attr(v: Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s),
        Value::Array(a) => AttributeValue::L(a.into_iter().map(to_attr).collect()),
        Value::Object(o) => {
            AttributeValue::M(o.into_iter().map(|(k, v)| (k, to_attr(v))).collect())
        }
    }
}

fn from_attr(a: &AttributeValue) -> Result<Value, String> {
    Ok(match a {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => Value::Number(
            serde_json::from_str::<Number>(n).map_err(|_| format!("number {n:?} is not one"))?,
        ),
        AttributeValue::L(l) => Value::Array(l.iter().map(from_attr).collect::<Result<_, _>>()?),
        AttributeValue::M(m) => Value::Object(from_item(m)?),
        other => return Err(format!("unexpected attribute type {other:?}")),
    })
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Map<String, Value>, String> {
    item.iter()
        .map(|(k, v)| Ok((k.clone(), from_attr(v).map_err(|e| format!("{k}: {e}"))?)))
        .collect()
}

/// Serialises a domain value into item attributes.
fn to_item<T: Serialize>(value: &T) -> Result<HashMap<String, AttributeValue>, PortError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(o)) => Ok(o.into_iter().map(|(k, v)| (k, to_attr(v))).collect()),
        Ok(_) => Err(PortError::Backend(
            "a record must serialise to a map".into(),
        )),
        Err(e) => Err(PortError::Backend(format!(
            "cannot serialise a record: {e}"
        ))),
    }
}

/// Reads a domain value back from an item; the key attributes are ignored.
fn parse_item<T: DeserializeOwned>(
    item: &HashMap<String, AttributeValue>,
    table: &str,
) -> Result<T, PortError> {
    let where_ = || {
        let pk = item
            .get("PK")
            .and_then(|v| v.as_s().ok())
            .map_or("?", |s| s);
        let sk = item
            .get("SK")
            .and_then(|v| v.as_s().ok())
            .map_or("?", |s| s);
        format!("table {table:?} item PK={pk} SK={sk}")
    };
    let map = from_item(item).map_err(|e| PortError::Corrupt(format!("{}: {e}", where_())))?;
    serde_json::from_value(Value::Object(map))
        .map_err(|e| PortError::Corrupt(format!("{}: {e}", where_())))
}

fn instance_item(i: &Instance) -> Result<HashMap<String, AttributeValue>, PortError> {
    let mut item = to_item(i)?;
    item.insert("PK".into(), s(pk(&i.code)));
    item.insert("SK".into(), s(META));
    item.insert("status".into(), s(i.status.as_str()));
    item.insert("wave_code".into(), s(i.wave.sort_key(&i.code)));
    Ok(item)
}

fn event_item(
    code: &SchoolCode,
    e: &StepEvent,
) -> Result<HashMap<String, AttributeValue>, PortError> {
    let mut item = to_item(e)?;
    item.insert("PK".into(), s(pk(code)));
    item.insert("SK".into(), s(format!("{EVENT_PREFIX}{}", e.sort_key())));
    Ok(item)
}

/// Where a listing stands: the status being walked and, within it, DynamoDB's
/// `LastEvaluatedKey` (none: that status from its start).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cursor {
    pub(crate) status: Status,
    pub(crate) key: Option<HashMap<String, AttributeValue>>,
}

/// Encodes a cursor as opaque text: URL-safe base64 of a small JSON object. Every key
/// attribute of this table and its index is a string.
pub(crate) fn encode_cursor(cursor: &Cursor) -> Result<String, PortError> {
    let key = match &cursor.key {
        None => Value::Null,
        Some(key) => {
            let mut map = Map::new();
            for (k, v) in key {
                let Ok(text) = v.as_s() else {
                    return Err(PortError::Corrupt(format!(
                        "DynamoDB returned a non-string key attribute {k} in LastEvaluatedKey"
                    )));
                };
                map.insert(k.clone(), Value::String(text.clone()));
            }
            Value::Object(map)
        }
    };
    let json = serde_json::json!({ "status": cursor.status.as_str(), "key": key });
    Ok(URL_SAFE_NO_PAD.encode(json.to_string()))
}

/// Reads back a cursor of [`encode_cursor`]; anything else is `Invalid`.
pub(crate) fn decode_cursor(cursor: &str) -> Result<Cursor, PortError> {
    #[derive(serde::Deserialize)]
    struct Raw {
        status: String,
        key: Option<HashMap<String, String>>,
    }
    let bad = || {
        PortError::Invalid(format!(
            "cursor {:?} is not one this store gave out",
            clip(cursor)
        ))
    };
    let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let raw: Raw = serde_json::from_slice(&json).map_err(|_| bad())?;
    let status = Status::parse(&raw.status).ok_or_else(bad)?;
    let key = match raw.key {
        None => None,
        Some(k) if k.contains_key("PK") && k.contains_key("SK") => {
            Some(k.into_iter().map(|(k, v)| (k, s(v))).collect())
        }
        Some(_) => return Err(bad()),
    };
    Ok(Cursor { status, key })
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

#[async_trait]
impl InstanceStore for DynamoDbStore {
    async fn register(&self, instance: &Instance) -> Result<bool, PortError> {
        let mut fresh = instance.clone();
        fresh.version = 0;
        let resource = self.resource();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(instance_item(&fresh)?))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(classify(&e, self.call("PutItem", &resource))),
        }
    }

    /// Conditional puts, [`REGISTER_CONCURRENCY`] at a time: `BatchWriteItem` takes no
    /// conditions, and a transaction would fail whole on one school already there.
    async fn register_all(&self, instances: &[Instance]) -> Result<Vec<bool>, PortError> {
        let mut created = vec![false; instances.len()];
        for (chunk_no, chunk) in instances.chunks(REGISTER_CONCURRENCY).enumerate() {
            let mut tasks = tokio::task::JoinSet::new();
            for (i, instance) in chunk.iter().enumerate() {
                let store = self.clone();
                let instance = instance.clone();
                tasks.spawn(async move {
                    (
                        chunk_no * REGISTER_CONCURRENCY + i,
                        store.register(&instance).await,
                    )
                });
            }
            while let Some(joined) = tasks.join_next().await {
                let (at, result) = joined.map_err(|e| {
                    PortError::Backend(format!("a DynamoDB register task failed: {e}"))
                })?;
                created[at] = result?;
            }
        }
        Ok(created)
    }

    async fn get(&self, code: &SchoolCode) -> Result<Option<Instance>, PortError> {
        self.get_item(pk(code), META)
            .await?
            .map(|item| parse_item(&item, &self.table))
            .transpose()
    }

    async fn save(&self, instance: &Instance) -> Result<Instance, PortError> {
        let mut next = instance.clone();
        next.version = instance.version.checked_add(1).ok_or_else(|| {
            PortError::Invalid(format!("school {}: version overflows", instance.code))
        })?;
        let resource = self.resource();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(instance_item(&next)?))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(instance.version.to_string()),
            )
            .send()
            .await;
        match put {
            Ok(_) => Ok(next),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(PortError::Conflict(format!(
                    "school {}: the stored record is not at version {} (someone else saved it \
                     first, or it is not registered); read it again and decide again",
                    instance.code, instance.version
                )))
            }
            Err(e) => Err(classify(&e, self.call("PutItem", &resource))),
        }
    }

    async fn list(
        &self,
        filter: ListFilter,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<Page<Instance>, PortError> {
        ListFilter::check_limit(limit)?;
        // Every instance has a status, so the index covers the whole listing: without a
        // status, walk the statuses one after the other rather than scan every event.
        let statuses: Vec<Status> = match filter.status {
            Some(st) => vec![st],
            None => Status::ALL.to_vec(),
        };
        let mut at = match cursor.as_deref().map(decode_cursor).transpose()? {
            None => Cursor {
                status: statuses[0],
                key: None,
            },
            Some(c) if statuses.contains(&c.status) => c,
            Some(c) => {
                return Err(PortError::Invalid(format!(
                    "this cursor belongs to a listing of {} instances, not this one",
                    c.status
                )));
            }
        };
        let wave_prefix = filter.wave.map(|w| format!("{:06}#", w.0));
        let resource = self.resource();
        let mut items = Vec::new();
        loop {
            let room = limit - items.len();
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(STATUS_WAVE_INDEX)
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(at.status.as_str()))
                .scan_index_forward(true)
                .limit(i32::try_from(room).unwrap_or(i32::MAX))
                .set_exclusive_start_key(at.key.take());
            q = match &wave_prefix {
                Some(p) => q
                    .key_condition_expression("#status = :status AND begins_with(wave_code, :wave)")
                    .expression_attribute_values(":wave", s(p)),
                None => q.key_condition_expression("#status = :status"),
            };
            let out = q
                .send()
                .await
                .map_err(|e| classify(&e, self.call("Query", &resource)))?;
            for item in out.items() {
                items.push(parse_item::<Instance>(item, &self.table)?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => at.key = Some(key),
                _ => {
                    // This status is done: go on with the next one, if any.
                    let pos = statuses.iter().position(|st| *st == at.status);
                    match pos.and_then(|p| statuses.get(p + 1)) {
                        Some(next) => {
                            at = Cursor {
                                status: *next,
                                key: None,
                            }
                        }
                        None => return Ok(Page { items, next: None }),
                    }
                }
            }
            if items.len() >= limit {
                return Ok(Page {
                    items,
                    next: Some(encode_cursor(&at)?),
                });
            }
        }
    }

    async fn record(&self, code: &SchoolCode, event: &StepEvent) -> Result<(), PortError> {
        let resource = self.resource();
        // The sort key is the event's identity: recording it again overwrites the same item.
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(event_item(code, event)?))
            .send()
            .await
            .map_err(|e| classify(&e, self.call("PutItem", &resource)))?;
        Ok(())
    }

    async fn history(&self, code: &SchoolCode) -> Result<Vec<StepEvent>, PortError> {
        let resource = self.resource();
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :event)")
                .expression_attribute_values(":pk", s(pk(code)))
                .expression_attribute_values(":event", s(EVENT_PREFIX))
                .scan_index_forward(true)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify(&e, self.call("Query", &resource)))?;
            for item in page.items() {
                out.push(parse_item(item, &self.table)?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(out),
            }
        }
    }
}

/// `PK=UPLOAD#<sha256>`, `SK=META`: the record; `PK=LIST#<name>`, `SK=LATEST`: the
/// SHA-256 of the list's latest version. Neither has the index attributes, so listings of
/// instances never see them.
#[async_trait]
impl UploadLedger for DynamoDbStore {
    async fn record_upload(&self, upload: &UploadRecord) -> Result<bool, PortError> {
        let resource = self.resource();
        let mut item = to_item(upload)?;
        item.insert("PK".into(), s(format!("UPLOAD#{}", upload.sha256)));
        item.insert("SK".into(), s(META));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        match put {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(classify(&e, self.call("PutItem", &resource))),
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .item("PK", s(format!("LIST#{}", upload.name)))
            .item("SK", s("LATEST"))
            .item("sha256", s(upload.sha256.clone()))
            .send()
            .await
            .map_err(|e| classify(&e, self.call("PutItem", &resource)))?;
        Ok(true)
    }

    async fn upload(&self, sha256: &str) -> Result<Option<UploadRecord>, PortError> {
        self.get_item(format!("UPLOAD#{sha256}"), META)
            .await?
            .map(|item| parse_item(&item, &self.table))
            .transpose()
    }

    async fn latest_upload(&self, name: &str) -> Result<Option<UploadRecord>, PortError> {
        let item = self.get_item(format!("LIST#{name}"), "LATEST").await?;
        let Some(sha) = item
            .as_ref()
            .and_then(|i| i.get("sha256"))
            .and_then(|v| v.as_s().ok())
        else {
            return Ok(None);
        };
        self.upload(sha).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use a2a_core::{InstanceKind, Locator, Outcome, Status, Wave};
    use chrono::{TimeZone, Utc};

    fn instance() -> Instance {
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 21, 0, 0).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        let mut i = Instance::new(
            SchoolCode::parse("08012345").unwrap(),
            InstanceKind::Migrate,
            "Escola — Sant Martí",
            Wave(12),
            t,
        );
        i.status = Status::RolledBack;
        i.version = u64::MAX - 1;
        i.priority = -3;
        i.source.db = Some(Locator::new("postgres://u:p@h/db"));
        i.last_error = Some(String::new());
        i
    }

    #[test]
    fn instance_items_round_trip_and_carry_the_index_keys() {
        let i = instance();
        let item = instance_item(&i).unwrap();
        assert_eq!(item["PK"], s("INSTANCE#08012345"));
        assert_eq!(item["SK"], s("META"));
        assert_eq!(item["status"], s("rolled_back"));
        assert_eq!(item["wave_code"], s("000012#08012345"));
        assert_eq!(
            item["version"],
            AttributeValue::N((u64::MAX - 1).to_string())
        );
        assert_eq!(item["execution"], AttributeValue::Null(true));
        let back: Instance = parse_item(&item, "t").unwrap();
        assert_eq!(back, i);
    }

    #[test]
    fn event_items_round_trip() {
        let mut e = StepEvent::started("export-database", Utc::now());
        e.ended_at = Some(Utc::now());
        e.outcome = Outcome::Failed;
        e.rows = Some(u64::MAX);
        e.error = Some("boom".into());
        let code = SchoolCode::parse("17000001").unwrap();
        let item = event_item(&code, &e).unwrap();
        assert_eq!(item["SK"], s(format!("EVENT#{}", e.sort_key())));
        assert_eq!(parse_item::<StepEvent>(&item, "t").unwrap(), e);
    }

    #[test]
    fn a_broken_item_is_corrupt_and_named() {
        let mut item = instance_item(&instance()).unwrap();
        item.insert("version".into(), s("seven"));
        match parse_item::<Instance>(&item, "t") {
            Err(PortError::Corrupt(m)) => assert!(m.contains("PK=INSTANCE#08012345"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let key: HashMap<_, _> = [
            ("PK".to_owned(), s("INSTANCE#08000001")),
            ("SK".to_owned(), s("META")),
            ("status".to_owned(), s("queued")),
            ("wave_code".to_owned(), s("000002#08000001")),
        ]
        .into();
        for c in [
            Cursor {
                status: Status::Queued,
                key: Some(key.clone()),
            },
            Cursor {
                status: Status::RolledBack,
                key: None,
            },
        ] {
            let text = encode_cursor(&c).unwrap();
            assert!(
                text.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            );
            assert_eq!(decode_cursor(&text).unwrap(), c);
        }
        for bad in [
            "",
            "not base64!",
            "e30",
            &URL_SAFE_NO_PAD.encode("[1]"),
            &URL_SAFE_NO_PAD.encode(r#"{"status":"lost","key":null}"#),
            &URL_SAFE_NO_PAD.encode(r#"{"status":"queued","key":{"PK":"x"}}"#),
        ] {
            assert!(
                matches!(decode_cursor(bad), Err(PortError::Invalid(_))),
                "{bad:?}"
            );
        }
        let numeric = Cursor {
            status: Status::Queued,
            key: Some([("PK".to_owned(), AttributeValue::N("1".into()))].into()),
        };
        assert!(encode_cursor(&numeric).is_err());
    }
}
