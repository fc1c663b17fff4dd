//! `stdin`, `stdinOnce` and `tty` members and `podctl attach` on a real containerd: the member's
//! stdin stays open until an attach sends it input (and, with stdinOnce, closes after the first
//! attach), a tty member is a terminal that attach drives and detaches from with Ctrl-P Ctrl-Q,
//! the output reaches `podctl logs` too, and WASM members refuse stdin at create.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TestEnv, BUSYBOX_IMAGE};

/// Reads the child's stdout on a thread; `until` waits for `needle` in what it printed so far.
struct Attached {
    child: Child,
    seen: String,
    chunks: mpsc::Receiver<Vec<u8>>,
}

impl Attached {
    fn start(env: &TestEnv, args: &[&str]) -> Attached {
        let mut child = env
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Attached {
            child,
            seen: String::new(),
            chunks,
        }
    }

    fn send(&mut self, input: &[u8]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(input).unwrap();
        stdin.flush().unwrap();
    }

    fn until(&mut self, needle: &str) -> &str {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => panic!("{needle:?} never came; attach printed {:?}", self.seen),
            }
        }
        &self.seen
    }

    /// Waits for the attach to end by itself; its exit code and what it said on stderr.
    fn ends(mut self) -> (Option<i32>, String) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut said = String::new();
                let _ = self.child.stderr.take().unwrap().read_to_string(&mut said);
                return (status.code(), said);
            }
            assert!(
                Instant::now() < deadline,
                "attach did not end; it printed {:?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ends an attach that would go on (a member whose stdin stays open): our own child, by PID.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn running(env: &TestEnv, pod: &str, member: &str) -> bool {
    env.container_status(pod, member)["state"]["running"].is_object()
}

#[test]
fn attach_drives_stdin_stdin_once_and_tty_members() {
    let env = require_env!("attach");
    env.import_busybox();
    env.create(
        "talk.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: talk}}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  containers:\n  \
             - name: reader\n    image: {BUSYBOX_IMAGE}\n    stdin: true\n    \
             command: [sh, -c, 'while read line; do echo \"got: $line\"; done; echo closed']\n  \
             - name: once\n    image: {BUSYBOX_IMAGE}\n    stdin: true\n    stdinOnce: true\n    \
             command: [sh, -c, 'while read line; do echo \"once: $line\"; done; echo closed; exit 4']\n  \
             - name: term\n    image: {BUSYBOX_IMAGE}\n    stdin: true\n    tty: true\n    command: [sh]\n  \
             - name: plain\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'while true; do echo tick; sleep 0.2; done']\n"
        ),
    );
    // Waiting on an open stdin, they run (without stdin they would end at once).
    std::thread::sleep(Duration::from_secs(1));
    for member in ["reader", "once", "term", "plain"] {
        assert!(
            running(&env, "talk", member),
            "{member} runs: {:#}",
            env.pod_json("talk")
        );
    }

    // stdin: input reaches the member; the end of an attach leaves its stdin open.
    let mut first = Attached::start(&env, &["attach", "-i", "talk", "-c", "reader"]);
    first.send(b"hello\n");
    first.until("got: hello\n");
    first.kill();
    let mut second = Attached::start(&env, &["attach", "-i", "talk", "-c", "reader"]);
    second.send(b"again\n");
    second.until("got: again\n");
    let (code, said) = second.ends_after_input_closed_for("reader");
    assert_eq!(
        code, None,
        "an attach to a member whose stdin stays open goes on: {said}"
    );
    assert!(running(&env, "talk", "reader"));
    env.wait_for_log("talk", "reader", "got: again");

    // stdinOnce: the first attach's end closes stdin; the member ends and attach returns its code.
    let mut once = Attached::start(&env, &["attach", "-i", "talk", "-c", "once"]);
    once.send(b"a\nb\n");
    once.until("once: b\n");
    let (code, said) = once.ends();
    assert_eq!(
        code,
        Some(4),
        "attach returns the member's exit code: {said} {:#}",
        env.container_status("talk", "once")
    );
    env.wait_until(Duration::from_secs(10), "once to be terminated", || {
        env.container_status("talk", "once")["state"]["terminated"]["exitCode"] == 4
    });
    let log = env.logs("talk", "once");
    assert!(log.ends_with("once: a\nonce: b\nclosed\n"), "{log:?}");

    // tty: a terminal the attach drives; Ctrl-P Ctrl-Q detaches and the shell runs on.
    let mut term = Attached::start(&env, &["attach", "-i", "-t", "talk", "-c", "term"]);
    term.send(b"echo $((6*7)) $TERM; tty\n");
    let seen = term.until("42 xterm").to_string();
    term.until("/dev/pts/");
    assert!(!seen.contains("\r\r"), "{seen:?}");
    term.send(&[0x10, 0x11]);
    let (code, said) = term.ends();
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("read escape sequence"), "{said}");
    assert!(running(&env, "talk", "term"), "a detach leaves the member running");
    env.wait_for_log("talk", "term", "42 xterm");

    // Neither: attach shows the output from now on, and refuses nothing.
    let mut plain = Attached::start(&env, &["attach", "talk", "-c", "plain"]);
    plain.until("tick\ntick\n");
    plain.kill();

    let sandbox = env.sandbox_id("talk");
    env.delete_leaving_nothing("talk");
    // The relays ended with their members.
    let relays: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(" relay ") && c.contains(&sandbox))
        .collect();
    assert!(relays.is_empty(), "{relays:?}");
}

impl Attached {
    /// Closes the attach's input: for a member without stdinOnce nothing ends; the attach is
    /// then ended by hand. Returns the code it had by then (None: still running).
    fn ends_after_input_closed_for(mut self, member: &str) -> (Option<i32>, String) {
        drop(self.child.stdin.take());
        std::thread::sleep(Duration::from_millis(700));
        let code = self.child.try_wait().unwrap().and_then(|s| s.code());
        let said = format!("after closing the input of an attach to {member}");
        self.kill();
        (code, said)
    }
}

#[test]
fn wasm_members_refuse_stdin_at_create() {
    let env = require_env!("attach-wasm");
    let hello = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("wasm-examples/hello.wasm");
    let path = env.manifest(
        "wasm-stdin.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: wasmin}}\nspec:\n  containers:\n  - name: mod\n    image: file://{}\n    stdin: true\n",
            hello.display()
        ),
    );
    env.fails_leaving_nothing(
        &["create", "-f", &path],
        &[
            "container mod: stdin: a member that plugin wasmtime runs",
            "remove stdin: true",
        ],
    );
}
