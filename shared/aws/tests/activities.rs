//! `SfnActivities` against the fake Step Functions activity endpoint of `a2a-testkit`
//! (moto has no `GetActivityTask`): the calls, their JSON, and how a task that is no
//! longer wanted comes back.

#![cfg(feature = "sfn")]

use std::time::Duration;

use a2a_aws::{SfnActivities, aws_sdk_sfn};
use a2a_core::{Activities, PortError};
use a2a_testkit::activities::{Answer, FakeActivities};
use serde_json::json;

const ARN: &str = "arn:aws:states:eu-west-1:123456789012:activity:a2a-test-Freeze";

fn adapter(fake: &FakeActivities) -> SfnActivities {
    let conf = aws_sdk_sfn::Config::builder()
        .behavior_version(aws_sdk_sfn::config::BehaviorVersion::latest())
        .region(aws_sdk_sfn::config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_sfn::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .endpoint_url(fake.url())
        .build();
    SfnActivities::new(aws_sdk_sfn::Client::from_conf(conf))
}

#[tokio::test]
async fn a_task_is_polled_heartbeated_and_answered() {
    let fake = FakeActivities::start(Duration::from_millis(200))
        .await
        .unwrap();
    let acts = adapter(&fake);
    assert_eq!(acts.poll(ARN, "w-1").await.unwrap(), None, "nothing queued");
    let token = fake.schedule(ARN, json!({"school_code": "08000011"}));
    let t = acts
        .poll(ARN, "w-1")
        .await
        .unwrap()
        .expect("the queued task");
    assert_eq!(t.token, token);
    assert_eq!(t.input, json!({"school_code": "08000011"}));
    acts.heartbeat(&t.token).await.unwrap();
    acts.heartbeat(&t.token).await.unwrap();
    assert_eq!(fake.heartbeats(&t.token), 2);
    acts.succeed(&t.token, &json!({"frozen": true}))
        .await
        .unwrap();
    assert_eq!(
        fake.answer(&token, Duration::from_secs(1)).await,
        Some(Answer::Succeeded(json!({"frozen": true})))
    );
    // Answered: the token is spent, and says so as not found.
    let again = acts.fail(&t.token, "A2A.Transient", "x").await;
    assert!(matches!(again, Err(PortError::NotFound(_))), "{again:?}");
    assert_eq!(
        fake.calls(),
        [
            "GetActivityTask",
            "GetActivityTask",
            "SendTaskHeartbeat",
            "SendTaskHeartbeat",
            "SendTaskSuccess",
            "SendTaskFailure"
        ]
    );
}

#[tokio::test]
async fn a_failure_carries_its_name_and_a_timed_out_task_is_not_found() {
    let fake = FakeActivities::start(Duration::from_millis(200))
        .await
        .unwrap();
    let acts = adapter(&fake);
    let token = fake.schedule(ARN, json!({}));
    let t = acts.poll(ARN, "w-1").await.unwrap().unwrap();
    acts.fail(
        &t.token,
        "A2A.Permanent.Input",
        "school 08000011 is not registered",
    )
    .await
    .unwrap();
    assert_eq!(
        fake.answer(&token, Duration::from_secs(1)).await,
        Some(Answer::Failed {
            error: "A2A.Permanent.Input".into(),
            cause: "school 08000011 is not registered".into()
        })
    );
    fake.schedule(ARN, json!({}));
    let t = acts.poll(ARN, "w-1").await.unwrap().unwrap();
    fake.time_out(&t.token);
    let beat = acts.heartbeat(&t.token).await;
    assert!(matches!(beat, Err(PortError::NotFound(_))), "{beat:?}");
    let done = acts.succeed(&t.token, &json!({})).await;
    assert!(matches!(done, Err(PortError::NotFound(_))), "{done:?}");
}
