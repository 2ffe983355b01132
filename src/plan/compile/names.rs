//! The names a plan defines, for `explain` and suggestions.

use std::collections::BTreeSet;

use crate::plan::{Plan, Step, Tasks};

/// Every variable name a plan defines (vars, captures, set, take), sorted.
pub fn defined_names(plan: &Plan) -> Vec<String> {
    let mut names: BTreeSet<String> = plan.vars.keys().cloned().collect();
    let tasks: Vec<&Step> = match &plan.user.tasks {
        Tasks::Sequence(s) => s.iter().collect(),
        Tasks::Weighted(w) => w.choose.iter().flat_map(|c| c.steps.iter()).collect(),
    };
    for step in plan
        .user
        .setup
        .iter()
        .chain(tasks)
        .chain(plan.user.teardown.iter())
    {
        names.extend(step.capture.keys().cloned());
        if let Some(set) = &step.set {
            names.extend(set.keys().cloned());
        }
        if let Some(take) = &step.take {
            names.insert(take.into.clone());
        }
        if let Some(crate::plan::Didcomm::Invite(i)) = &step.didcomm {
            names.insert(i.into.clone());
        }
    }
    names.into_iter().collect()
}
