use super::*;

fn pods(prefix: &str, ready: &[bool]) -> Vec<Seen> {
    ready
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("{prefix}{i}"), *r))
        .collect()
}

#[test]
fn a_rolling_update_surges_then_waits_for_readiness_then_retires_old_pods() {
    let rolling = Rollout::Rolling {
        surge: 1,
        unavailable: 0,
    };
    // 3 old ready pods: one new one first, nothing removed.
    let step = plan(rolling, 3, &[], &pods("old", &[true, true, true]));
    assert_eq!(
        step,
        Step {
            make: 1,
            remove: vec![],
            waiting: false
        }
    );
    // The new one not ready yet: wait.
    let step = plan(rolling, 3, &pods("new", &[false]), &pods("old", &[true, true, true]));
    assert!(step.waiting && step.make == 0 && step.remove.is_empty());
    // Ready: the oldest old pod goes (pods are listed newest first).
    let step = plan(rolling, 3, &pods("new", &[true]), &pods("old", &[true, true, true]));
    assert_eq!(step.remove, vec!["old2".to_string()]);
    assert_eq!(step.make, 0);
    // One old left and the new ones ready: it goes; no pod is made past the count.
    let step = plan(rolling, 3, &pods("new", &[true, true, true]), &pods("old", &[true]));
    assert_eq!(
        step,
        Step {
            make: 0,
            remove: vec!["old0".into()],
            waiting: false
        }
    );
}

#[test]
fn unready_old_pods_go_at_once_and_max_unavailable_lets_pods_go_before_new_ones_are_ready() {
    let rolling = Rollout::Rolling {
        surge: 0,
        unavailable: 1,
    };
    let step = plan(rolling, 2, &[], &pods("old", &[true, true]));
    assert_eq!(step.remove, vec!["old1".to_string()]);
    assert_eq!(step.make, 0);
    // An unready old pod goes first, and only as many as keep one ready.
    let step = plan(rolling, 2, &[], &pods("old", &[false, true]));
    assert_eq!(step.remove, vec!["old0".to_string()]);
}

#[test]
fn recreate_removes_every_old_pod_first_and_scaling_meets_the_count() {
    let step = plan(Rollout::Recreate, 2, &[], &pods("old", &[true, true]));
    assert_eq!(step.remove.len(), 2);
    assert_eq!(step.make, 0);
    let step = plan(Rollout::Recreate, 2, &[], &[]);
    assert_eq!(step.make, 2);
    // Scaled down: the unready first, then the oldest.
    let step = plan(
        Rollout::Rolling {
            surge: 1,
            unavailable: 0,
        },
        1,
        &pods("p", &[true, false, true]),
        &[],
    );
    assert_eq!(step.remove, vec!["p1".to_string(), "p2".to_string()]);
    // OnDelete keeps old pods; only a missing one is made, from the new template.
    let step = plan(Rollout::OnDelete, 1, &[], &pods("old", &[true]));
    assert_eq!(step, Step::default());
    let step = plan(Rollout::OnDelete, 1, &[], &[]);
    assert_eq!(step.make, 1);
}
