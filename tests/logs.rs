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

/// What a member writes: a line, bytes that are not UTF-8, a line of 64 KiB (four `P` pieces and
/// an `F`), and a last line without a newline.
const EVERY_BYTE: &str = "echo first; printf '\\377\\376 not utf-8\\n'; s=xxxxxxxx; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13; do s=$s$s; done; printf %s $s; echo; printf very";

fn expected_bytes() -> Vec<u8> {
    let mut expected = b"first\n\xff\xfe not utf-8\n".to_vec();
    expected.extend(std::iter::repeat_n(b'x', 8 << 13));
    expected.extend_from_slice(b"\nvery");
    expected
}

fn raw_logs(env: &common::TestEnv, args: &[&str]) -> Vec<u8> {
    let out = env.podctl(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn every_byte_an_oci_member_writes_reaches_logs() {
    let env = require_env!("logs-bytes");
    env.import_busybox();
    env.create(
        "bytes.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bytes\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, '{}']\n  - name: again\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'echo run; printf very; sleep 1; exit 1']\n", EVERY_BYTE.replace('\'', "''")),
    );
    // The task stays (restartPolicy Never): the unfinished line must not wait for its deletion.
    env.wait_until(Duration::from_secs(20), "the member to end", || {
        env.pod_json("bytes")["status"]["containerStatuses"][1]["state"]["terminated"]["exitCode"] == 1
    });
    env.wait_until(Duration::from_secs(5), "the last line", || {
        raw_logs(&env, &["logs", "bytes", "-c", "c"]).ends_with(b"very")
    });
    assert_eq!(raw_logs(&env, &["logs", "bytes", "-c", "c"]), expected_bytes());
    assert_eq!(raw_logs(&env, &["logs", "bytes", "-c", "c", "--tail", "1"]), b"very");
    let stamped = String::from_utf8_lossy(&raw_logs(&env, &["logs", "bytes", "-c", "c", "--timestamps"])).into_owned();
    assert_eq!(
        stamped.matches("Z ").count(),
        4,
        "one timestamp per line, the long one too"
    );
    assert!(stamped.ends_with("Z very"), "{}", &stamped[stamped.len() - 60..]);
    // A follower shows the unfinished line too (it is a whole record in the file).
    let mut follower = env
        .command(&["logs", "-f", "bytes", "-c", "c"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = follower.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 65536];
        while !seen.ends_with(b"very") {
            match std::io::Read::read(&mut stdout, &mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
        seen
    });
    let start = Instant::now();
    while !reader.is_finished() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(reader.join().unwrap(), expected_bytes(), "logs -f");
    // A run that ended with an unfinished line, read with --previous after its restart.
    env.ok(&["delete", "bytes"]);
    env.create(
        "again.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: again\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: again\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'echo run; printf very; exit 1']\n"),
    );
    env.wait_until(Duration::from_secs(30), "a restart", || {
        env.pod_json("again")["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    });
    assert_eq!(raw_logs(&env, &["logs", "again", "--previous"]), b"run\nvery");
    env.ok(&["delete", "again"]);
}

#[test]
fn every_byte_a_wasm_member_writes_reaches_logs() {
    let env = require_env!("logs-wasm-bytes");
    // A preview1 module: "first\n", two bytes that are not UTF-8 and a newline on stderr, and a
    // last line without a newline on stdout.
    let module = env.dir.join("bytes.wat");
    std::fs::write(
        &module,
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "first\nvery")
  (data (i32.const 200) "\ff\fe!\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 10))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.store (i32.const 0) (i32.const 200)) (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 16)))))
"#,
    )
    .unwrap();
    env.create(
        "wbytes.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: wbytes\nspec:\n  restartPolicy: Never\n  containers:\n  - name: m\n    image: {}\n",
            module.display()
        ),
    );
    env.wait_until(Duration::from_secs(20), "the module to end", || {
        env.pod_json("wbytes")["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    });
    let logs = raw_logs(&env, &["logs", "wbytes"]);
    // The two streams interleave as they were written; each keeps its bytes.
    assert_eq!(logs, b"first\n\xff\xfe!\nvery", "{}", String::from_utf8_lossy(&logs));
    assert_eq!(raw_logs(&env, &["logs", "wbytes", "--tail", "1"]), b"very");
    let id = env.sandbox_id("wbytes");
    env.ok(&["delete", "wbytes"]);
    env.assert_nothing_left(&id);
}
