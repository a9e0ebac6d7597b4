//! One classifier for every SDK error of every service: what callers act on is the
//! [`PortError`] variant, and what a person reads is a message that names the service, the
//! call, the resource and what to check.

use std::error::Error;
use std::fmt;

use a2a_core::PortError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What to check when the service cannot be reached. Names variables, never their values.
const REACH_HINT: &str = "check AWS_ENDPOINT_URL, AWS_REGION, the credentials (AWS_PROFILE or AWS_ACCESS_KEY_ID) and the network";

/// Longest piece of a remote message or error chain quoted in a `PortError`.
const MAX_DETAIL: usize = 400;

/// One SDK call, as error messages name it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The service, as people know it: `DynamoDB`, `S3`, `SQS`.
    pub service: &'static str,
    /// The API operation: `PutItem`, `GetObject`.
    pub operation: &'static str,
    /// The resource it touched, with its kind: `table "a2a-state"`, `bucket "b" key "k"`.
    pub resource: &'a str,
}

impl<'a> Call<'a> {
    /// A call of `operation` of `service` on `resource`.
    pub fn new(service: &'static str, operation: &'static str, resource: &'a str) -> Self {
        Self {
            service,
            operation,
            resource,
        }
    }
}

impl fmt::Display for Call<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} on {}",
            self.service, self.operation, self.resource
        )
    }
}

/// What a service error code means to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Conflict,
    NotFound,
    MissingResource,
    Throttled,
    Denied,
    Invalid,
    Corrupt,
    ServerSide,
    Other,
}

fn kind_of(code: Option<&str>, status: Option<u16>) -> Kind {
    match code.unwrap_or("") {
        "ConditionalCheckFailedException"
        | "TransactionConflictException"
        | "TransactionCanceledException"
        | "PreconditionFailed"
        | "ConditionalRequestConflict" => Kind::Conflict,
        "NoSuchKey" | "NotFound" | "NoSuchUpload" | "NoSuchVersion" | "ExecutionDoesNotExist" => {
            Kind::NotFound
        }
        "ResourceNotFoundException"
        | "TableNotFoundException"
        | "NoSuchBucket"
        | "QueueDoesNotExist"
        | "AWS.SimpleQueueService.NonExistentQueue"
        | "StateMachineDoesNotExist" => Kind::MissingResource,
        "ThrottlingException"
        | "Throttling"
        | "ThrottledException"
        | "ProvisionedThroughputExceededException"
        | "RequestLimitExceeded"
        | "LimitExceededException"
        | "SlowDown"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "TooManyRequestsException"
        | "KMSThrottlingException" => Kind::Throttled,
        "AccessDenied"
        | "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "InvalidToken"
        | "MissingAuthenticationToken"
        | "MissingAuthenticationTokenException"
        | "AuthFailure"
        | "RequestExpired"
        | "RequestTimeTooSkewed"
        | "InvalidSecurity"
        | "AllAccessDisabled" => Kind::Denied,
        "BadDigest" | "InvalidDigest" | "XAmzContentSHA256Mismatch" => Kind::Corrupt,
        "ValidationException"
        | "SerializationException"
        | "InvalidParameterValue"
        | "InvalidParameterValueException"
        | "InvalidParameterCombination"
        | "MissingParameter"
        | "InvalidArgument"
        | "InvalidRequest"
        | "InvalidBucketName"
        | "KeyTooLongError"
        | "EntityTooLarge"
        | "EntityTooSmall"
        | "InvalidPart"
        | "InvalidPartOrder"
        | "ItemCollectionSizeLimitExceededException"
        | "ReceiptHandleIsInvalid"
        | "InvalidAttributeName"
        | "InvalidAttributeValue"
        | "InvalidMessageContents"
        | "BatchEntryIdsNotDistinct"
        | "TooManyEntriesInBatchRequest"
        | "EmptyBatchRequest"
        | "InvalidBatchEntryId"
        | "BatchRequestTooLong"
        | "InvalidAddress" => Kind::Invalid,
        "InternalServerError"
        | "InternalError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => Kind::ServerSide,
        // No code we know: fall back on the HTTP status.
        _ => match status {
            Some(404) => Kind::NotFound,
            Some(401 | 403) => Kind::Denied,
            Some(412) => Kind::Conflict,
            Some(429) => Kind::Throttled,
            Some(500..=599) => Kind::ServerSide,
            _ => Kind::Other,
        },
    }
}

/// An error and its causes, `: `-separated, each said once (wrappers often repeat their
/// source's text).
pub(crate) fn chain(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = e.source();
    }
    out
}

/// Cuts remote text to a readable length, on a character boundary.
fn clip(s: &str) -> String {
    if s.len() <= MAX_DETAIL {
        return s.to_owned();
    }
    let mut end = MAX_DETAIL;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Turns an SDK error of any service into a [`PortError`]:
///
/// * not sent, timed out, no answer, or an answer that is not the service's → `Unavailable`
///   (the environment: endpoint, credentials, network);
/// * a failed condition → `Conflict`; a missing key or object → `NotFound`;
/// * a missing table, bucket or queue → `Unavailable`, saying what to create;
/// * throttling, refused credentials, server-side failures → `Unavailable`;
/// * a malformed request → `Invalid`; a checksum the service refused → `Corrupt`;
/// * anything else → `Backend`.
///
/// The message never holds credentials: it quotes only the service's error code and
/// message and the SDK's error chain, which carry none.
pub fn classify<E>(err: &SdkError<E, HttpResponse>, call: Call<'_>) -> PortError
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let detail = || clip(&chain(err));
    match err {
        SdkError::ConstructionFailure(_) => PortError::Unavailable(format!(
            "{call}: the request could not be made ({}); {REACH_HINT}",
            detail()
        )),
        SdkError::TimeoutError(_) => {
            PortError::Unavailable(format!("{call}: timed out ({}); {REACH_HINT}", detail()))
        }
        SdkError::DispatchFailure(_) => PortError::Unavailable(format!(
            "{call}: could not reach {} ({}); {REACH_HINT}",
            call.service,
            detail()
        )),
        SdkError::ResponseError(r) => PortError::Unavailable(format!(
            "{call}: got an answer (HTTP {}) that {} does not give ({}); check that AWS_ENDPOINT_URL points at {}",
            r.raw().status().as_u16(),
            call.service,
            detail(),
            call.service
        )),
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            service_error(
                call,
                err.code(),
                err.message(),
                Some(status),
                &s.err().to_string(),
            )
        }
        _ => PortError::Backend(format!("{call}: {}", detail())),
    }
}

fn service_error(
    call: Call<'_>,
    code: Option<&str>,
    message: Option<&str>,
    status: Option<u16>,
    fallback: &str,
) -> PortError {
    let said = match (code, message) {
        (Some(c), Some(m)) => format!("{c}: {}", clip(m)),
        (Some(c), None) => c.to_owned(),
        (None, Some(m)) => clip(m),
        (None, None) => match status {
            Some(s) => format!("HTTP {s} {}", clip(fallback)),
            None => clip(fallback),
        },
    };
    let said = said.trim_end().to_owned();
    match kind_of(code, status) {
        Kind::Conflict => PortError::Conflict(format!("{call}: {said}")),
        Kind::NotFound => PortError::NotFound(format!("{call}: {said}")),
        Kind::MissingResource => PortError::Unavailable(format!(
            "{call}: {said}; the {} does not exist in this account and region: deploy \
             template.yaml, or create it with the a2a-aws setup helper (create_table, \
             create_bucket, create_with_dead_letter)",
            call.resource
        )),
        Kind::Throttled => PortError::Unavailable(format!(
            "{call}: throttled ({said}) after retries; slow down or raise the limit, then retry"
        )),
        Kind::Denied => PortError::Unavailable(format!(
            "{call}: the credentials were refused ({said}); check AWS_PROFILE or \
             AWS_ACCESS_KEY_ID, the role's permissions, the clock and AWS_ENDPOINT_URL"
        )),
        Kind::Invalid => PortError::Invalid(format!("{call}: {said}")),
        Kind::Corrupt => PortError::Corrupt(format!(
            "{call}: the service refused the data's checksum ({said})"
        )),
        Kind::ServerSide => PortError::Unavailable(format!(
            "{call}: {} failed on its side ({said}) after retries; retry later",
            call.service
        )),
        Kind::Other => PortError::Backend(format!("{call}: {said}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    type Err = SdkError<ErrorMetadata, HttpResponse>;

    fn service(code: Option<&str>, status: u16) -> Err {
        let mut meta = ErrorMetadata::builder().message("the service says no");
        if let Some(c) = code {
            meta = meta.code(c);
        }
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(meta.build(), raw)
    }

    fn call() -> Call<'static> {
        Call::new("DynamoDB", "PutItem", "table \"a2a-state\"")
    }

    #[test]
    fn transport_failures_are_unavailable_and_say_what_to_check() {
        let errs: Vec<Err> = vec![
            SdkError::dispatch_failure(ConnectorError::io("connection refused".into())),
            SdkError::timeout_error("attempt timeout"),
            SdkError::construction_failure("no credentials"),
        ];
        for e in errs {
            match classify(&e, call()) {
                PortError::Unavailable(m) => {
                    assert!(m.contains("DynamoDB PutItem on table \"a2a-state\""), "{m}");
                    assert!(m.contains("AWS_ENDPOINT_URL"), "{m}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn service_codes_map_to_what_callers_act_on() {
        let cases = [
            (Some("ConditionalCheckFailedException"), 400, "conflict"),
            (Some("NoSuchKey"), 404, "not found"),
            (Some("NotFound"), 404, "not found"),
            (None, 404, "not found"),
            (Some("ResourceNotFoundException"), 400, "unavailable"),
            (Some("NoSuchBucket"), 404, "unavailable"),
            (
                Some("AWS.SimpleQueueService.NonExistentQueue"),
                400,
                "unavailable",
            ),
            (Some("QueueDoesNotExist"), 400, "unavailable"),
            (Some("ThrottlingException"), 400, "unavailable"),
            (
                Some("ProvisionedThroughputExceededException"),
                400,
                "unavailable",
            ),
            (Some("SlowDown"), 503, "unavailable"),
            (None, 429, "unavailable"),
            (Some("AccessDenied"), 403, "unavailable"),
            (Some("UnrecognizedClientException"), 400, "unavailable"),
            (Some("InternalServerError"), 500, "unavailable"),
            (Some("ValidationException"), 400, "invalid"),
            (Some("BadDigest"), 400, "corrupt"),
            (Some("SomethingNew"), 400, ""),
        ];
        for (code, status, want) in cases {
            let got = classify(&service(code, status), call());
            let text = got.to_string();
            assert!(
                text.starts_with(want),
                "{code:?}/{status}: want {want:?}, got {text}"
            );
            if let Some(c) = code {
                assert!(text.contains(c), "the code is quoted: {text}");
            }
        }
    }

    #[test]
    fn a_missing_resource_says_what_to_create() {
        let m = classify(&service(Some("ResourceNotFoundException"), 400), call()).to_string();
        assert!(m.contains("table \"a2a-state\" does not exist"), "{m}");
        assert!(m.contains("create_table"), "{m}");
    }

    #[test]
    fn long_remote_text_is_clipped_on_a_char_boundary() {
        let long = "à".repeat(1000);
        let c = clip(&long);
        assert!(c.len() <= MAX_DETAIL + '…'.len_utf8());
        assert!(c.ends_with('…'));
    }
}
