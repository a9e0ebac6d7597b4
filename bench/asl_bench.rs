//! bench asl, the A2A side: N concurrent executions of the 12-state migration workflow
//! (`tests/fixtures/asl/migrate-demo.asl.json`) with every task mocked, under the virtual
//! clock, on a tokio runtime. Prints the wall time in seconds on stdout and details on stderr.
//!
//! Usage: asl_bench DEFINITION MOCK_CONFIG [EXECUTIONS] [TABLES]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use a2a_asl::{
    Execution, ExecutionOptions, Handlers, MockConfig, StateMachine, Status, VirtualClock,
};
use serde_json::{Value, json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(def), Some(mocks)) = (args.get(1), args.get(2)) else {
        return Err("usage: asl_bench DEFINITION MOCK_CONFIG [EXECUTIONS] [TABLES]".into());
    };
    let executions: usize = args.get(3).map_or(Ok(700), |s| s.parse())?;
    let tables: usize = args.get(4).map_or(Ok(10), |s| s.parse())?;

    let subs = HashMap::from([("PreflightFunction".to_owned(), "a2a-preflight".to_owned())]);
    let mut text: Value = serde_json::from_str(&std::fs::read_to_string(def)?)?;
    // moto sleeps for real: both engines run the same, shorter Wait (see bench/asl.sh).
    text["States"]["Settle"]["Seconds"] = json!(1);
    let sm = Arc::new(StateMachine::load(&text.to_string(), &subs)?);

    let mut mock_json: Value = serde_json::from_str(&std::fs::read_to_string(mocks)?)?;
    let names: Vec<String> = (0..tables).map(|i| format!("mdl_table_{i}")).collect();
    mock_json["MockedResponses"]["Preflight3Tables"]["0"]["Return"]["Payload"]["tables"] =
        json!(names);
    let case = MockConfig::parse(&mock_json.to_string())?.test_case("migrate-demo", "HappyPath")?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let outcomes = rt.block_on(async {
        let mut joins = Vec::with_capacity(executions);
        for i in 0..executions {
            let sm = sm.clone();
            let opts = ExecutionOptions {
                name: Some(format!("bench-{i}")),
                state_machine_name: "migrate-demo".into(),
                clock: Arc::new(VirtualClock::new()),
                resolver: Arc::new(Handlers::new()),
                mock: Some(case.clone()),
                history: true,
                arn: None,
            };
            let input = json!({"school_code": format!("08{:06}", i)});
            joins.push(tokio::spawn(async move {
                Execution::run(&sm, input, opts).await
            }));
        }
        let mut out = Vec::with_capacity(executions);
        for j in joins {
            out.push(j.await);
        }
        out
    });
    let wall = started.elapsed().as_secs_f64();
    let mut ok = 0;
    let mut transitions = 0;
    let mut events = 0;
    for o in outcomes {
        let o = o?;
        transitions += o.transitions;
        events += o.history.len();
        if o.status == Status::Succeeded
            && o.output == Some(json!({"url": "https://agora.xtec.cat/08012345/"}))
        {
            ok += 1;
        }
    }
    eprintln!(
        "a2a: {executions} executions ({} states, {tables}-item Map), {ok} succeeded, {transitions} state transitions, {events} history events, {:.0} transitions/s",
        sm.state_count(),
        transitions as f64 / wall
    );
    if ok != executions {
        return Err(format!("only {ok} of {executions} executions succeeded").into());
    }
    println!("{wall:.4}");
    Ok(())
}
