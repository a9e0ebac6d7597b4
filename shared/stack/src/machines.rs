//! The template's state machines on the local engine: each definition with its
//! `DefinitionSubstitutions` resolved to the template's ARNs, each Lambda task invoked by
//! its function's name, each activity task scheduled on the loopback that the Step
//! Functions endpoint serves to workers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use a2a_core::InstanceKind;
use a2a_local::workflows::{FnHandler, Handlers, TaskContext, TaskError};
use a2a_local::{AslWorkflows, MemActivities};
use serde_json::Value;

use crate::engine::MachineArns;
use crate::events::{InFlight, Invoke, invoke_counted};
use crate::shape::{Activity, Function, Machine};

/// Which workflow a definition file is, by its name (`migrate-instance.asl.json`).
pub fn kind_of(m: &Machine) -> Option<InstanceKind> {
    let file = m.definition.file_name()?.to_str()?;
    InstanceKind::ALL
        .into_iter()
        .find(|k| file == format!("{}.asl.json", k.workflow()))
}

/// The engine of `machines`: every substitution must be a function or an activity of the
/// template (or else the error names the machine and the placeholder). Returns the
/// workflows, the machines' ARNs and the activities served (name → ARN).
pub fn workflows(
    machines: &[Machine],
    functions: &[Function],
    activities: &[Activity],
    invoker: Arc<dyn Invoke>,
    inflight: Arc<InFlight>,
    loopback: Arc<MemActivities>,
) -> Result<(AslWorkflows, MachineArns, BTreeMap<String, String>), String> {
    let fn_arn = |f: &Function| {
        // The ARN the template gives `!GetAtt F.Arn`: it ends in `function:<name>`.
        format!(":function:{}", f.name)
    };
    let mut handlers = Handlers::new();
    let mut files = Vec::new();
    let mut arns: HashMap<InstanceKind, String> = HashMap::new();
    let mut served = BTreeMap::new();
    for m in machines {
        let kind = kind_of(m).ok_or_else(|| {
            format!(
                "resource {}: {} is neither migrate-instance.asl.json nor provision-instance.asl.json",
                m.id,
                m.definition.display()
            )
        })?;
        for (placeholder, value) in &m.substitutions {
            if let Some(f) = functions.iter().find(|f| value.ends_with(&fn_arn(f))) {
                let (invoker, inflight, name) = (invoker.clone(), inflight.clone(), f.name.clone());
                handlers = handlers.lambda(
                    &f.name,
                    FnHandler(move |input: Value, _t: TaskContext| {
                        let (invoker, inflight, name) =
                            (invoker.clone(), inflight.clone(), name.clone());
                        async move {
                            invoke_counted(&*invoker, &inflight, &name, input)
                                .await
                                .map_err(|f| {
                                    tracing::warn!(function = %name, "task failed: {}: {}", f.error_type, f.message);
                                    TaskError::new(f.error_type, f.message)
                                })
                        }
                    }),
                );
            } else if let Some(a) = activities.iter().find(|a| a.arn == *value) {
                let (loopback, at) = (loopback.clone(), a.arn.clone());
                handlers = handlers.resource(
                    &a.arn,
                    FnHandler(move |input: Value, t: TaskContext| {
                        loopback.schedule(&at, input, move || t.heartbeat())
                    }),
                );
                served.insert(a.name.clone(), a.arn.clone());
            } else {
                return Err(format!(
                    "resource {}: DefinitionSubstitutions.{placeholder} is {value:?}, neither a function nor an activity of the template",
                    m.id
                ));
            }
        }
        arns.insert(kind, m.arn.clone());
        files.push((kind, m.definition.clone(), m.substitutions.clone()));
    }
    let flows = AslWorkflows::from_files(&files, handlers)
        .map_err(|e| format!("the state machines: {e}"))?;
    let arn = |k: InstanceKind| arns.get(&k).cloned().unwrap_or_default();
    let machine_arns = MachineArns {
        migrate: arn(InstanceKind::Migrate),
        provision: arn(InstanceKind::Provision),
    };
    Ok((flows, machine_arns, served))
}
