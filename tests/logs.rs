//! Log rotation like kubelet's (containerLogMaxSize/MaxFiles) on a real containerd: a member that
//! writes 30 MiB keeps at most the configured files of at most the configured size, `podctl logs`
//! reads across them in order, and `logs -f` follows across a rotation without losing a line.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{walk, BUSYBOX_IMAGE};

fn files_of(env: &common::TestEnv, container: &str) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = walk(&env.log_dir())
        .into_iter()
        .filter(|p| p.is_file() && p.parent().is_some_and(|d| d.ends_with(container)))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::metadata(&p).unwrap().len(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_member_writing_30_mib_keeps_rotated_files_that_logs_reads_in_order() {
    let env = require_env!("logs-rotate");
    env.import_busybox();
    // ~30 MiB of numbered lines (~105 bytes each as CRI records), then quiet.
    let writer = "i=0; while [ $i -lt 300000 ]; do echo \"line $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"; i=$((i+1)); done; echo done; exec sleep 3600";
    env.create(
        "big.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: writer\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, '{writer}']\n"),
    );
    let start = Instant::now();
    while !env.logs("big", "writer").ends_with("done\n") {
        assert!(start.elapsed() < Duration::from_secs(180), "the writer never finished");
        std::thread::sleep(Duration::from_millis(500));
    }
    let files = files_of(&env, "writer");
    // Defaults: 10 MiB, 5 files; ~30 MiB of records make 0.log.3 ... 0.log.1 and 0.log.
    assert!(files.len() == 4, "{files:?}");
    assert!(files.iter().all(|(_, size)| *size <= 10 * 1024 * 1024), "{files:?}");
    let text = env.logs("big", "writer");
    let numbers: Vec<u32> = text
        .lines()
        .filter_map(|l| l.strip_prefix("line ")?.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(numbers.first(), Some(&0), "nothing rotated away yet at 4 files");
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "in order across the files"
    );
    assert_eq!(numbers.last(), Some(&299_999));
    let tail = env.ok(&["logs", "big", "--tail", "2"]);
    assert_eq!(
        tail,
        "line 299999 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\ndone\n"
    );
    env.ok(&["delete", "big"]);
}

#[test]
fn small_limits_drop_the_oldest_and_a_follower_crosses_rotations() {
    let env = require_env!("logs-follow");
    env.import_busybox();
    // ~290 KB in bursts over ~2.5 s, after the follower has started: four rotations at 64 KiB.
    let writer = "sleep 3; i=0; while [ $i -lt 6000 ]; do echo \"n $i\"; i=$((i+1)); [ $((i % 500)) -eq 0 ] && sleep 0.2; done; exec sleep 3600";
    let manifest = env.manifest(
        "small.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: small\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: counter\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, '{writer}']\n"),
    );
    env.ok(&[
        "--log-max-size",
        "64Ki",
        "--log-max-files",
        "3",
        "create",
        "-f",
        &manifest,
    ]);
    env.wait_running("small");
    let mut follower = env
        .command(&["logs", "-f", "small"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let reader = BufReader::new(follower.stdout.take().unwrap());
    for line in reader.lines() {
        let line = line.unwrap();
        let n: u32 = line.strip_prefix("n ").unwrap().parse().unwrap();
        seen.push(n);
        if n == 5_999 {
            break;
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(seen.first(), Some(&0));
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] + 1),
        "the follower lost or repeated lines"
    );
    let files = files_of(&env, "counter");
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files.iter().all(|(_, size)| *size <= 64 * 1024), "{files:?}");
    // The oldest lines were rotated away: what is kept starts later and ends at the last one.
    let kept = env.logs("small", "counter");
    assert!(
        !kept.starts_with("n 0\n") && kept.ends_with("n 5999\n"),
        "{}",
        &kept[..40]
    );
    env.ok(&["delete", "small"]);
}
