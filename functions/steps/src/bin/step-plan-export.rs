//! The `PlanExport` step's Lambda: see [`a2a_fn_steps::run`].

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    a2a_fn_steps::run("PlanExport").await
}
